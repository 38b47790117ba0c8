"""Compare differentiable batched QP layers on the follower of a bilevel QP (BQP).

For each structure size the follower ``min_z 1/2 z'Hz + e'z  s.t.  F z <= h + G y`` is solved for a batch of
``y ~ 5 N(0, 1)`` (``q = e``, ``b = h + G y``) by every candidate layer:

* ``ours``: :class:`bilevelbench.torch.qp_layer.BatchedQP`;
* ``qpth``: ``qpth.qp.QPFunction`` with its batched PDIPM solver;
* ``cvxpylayers/diffcp``: ``cvxpylayers.torch.CvxpyLayer`` with its default diffcp backend (SCS, default settings),
  and the same with SCS's tolerance ``eps`` tightened to 1e-10 (diffcp's Clarabel method, through the second-order
  cone form of the objective, stays near 1e-4 at its default tolerances and is left out);
* ``cvxpylayers/moreau``: ``CvxpyLayer(..., solver="MOREAU")`` with Moreau's default settings (``auto``, which
  picks its active-set solver here), and with ``solver="ipm"``.

Measured, per layer and size: forward time for the batch (inputs without gradient), forward + backward time
(backward of ``sum(w * z)`` for a random ``w``, gradient wrt ``b``), each the median of ``--repeats`` rounds after one
warm-up (every layer is timed in turn in each round, so that changes of machine load hit all layers alike);
``max |z - z_HiGHS|`` over the batch (``z_HiGHS`` from :func:`bilevelbench.families.bqp.problem.follower_response`);
``max |grad - FD grad|`` on ``--fd-rows`` rows, where the finite-difference gradient (central differences, step
``--fd-eps`` on every entry of ``b``) is taken on an independent reference: HiGHS followed by an exact solve of the
KKT system of HiGHS's active set (``z(b)`` is piecewise affine, so that difference is exact up to rounding unless a
kink lies within the step).

Everything runs on one CPU core: BLAS/OpenMP/Rayon pools are set to one thread before any import,
``torch.set_num_threads(1)``, diffcp runs serially, and the process is pinned to one CPU (``--cpu``).

The candidate packages are not dependencies of bilevelbench; a layer whose package is missing or that fails is
reported as unavailable (with the reason) instead of stopping the run. To install them without replacing torch::

    pip install qpth --no-deps
    pip install cvxpylayers --no-deps
    pip install cvxpy diffcp moreau

Example::

    python benchmarks/compare_qp_layers.py --out benchmarks/results/qp_layers.md
"""

from __future__ import annotations

import os

# One thread in every pool; must happen before numpy, torch or a solver library is imported.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import contextlib
import datetime
import importlib.metadata
import io
import platform
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bilevelbench.families.bqp.problem import BQPStructure, follower_response, parse_size, sample_structure
from bilevelbench.qp import INF, solve_convex_qp

#: A layer maps (q (B, n), b (B, p)) float64 tensors to z (B, n), differentiable wrt b.
Solve = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

PACKAGES = ("torch", "numpy", "scipy", "highspy", "qpth", "cvxpylayers", "cvxpy", "diffcp", "scs", "clarabel",
            "moreau", "moreau-cpu")


class Unavailable(Exception):
    """The candidate cannot be built here (package missing, import error, unsupported problem)."""


# -- candidates ---------------------------------------------------------------------------------------------------
def _build_ours(s: BQPStructure, args: argparse.Namespace) -> Solve:
    from bilevelbench.torch.qp_layer import BatchedQP

    layer = BatchedQP(torch.tensor(s.H), torch.tensor(s.F))
    return layer


def _build_qpth(s: BQPStructure, args: argparse.Namespace) -> Solve:
    try:
        from qpth.qp import QPFunction, QPSolvers
    except Exception as exc:
        raise Unavailable(f"import qpth failed: {type(exc).__name__}: {exc}") from exc
    H, F = torch.tensor(s.H), torch.tensor(s.F)
    empty = torch.empty(0, dtype=torch.float64)
    fn = QPFunction(verbose=False, eps=args.qpth_eps, maxIter=args.qpth_max_iter, solver=QPSolvers.PDIPM_BATCHED)

    def solve(q: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # qpth prints a long warning to stdout when it returns an inaccurate solution; keep it out of the report.
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            z = fn(H, q, F, b, empty, empty)
        if "inaccurate" in buffer.getvalue():
            solve.warnings += 1
        return z

    solve.warnings = 0
    return solve


def _cvxpy_problem(s: BQPStructure):
    import cvxpy as cp

    z = cp.Variable(s.n)
    q = cp.Parameter(s.n)
    b = cp.Parameter(s.n_lower_constraints)
    objective = cp.Minimize(0.5 * cp.quad_form(z, cp.psd_wrap(s.H)) + q @ z)
    return cp.Problem(objective, [s.F @ z <= b]), [q, b], [z]


def _cvxpylayer_builder(solver: str | None, solver_args: dict,
                        serial_diffcp: bool = False) -> Callable[[BQPStructure, argparse.Namespace], Solve]:
    def build(s: BQPStructure, args: argparse.Namespace) -> Solve:
        try:
            from cvxpylayers.torch import CvxpyLayer
        except Exception as exc:
            raise Unavailable(f"import cvxpylayers.torch failed: {type(exc).__name__}: {exc}") from exc
        if solver == "MOREAU":
            try:
                import moreau  # noqa: F401
            except Exception as exc:
                raise Unavailable(f"import moreau failed: {type(exc).__name__}: {exc}") from exc
        problem, params, variables = _cvxpy_problem(s)
        try:
            layer = CvxpyLayer(problem, parameters=params, variables=variables, solver=solver,
                               solver_args=dict(solver_args))
        except Exception as exc:
            raise Unavailable(f"CvxpyLayer(solver={solver!r}) failed: {type(exc).__name__}: {exc}") from exc

        def solve(q: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            call_args = None
            if serial_diffcp:
                # diffcp's default is a thread pool of one thread per CPU; its solve-only path (taken without
                # gradients) knows only n_jobs_forward.
                needs_grad = torch.is_grad_enabled() and (q.requires_grad or b.requires_grad)
                call_args = {"n_jobs_forward": 1, **({"n_jobs_backward": 1} if needs_grad else {})}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return layer(q, b, solver_args=call_args)[0]

        return solve

    return build


CANDIDATES: dict[str, tuple[str, Callable[[BQPStructure, argparse.Namespace], Solve]]] = {
    "ours": ("bilevelbench BatchedQP (IPM + active-set polish)", _build_ours),
    "qpth": ("qpth QPFunction (PDIPM batched)", _build_qpth),
    "diffcp": ("cvxpylayers, diffcp default (SCS, default eps)", _cvxpylayer_builder(None, {}, serial_diffcp=True)),
    "diffcp-tight": ("cvxpylayers, diffcp (SCS) with eps=1e-10",
                     _cvxpylayer_builder(None, {"eps": 1e-10}, serial_diffcp=True)),
    "moreau": ("cvxpylayers, solver=MOREAU (default: auto)", _cvxpylayer_builder("MOREAU", {})),
    "moreau-ipm": ("cvxpylayers, solver=MOREAU, ipm", _cvxpylayer_builder("MOREAU", {"solver": "ipm"})),
}


# -- reference ----------------------------------------------------------------------------------------------------
def reference_solution(s: BQPStructure, b: np.ndarray) -> np.ndarray:
    """HiGHS, then an exact KKT solve on HiGHS's active set (kept when it is primal and dual feasible)."""
    res = solve_convex_qp(s.H, s.e, s.F, np.full(s.n_lower_constraints, -INF), b)
    if not res.optimal:
        raise RuntimeError(f"HiGHS reference ended with status {res.status!r}")
    lam = np.maximum(res.row_dual, 0.0)
    slack = b - s.F @ res.x
    active = (lam > 1e-9) | (slack < 1e-9 * (1.0 + np.abs(b)))
    n, k = s.n, int(active.sum())
    Fa = s.F[active]
    K = np.block([[s.H, Fa.T], [Fa, np.zeros((k, k))]])
    try:
        sol = np.linalg.solve(K, np.concatenate([-s.e, b[active]]))
    except np.linalg.LinAlgError:
        return res.x
    z, mult = sol[:n], sol[n:]
    scale = 1.0 + np.abs(b).max()
    if np.all(b - s.F @ z >= -1e-9 * scale) and np.all(mult >= -1e-9 * scale):
        return z
    return res.x


def reference_fd_gradient(s: BQPStructure, b: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """Central differences of ``w . z(b)`` wrt every entry of one row ``b`` (p,)."""
    grad = np.empty_like(b)
    for j in range(b.shape[0]):
        step = np.zeros_like(b)
        step[j] = eps
        grad[j] = (w @ reference_solution(s, b + step) - w @ reference_solution(s, b - step)) / (2 * eps)
    return grad


# -- measurement --------------------------------------------------------------------------------------------------
@dataclass
class Row:
    layer: str
    size: str
    forward_ms: float = float("nan")
    fwd_bwd_ms: float = float("nan")
    z_err: float = float("nan")
    grad_err: float = float("nan")
    note: str = ""


@dataclass
class Problem:
    size: str
    structure: BQPStructure
    q: torch.Tensor
    b: torch.Tensor
    w: torch.Tensor
    z_highs: np.ndarray
    fd_rows: np.ndarray
    fd_grad: np.ndarray
    fd_active: np.ndarray


def make_problem(size: str, args: argparse.Namespace, seed: int | None = None, fd_rows: int | None = None) -> Problem:
    """Structure ``sample_structure(default_rng([seed, m, n]), m, n)``, then ``y``, ``w`` from the same generator."""
    m, n = parse_size(size)
    seed = args.seed if seed is None else seed
    fd_rows = args.fd_rows if fd_rows is None else fd_rows
    rng = np.random.default_rng([seed, m, n])
    s = sample_structure(rng, m, n)
    y = 5.0 * rng.standard_normal((args.batch, m))
    b = s.h + y @ s.G.T
    w = rng.standard_normal((args.batch, n))
    responses = [follower_response(s, yi) for yi in y]
    z_highs = np.stack([r.z for r in responses])
    lam = np.stack([r.lam for r in responses])
    slack = b - z_highs @ s.F.T
    # Rows checked by finite differences: at least one active constraint (otherwise d z / d b = 0 and the check is
    # vacuous) and no constraint near a kink of z(b) (small slack and small multiplier at once).
    n_active = np.sum(lam > 1e-9, axis=1)
    near_kink = np.any(np.maximum(slack, lam) < 1e-4, axis=1)
    pool = np.flatnonzero((n_active > 0) & ~near_kink)
    if pool.size < fd_rows:
        pool = np.arange(args.batch)
    fd_rows = np.sort(rng.choice(pool, size=min(fd_rows, pool.size), replace=False))
    fd_grad = np.zeros((len(fd_rows), s.n_lower_constraints))
    for k, i in enumerate(fd_rows):
        fd_grad[k] = reference_fd_gradient(s, b[i], w[i], args.fd_eps)
    q = torch.tensor(s.e).expand(args.batch, -1).contiguous()
    return Problem(size, s, q, torch.tensor(b), torch.tensor(w), z_highs, fd_rows, fd_grad, n_active[fd_rows])


def _ms(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return 1e3 * (time.perf_counter() - t0), out


@dataclass
class _Candidate:
    row: Row
    forward: Callable[[], torch.Tensor]
    forward_backward: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    solve: Solve
    forward_times: list[float]
    fwd_bwd_times: list[float]


def _build_candidate(key: str, prob: Problem, args: argparse.Namespace) -> _Candidate | Row:
    """The layer's closures, or a finished :class:`Row` saying why it is unavailable."""
    _, build = CANDIDATES[key]
    row = Row(layer=key, size=prob.size)
    try:
        solve = build(prob.structure, args)
    except Unavailable as exc:
        row.note = f"unavailable: {exc}"
        return row
    except Exception as exc:  # noqa: BLE001
        row.note = f"unavailable: building the layer failed: {type(exc).__name__}: {_first_line(exc)}"
        return row

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return solve(prob.q, prob.b)

    def forward_backward() -> tuple[torch.Tensor, torch.Tensor]:
        b = prob.b.clone().requires_grad_(True)
        z = solve(prob.q, b)
        (prob.w * z).sum().backward()
        return z.detach(), b.grad

    return _Candidate(row, forward, forward_backward, solve, [], [])


def _fail(c: _Candidate, stage: str, exc: Exception, args: argparse.Namespace) -> None:
    c.row.note = f"failed ({stage}): {type(exc).__name__}: {_first_line(exc)}"
    c.row.forward_ms = c.row.fwd_bwd_ms = float("nan")
    if args.verbose:
        traceback.print_exc()


def measure_size(prob: Problem, args: argparse.Namespace) -> list[Row]:
    """One warm-up (forward, then forward + backward) per layer, then ``args.repeats`` rounds that time every
    layer in turn, so that changes of machine load fall on all layers alike; medians per layer."""
    built = [_build_candidate(key, prob, args) for key in args.layers]
    live = [c for c in built if isinstance(c, _Candidate)]
    for c in list(live):  # warm-up, accuracy
        try:
            _, z = _ms(c.forward)
        except Exception as exc:  # noqa: BLE001
            _fail(c, "forward", exc, args)
            live.remove(c)
            continue
        z = np.asarray(z, dtype=np.float64)
        c.row.z_err = float(np.max(np.abs(z - prob.z_highs)))
        if not np.all(np.isfinite(z)):
            c.row.note = "non-finite z in the forward output"
        try:
            _, (_, grad) = _ms(c.forward_backward)
        except Exception as exc:  # noqa: BLE001
            _fail(c, "backward", exc, args)
            live.remove(c)
            continue
        if grad is None:
            c.row.note = "backward gave no gradient wrt b"
            live.remove(c)
            continue
        grad = np.asarray(grad, dtype=np.float64)[prob.fd_rows]
        c.row.grad_err = float(np.max(np.abs(grad - prob.fd_grad))) if grad.size else 0.0
    for _ in range(args.repeats):
        for c in list(live):
            try:
                c.forward_times.append(_ms(c.forward)[0])
                c.fwd_bwd_times.append(_ms(c.forward_backward)[0])
            except Exception as exc:  # noqa: BLE001
                _fail(c, "timed repeat", exc, args)
                live.remove(c)
    for c in live:
        c.row.forward_ms = statistics.median(c.forward_times)
        c.row.fwd_bwd_ms = statistics.median(c.fwd_bwd_times)
    rows = []
    for c in built:
        if isinstance(c, Row):
            rows.append(c)
            continue
        if getattr(c.solve, "warnings", 0):
            calls = 2 * (1 + len(c.forward_times))
            c.row.note = f"qpth warned 'inaccurate solution' in {c.solve.warnings} of {calls} calls"
        rows.append(c.row)
    return rows


@dataclass
class Robustness:
    layer: str
    size: str
    structures: int = 0
    raised: list[str] | None = None
    bad_rows: int = 0
    rows: int = 0
    max_z_err: float = 0.0
    note: str = ""


def robustness(key: str, size: str, seeds: list[int], problems: dict[tuple[str, int], Problem],
               args: argparse.Namespace) -> Robustness:
    """Forward pass only, one batch per structure seed: which structures raise, how many rows are off HiGHS."""
    out = Robustness(layer=key, size=size, raised=[])
    _, build = CANDIDATES[key]
    for seed in seeds:
        prob = problems[(size, seed)]
        try:
            solve = build(prob.structure, args)
        except Exception as exc:  # noqa: BLE001
            out.note = f"unavailable: {_first_line(exc)}"
            return out
        out.structures += 1
        try:
            with torch.no_grad():
                z = np.asarray(solve(prob.q, prob.b), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001
            out.raised.append(f"seed {seed}: {type(exc).__name__}: {_first_line(exc)}")
            continue
        err = np.abs(z - prob.z_highs).max(axis=1)
        err = np.where(np.isfinite(err), err, np.inf)
        out.rows += err.shape[0]
        out.bad_rows += int(np.sum(err > args.z_tol))
        out.max_z_err = max(out.max_z_err, float(err.max()))
    return out


def robustness_table(results: list[Robustness], args: argparse.Namespace) -> str:
    lines = [(f"| layer | size | structures | batches that raised | rows with \\|z err\\| > {args.z_tol:g} "
             "(of rows returned) | max \\|z err\\| | errors |"),
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        if r.note:
            lines.append(f"| {r.layer} | {r.size} | — | — | — | — | {r.note.replace('|', '/')} |")
            continue
        errors = "; ".join(r.raised).replace("|", "/")
        lines.append(f"| {r.layer} | {r.size} | {r.structures} | {len(r.raised)} | {r.bad_rows} of {r.rows} | "
                     f"{_fmt_err(r.max_z_err) if r.rows else '—'} | {errors} |")
    return "\n".join(lines)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


# -- report -------------------------------------------------------------------------------------------------------
def _fmt_ms(x: float) -> str:
    return "—" if not np.isfinite(x) else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def _fmt_err(x: float) -> str:
    return "—" if not np.isfinite(x) else f"{x:.1e}"


def markdown_table(rows: list[Row], batch: int = 1000) -> str:
    lines = [f"| layer | size | forward ms/{batch} | fwd+bwd ms/{batch} | max \\|z err\\| | max \\|grad err\\| | notes |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        note = r.note.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r.layer} | {r.size} | {_fmt_ms(r.forward_ms)} | {_fmt_ms(r.fwd_bwd_ms)} | "
                     f"{_fmt_err(r.z_err)} | {_fmt_err(r.grad_err)} | {note} |")
    return "\n".join(lines)


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def report(rows: list[Row], problems: list[Problem], robust: list[Robustness], args: argparse.Namespace,
           pinned: str) -> str:
    scale = f"ms per batch of {args.batch}"
    checked = "; ".join(f"{p.size}: rows {p.fd_rows.tolist()} with {p.fd_active.tolist()} active constraints"
                        for p in problems)
    layers = "\n".join(f"- `{k}`: {CANDIDATES[k][0]}" for k in args.layers)
    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    return f"""# Differentiable batched QP layers on the BQP follower

- date: {datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}
- machine: {cpu_model()} ({os.cpu_count()} CPUs); {pinned}; torch threads {torch.get_num_threads()};
  load average (1, 5, 15 min) {args.load_start} at the start, {args.load_end} at the end
- versions: {vers}
- command: `python {" ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}`

Problem: per size, `sample_structure(rng, m, n)`, batch of {args.batch} draws `y ~ 5 N(0, 1)`, `q = e`,
`b = h + G y` (float64). Times: {scale}, median of {args.repeats} after one warm-up, the layers timed in turn in
each of the {args.repeats} rounds; forward without gradients,
fwd+bwd = forward with `b.requires_grad` + backward of `sum(w * z)` (random `w`). `max |z err|`: against
HiGHS (`follower_response`) over the whole batch. `max |grad err|`: d sum(w*z)/d b on {args.fd_rows} rows against
central differences (step {args.fd_eps:g}) of an independent reference (HiGHS + exact KKT solve on its active set),
rows drawn among those with an active constraint and none near a kink ({checked}).
Layer construction (cvxpy canonicalisation) is not timed.

{layers}

{markdown_table(rows, args.batch)}
""" + (f"""
## Robustness over more structures

Forward pass only, one batch of {args.batch} per structure, structures drawn with seeds
{args.robustness_seeds[0]}..{args.robustness_seeds[-1]} (``default_rng([seed, m, n])``); a layer that raises loses
the whole batch. Rows are counted as wrong when ``max |z - z_HiGHS| > {args.z_tol:g}``.

{robustness_table(robust, args)}
""" if robust else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare differentiable batched QP layers (ours, qpth, cvxpylayers/diffcp, cvxpylayers/Moreau) "
                    "on the lower level of bilevel QPs: speed, accuracy against HiGHS, gradient accuracy.")
    parser.add_argument("--sizes", default="3x2,9x6,12x9", help="comma-separated MxN sizes (default: %(default)s)")
    parser.add_argument("--layers", default=",".join(CANDIDATES),
                        help=f"comma-separated subset of {', '.join(CANDIDATES)} (default: all)")
    parser.add_argument("--batch", type=int, default=1000, help="QPs per batch (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats after one warm-up (default: %(default)s)")
    parser.add_argument("--fd-rows", type=int, default=5, help="rows checked by finite differences (default: %(default)s)")
    parser.add_argument("--fd-eps", type=float, default=1e-6, help="central-difference step (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--qpth-eps", type=float, default=1e-12, help="qpth QPFunction eps (default: %(default)s)")
    parser.add_argument("--qpth-max-iter", type=int, default=20, help="qpth QPFunction maxIter (default: %(default)s)")
    parser.add_argument("--robustness", type=int, default=10,
                        help="also run the forward pass on this many further structures per size, counting failures "
                             "(default: %(default)s; 0: skip)")
    parser.add_argument("--z-tol", type=float, default=1e-6,
                        help="a row is wrong when max |z - z_HiGHS| exceeds this (robustness table; default: %(default)s)")
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin the process to this CPU (default: the last CPU it may run on; -1: do not pin)")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report to this file")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failing layers")
    args = parser.parse_args(argv)
    args.layers = [k.strip() for k in args.layers.split(",") if k.strip()]
    unknown = [k for k in args.layers if k not in CANDIDATES]
    if unknown:
        parser.error(f"unknown layer(s) {unknown}; choose from {list(CANDIDATES)}")
    args.sizes = [x.strip() for x in args.sizes.split(",") if x.strip()]
    for size in args.sizes:
        parse_size(size)
    if args.batch < 1 or args.repeats < 1 or args.fd_rows < 0 or args.robustness < 0:
        parser.error("--batch and --repeats must be >= 1, --fd-rows and --robustness >= 0")
    args.robustness_seeds = [args.seed + 1 + k for k in range(args.robustness)]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinned = "not pinned"
    if args.cpu != -1 and hasattr(os, "sched_setaffinity"):
        cpu = max(os.sched_getaffinity(0)) if args.cpu is None else args.cpu
        os.sched_setaffinity(0, {cpu})
        pinned = f"pinned to CPU {cpu}"
    torch.set_num_threads(1)
    args.load_start = _loadavg()
    rows: list[Row] = []
    problems: list[Problem] = []
    for size in args.sizes:
        t0 = time.perf_counter()
        prob = make_problem(size, args)
        problems.append(prob)
        print(f"[{size}] reference (HiGHS + finite differences) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        t0 = time.perf_counter()
        rows.extend(measure_size(prob, args))
        print(f"[{size}] layers measured in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    robust: list[Robustness] = []
    if args.robustness:
        for size in args.sizes:
            t0 = time.perf_counter()
            extra = {(size, seed): make_problem(size, args, seed=seed, fd_rows=0) for seed in args.robustness_seeds}
            print(f"[{size}] {args.robustness} further structures (HiGHS) in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
            for key in args.layers:
                t0 = time.perf_counter()
                robust.append(robustness(key, size, args.robustness_seeds, extra, args))
                print(f"[{size}] robustness {key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    args.load_end = _loadavg()
    text = report(rows, problems, robust, args, pinned)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
