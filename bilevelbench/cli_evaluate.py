"""Command-line front ends of the evaluator: ``evaluate``, ``score``, ``check-solver``, ``leaderboard``.

Exit status: 0 when every instance was scored, 1 when the run is partial,
failed or skipped (the record is still written), 2 for bad arguments or files.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bilevelbench.errors import OutputExistsError, UsageError
from bilevelbench.evaluate.sandbox import Limits

SOLVER_HELP = ("the solver: a folder with solver.py defining class Solver (baselines/exact), "
               "a file and class (path/to/file.py:MySolver) or an installed module and class (pkg.mod:MySolver)")


def _command_line() -> str:
    return "bilevelbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _check_out(path: Path | None, overwrite: bool) -> None:
    if path is None:
        return
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise UsageError(f"directory {str(path.parent)!r} of --out does not exist")


def _finish(record: dict, args: argparse.Namespace) -> int:
    from bilevelbench.evaluate.records import write_record

    for failure in record["failures"][:5]:
        where = "run" if failure["instance"] is None else f"instance {failure['instance']}"
        print(f"FAIL {where}: {failure['reason']}", file=sys.stderr)
    if len(record["failures"]) > 5:
        print(f"... and {len(record['failures']) - 5} more failures (all in the record)", file=sys.stderr)
    from bilevelbench.evaluate.summary import summary

    print(summary(record))
    if args.out is not None:
        write_record(record, args.out, overwrite=True)
        print(f"wrote {args.out}")
    return 0 if record["status"] == "complete" else 1


def _progress(args: argparse.Namespace, total: int, desc: str):
    if args.quiet:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="inst", dynamic_ncols=True, file=sys.stderr)
    return bar, bar.update


# -- evaluate ---------------------------------------------------------------------------
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="run a solver under the timing protocol in a sandbox and score it",
        description="Run SOLVER in a child process (memory and time limits, fixed thread count) on one split: "
                    "untimed setup(spec, train split), warm-up, per-instance latency at batch size 1, then "
                    "batched throughput. The evaluator computes the follower's response z(y) itself and scores "
                    "(y, z(y)) against the certified labels; crashes, hangs and bad outputs become recorded "
                    "failures. The exact solver's latency is measured on the same machine for the speedup. "
                    "Metrics: docs/metrics.md; record format: docs/results.md. Exit 0 when every instance was "
                    "scored, 1 otherwise (the record is still written), 2 for bad arguments.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  bilevelbench evaluate --dataset FILE.h5 --solver baselines/exact --out r.json")
    p.add_argument("--dataset", type=Path, required=True, metavar="FILE", help="certified HDF5 instance set")
    p.add_argument("--solver", required=True, metavar="SPEC", help=SOLVER_HELP)
    p.add_argument("--split", default="test", metavar="SPLIT",
                   help="split to solve (test); families may add their own, such as 'infeasible': certified-"
                        "infeasible draws, where any answer "
                        "is scored for its violations")
    p.add_argument("--closed-loop", type=int, default=None, metavar="STEPS",
                   help="families with a closed loop: run the solver as a receding-horizon policy for STEPS steps "
                        "from the data set's "
                        "reference starts (first test instances) and compare cumulative cost, violations, "
                        "collisions and per-step latency with the exact MPC's stored episodes")
    p.add_argument("--episodes", type=int, default=None, metavar="E",
                   help="with --closed-loop: run only the first E episodes (default: all stored)")
    p.add_argument("--out", type=Path, default=None, metavar="RESULT.json", help="write the results record here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed warm-up solves (default 3)")
    p.add_argument("--batch-size", type=int, default=64, metavar="B",
                   help="batch size of the throughput pass; 0 skips it (default 64)")
    p.add_argument("--threads", type=int, default=1, metavar="T",
                   help="BLAS/OpenMP/torch threads of the solver process, recorded (default 1)")
    p.add_argument("--exact-instances", type=int, default=20, metavar="K",
                   help="instances on which the exact solver is timed for speedup_vs_exact; 0 skips (default 20)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate only the first N instances")
    p.add_argument("--latency-instances", type=int, default=None, metavar="K",
                   help="time batch-size-1 solves on the first K instances only; the batched pass answers the "
                        "others (for a swarm or a search per instance on a large split; default: all)")
    p.add_argument("--setup-timeout", type=float, default=Limits.setup_timeout, metavar="S",
                   help=f"seconds for import + skip + setup (default {Limits.setup_timeout:g})")
    p.add_argument("--solve-timeout", type=float, default=Limits.solve_timeout, metavar="S",
                   help=f"seconds for any one solve call; the process is killed after "
                        f"(default {Limits.solve_timeout:g})")
    p.add_argument("--memory-mb", type=int, default=Limits.memory_mb, metavar="MB",
                   help=f"address-space limit of the solver process in MiB; 0 for none "
                        f"(default {Limits.memory_mb})")
    p.set_defaults(run=_run_evaluate)


def _positive(name: str, value: float | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def _run_evaluate(args: argparse.Namespace) -> int:
    from bilevelbench.data.instance_set import InstanceSet
    from bilevelbench.evaluate.evaluator import Protocol, evaluate_solver

    for name in ("warmup", "batch_size", "exact_instances", "memory_mb"):
        _positive("--" + name.replace("_", "-"), getattr(args, name), allow_zero=True)
    for name in ("threads", "limit", "setup_timeout", "solve_timeout", "closed_loop", "episodes",
                 "latency_instances"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    _check_out(args.out, args.overwrite)
    if args.closed_loop is not None:
        return _run_closed_loop(args)
    if args.episodes is not None:
        raise UsageError("--episodes applies to --closed-loop runs only")
    protocol = Protocol(warmup=args.warmup, batch_size=args.batch_size, threads=args.threads,
                        exact_instances=args.exact_instances, limit=args.limit,
                        latency_instances=args.latency_instances)
    limits = Limits(setup_timeout=args.setup_timeout, solve_timeout=args.solve_timeout, memory_mb=args.memory_mb)
    n = len(InstanceSet.open(args.dataset).split(args.split))
    n = n if args.limit is None else min(n, args.limit)
    bar, progress = _progress(args, n, "solve")
    ebar, eprogress = _progress(args, min(n, args.exact_instances), "exact ref") if args.exact_instances else (
        None, None)
    try:
        record = evaluate_solver(args.dataset, args.solver, args.split, protocol, limits, _command_line(),
                                 progress, eprogress)
    finally:
        for b in (bar, ebar):
            if b is not None:
                b.close()
    return _finish(record, args)


def _run_closed_loop(args: argparse.Namespace) -> int:
    from bilevelbench.data.instance_set import InstanceSet
    from bilevelbench.evaluate.evaluator import closed_loop_plan, evaluate_closed_loop

    if args.split != "test":
        raise UsageError("--closed-loop starts from test instances; drop --split")
    plan, _ = closed_loop_plan(InstanceSet.open(args.dataset), args.closed_loop, args.episodes)
    limits = Limits(setup_timeout=args.setup_timeout, solve_timeout=args.solve_timeout, memory_mb=args.memory_mb)
    bar, progress = _progress(args, len(plan["episodes"]), "episodes")
    try:
        record = evaluate_closed_loop(args.dataset, args.solver, args.closed_loop, args.episodes, limits,
                                      args.threads, _command_line(), progress)
    finally:
        if bar is not None:
            bar.close()
    return _finish(record, args)


# -- score ------------------------------------------------------------------------------
def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score", help="score a predictions file (any language) against a certified instance set",
        description="Score an HDF5 predictions file (layout in docs/format.md: /y, optional /z, /instance_index, "
                    "solver_name and latency as attributes) exactly as 'evaluate' scores a live run. Latency in "
                    "the file is self-reported and marked unverified. Exit 0 when every instance was scored, 1 "
                    "otherwise, 2 when the file as a whole is unusable.")
    p.add_argument("--dataset", type=Path, required=True, metavar="FILE", help="certified HDF5 instance set")
    p.add_argument("--predictions", type=Path, required=True, metavar="PRED.h5", help="predictions file")
    p.add_argument("--split", default=None, choices=["train", "valid", "test"],
                   help="split the predictions answer (default: the file's 'split' attribute, else test)")
    p.add_argument("--out", type=Path, default=None, metavar="RESULT.json", help="write the results record here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(run=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    from bilevelbench.evaluate.evaluator import score_predictions

    _check_out(args.out, args.overwrite)
    record = score_predictions(args.dataset, args.predictions, args.split, _command_line())
    return _finish(record, args)


# -- check-solver -----------------------------------------------------------------------
def _add_check_solver(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-solver", help="check that a solver follows the contract before submitting",
        description="Load SOLVER in the sandbox, run setup and a few solves (batch of 1 and a small batch) and "
                    "report, line by line, whether it meets the contract in bilevelbench/solvers.py. "
                    "Exit 0 when it does, 1 when a check fails.")
    p.add_argument("solver", metavar="SPEC", help=SOLVER_HELP)
    p.add_argument("--dataset", type=Path, required=True, metavar="FILE", help="certified HDF5 instance set")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--instances", type=int, default=5, metavar="N", help="instances to try (default 5)")
    p.set_defaults(run=_run_check_solver)


def _run_check_solver(args: argparse.Namespace) -> int:
    from bilevelbench.evaluate.conformance import check_solver

    _positive("--instances", args.instances)
    checks = check_solver(args.dataset, args.solver, args.split, args.instances)
    marks = {True: "PASS", False: "FAIL", None: "NOTE"}
    for check in checks:
        print(f"{marks[check.ok]}  {check.name}: {check.detail}")
    failed = [c for c in checks if c.ok is False]
    print(f"check-solver {args.solver}: " + ("meets the contract" if not failed else f"{len(failed)} check(s) failed"))
    return 1 if failed else 0


# -- leaderboard ------------------------------------------------------------------------
def _add_leaderboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "leaderboard", help="render LEADERBOARD.md and index.html from results records",
        description="Read every results record (*.json with schema bilevelbench-result) below SOURCE and write "
                    "LEADERBOARD.md, a static sortable index.html and plots (gap vs latency with the Pareto front; "
                    "gap and violation distributions) into --out. Ranking rule: docs/leaderboard.md.")
    p.add_argument("source", type=Path, metavar="SOURCE", help="folder searched recursively for records")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (default: SOURCE)")
    p.set_defaults(run=_run_leaderboard)


def _run_leaderboard(args: argparse.Namespace) -> int:
    from bilevelbench.leaderboard import build_leaderboard

    if not args.source.is_dir():
        raise UsageError(f"{str(args.source)!r} is not a folder of results records")
    out = args.out or args.source
    out.mkdir(parents=True, exist_ok=True)
    written = build_leaderboard(args.source, out)
    for path in written:
        print(f"wrote {path}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the evaluator's subcommands."""
    _add_evaluate(sub)
    _add_score(sub)
    _add_check_solver(sub)
    _add_leaderboard(sub)
