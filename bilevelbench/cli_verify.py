"""``bilevelbench verify-proxy``: worst-case optimality gap of a proxy over an input domain (docs/verification.md).

Exit status: 0 when a worst case was computed (a time limit included: the record holds both bounds), 2 for bad
arguments, an unsupported layer, an infeasible domain or a solver that exports no network.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bilevelbench.errors import OutputExistsError, SubmissionError, UsageError

SOLVER_HELP = ("the proxy: a folder with solver.py defining class Solver, a file and class (path/to/file.py:Cls) or "
               "an installed module and class (pkg.mod:Cls); it must implement export_graph(spec)")
WORST_CASE_SCHEMA = "bilevelbench-worst-case"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify-proxy", help="worst-case optimality gap of a proxy over an input domain (attack + exact MILP)",
        description="Compute max over x in the domain of the gap F(x, proxy(x)) - Phi(x) (for a maximisation "
                    "Phi(x) - F(x, proxy(x))): a projected gradient attack (PGA) finds large gaps fast, the compact "
                    "MILP (Chen, Zhao, Tanneau, Van Hentenryck, ICML 2024) proves how large the gap can be. The "
                    "solver must export its network through export_graph(spec) (layers: affine, relu, clamp, "
                    "shift_clip, greedy_repair; see docs/verification.md). The best witness is re-checked with the "
                    "solver's own solve() and the family's exact solver before it is reported. A time limit gives a "
                    "record with both bounds. The solver is imported into this process: verify code you trust.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  bilevelbench verify-proxy --dataset FILE.h5 --solver path/to/solver.py:MyProxy --delta 0.1 "
               "--out wc.json\n"
               "  bilevelbench verify-proxy ... --method pga                 # the attack alone (seconds)\n"
               "  bilevelbench verify-proxy ... --formulation kkt --encoding sos1   # the bilevel (KKT) model\n"
               "Reading the record: worst_case.lower_bound is a gap that provably occurs (at worst_case.witness), "
               "upper_bound one that no point of the domain exceeds; both in the objective's units, and divided by "
               "the optimum at the witness in relative_lower_bound / relative_upper_bound.")
    p.add_argument("--dataset", type=Path, required=True, metavar="FILE", help="instance set (its structure, "
                   "nominal parameters and train split define the problem and the domain)")
    p.add_argument("--solver", required=True, metavar="SPEC", help=SOLVER_HELP)
    p.add_argument("--delta", type=float, default=0.1, metavar="D",
                   help="domain: every parameter within nominal * (1 +- D) (default 0.1)")
    p.add_argument("--domain", choices=("box", "data"), default="box",
                   help="box: the --delta box around the nominal parameters; data: the bounding box of the "
                        "train split's parameters (default box)")
    p.add_argument("--method", choices=("pga", "milp", "both"), default="both",
                   help="pga: the attack alone (a lower bound); milp: the exact model alone; both: the attack, then "
                        "the MILP warm-started from its witness (default)")
    p.add_argument("--formulation", choices=("compact", "kkt"), default="compact",
                   help="compact (no duals, no complementarity) or kkt (the follower's KKT conditions, one SOS1 pair "
                        "per inequality; LP followers only) (default compact)")
    p.add_argument("--encoding", choices=("bigm", "sos1"), default="bigm",
                   help="ReLU encoding: big-M rows with proved bounds, or SOS1 pairs (SCIP, Gurobi) (default bigm)")
    p.add_argument("--backend", choices=("scip", "highs", "gurobi"), default="scip",
                   help="MILP solver (default scip; gurobi only where the model fits its license)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="MILP solver threads (Gurobi only: SCIP branches on one thread, and HiGHS shares one process-wide "
                        "scheduler fixed at one thread) (default 1)")
    p.add_argument("--time-limit", type=float, default=600.0, metavar="S",
                   help="seconds for the whole run; the MILP gets what the attack leaves (default 600)")
    p.add_argument("--no-obbt", action="store_true", help="bounds from interval arithmetic only (no LP tightening)")
    p.add_argument("--obbt-rounds", type=int, choices=(1, 2), default=2,
                   help="1: tighten each layer over the LP relaxation built so far; 2: then tighten every unstable "
                        "unit over the whole model cut at the attack's gap, and rebuild (default 2)")
    p.add_argument("--starts", type=int, default=64, help="PGA starting points (default 64)")
    p.add_argument("--steps", type=int, default=60, help="PGA steps per start (default 60)")
    p.add_argument("--step", type=float, default=0.1,
                   help="PGA step as a fraction of the box width (starts cycle through 2x, 1x, 1/2x, 1/4x; default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="PGA seed (default 0)")
    p.add_argument("--out", type=Path, default=None, metavar="REC.json",
                   help="write the worst_case block: into this results record of the same data set and solver when "
                        "it exists (the leaderboard then shows it), else into a new worst-case record")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it is not a matching record")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from bilevelbench.cli_evaluate import _command_line
    from bilevelbench.data.instance_set import InstanceSet
    from bilevelbench.evaluate.evaluator import dataset_block
    from bilevelbench.evaluate.provenance import file_sha256, provenance
    from bilevelbench.evaluate.records import json_safe, write_record
    from bilevelbench.solvers import TaskSpec, coerce_prediction, load_solver, solver_identity
    from bilevelbench.verification.attack import AttackSettings
    from bilevelbench.verification.run import VerifySettings, verify_proxy

    settings = VerifySettings(method=args.method, formulation=args.formulation, encoding=args.encoding,
                              backend=args.backend, domain=args.domain, delta=args.delta,
                              time_limit=args.time_limit, obbt=not args.no_obbt, obbt_rounds=args.obbt_rounds,
                              threads=args.threads,
                              attack=AttackSettings(starts=args.starts, steps=args.steps, step=args.step,
                                                    seed=args.seed, time_limit=args.time_limit))
    if args.out is not None and not args.out.parent.is_dir():
        raise UsageError(f"directory {str(args.out.parent)!r} of --out does not exist")
    existing = _existing_record(args.out, args.overwrite)
    ds = InstanceSet.open(args.dataset)
    family = ds.family_descriptor
    problem = family.verification_problem(ds)
    solver = load_solver(args.solver)
    y_dim, z_dim = ds.decision_dims
    test = ds.split("test") if "test" in ds.split_names else ds
    spec = TaskSpec(family=ds.family, dataset=str(ds.meta.get("name") or args.dataset.stem), split="test",
                    n_instances=len(test), structure=ds.structure, param_names=tuple(test.params), y_dim=y_dim,
                    z_dim=z_dim, paper_convention=ds.meta.get("paper_convention"))
    skip = getattr(solver, "skip", None)
    if callable(skip):
        declined, reason = skip(spec)
        if declined:
            raise SubmissionError(f"the solver declines this data set: {reason}")
    train = ds.split("train") if "train" in ds.split_names else None
    if callable(getattr(solver, "setup", None)):
        solver.setup(spec, train)
    export = getattr(solver, "export_graph", None)
    if not callable(export):
        raise SubmissionError(f"solver {args.solver!r} does not export its network: implement export_graph(spec) "
                              "returning a bilevelbench.verification.graph.ProxyGraph (docs/verification.md)")
    graph = export(spec)
    others = [name for name in family.param_fields if name != graph.input]
    if others:
        raise UsageError(f"the proxy reads {graph.input!r} only; {family.name} instances also have "
                         f"{', '.join(others)}, which verify-proxy cannot hold fixed yet")

    def solve_fn(x: np.ndarray) -> np.ndarray:
        return coerce_prediction(solver.solve({graph.input: x}), x.shape[0], y_dim, z_dim)[0]

    def say(line: str) -> None:
        if not args.quiet:
            print(f"verify-proxy: {line}", file=sys.stderr)

    block = json_safe(verify_proxy(problem, graph, solve_fn, settings, say))
    for line in summary_lines(block):
        print(line)
    if args.out is None:
        return 0
    sha = file_sha256(args.dataset)
    if existing is not None:
        _check_match(existing, sha, solver_identity(solver)["name"], args.out)
        existing["worst_case"] = block
        existing["metrics"]["worst_case_gap_found"] = block["relative_lower_bound"]
        existing["metrics"]["worst_case_upper_bound"] = block["relative_upper_bound"]
        write_record(existing, args.out, overwrite=True)
    else:
        record = {"schema": WORST_CASE_SCHEMA, "schema_version": 1,
                  "dataset": dataset_block(ds, args.dataset, "test", len(test), sha),
                  "solver": {**solver_identity(solver), "spec": args.solver}, "worst_case": block,
                  "provenance": provenance(_command_line())}
        write_record(json_safe(record), args.out, overwrite=True)
    print(f"wrote {args.out}")
    return 0


def summary_lines(block: dict) -> list[str]:
    """What a person reads first: the two bounds, their status and the witness's objectives."""
    units = block["units"]

    def fmt(v, rel):
        if v is None:
            return "none"
        return f"{v:.6g} {units}" + (f" ({100 * rel:.3g}% of the optimum at the witness)" if rel is not None else "")

    w = block["witness"]
    lines = [f"worst-case gap found     {fmt(block['lower_bound'], block['relative_lower_bound'])}",
             f"certified upper bound    {fmt(block['upper_bound'], block['relative_upper_bound'])}",
             f"status                   {block['status']} ({block['method']}"
             + (f", {block['formulation']} {block['encoding']} MILP, {block['n_binaries']} binaries" if block["milp"]
                else "") + f") in {block['time_s']:.1f} s",
             (f"witness                  proxy {w['proxy_objective']:.9g} vs optimum {w['optimal_objective']:.9g} "
              f"{units} (re-checked)")]
    if block.get("pga"):
        lines.append(f"attack (PGA)             gap {block['pga']['gap']:.6g} {units} in {block['pga']['time_s']:.1f} s")
    lines += [f"note                     {n}" for n in block["notes"]]
    return lines


def _existing_record(path: Path | None, overwrite: bool) -> dict | None:
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        if overwrite:
            return None
        raise UsageError(f"--out {str(path)!r} exists and is not a JSON record ({exc}); pass --overwrite to "
                         "replace it") from None
    if isinstance(data, dict) and data.get("schema") == "bilevelbench-result":
        return data
    if isinstance(data, dict) and data.get("schema") == WORST_CASE_SCHEMA or overwrite:
        return None
    raise OutputExistsError(f"--out {str(path)!r} exists and is not a results record; pass --overwrite to replace it")


def _check_match(record: dict, sha: str, solver_name: str, path: Path) -> None:
    ds = record.get("dataset") or {}
    so = record.get("solver") or {}
    if ds.get("sha256") != sha:
        raise UsageError(f"--out {str(path)!r} is a record of another data set (sha256 {str(ds.get('sha256'))[:12]}"
                         f"..., this file {sha[:12]}...); choose another --out")
    if so.get("name") != solver_name:
        raise UsageError(f"--out {str(path)!r} is a record of solver {so.get('name')!r}, not {solver_name!r}; "
                         "choose another --out")
