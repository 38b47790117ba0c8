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

EXAMPLES = """\
examples:
  # certify 60 test instances of the 3x2 bilevel QP with SCIP, then re-check every label
  bilevelbench generate bqp --size 3x2 --n-train 0 --n-valid 0 --n-test 60 --seed 7 --out bqp-3x2.h5
  bilevelbench verify bqp-3x2.h5
  bilevelbench info bqp-3x2.h5

  # a training set for self-supervised methods: no labels on train, 2 worker processes
  bilevelbench generate bqp --size 9x6 --n-train 10000 --n-test 1000 --no-label-train --workers 2 --out bqp-9x6.h5

  # DC optimal power flow: the reference load of case118, then 1000 sampled loads (PGLearn's distribution)
  bilevelbench generate dcopf --case pglib_opf_case118_ieee --n-test 5 --load-scale 1,1 --load-noise 0 --out base.h5
  bilevelbench generate dcopf --case case118 --n-train 1000 --n-valid 100 --n-test 200 --out case118.h5

  # score a solver (sandboxed, timed) and render the leaderboard
  bilevelbench check-solver baselines/exact --dataset bqp-3x2.h5
  bilevelbench evaluate --dataset bqp-3x2.h5 --solver baselines/exact --out leaderboards/results/exact.json
  bilevelbench score --dataset bqp-3x2.h5 --predictions my-preds.h5 --out my.json
  bilevelbench leaderboard leaderboards/ --out leaderboards/
"""


def _progress_factory(enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    def make(total: int):
        return tqdm(total=total, desc=desc, unit="inst", dynamic_ncols=True, file=sys.stderr)

    return make


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="sample instances, certify their labels exactly, write an HDF5 instance set",
        description="Sample a parametric problem family, certify each instance's label with an exact solver "
                    "and independent checks, and write one HDF5 file (docs/format.md). The file appears only "
                    "when every instance is done; Ctrl-C leaves nothing behind.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    p.add_argument("family", metavar="FAMILY|SPEC.toml", nargs="?",
                   help="problem family: bqp (bilevel quadratic program, Kotary et al., eqs. 11-12), "
                        "mimpc-robot or mimpc-tank (mixed-integer MPC, Le et al., appendix B), dcopf (DC optimal "
                        "power flow on a PGLib grid, see --case), ccd-twotank or ccd-hvac (control co-design, "
                        "best-known labels, docs/ccd.md); or a dataset spec "
                        "file such as datasets/bqp-9x6.toml that fixes size, seed and split counts")
    p.add_argument("--spec", default=None, type=Path, metavar="SPEC.toml",
                   help="regenerate a released dataset from its spec file (same as giving the spec as FAMILY); "
                        "the file records the spec it came from")
    p.add_argument("--size", default=None, metavar="MxN",
                   help="M upper-level and N lower-level variables, e.g. 3x2, 6x4, 9x6, 12x9, 20x15 "
                        "(required without a spec)")
    p.add_argument("--n-train", type=int, default=None, metavar="N", help="training instances (default 0)")
    p.add_argument("--n-valid", type=int, default=None, metavar="N", help="validation instances (default 0)")
    p.add_argument("--n-test", type=int, default=None, metavar="N", help="test instances (default 100)")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="seed of structure and parameters; same seed, same data (default 0)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="output HDF5 file")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="certify in K processes (SCIP is single-threaded; default 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="certify on a Dask cluster instead of local processes: tcp://HOST:PORT of a running "
                        "scheduler, or local:K for a LocalCluster of K workers (results are identical)")
    p.add_argument("--backend", choices=["auto", "scip", "gurobi"], default=None,
                   help="exact solver: scip (bundled, open source), gurobi (needs gurobipy and a license that "
                        "takes the model), auto (gurobi when it can, else scip). Default: scip for bqp, auto for "
                        "the mimpc families (their labels are re-checked by HiGHS either way)")
    p.add_argument("--closed-loop-episodes", type=int, default=None, metavar="E",
                   help="mimpc: run the exact MPC in closed loop from the first E test instances and store the "
                        "episodes as references for evaluate --closed-loop (default 0)")
    p.add_argument("--closed-loop-steps", type=int, default=None, metavar="T",
                   help="mimpc: steps per reference episode (default 20)")
    p.add_argument("--time-limit", type=float, default=None, metavar="SEC",
                   help="seconds per instance; an unfinished solve is stored as best_known with its gap "
                        "(default 120 for bqp, 600 for mimpc)")
    p.add_argument("--label-train", action=argparse.BooleanOptionalAction, default=None,
                   help="certify the train split too (default); --no-label-train stores it unlabeled, "
                        "enough for self-supervised methods")
    p.add_argument("--upper-constraints", type=int, default=None, metavar="K",
                   help="rows of A (default round(5M/3): 15 for 9x6 as in the authors' code)")
    p.add_argument("--lower-constraints", type=int, default=None, metavar="K",
                   help="rows of F (default ceil(5N/6): 5 for 9x6 as in the authors' code)")
    p.add_argument("--lower-ridge", type=float, default=None, metavar="R",
                   help="H = S S' + R I makes the follower's response unique (default 0.1)")
    grid = p.add_argument_group("dcopf options")
    grid.add_argument("--case", default=None, metavar="NAME|FILE",
                      help="PGLib-OPF case: a shipped name (pglib_opf_case14_ieee, _case30_ieee, _case57_ieee, "
                           "_case118_ieee, _case300_ieee, or short: case118) or the path of any MATPOWER .m file")
    grid.add_argument("--load-scale", default=None, metavar="LO,HI",
                      help="pd = alpha * eta (.) pd_ref with alpha ~ U[LO, HI] per instance (default 0.6,1.0)")
    grid.add_argument("--load-noise", type=float, default=None, metavar="SIGMA",
                      help="eta ~ U[1 - SIGMA, 1 + SIGMA] per bus (default 0.15)")
    grid.add_argument("--penalty", type=float, default=None, metavar="M",
                      help="price of thermal-limit violation, $/MW (default 1500, PGLearn's 150000 per unit)")
    p.set_defaults(run=_run_generate)


SAMPLING_ARGS = {"size": None, "n_train": 0, "n_valid": 0, "n_test": 100, "seed": 0, "label_train": True,
                 "upper_constraints": None, "lower_constraints": None, "lower_ridge": 0.1}


def _sampling_from(args: argparse.Namespace) -> tuple[dict, str | None]:
    """Sampling settings from a spec file or from the flags (never both); and the data set's name."""
    given = {key: getattr(args, key) for key in SAMPLING_ARGS if getattr(args, key) is not None}
    if args.family.endswith(".toml"):
        from bilevelbench.data.spec import load_spec

        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise UsageError(f"{flags} cannot be combined with a spec file; the spec fixes the data set")
        spec = load_spec(args.family)
        if spec.family != "bqp":
            raise UsageError(f"spec {args.family!r} has family {spec.family!r}; expected bqp or "
                             f"{', '.join(MIQP_FAMILIES)}")
        values = {key: getattr(spec, key) for key in SAMPLING_ARGS}
        return values, spec.name
    if args.family != "bqp":
        raise UsageError(f"unknown family {args.family!r}; expected bqp, {', '.join(MIQP_FAMILIES)}, dcopf or a dataset "
                         "spec file (*.toml)")
    if args.size is None:
        raise UsageError("--size is required (or give a dataset spec file instead of the family)")
    return {**SAMPLING_ARGS, **given}, None


MIQP_FAMILIES = ("mimpc-robot", "mimpc-tank")


def _spec_without_flags(path: str, given: dict):
    """The spec at ``path``; sampling flags given beside it are an error (the spec fixes the data set)."""
    from bilevelbench.data.spec import load_spec

    if given:
        raise UsageError(f"{', '.join('--' + k.replace('_', '-') for k in given)} cannot be combined with a "
                         "spec file; the spec fixes the data set")
    return load_spec(path)


def _report_written(out: Path) -> int:
    """One line on what a generation wrote: split sizes and label statuses."""
    from bilevelbench.data.instance_set import InstanceSet

    ds = InstanceSet.open(out)
    split_sizes = ", ".join(f"{k} {len(ds.split(k))}" for k in ds.split_names)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(ds.status_counts().items()))
    print(f"wrote {out}: {split_sizes}; labels: {counts}")
    return 0


def _run_generate_miqp(args: argparse.Namespace) -> int:
    from bilevelbench.certify.miqp import MIQPCertifierSettings
    from bilevelbench.generate_miqp import MIQPRequest, generate_miqp

    values = {"n_train": 0, "n_valid": 0, "n_test": 100, "seed": 0, "closed_loop_episodes": 0,
              "closed_loop_steps": 20, "time_limit": 600.0}
    name, family, spec_backend = None, args.family, None
    flags = {"n_train": args.n_train, "n_valid": args.n_valid, "n_test": args.n_test, "seed": args.seed,
             "closed_loop_episodes": args.closed_loop_episodes, "closed_loop_steps": args.closed_loop_steps}
    given = {k: v for k, v in flags.items() if v is not None}
    for flag in ("size", "upper_constraints", "lower_constraints", "lower_ridge", "label_train"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag.replace('_', '-')} applies to bqp only, not to {family}")
    if family.endswith(".toml"):
        spec = _spec_without_flags(family, given)
        family, name, spec_backend = spec.family, spec.name, spec.backend
        values.update({k: getattr(spec, k) for k in ("n_train", "n_valid", "n_test", "seed",
                                                     "closed_loop_episodes", "closed_loop_steps")})
        if spec.time_limit is not None:
            values["time_limit"] = spec.time_limit
    values.update(given)
    if args.time_limit is not None:
        values["time_limit"] = args.time_limit
    if not values["time_limit"] > 0:
        raise UsageError(f"--time-limit must be positive, got {values['time_limit']}")
    request = MIQPRequest(family=family, n_train=values["n_train"], n_valid=values["n_valid"],
                          n_test=values["n_test"], seed=values["seed"],
                          closed_loop_episodes=values["closed_loop_episodes"],
                          closed_loop_steps=values["closed_loop_steps"] if values["closed_loop_episodes"] else 0)
    backend = args.backend or spec_backend or "auto"
    settings = MIQPCertifierSettings(backend=backend, time_limit=values["time_limit"])
    out = generate_miqp(request, args.out, settings, workers=args.workers, overwrite=args.overwrite,
                        progress=_progress_factory(not args.quiet, f"certify {family}"), name=name,
                        spec=_spec_record(args.family), scheduler=args.scheduler)
    return _report_written(out)


def _is_miqp_request(family: str) -> bool:
    if family in MIQP_FAMILIES:
        return True
    if family.endswith(".toml"):
        from bilevelbench.data.spec import load_spec

        return load_spec(family).family in MIQP_FAMILIES
    return False


def _is_dcopf_request(family: str) -> bool:
    if family == "dcopf":
        return True
    if family.endswith(".toml"):
        from bilevelbench.data.spec import load_spec

        return load_spec(family).family == "dcopf"
    return False


CCD_FAMILIES = ("ccd-twotank", "ccd-hvac")


def _ccd_family(family: str) -> str | None:
    if family in CCD_FAMILIES:
        return family
    if family.endswith(".toml"):
        from bilevelbench.data.spec import load_spec

        spec_family = load_spec(family).family
        return spec_family if spec_family in CCD_FAMILIES else None
    return None


def _run_generate_ccd(args: argparse.Namespace, family: str) -> int:
    from bilevelbench.generate_ccd import CCDRequest, generate_ccd

    for flag in ("size", "upper_constraints", "lower_constraints", "lower_ridge", "label_train",
                 "closed_loop_episodes", "closed_loop_steps", "case", "load_scale", "load_noise", "penalty",
                 "time_limit"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag.replace('_', '-')} does not apply to {family}")
    if args.backend not in (None, "auto"):
        raise UsageError(f"{family} labels come from the best-known search (docs/ccd.md); --backend does not apply")
    values: dict = {"n_train": 0, "n_valid": 0, "n_test": 100, "seed": 0}
    flags = {"n_train": args.n_train, "n_valid": args.n_valid, "n_test": args.n_test, "seed": args.seed}
    given = {k: v for k, v in flags.items() if v is not None}
    name = None
    if args.family.endswith(".toml"):
        spec = _spec_without_flags(args.family, given)
        name = spec.name
        values.update({k: getattr(spec, k) for k in ("n_train", "n_valid", "n_test", "seed")})
        if spec.label_splits is not None:
            values["label_splits"] = tuple(spec.label_splits)
    values.update(given)
    request = CCDRequest(family=family, **values)
    out = generate_ccd(request, args.out, workers=args.workers, overwrite=args.overwrite,
                       progress=_progress_factory(not args.quiet, f"best-known {family}"), name=name,
                       spec=_spec_record(args.family), scheduler=args.scheduler)
    return _report_written(out)


def _parse_pair(text: str, flag: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} takes LO,HI (two numbers), got {text!r}") from None
    return lo, hi


def _run_generate_dcopf(args: argparse.Namespace) -> int:
    from bilevelbench.certify.dcopf import DCOPFCertifierSettings
    from bilevelbench.generate_dcopf import DCOPFRequest, generate_dcopf

    for flag in ("size", "upper_constraints", "lower_constraints", "lower_ridge", "label_train",
                 "closed_loop_episodes", "closed_loop_steps"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag.replace('_', '-')} does not apply to dcopf")
    if args.backend not in (None, "auto"):
        raise UsageError("dcopf labels are solved by HiGHS (LP/QP) and certified by their duals; --backend does "
                         "not apply")
    values: dict = {"n_train": 0, "n_valid": 0, "n_test": 100, "seed": 0}
    name = None
    flags = {"n_train": args.n_train, "n_valid": args.n_valid, "n_test": args.n_test, "seed": args.seed,
             "case": args.case, "load_noise": args.load_noise, "penalty": args.penalty,
             "load_scale": None if args.load_scale is None else _parse_pair(args.load_scale, "--load-scale")}
    given = {k: v for k, v in flags.items() if v is not None}
    if args.family.endswith(".toml"):
        spec = _spec_without_flags(args.family, given)
        name = spec.name
        values.update({k: getattr(spec, k) for k in ("n_train", "n_valid", "n_test", "seed", "case")})
        for key in ("load_noise", "penalty"):
            if getattr(spec, key) is not None:
                values[key] = getattr(spec, key)
        if spec.load_scale is not None:
            values["load_scale"] = tuple(float(v) for v in spec.load_scale)
    values.update(given)
    if "case" not in values:
        raise UsageError("dcopf needs --case NAME|FILE (e.g. --case pglib_opf_case118_ieee)")
    request = DCOPFRequest(**values)
    settings = DCOPFCertifierSettings(**({"time_limit": args.time_limit} if args.time_limit else {}))
    out = generate_dcopf(request, args.out, settings, workers=args.workers, overwrite=args.overwrite,
                         progress=_progress_factory(not args.quiet, f"certify dcopf {request.case}"), name=name,
                         spec=_spec_record(args.family), scheduler=args.scheduler)
    return _report_written(out)


def _spec_record(family_or_spec: str) -> dict | None:
    """The spec's settings as stored in the generated file (root attribute ``spec``), or None without a spec."""
    if not str(family_or_spec).endswith(".toml"):
        return None
    import tomllib

    from bilevelbench.data.spec import load_spec

    load_spec(family_or_spec)                                   # validated
    record = tomllib.loads(Path(family_or_spec).read_text())    # exactly what the file says
    record["file"] = Path(family_or_spec).name
    return record


def _run_generate(args: argparse.Namespace) -> int:
    if args.spec is not None:
        if args.family is not None:
            raise UsageError(f"give either FAMILY|SPEC.toml ({args.family!r}) or --spec, not both")
        args.family = str(args.spec)
    if args.family is None:
        raise UsageError("say what to generate: a family (bqp, mimpc-robot, mimpc-tank, dcopf) or --spec "
                         "datasets/NAME.toml")
    if _is_dcopf_request(args.family):
        return _run_generate_dcopf(args)
    ccd = _ccd_family(args.family)
    if ccd is not None:
        return _run_generate_ccd(args, ccd)
    dcopf_flags = [f for f in ("case", "load_scale", "load_noise", "penalty") if getattr(args, f) is not None]
    if dcopf_flags:
        raise UsageError(f"{', '.join('--' + f.replace('_', '-') for f in dcopf_flags)} apply to dcopf only")
    if _is_miqp_request(args.family):
        return _run_generate_miqp(args)
    if args.closed_loop_episodes is not None or args.closed_loop_steps is not None:
        raise UsageError("--closed-loop-episodes and --closed-loop-steps apply to the mimpc families only")
    if args.backend is None and str(args.family).endswith(".toml"):
        from bilevelbench.data.spec import load_spec

        args.backend = load_spec(args.family).backend
    args.backend = args.backend or "scip"
    args.time_limit = 120.0 if args.time_limit is None else args.time_limit
    from bilevelbench.certify import CertifierSettings
    from bilevelbench.families.bqp import parse_size
    from bilevelbench.generate import BQPRequest, generate_bqp

    v, name = _sampling_from(args)
    m, n = parse_size(v["size"])
    if not args.time_limit > 0:
        raise UsageError(f"--time-limit must be positive, got {args.time_limit}")
    request = BQPRequest(m=m, n=n, n_train=v["n_train"], n_valid=v["n_valid"], n_test=v["n_test"],
                         seed=v["seed"], label_train=v["label_train"],
                         n_upper_constraints=v["upper_constraints"], n_lower_constraints=v["lower_constraints"],
                         lower_ridge=v["lower_ridge"])
    settings = CertifierSettings(backend=args.backend, time_limit=args.time_limit)
    out = generate_bqp(request, args.out, settings, workers=args.workers, overwrite=args.overwrite,
                       progress=_progress_factory(not args.quiet, f"certify bqp {m}x{n}"), name=name,
                       spec=_spec_record(args.family), scheduler=args.scheduler)
    from bilevelbench.data.instance_set import InstanceSet

    counts = InstanceSet.open(out).status_counts()
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"wrote {out}: {summary}")
    return 0


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
    from bilevelbench.certify.label import SOLUTION_STATUSES
    from bilevelbench.data.instance_set import InstanceSet

    ds = InstanceSet.open(args.file)
    meta, s = ds.meta, ds.structure
    lines = [
        f"{args.file}",
        (f"  family          {meta['family']} (generator {meta['generator_version']}, "
        f"bilevelbench {meta['bilevelbench_version']}, schema {meta['schema_version']})"),
        (f"  size            {s.size}: {s.n - s.n_integer} continuous / {s.n_integer} integer variables, "
         f"{s.p} parameters, {s.G.shape[0]} rows ({', '.join(s.class_names)}; integer-only: "
         f"{', '.join(s.integer_only_classes) or 'none'})") if ds.is_miqp else
        (f"  size            {s.size}: case {s.case}, {s.n_bus} buses, {s.n_gen} generators, {s.n_branch} "
         f"branches ({s.limited.size} with a thermal limit, penalty {s.penalty:g} $/MW)") if ds.is_dcopf else
        (f"  size            {s.size}: design of {s.design_dim} entries, kappa {s.kappa:g}; labels are best-known "
         "(a documented search, docs/ccd.md), never certified") if ds.is_ccd else
        (f"  size            {s.size}: {s.m} upper / {s.n} lower variables, "
         f"{s.n_upper_constraints} upper / {s.n_lower_constraints} lower constraints"),
        f"  seed            {meta['seed']}",
        f"  structure hash  {meta['structure_hash']}",
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
    if ds.closed_loop:
        ref = ds.closed_loop
        lines.append(f"  closed loop     {len(ref['start_index'])} exact-MPC episodes of {ref['stage_cost'].shape[1]} "
                     f"steps ({int(ref['completed'].sum())} completed)")
    print("\n".join(lines))
    return 0


def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="re-run the independent checks on every label; exit 1 on any failure",
        description="Re-solve the lower level at every labelled y* with HiGHS, recompute feasibility, "
                    "stationarity, complementarity and gap residuals, and compare with the tolerances "
                    "recorded in the file. Exit status 0 when every label passes, 1 otherwise.")
    p.add_argument("file", type=Path, help="HDF5 instance-set file")
    p.add_argument("--oracle", action="store_true",
                   help="also re-solve every certified instance with the active-set enumeration solver "
                        "(exact, no MIP; 2^p QPs each, for small sizes)")
    p.add_argument("--split", choices=["train", "valid", "test"], default=None, help="check one split only")
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
    print(f"verify {args.file}: {report.checked} instances checked ({counts}): {verdict}")
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="bilevelbench",
        description="Certified instance sets for learning to optimize on bilevel and mixed-integer problems. "
                    "Generate data with exact labels, inspect it, re-verify every label independently, score "
                    "any solver under one protocol and render leaderboards.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"bilevelbench {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log messages")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_generate(sub)
    _add_info(sub)
    _add_verify(sub)
    from bilevelbench.cli_evaluate import add_parsers

    add_parsers(sub)
    from bilevelbench.cli_data import add_parsers as add_data_parsers

    add_data_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bilevelbench`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
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
