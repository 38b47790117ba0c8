"""The ``bilevelbench`` command line.

Every expected failure (bad arguments, existing output, corrupt files, Ctrl-C)
ends with one line on stderr and a non-zero exit status, never a traceback:
2 for usage and data errors, 1 when ``verify`` finds a bad label, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from bilevelbench import __version__
from bilevelbench.errors import BilevelBenchError, UsageError

log = logging.getLogger("bilevelbench")

def examples() -> str:
    """The ``--help`` examples: the common workflow, then one generation per installed family
    (``Family.example``)."""
    from bilevelbench.core.registry import families

    lines = ["examples:", "  # list the installed families, then generate, check and inspect a small set of one of them",
             "  bilevelbench families"]
    for family in families().values():
        if family.example:
            lines.append(f"  bilevelbench generate {family.name} {family.example}")
    lines += [
        "  bilevelbench verify FILE.h5 --oracle          # every label re-checked; certified ones re-solved",
        "  bilevelbench info FILE.h5                     # dataset card and content digest",
        "",
        "  # regenerate a released data set from its spec",
        "  bilevelbench generate datasets/NAME.toml --out NAME.h5 --workers 2",
        "",
        "  # score a solver (sandboxed, timed) and render the leaderboard",
        "  bilevelbench check-solver baselines/exact --dataset FILE.h5",
        "  bilevelbench evaluate --dataset FILE.h5 --solver baselines/exact --out leaderboards/results/exact.json",
        "  bilevelbench score --dataset FILE.h5 --predictions my-preds.h5 --out my.json",
        "  bilevelbench leaderboard leaderboards/ --out leaderboards/",
        "",
        "  # host the scoring service with hidden test labels (bilevelbench serve --help)",
        "  bilevelbench serve --data DIR --db sqlite:///service.db --port 8000",
    ]
    return "\n".join(lines) + "\n"


def _progress_factory(enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    def make(total: int):
        return tqdm(total=total, desc=desc, unit="inst", dynamic_ncols=True, file=sys.stderr)

    return make


GENERATE_DESCRIPTION = (
    "Sample a parametric problem family, label each instance with its exact solver and independent checks, and "
    "write one HDF5 file (docs/format.md). Generation is sharded and resumable: finished work stays in "
    "OUT.partial/ and the file appears only when every instance is done; Ctrl-C leaves no output file.")


def _generate_common(p: argparse.ArgumentParser) -> None:
    """The options every family's generation takes."""
    data = p.add_argument_group("data set")
    data.add_argument("--spec", default=None, type=Path, metavar="SPEC.toml",
                      help="regenerate a released dataset from its spec file (same as giving the spec as FAMILY); "
                           "the file records the spec it came from")
    data.add_argument("--n-train", type=int, default=None, metavar="N", help="training instances (default 0)")
    data.add_argument("--n-valid", type=int, default=None, metavar="N", help="validation instances (default 0)")
    data.add_argument("--n-test", type=int, default=None, metavar="N", help="test instances (default 100)")
    data.add_argument("--seed", type=int, default=None, metavar="S",
                      help="seed of structure and parameters; same seed, same data (default 0)")
    run = p.add_argument_group("output and parallelism")
    run.add_argument("--out", required=True, type=Path, metavar="FILE", help="output HDF5 file")
    run.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    run.add_argument("--workers", type=int, default=1, metavar="K",
                     help="label in K processes (the exact solvers are single-threaded; default 1)")
    run.add_argument("--scheduler", default=None, metavar="ADDR",
                     help="label on a Dask cluster instead of local processes: tcp://HOST:PORT of a running "
                          "scheduler, or local:K for a LocalCluster of K workers (results are identical)")


def _family_parser(family) -> argparse.ArgumentParser:
    """``bilevelbench generate FAMILY``: the common options and the family's own (``Family.options``)."""
    p = argparse.ArgumentParser(
        prog=f"bilevelbench generate {family.name}",
        description=f"{family.title}. {GENERATE_DESCRIPTION} Docs: {family.docs}.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="?", metavar="FAMILY|SPEC.toml", help=argparse.SUPPRESS)
    _generate_common(p)
    group = p.add_argument_group(f"{family.name} options (also spec keys, with _ for -)")
    for option in family.options:
        default = "" if option.default is None else f" [default: {_shown(option.default)}]"
        _add_option(group, option, f"opt_{option.name}", option.help + default, typed=True)
    return p


def _add_option(group, option, dest: str, help_text: str | None = None, typed: bool = False) -> None:
    """Add a family :class:`~bilevelbench.core.family.Option` as a flag (bool: ``--x/--no-x``); ``typed`` converts
    and checks choices at parse time (the family parser), else the text is kept (the probe)."""
    kwargs = {"default": None, "dest": dest, "help": help_text}
    if option.type is bool:
        group.add_argument(option.flag, action=argparse.BooleanOptionalAction, **kwargs)
    elif typed and option.type is not list and option.choices is not None:
        group.add_argument(option.flag, type=option.type, choices=option.choices, **kwargs)
    else:
        group.add_argument(option.flag, type=option.type if typed and option.type is not list else str,
                           metavar=option.metavar, **kwargs)


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _generate_overview() -> str:
    from bilevelbench.core.registry import families

    rows = "\n".join(f"  {name:<14} {family.title}" for name, family in families().items())
    common = argparse.ArgumentParser(prog="bilevelbench generate FAMILY|SPEC.toml", add_help=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _generate_common(common)
    options = common.format_help().split("\n\n", 1)[1]
    return (f"usage: bilevelbench generate FAMILY|SPEC.toml [options] --out FILE\n\n{GENERATE_DESCRIPTION}\n\n"
            f"families (bilevelbench generate FAMILY --help shows a family's own options):\n{rows}\n\n"
            "or a dataset spec file (datasets/*.toml) that fixes the family, its options, the seed and the split "
            f"counts.\n\n{options}\n" + examples())


def _foreign_option(token: str, family) -> str:
    """The error line for an option ``family`` does not take (naming the families that do)."""
    from bilevelbench.core.registry import families

    flag = token.split("=", 1)[0]
    owners = [f.name for f in families().values() if any(o.flag == flag for o in f.options)]
    where = f" (an option of {', '.join(owners)})" if owners else ""
    return (f"{flag} is not an option of {family.name}{where}; see bilevelbench generate {family.name} --help")


def _spec_record(spec_path: Path) -> dict:
    """The spec's settings as stored in the generated file (root attribute ``spec``)."""
    import tomllib

    record = tomllib.loads(Path(spec_path).read_text())    # exactly what the file says (validated by load_spec)
    record["file"] = Path(spec_path).name
    return record


def _probe_parser() -> argparse.ArgumentParser:
    """Finds the target (family or spec) wherever it stands: knows every option any family takes."""
    from bilevelbench.core.registry import families

    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("target", nargs="?")
    probe.add_argument("-h", "--help", action="store_true")
    _generate_common(probe)
    seen = set()
    for family in families().values():
        for option in family.options:
            if option.flag not in seen:
                seen.add(option.flag)
                _add_option(probe, option, f"probe_{option.name}")
    for action in probe._actions:
        action.required = False
    return probe


def run_generate(argv: list[str], quiet: bool, check_digest: bool = True) -> int:
    """``bilevelbench generate ...`` (``argv`` after the word ``generate``): parse, then ask the family.

    With a spec that records a ``content_digest`` and ``check_digest``, the written file's digest is compared with
    it (a warning and exit status 1 when they differ); callers that make their own check pass False.
    """
    from bilevelbench.core.family import GenerateRequest, check_options
    from bilevelbench.core.registry import get_family
    from bilevelbench.data.spec import load_spec

    first, _ = _probe_parser().parse_known_args(argv)
    if first.target is not None and first.spec is not None:
        raise UsageError(f"give either FAMILY|SPEC.toml ({first.target!r}) or --spec, not both")
    spec_path = first.spec or (Path(first.target) if first.target and first.target.endswith(".toml") else None)
    if spec_path is None and first.target is None:
        if first.help:
            print(_generate_overview())
            return 0
        raise UsageError("say what to generate: a family or a spec file (bilevelbench generate --help lists the "
                         "families), e.g. bilevelbench generate datasets/NAME.toml --out NAME.h5")
    spec = load_spec(spec_path) if spec_path is not None else None
    family = get_family(spec.family if spec is not None else first.target)
    parser = _family_parser(family)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        token = next((u for u in unknown if u.startswith("-")), unknown[0])
        if token.startswith("-"):
            raise UsageError(_foreign_option(token, family))
        raise UsageError(f"unexpected argument {token!r}; see bilevelbench generate {family.name} --help")
    sampling = {k: getattr(args, k) for k in ("n_train", "n_valid", "n_test", "seed") if getattr(args, k) is not None}
    flags = {o.name: getattr(args, f"opt_{o.name}") for o in family.options
             if getattr(args, f"opt_{o.name}") is not None}
    counts = {"n_train": 0, "n_valid": 0, "n_test": 100, "seed": 0}
    if spec is not None:
        fixed = [k for k in sampling] + [k for k in flags if not family.option(k).run_setting]
        if fixed:
            names = ", ".join("--" + k.replace("_", "-") for k in fixed)
            raise UsageError(f"{names} cannot be combined with a spec file; the spec fixes the data set")
        counts = {k: getattr(spec, k) for k in counts}
        values = {**{k: spec.options[k] for k in spec.given}, **flags}
    else:
        counts.update(sampling)
        values = flags
    options = check_options(family, values, "generate")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    request = GenerateRequest(out=args.out, **counts, options=options, workers=args.workers,
                              scheduler=args.scheduler, overwrite=args.overwrite,
                              progress=_progress_factory(not quiet, f"label {family.name}"),
                              name=spec.name if spec is not None else None,
                              spec=_spec_record(spec_path) if spec is not None else None)
    out = family.generate(request)
    written = _report_written(out)
    if spec is not None and spec.content_digest and check_digest:
        return _check_released_digest(written, spec.content_digest)
    return 0


def _check_released_digest(ds, expected: str) -> int:
    """Compare a regenerated file's content digest with the one its spec records (exit 1 when they differ)."""
    out = ds.path
    got = ds.content_digest()
    if got == expected:
        print(f"content digest {got} equals the released one (the spec's content_digest)")
        return 0
    print(f"bilevelbench generate: warning: {out} has content digest {got}, the spec says the released file has "
          f"{expected}; its labels passed their checks but differ from the release (another solver version, or "
          "CPU kernels that round differently: digests hash the arrays bit for bit): compare with 'bilevelbench info'",
          file=sys.stderr)
    return 1


def _report_written(out: Path):
    """One line on what a generation wrote: split sizes and label statuses; returns the opened set."""
    from bilevelbench.data.instance_set import InstanceSet

    ds = InstanceSet.open(out)
    split_sizes = ", ".join(f"{k} {len(ds.split(k))}" for k in ds.split_names)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(ds.status_counts().items()))
    print(f"wrote {out}: {split_sizes}; labels: {counts}")
    return ds


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="sample instances, label them exactly, write an HDF5 instance set",
        description=GENERATE_DESCRIPTION + " See: bilevelbench generate --help", add_help=False)
    p.set_defaults(run=None)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a dataset card: sizes, splits, label statuses, solver, timings",
                       description="Print a dataset card for an instance-set file.")
    p.add_argument("file", type=Path, help="HDF5 instance-set file")
    p.set_defaults(run=_run_info)


def _fmt_times(times: np.ndarray) -> str:
    if times.size == 0:
        return "none"
    q = np.quantile(times, [0.5, 0.9])
    return f"median {q[0]:.4f} s, p90 {q[1]:.4f} s, max {times.max():.4f} s, total {times.sum():.1f} s"


def _run_info(args: argparse.Namespace) -> int:
    from bilevelbench.core.statuses import SOLUTION_STATUSES
    from bilevelbench.data.instance_set import InstanceSet

    ds = InstanceSet.open(args.file)
    family = ds.family_descriptor
    meta = ds.meta
    lines = [
        f"{args.file}",
        (f"  family          {meta['family']} (generator {meta['generator_version']}, "
         f"bilevelbench {meta['bilevelbench_version']}, schema {meta['schema_version']})"),
        *("  " + line for line in family.info_lines(ds)),
        f"  seed            {meta['seed']}",
        f"  structure hash  {meta['structure_hash']}",
        f"  content digest  {ds.content_digest()} (equal for every regeneration of "
        "the same spec where CPU kernels round alike; timings and versions left out)",
    ]
    backends = meta.get("backend_versions", {})
    lines.append("  certified by    " + (", ".join(f"{k}: {v}" for k, v in backends.items()) or "nothing"))
    lines.append(f"  time limit      {meta['certifier_settings'].get('time_limit')} s per instance")
    lines.append("  splits")
    for name in ds.split_names:
        part = ds.split(name)
        counts = ", ".join(f"{v} {k}" for k, v in sorted(part.status_counts().items())) or "empty"
        lines.append(f"    {name:<10} {len(part):>7} instances: {counts}")
    labels = ds.labels
    solved = np.isin(labels["status"].astype(str), SOLUTION_STATUSES)
    lines.append(f"  certification   {_fmt_times(labels['solve_time'][solved])}")
    if solved.any():
        obj = labels["objective"][solved]
        lines.append(f"  objective       mean {obj.mean():.4f}, min {obj.min():.4f}, max {obj.max():.4f}")
        checks = ds.checks
        worst = ", ".join(f"{k} {np.nanmax(v[solved]):.1e}" for k, v in checks.items()
                          if np.any(np.isfinite(v[solved])))
        lines.append(f"  worst residuals {worst}")
    print("\n".join(lines))
    return 0


def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="re-run the independent checks on every label; exit 1 on any failure",
        description="Re-check every label with the family's independent checks (lower levels re-solved by a "
                    "second solver, feasibility, optimality and gap residuals recomputed from the stored structure "
                    "and parameters) against the tolerances recorded in the file. Exit status 0 when every label "
                    "passes, 1 otherwise, 2 when the file cannot be read or --oracle has no method for it.")
    p.add_argument("file", type=Path, help="HDF5 instance-set file")
    p.add_argument("--oracle", action="store_true",
                   help="also re-solve every certified instance with the family's independent exact method "
                        "('bilevelbench families' lists each family's); a family without one is an error, never "
                        "a silent pass")
    p.add_argument("--split", default=None, metavar="SPLIT", help="check one split only (train, valid, test, ...)")
    p.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from bilevelbench.data.instance_set import InstanceSet
    from bilevelbench.verify import verify_instance_set

    ds = InstanceSet.open(args.file)
    if args.split:
        ds = ds.split(args.split)
    report = verify_instance_set(ds, oracle=args.oracle,
                                 progress=_progress_factory(not args.quiet, "verify"))
    for index, status, why in report.failures[:20]:
        print(f"FAIL instance {index} ({status}): {why}", file=sys.stderr)
    if len(report.failures) > 20:
        print(f"... and {len(report.failures) - 20} more failures", file=sys.stderr)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(ds.status_counts().items()))
    verdict = "OK" if report.ok else f"FAILED ({len(report.failures)} label(s))"
    oracle = (f"; oracle ({report.oracle_method}) re-solved {report.oracle_checked}" if args.oracle else "")
    print(f"verify {args.file}: {report.checked} instances checked ({counts}){oracle}: {verdict}")
    return 0 if report.ok else 1


def _add_families(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("families", help="list the installed problem families (built-in and plugins)",
                       description="List every family the registry finds (entry-point group "
                                   "'bilevelbench.families'): its decision, parameters, label fields, exact solver, "
                                   "verify --oracle method and documentation.")
    p.set_defaults(run=_run_families)


def _run_families(args: argparse.Namespace) -> int:
    from bilevelbench.core.registry import broken_plugins, families

    for name, family in families().items():
        follower = f" (+ follower {family.follower}, never trusted)" if family.follower else ""
        print(f"{name}\n  {family.title}\n  decision {family.decision}{follower}; parameters "
              f"{', '.join(family.param_fields)}; labels {', '.join(family.label_fields)}\n"
              f"  exact solver {family.exact_solver or 'none'}; verify --oracle: {family.oracle_method or 'none'}"
              f"\n  options {', '.join(o.flag for o in family.options) or 'none'}; docs {family.docs}"
              + (f"\n  splits beyond train/valid/test: {', '.join(family.extra_splits)}" if family.extra_splits
                 else "")
              + ("\n  evaluate --closed-loop: yes" if family.closed_loop else ""))
    for name, why in broken_plugins().items():
        print(f"{name}\n  plugin installed but not loaded: {why}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="bilevelbench",
        description="Certified instance sets for learning to optimize on bilevel and mixed-integer problems. "
                    "Generate data with exact labels, inspect it, re-verify every label independently, score "
                    "any solver under one protocol and render leaderboards.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=examples())
    parser.add_argument("--version", action="version", version=f"bilevelbench {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log messages")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_families(sub)
    _add_generate(sub)
    _add_info(sub)
    _add_verify(sub)
    from bilevelbench.cli_evaluate import add_parsers

    add_parsers(sub)
    from bilevelbench.cli_data import add_parsers as add_data_parsers

    add_data_parsers(sub)
    from bilevelbench.cli_verify import add_parser as add_verify_parser

    add_verify_parser(sub)
    from bilevelbench.cli_serve import add_parser as add_serve_parser

    add_serve_parser(sub)
    return parser


def _split_generate(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """``(global options + ["generate"], generate's own arguments)`` when the command is ``generate``."""
    for k, token in enumerate(argv):
        if not token.startswith("-"):
            if token == "generate":
                return argv[:k + 1], argv[k + 1:]
            break
    return argv, None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bilevelbench`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    head, generate_args = _split_generate(argv)
    args = parser.parse_args(head)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if generate_args is not None:
            return run_generate(generate_args, args.quiet)
        return int(args.run(args))
    except KeyboardInterrupt:
        resume = (" (finished work stays in OUT.partial: rerun the same command to resume)"
                  if args.command == "generate" else "")
        print(f"bilevelbench: interrupted; no output file was written{resume}", file=sys.stderr)
        return 130
    except BilevelBenchError as exc:
        print(f"bilevelbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"bilevelbench {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
