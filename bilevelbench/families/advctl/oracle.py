"""An independent exact method for ``adv-control`` (``verify --oracle``): best-first branch and bound over the
adversary's active sets, each node a convex QP solved by HiGHS.

It shares nothing with the labelling path but the problem's matrices: no SCIP, no SOS1. A node fixes, for some
adversary entries ``i``, whether ``W_i`` sits on its lower bound, its upper bound or strictly between (the KKT
multipliers of the other sides set to zero); for the undecided entries it only bounds the stationarity
residual by the multiplier bound (:func:`.kkt.multiplier_bounds`) and drops complementarity. The node QP (the leader's cost over
controls and adversary, with the stationarity residual ``rho = lam_lo - lam_up`` bounded by the node's sign pattern) is therefore a relaxation of every KKT
point below it, and a node whose solution is complementary on every entry is solved exactly. Every node also
prices its controls against the adversary's true answer, a valid upper bound. The search stops when the best
open bound is within ``rel_gap`` of the incumbent.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from bilevelbench.errors import SolverError
from bilevelbench.families.advctl import problem
from bilevelbench.families.advctl.kkt import multiplier_bounds

UNDECIDED, LOWER, FREE, UPPER = 0, 1, 2, 3


@dataclass(frozen=True)
class OracleResult:
    objective: float
    lower_bound: float
    U: np.ndarray
    nodes: int
    closed: bool


def branch_and_bound(s: problem.AdvStructure, x0: np.ndarray, target: np.ndarray, rel_gap: float = 1e-6,
                     max_nodes: int = 20000, time_limit: float = 60.0) -> OracleResult:
    """The leader's optimal cost for one instance, by branch and bound over the adversary's active sets."""
    from bilevelbench.qp import solve_convex_qp

    nc, nd = s.n_controls, s.n_disturbances
    G = np.hstack([s.gu, s.gw])
    free_response = s.phi @ np.asarray(x0, float)
    P = 2 * G.T @ G
    P[:nc, :nc] += 2 * float(s.r) * np.eye(nc)
    c = 2 * G.T @ free_response
    offset = float(free_response @ free_response)
    rows = np.hstack([s.gw.T @ s.gu, s.follower_hessian])     # rho = M W + Gw'Gu U - g0 = lam_lo - lam_up
    g0 = problem.follower_linear(s, x0, target, np.zeros(nc))
    lam = multiplier_bounds(s, x0, target)
    w = float(s.w_max)

    def bounds(state: np.ndarray):
        lo = np.concatenate([np.full(nc, -s.u_max), np.full(nd, -w)])
        hi = np.concatenate([np.full(nc, s.u_max), np.full(nd, w)])
        lo[nc:] = np.where(state == UPPER, w, lo[nc:])
        hi[nc:] = np.where(state == LOWER, -w, hi[nc:])
        # undecided: rho in [-lam, lam]; free: rho = 0; upper (0 <= lam_up <= lam): rho in [-lam, 0]; lower:
        # rho in [0, lam] (finite both sides: HiGHS's QP solver has failed on one-sided rows of these models)
        r_lo = np.where((state == UNDECIDED) | (state == UPPER), -lam, 0.0)
        r_hi = np.where((state == UNDECIDED) | (state == LOWER), lam, 0.0)
        return lo, hi, g0 + r_lo, g0 + r_hi

    best, best_U = np.inf, np.full(nc, np.nan)
    counter, nodes = 0, 0
    heap = [(-np.inf, counter, np.zeros(nd, dtype=np.int8))]
    lower = -np.inf
    import time

    deadline = time.perf_counter() + time_limit
    while heap:
        bound, _, state = heapq.heappop(heap)
        lower = bound
        if bound >= best - rel_gap * max(1.0, abs(best)):
            lower = best
            heap = []
            break
        if nodes >= max_nodes or time.perf_counter() > deadline:
            heapq.heappush(heap, (bound, counter, state))
            break
        nodes += 1
        lo, hi, r_lo, r_hi = bounds(state)
        res = solve_convex_qp(P, c, rows, r_lo, r_hi, lo, hi, offset=offset, time_limit=time_limit)
        if res.status == "infeasible":
            continue
        if res.optimal:
            z, node_bound = res.x, res.objective
        else:                                          # HiGHS's QP solver can fail on these nodes (see below)
            z, node_bound = dual_bound(P, c, rows, r_lo, r_hi, lo, hi, offset)
            if z is None:
                continue
        U = np.clip(z[:nc], -s.u_max, s.u_max)
        value = float(problem.true_cost(s, x0, target, U)[0][0])
        if value < best:
            best, best_U = value, U
        Wn = z[nc:]
        rho = (rows @ z - g0) / np.maximum(lam, 1e-12)
        violation = np.minimum.reduce([np.abs(rho), (w - Wn) / w + np.maximum(rho, 0.0),
                                       (Wn + w) / w + np.maximum(-rho, 0.0)])
        violation = np.where(state == UNDECIDED, np.maximum(violation, 0.0), 0.0)
        if violation.max() <= 1e-9:
            continue                                   # complementary: the node is solved exactly (priced above)
        i = int(np.argmax(violation))
        for choice in (LOWER, FREE, UPPER):
            child = state.copy()
            child[i] = choice
            counter += 1
            heapq.heappush(heap, (node_bound, counter, child))
    else:
        lower = best
    if not heap:
        lower = min(best, max(lower, best)) if np.isfinite(best) else lower
    closed = not heap
    return OracleResult(best, lower if closed else float(heap[0][0]), best_U, nodes, closed)


def dual_bound(P: np.ndarray, c: np.ndarray, A: np.ndarray, r_lo: np.ndarray, r_hi: np.ndarray, lo: np.ndarray,
               hi: np.ndarray, offset: float) -> tuple[np.ndarray | None, float]:
    """A node's point and a rigorous lower bound when HiGHS's QP solver fails on it (it has stopped with "claims
    optimality, but with primal infeasibilities" on a few of these strictly convex nodes).

    OSQP (polished) gives near-optimal row multipliers ``y``; the bound is the Lagrangian dual function at ``y``,
    ``min over the box of 1/2 z'Pz + (c + A'y)'z - y+' r_hi + y-' r_lo``, evaluated exactly by the active-set box
    QP. Weak duality makes it valid for any ``y``; near the optimum it is tight. Returns ``(None, inf)`` when OSQP
    proves the node infeasible.

    Raises
    ------
    SolverError
        When OSQP neither solves nor proves the node infeasible.
    """
    import osqp
    import scipy.sparse as sparse

    n, k = P.shape[0], A.shape[0]
    model = osqp.OSQP()
    model.setup(P=sparse.csc_matrix(np.triu(P)), q=c, A=sparse.csc_matrix(np.vstack([A, np.eye(n)])),
                l=np.concatenate([r_lo, lo]), u=np.concatenate([r_hi, hi]), eps_abs=1e-10, eps_rel=1e-10,
                max_iter=200000, polishing=True, verbose=False)
    out = model.solve(raise_error=False)
    status = str(out.info.status).lower()
    if "infeasible" in status and "inaccurate" not in status:
        return None, np.inf
    if out.x is None or not np.all(np.isfinite(out.x)):
        raise SolverError(f"adv-control oracle: neither HiGHS nor OSQP solved a node (OSQP: {out.info.status})")
    y = out.y[:k]
    z, converged = problem.bounded_qp(P, -(c + A.T @ y), lo, hi)
    if not converged:
        raise SolverError("adv-control oracle: the dual function's box QP did not converge at a node")
    value = (0.5 * z @ P @ z + (c + A.T @ y) @ z - np.maximum(y, 0) @ r_hi + np.maximum(-y, 0) @ r_lo
             + offset)
    return np.clip(out.x[:n], lo, hi), float(value)
