"""An exact BQP solver that does not use the KKT-MIP: enumeration of lower-level active sets.

For each subset ``J`` of lower-level rows, the points whose KKT multipliers vanish
outside ``J`` and whose slacks vanish on ``J`` form a polyhedron in
``(y, z, lam_J)``; on it the upper problem is a convex QP. The union over all
``J`` is exactly the set of bilevel-feasible points (the lower level is convex,
so KKT is necessary and sufficient), hence the smallest of the ``2^p`` convex QP
optima is the global optimum. Each QP is solved by HiGHS.

Cost grows as ``2^p``: meant as an independent oracle for small instances
(tests, ``bilevelbench verify --oracle``), not as the production certifier.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from bilevelbench.errors import UsageError
from bilevelbench.families.bqp.problem import BQPStructure
from bilevelbench.qp import INF, QPResult, solve_convex_qp

MAX_ENUMERATED_ROWS = 16


@dataclass(frozen=True)
class EnumerationResult:
    """Global optimum found by enumeration (``objective`` is inf when infeasible)."""

    objective: float
    y: np.ndarray
    z: np.ndarray
    active_set: tuple[int, ...]
    regions_feasible: int


def solve_region_qp(s: BQPStructure, c: np.ndarray, d: np.ndarray, active: np.ndarray,
                    upper_rhs: np.ndarray | None = None) -> QPResult:
    """Solve the convex upper QP over the KKT region of one active set.

    Variables ``(y, z, lam_J)``: lower rows in ``active`` hold with equality and carry
    multipliers ``lam_J >= 0``; the others are inequalities with zero multipliers. Every
    point of the region is bilevel feasible in the lower level (its KKT conditions hold).
    ``upper_rhs`` replaces ``b`` (a tightened ``b`` yields strictly feasible points).
    """
    m, n, p, nu = s.m, s.n, s.n_lower_constraints, s.n_upper_constraints
    mask = np.asarray(active, dtype=bool)
    k = int(mask.sum())
    ncol = m + n + k
    P = np.zeros((ncol, ncol))
    P[:m, :m] = s.Q
    cost = np.concatenate([c, d, np.zeros(k)])
    rows = np.vstack([
        np.hstack([s.A, -s.E, np.zeros((nu, k))]),
        np.hstack([-s.G, s.F, np.zeros((p, k))]),
        np.hstack([np.zeros((n, m)), s.H, s.F[mask].T]),
    ])
    lo = np.concatenate([np.full(nu, -INF), np.where(mask, s.h, -INF), -s.e])
    hi = np.concatenate([s.b if upper_rhs is None else upper_rhs, s.h, -s.e])
    col_lo = np.concatenate([np.full(m + n, -INF), np.zeros(k)])
    return solve_convex_qp(P, cost, rows, lo, hi, col_lo, np.full(ncol, INF), offset=s.q)


def solve_by_enumeration(s: BQPStructure, c: np.ndarray, d: np.ndarray) -> EnumerationResult:
    """Globally solve one BQP instance by active-set enumeration (see the module docstring)."""
    m, n, p = s.m, s.n, s.n_lower_constraints
    if p > MAX_ENUMERATED_ROWS:
        raise UsageError(f"enumeration takes at most {MAX_ENUMERATED_ROWS} lower-level rows, got {p}")
    best = EnumerationResult(np.inf, np.full(m, np.nan), np.full(n, np.nan), (), 0)
    feasible = 0
    for size in range(p + 1):
        for active in itertools.combinations(range(p), size):
            mask = np.zeros(p, dtype=bool)
            mask[list(active)] = True
            res = solve_region_qp(s, c, d, mask)
            if not res.optimal:
                continue
            feasible += 1
            if res.objective < best.objective:
                best = EnumerationResult(res.objective, res.x[:m], res.x[m:m + n], active, 0)
    return EnumerationResult(best.objective, best.y, best.z, best.active_set, feasible)
