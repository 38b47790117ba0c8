"""Exact MILP encodings of a proxy and of the verification problem: the compact and the KKT formulation.

**Compact** (Chen, Zhao, Tanneau and Van Hentenryck, ICML 2024): for a minimisation,

    max_{x in box, yhat, y}  F(x, yhat) - (c . y + c0)   s.t.  yhat = proxy(x),  y feasible for x,

no duals and no complementarity: the inner ``max`` over ``y`` of ``-(c . y)`` *is* ``-Phi(x)``, so the optimum is
the worst gap. A maximisation flips the sign. Integer follower columns are allowed.

**KKT** (Nellikkath and Chatzivasileiadis): ``y`` is constrained to be optimal through the LP's KKT conditions:
primal and dual feasibility, stationarity, and one complementarity pair (an SOS1 constraint, i.e. one binary
decision) per inequality side and finite bound. LP followers only.

**The proxy** (``yhat = proxy(x)``), layer by layer (:mod:`bilevelbench.verification.graph`):

* ``Affine``: new columns ``z`` with ``z = W z_prev + b``; their bounds come from interval arithmetic, then, with
  ``obbt``, from minimising and maximising each one over the LP relaxation of everything built so far
  (optimisation-based bound tightening).
* ``ReLU``: stable units (``u <= 0`` or ``l >= 0``) need no binary; unstable ones get the triangle cut plus
  either big-M rows with the *proved* bounds (``encoding="bigm"``) or an SOS1 pair ``(a, a - z)``
  (``encoding="sos1"``).
* ``Clamp``: ``lo + relu(z - lo) - relu(z - hi)``, exact.
* ``ShiftClip``: a free shift ``t``, ``w = z + t``, ``yhat = clamp(w, lo, hi)``, ``sum yhat = a . x + c``.
* ``GreedyRepair``: per item a binary ``want`` (``z > 0``), per item and constraint a binary ``fits``
  (``W_ij <= r_ij``, strict the other way by ``eps``), ``yhat_j = want AND fits`` and ``r_{j+1} = r_j - W_j yhat_j``.
* the answer's penalties ``max(0, G yhat + H x + h)`` as ReLUs (OBBT removes those that can never be positive).

Every encoding is exact given valid bounds; the bounds are proved (interval arithmetic or LP over a
relaxation), never guessed. Alongside the model the encoder evaluates every column at a reference ``x`` (the
attack's witness), which is the MILP warm start.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

from bilevelbench.errors import UsageError
from bilevelbench.verification.graph import ProxyGraph
from bilevelbench.verification.milp import MILP, highs_model, quiet_highs
from bilevelbench.verification.problem import VerificationProblem
from bilevelbench.verification.value import ProgramValue

log = logging.getLogger(__name__)

FORMULATIONS = ("compact", "kkt")
ENCODINGS = ("bigm", "sos1")
#: Strictness margin of "does not fit" in the repair layer, relative to the largest weight.
REPAIR_EPS = 1e-7


@dataclass
class EncodeSettings:
    """How the MILP is built."""

    formulation: str = "compact"
    encoding: str = "bigm"
    obbt: bool = True
    #: Bound-tightening rounds: 1 tightens each layer over the relaxation built so far; 2 then tightens every
    #: unstable unit over the whole model with the cut ``gap >= reference gap`` and rebuilds with those bounds.
    rounds: int = 2

    def __post_init__(self) -> None:
        if self.formulation not in FORMULATIONS:
            raise UsageError(f"--formulation must be one of {', '.join(FORMULATIONS)}, received {self.formulation!r}")
        if self.encoding not in ENCODINGS:
            raise UsageError(f"--encoding must be one of {', '.join(ENCODINGS)}, received {self.encoding!r}")


@dataclass
class Encoding:
    """The built model, the columns that matter, and the warm-start values at the reference ``x``."""

    milp: MILP
    x: np.ndarray
    yhat: np.ndarray
    y: np.ndarray
    warm: np.ndarray
    stats: dict = field(default_factory=dict)


class _Builder:
    def __init__(self, obbt: bool, encoding: str, known: dict | None = None) -> None:
        self.known = known or {}
        self.blocks: dict[str, np.ndarray] = {}
        self.preactivations: list[int] = []
        self.m = MILP()
        self.values: list[float] = []
        self.obbt = obbt
        self.encoding = encoding
        self.lp_solves = 0
        self.obbt_time = 0.0
        self.unstable = 0
        self.stable = 0

    # -- columns with a value at the reference point ----------------------------------------------------------
    def new(self, n: int, lower, upper, value, integer: bool = False, name: str = "v") -> np.ndarray:
        idx = self.m.add_vars(n, lower, upper, integer, name)
        self.values += list(np.broadcast_to(np.asarray(value, float), (n,)))
        return idx

    def lo(self, idx: np.ndarray) -> np.ndarray:
        return np.array([self.m.lower[i] for i in idx])

    def hi(self, idx: np.ndarray) -> np.ndarray:
        return np.array([self.m.upper[i] for i in idx])

    def val(self, idx: np.ndarray) -> np.ndarray:
        return np.array([self.values[i] for i in idx])

    def set_bounds(self, idx: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        for i, a, b in zip(idx, lower, upper, strict=True):
            a, b = max(self.m.lower[i], float(a)), min(self.m.upper[i], float(b))
            if a > b:             # rounding in the LP: keep the point, never an empty interval
                a = b = 0.5 * (a + b)
            self.m.lower[i], self.m.upper[i] = a, b

    # -- affine maps: z = M v + d (M sparse over existing columns) --------------------------------------------
    def affine(self, M: sp.csr_matrix, cols: np.ndarray, d: np.ndarray, name: str, tighten: bool = True
               ) -> np.ndarray:
        M = sp.csr_matrix(M)
        lo_in, hi_in = self.lo(cols), self.hi(cols)
        Mp, Mn = M.maximum(0), M.minimum(0)
        lower = Mp @ lo_in + Mn @ hi_in + d
        upper = Mp @ hi_in + Mn @ lo_in + d
        value = M @ self.val(cols) + d
        if name in self.known:                        # bounds proved by an earlier round
            lower = np.maximum(lower, self.known[name][0])
            upper = np.minimum(upper, self.known[name][1])
            mid = 0.5 * (lower + upper)
            lower, upper = np.minimum(lower, mid), np.maximum(upper, mid)
        z = self.new(M.shape[0], lower, upper, value, name=name)
        self.blocks[name] = z
        for r in range(M.shape[0]):
            row = M.getrow(r)
            self.m.add_row(np.concatenate([cols[row.indices], [z[r]]]), np.concatenate([row.data, [-1.0]]),
                           -d[r], -d[r])
        if tighten and self.obbt:
            self.tighten(z)
        return z

    def tighten(self, idx: np.ndarray, cutoff: float | None = None) -> None:
        """Minimise and maximise each column of ``idx`` over the LP relaxation of the model built so far (with
        ``cutoff``: only over points whose objective is at least ``cutoff``, which keeps every optimum)."""
        start = time.perf_counter()
        if cutoff is not None:
            cost = self.m.cost()
            nz = np.flatnonzero(cost)
            self.m.add_row(nz, cost[nz], cutoff - self.m.constant, np.inf)
        A, rlo, rhi = self.m.matrix()
        if cutoff is not None:
            self.m.rows.pop()
        h = quiet_highs()
        h.passModel(highs_model(A, np.zeros(self.m.n_vars), self.m.lower, self.m.upper, rlo, rhi))
        new_lo, new_hi = self.lo(idx), self.hi(idx)
        for k, i in enumerate(idx):
            if new_hi[k] - new_lo[k] <= 1e-9:
                continue
            for sense in (1.0, -1.0):
                h.changeColCost(int(i), sense)
                h.run()
                self.lp_solves += 1
                if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                    v = float(h.getInfo().objective_function_value)
                    slack = 1e-7 * max(1.0, abs(v))          # LP tolerance: keep the bound valid
                    if sense > 0:
                        new_lo[k] = max(new_lo[k], v - slack)
                    else:
                        new_hi[k] = min(new_hi[k], -v + slack)
            h.changeColCost(int(i), 0.0)
        self.set_bounds(idx, new_lo, new_hi)
        self.obbt_time += time.perf_counter() - start

    # -- piecewise-linear pieces ------------------------------------------------------------------------------
    def relu(self, z: np.ndarray, name: str, scale=None, offset=None) -> np.ndarray:
        """``max(0, scale * z + offset)`` per entry (``scale`` +-1, default 1; ``offset`` default 0), with no
        column for the argument itself; units that are always 0 share one fixed column."""
        n = z.size
        sc = np.ones(n) if scale is None else np.broadcast_to(np.asarray(scale, float), (n,))
        off = np.zeros(n) if offset is None else np.broadcast_to(np.asarray(offset, float), (n,))
        zlo, zhi, zv = self.lo(z), self.hi(z), self.val(z)
        lo = np.where(sc > 0, zlo, -zhi) + off
        hi = np.where(sc > 0, zhi, -zlo) + off
        pv = sc * zv + off
        out = np.empty(n, dtype=np.int64)
        for k in range(n):
            zi, l, u, c, o = int(z[k]), lo[k], hi[k], sc[k], off[k]
            if u <= 0:
                out[k] = self.zero()
                self.stable += 1
                continue
            ai = int(self.new(1, max(l, 0.0), u, max(pv[k], 0.0), name=name)[0])
            out[k] = ai
            if l >= 0:
                self.m.add_row([ai, zi], [1.0, -c], o, o)                               # a = pre
                self.stable += 1
                continue
            self.unstable += 1
            self.preactivations.append(zi)
            self.m.add_row([ai, zi], [1.0, -c], o, np.inf)                              # a >= pre
            k_t = u / (u - l)
            self.m.add_row([ai, zi], [1.0, -k_t * c], -np.inf, -k_t * l + k_t * o)       # triangle
            if self.encoding == "sos1":
                sl = self.new(1, 0.0, -l, max(pv[k], 0.0) - pv[k], name=f"{name}_slack")[0]
                self.m.add_row([ai, zi, sl], [1.0, -c, -1.0], o, o)                     # a - s = pre
                self.m.add_sos1(ai, sl)
            else:
                d = self.new(1, 0.0, 1.0, float(pv[k] > 0), integer=True, name=f"{name}_on")[0]
                self.m.add_row([ai, d], [1.0, -u], -np.inf, 0.0)                         # a <= u d
                self.m.add_row([ai, zi, d], [1.0, -c, -l], -np.inf, o - l)              # a <= pre - l (1 - d)
        return out

    def zero(self) -> int:
        """One column fixed at 0, shared by every unit that is never positive."""
        if getattr(self, "_zero", None) is None:
            self._zero = int(self.new(1, 0.0, 0.0, 0.0, name="zero")[0])
        return self._zero

    def clamp(self, z: np.ndarray, lower: np.ndarray, upper: np.ndarray, name: str) -> np.ndarray:
        n = z.size
        eye = sp.identity(n, format="csr")
        r1 = self.relu(z, f"{name}_r1", offset=-lower)            # max(0, z - lo)
        r2 = self.relu(z, f"{name}_r2", offset=-upper)            # max(0, z - hi)
        out = self.affine(sp.hstack([eye, -eye]).tocsr(), np.concatenate([r1, r2]), lower, name, tighten=False)
        self.set_bounds(out, lower, upper)
        return out

    def shift_clip(self, z: np.ndarray, layer, x: np.ndarray, x_value: np.ndarray, name: str) -> np.ndarray:
        import torch

        from bilevelbench.torch.projection import find_shift

        lo_z, hi_z, zv = self.lo(z), self.hi(z), self.val(z)
        lo_x, hi_x = self.lo(x), self.hi(x)
        tw = layer.total_weight
        total_lo = float(np.maximum(tw, 0) @ lo_x + np.minimum(tw, 0) @ hi_x + layer.total_offset)
        total_hi = float(np.maximum(tw, 0) @ hi_x + np.minimum(tw, 0) @ lo_x + layer.total_offset)
        # sum clip(z + t) is non-decreasing in z and t: the smallest shift balances the largest z against the
        # smallest total, the largest shift the smallest z against the largest total
        bounds = torch.tensor(np.stack([hi_z, lo_z])), torch.tensor([total_lo, total_hi])
        shifts, _, _ = find_shift(bounds[0], bounds[1], torch.tensor(layer.lower), torch.tensor(layer.upper),
                                  method="sort")
        slack = 1e-9 * max(1.0, float(np.abs(layer.upper).max(initial=1.0)))
        t_lo = max(float(shifts[0]) - slack, float(np.min(layer.lower - hi_z)))
        t_hi = min(float(shifts[1]) + slack, float(np.max(layer.upper - lo_z)))
        t_val, _, _ = find_shift(torch.tensor(zv[None]), torch.tensor([layer.total(x_value[None])[0]]),
                                 torch.tensor(layer.lower), torch.tensor(layer.upper), method="sort")
        t = self.new(1, t_lo, max(t_hi, t_lo), float(t_val[0]), name=f"{name}_shift")
        n = z.size
        M = sp.hstack([sp.identity(n), np.ones((n, 1))]).tocsr()
        w = self.affine(M, np.concatenate([z, t]), np.zeros(n), f"{name}_w", tighten=False)
        yhat = self.clamp(w, layer.lower, layer.upper, name)
        self.m.add_row(np.concatenate([yhat, x]), np.concatenate([np.ones(n), -tw]),
                       layer.total_offset, layer.total_offset)
        return yhat

    def greedy_repair(self, z: np.ndarray, layer, x: np.ndarray, name: str) -> np.ndarray:
        W = layer.weight
        m_, n = W.shape
        eps = REPAIR_EPS * max(1.0, float(W.max(initial=0.0)))
        r = self.affine(sp.csr_matrix(layer.capacity_weight), x, layer.capacity_offset, f"{name}_cap",
                        tighten=False)
        lo_z, hi_z, zv = self.lo(z), self.hi(z), self.val(z)
        y = np.zeros(n, dtype=np.int64)
        for j in range(n):
            rv = self.val(r)
            want_v = float(zv[j] > 0)
            want = self.new(1, float(lo_z[j] > 0), float(hi_z[j] > 0), want_v, integer=True, name=f"{name}_want")[0]
            if lo_z[j] <= 0 < hi_z[j]:
                self.m.add_row([int(z[j]), want], [1.0, -hi_z[j]], -np.inf, 0.0)              # want=0 -> z <= 0
                self.m.add_row([int(z[j]), want], [1.0, lo_z[j]], lo_z[j], np.inf)             # want=1 -> z >= 0
            fits = []
            for i in range(m_):
                ri, w = int(r[i]), float(W[i, j])
                rmin, rmax = self.m.lower[ri], self.m.upper[ri]
                fv = float(w <= rv[i])
                if rmin >= w:
                    f = self.new(1, 1.0, 1.0, 1.0, integer=True, name=f"{name}_fits")[0]
                elif rmax < w:
                    f = self.new(1, 0.0, 0.0, 0.0, integer=True, name=f"{name}_fits")[0]
                else:
                    f = self.new(1, 0.0, 1.0, fv, integer=True, name=f"{name}_fits")[0]
                    self.m.add_row([ri, f], [1.0, rmin - w], rmin, np.inf)                     # f=1 -> r >= w
                    self.m.add_row([ri, f], [1.0, -(rmax - w + eps)], -np.inf, w - eps)        # f=0 -> r <= w - eps
                fits.append(f)
            take_v = want_v * float(all(self.values[f] > 0.5 for f in fits))
            yj = self.new(1, 0.0, 1.0, take_v, name=f"{name}_take")[0]
            self.m.add_row([yj, want], [1.0, -1.0], -np.inf, 0.0)
            for f in fits:
                self.m.add_row([yj, f], [1.0, -1.0], -np.inf, 0.0)
            self.m.add_row([yj, want] + fits, [1.0, -1.0] + [-1.0] * len(fits), -float(len(fits)), np.inf)
            y[j] = yj
            # remaining capacity after item j
            M = sp.hstack([sp.identity(m_), -W[:, [j]]]).tocsr()
            r = self.affine(M, np.concatenate([r, [yj]]), np.zeros(m_), f"{name}_rest{j}", tighten=False)
        return y


def encode(problem: VerificationProblem, graph: ProxyGraph, lower: np.ndarray, upper: np.ndarray,
           settings: EncodeSettings, reference: np.ndarray | None = None) -> Encoding:
    """Build the verification MILP (see the module docstring).

    Parameters
    ----------
    problem : VerificationProblem
    graph : ProxyGraph
        Must read ``problem.param`` and answer ``problem.decision``; every layer supported.
    lower, upper : (nx,) arrays
        The input domain.
    settings : EncodeSettings
    reference : (nx,) array, optional
        Where to evaluate every column for the warm start (default: the domain's centre).

    Returns
    -------
    Encoding
    """
    graph.check_supported()
    p = problem.program
    if graph.input != problem.param or graph.n_inputs != p.n_x:
        raise UsageError(f"the proxy reads {graph.input!r} ({graph.n_inputs} values); the family's verification "
                         f"problem has parameter {problem.param!r} ({p.n_x} values)")
    if graph.output != problem.decision or graph.n_outputs != len(problem.decision_columns):
        raise UsageError(f"the proxy answers {graph.output!r} ({graph.n_outputs} values); the family expects "
                         f"{problem.decision!r} ({len(problem.decision_columns)} values)")
    if settings.formulation == "kkt" and not p.is_lp:
        raise UsageError("the KKT formulation needs a linear-programming follower; this family's problem has "
                         "integer variables (use --formulation compact)")
    start = time.perf_counter()
    ref = 0.5 * (lower + upper) if reference is None else np.clip(np.asarray(reference, float), lower, upper)
    b = _build(problem, graph, lower, upper, settings, ref, settings.obbt, None)
    rounds = 1
    lp_solves, obbt_time, first_unstable = b.lp_solves, b.obbt_time, b.unstable
    if settings.obbt and settings.rounds > 1 and b.unstable:
        values = np.asarray(b.values)
        cutoff = None
        if b.m.violation(values) <= 1e-7:                    # a feasible point: its gap occurs, so the optimum
            cutoff = b.m.value(values)                       # is at least this (the KKT model has no such point)
            cutoff -= 1e-6 * (1.0 + abs(cutoff))
        b.tighten(np.unique(np.asarray(b.preactivations)), cutoff=cutoff)
        known = {name: (np.array([b.m.lower[i] for i in idx]), np.array([b.m.upper[i] for i in idx]))
                 for name, idx in b.blocks.items()}
        lp_solves, obbt_time = b.lp_solves, b.obbt_time
        b = _build(problem, graph, lower, upper, settings, ref, False, known)
        rounds = 2
    warm = np.asarray(b.values, float)
    stats = {"n_variables": b.m.n_vars, "n_constraints": len(b.m.rows) + len(b.m.sos1),
             "n_binaries": b.m.n_binaries, "unstable_units": b.unstable, "stable_units": b.stable,
             "unstable_units_first_round": first_unstable, "obbt_rounds": rounds,
             "obbt_lp_solves": lp_solves, "obbt_s": round(obbt_time, 3),
             "build_s": round(time.perf_counter() - start, 3), "reference_gap": b.m.value(warm)}
    if settings.formulation == "kkt":
        warm = None
    return Encoding(b.m, b.x, b.yhat, b.y, warm, stats)


def _build(problem: VerificationProblem, graph: ProxyGraph, lower: np.ndarray, upper: np.ndarray,
           settings: EncodeSettings, ref: np.ndarray, obbt: bool, known: dict | None) -> _Builder:
    p = problem.program
    b = _Builder(obbt, settings.encoding, known)
    x = b.new(p.n_x, lower, upper, ref, name="x")
    z = x
    for i, layer in enumerate(graph.layers):
        name = f"L{i}_{layer.kind}"
        if layer.kind == "affine":
            z = b.affine(sp.csr_matrix(layer.weight), z, layer.bias, name)
        elif layer.kind == "relu":
            z = b.relu(z, name)
        elif layer.kind == "clamp":
            z = b.clamp(z, layer.lower, layer.upper, name)
        elif layer.kind == "shift_clip":
            z = b.shift_clip(z, layer, x, ref, name)
        elif layer.kind == "greedy_repair":
            z = b.greedy_repair(z, layer, x, name)
    yhat = z
    # the answer's objective F(x, yhat)
    ans = problem.answer
    sign = 1.0 if p.sense == "min" else -1.0                 # gap = sign * (F - f(y))
    b.m.add_objective(yhat, sign * ans.c)
    b.m.constant += sign * ans.c0
    if ans.h.size:
        # rows that are the negative of another (a soft two-sided limit: f - rate and -f - rate) share one column
        GH = sp.hstack([ans.G, ans.H]).tocsr()
        rows, signs, owner = _rows_up_to_sign(GH)
        arg = b.affine(GH[rows], np.concatenate([yhat, x]), np.zeros(len(rows)), "penalty_arg")
        pen = b.relu(arg[owner], "penalty", scale=signs * signs[rows][owner], offset=ans.h)
        b.m.add_objective(pen, sign * ans.price)
    # the follower's optimum: y feasible (compact) or KKT-optimal (kkt)
    _, y_ref = ProgramValue(p).value(ref[None])
    y_val = np.nan_to_num(y_ref[0])
    y = b.new(p.n_y, p.y_lower, p.y_upper, y_val, name="y")
    for k in np.flatnonzero(p.integer):
        b.m.integer[y[k]] = True
    AB = sp.hstack([p.A, -p.B]).tocsr()
    cols = np.concatenate([y, x])
    for r in range(AB.shape[0]):
        row = AB.getrow(r)
        b.m.add_row(cols[row.indices], row.data, p.row_lower[r], p.row_upper[r])
    b.m.add_objective(y, -sign * p.c)
    b.m.constant -= sign * p.c0
    if settings.formulation == "kkt":
        _add_kkt(b, p, x, y, y_val)
    b.x, b.yhat, b.y = x, yhat, y
    return b


def _rows_up_to_sign(M: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``M`` that are equal up to sign share one representative.

    Returns
    -------
    reps : (r,) int array
        The first row of each class.
    signs : (rows,) array
        Each row's sign relative to its canonical form (first non-zero positive).
    owner : (rows,) int array
        The position in ``reps`` of each row's class.
    """
    classes: dict[bytes, int] = {}
    reps: list[int] = []
    signs = np.ones(M.shape[0])
    owner = np.empty(M.shape[0], dtype=np.int64)
    for r in range(M.shape[0]):
        row = M.getrow(r)
        key = b"zero"
        if row.nnz:
            order = np.argsort(row.indices)
            idx, val = row.indices[order], row.data[order]
            signs[r] = 1.0 if val[0] > 0 else -1.0
            key = idx.tobytes() + np.round(signs[r] * val, 12).tobytes()
        if key not in classes:
            classes[key] = len(reps)
            reps.append(r)
        owner[r] = classes[key]
    return np.asarray(reps, dtype=np.int64), signs, owner


def _add_kkt(b: _Builder, p, x: np.ndarray, y: np.ndarray, y_val: np.ndarray) -> None:
    """Stationarity, dual feasibility and complementarity (SOS1) of the follower's LP (minimisation form)."""
    c = p.c if p.sense == "min" else -p.c
    A = p.A
    AB = sp.hstack([p.A, -p.B]).tocsr()
    cols = np.concatenate([y, x])
    # stationarity: c - A' lam - mu = 0, with lam = lam_lo - lam_hi (rows), mu = mu_lo - mu_hi (bounds)
    terms: list[list[tuple[int, float]]] = [[] for _ in range(p.n_y)]
    for r in range(A.shape[0]):
        lo, hi = p.row_lower[r], p.row_upper[r]
        row = AB.getrow(r)
        coeffs = p.A.getrow(r)
        if np.isfinite(lo) and np.isfinite(hi) and lo == hi:
            lam = b.new(1, -np.inf, np.inf, 0.0, name="kkt_eq")[0]
            for j, a in zip(coeffs.indices, coeffs.data, strict=True):
                terms[j].append((lam, a))
            continue
        for bound, sgn in ((lo, 1.0), (hi, -1.0)):
            if not np.isfinite(bound):
                continue
            lam = b.new(1, 0.0, np.inf, 0.0, name="kkt_row")[0]
            slack = b.new(1, 0.0, np.inf, 0.0, name="kkt_row_slack")[0]
            # slack = sgn * (A y - B x - bound)
            b.m.add_row(np.concatenate([cols[row.indices], [slack]]), np.concatenate([sgn * row.data, [-1.0]]),
                        sgn * bound, sgn * bound)
            b.m.add_sos1(lam, slack)
            for j, a in zip(coeffs.indices, coeffs.data, strict=True):
                terms[j].append((lam, sgn * a))
    for j in range(p.n_y):
        for bound, sgn in ((p.y_lower[j], 1.0), (p.y_upper[j], -1.0)):
            if not np.isfinite(bound):
                continue
            mu = b.new(1, 0.0, np.inf, 0.0, name="kkt_bound")[0]
            slack = b.new(1, 0.0, np.inf, 0.0, name="kkt_bound_slack")[0]
            b.m.add_row([int(y[j]), slack], [sgn, -1.0], sgn * bound, sgn * bound)
            b.m.add_sos1(mu, slack)
            terms[j].append((mu, sgn))
    for j in range(p.n_y):
        idx = [t[0] for t in terms[j]]
        coef = [t[1] for t in terms[j]]
        b.m.add_row(idx, coef, c[j], c[j])
