"""Exact local work on a bilevel QP: the follower's KKT regions as small strictly convex QPs in ``y`` alone.

For a set ``J`` of the follower's rows held active, the follower's KKT conditions

    H z + e + F_J' lam = 0,   F_J z = h_J + G_J y

fix ``z`` and ``lam`` as affine functions of ``y`` (when ``F_J`` has full row rank). The rest of the region (the
other rows feasible, ``lam >= 0``) and the leader's constraints ``A y <= b + E z`` are then linear in ``y``, and
the leader's objective ``1/2 y'Qy + c'y + d'z + q`` a strictly convex quadratic in ``y``. Everything but the
linear cost depends on ``J`` and the data set's structure only, so each region is built once and reused for
every instance; a region solve is one call of ``quadprog`` (Goldfarb-Idnani). Every point of a region is
bilevel feasible: the follower's KKT conditions hold there and ``H`` is positive definite, so ``z`` is its unique
response. The union of the regions is the bilevel feasible set (``bilevelbench.families.bqp.enumeration``).

A region is named by a bit mask (bit ``j`` set: row ``j`` of the follower held active).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import quadprog

from bilevelbench.families.bqp.problem import BQPStructure

#: Rows whose slack or multiplier is below this count as active.
ACTIVE_TOL = 1e-7


@dataclass(frozen=True)
class Region:
    """One KKT region reduced to ``y``: ``z = z0 + Zy y``; constraints ``C' y >= b`` (quadprog's form)."""

    z0: np.ndarray
    ZyT: np.ndarray
    C: np.ndarray
    b: np.ndarray


class Regions:
    """The KKT regions of one structure, built on first use and cached.

    Parameters
    ----------
    s : BQPStructure
    """

    def __init__(self, s: BQPStructure) -> None:
        self.s = s
        self.p = s.n_lower_constraints
        self.Q = np.array(s.Q)                  # quadprog needs writable arrays (the structure's are read-only)
        self.H = np.array(s.H)
        self.minus_FT = np.ascontiguousarray(-s.F.T)
        self._cache: dict[int, Region | None] = {}
        self.solves = 0

    def region(self, mask: int) -> Region | None:
        """The region of the rows in ``mask`` (None when ``F_J`` is rank deficient)."""
        if mask not in self._cache:
            self._cache[mask] = self._build(mask)
        return self._cache[mask]

    def _build(self, mask: int) -> Region | None:
        s = self.s
        n, m = s.n, s.m
        active = np.array([(mask >> j) & 1 for j in range(self.p)], dtype=bool)
        J, rest = np.flatnonzero(active), np.flatnonzero(~active)
        k = J.size
        FJ = s.F[J]
        if k > n or (k and np.linalg.matrix_rank(FJ) < k):
            return None
        K = np.block([[s.H, FJ.T], [FJ, np.zeros((k, k))]])
        sol0 = np.linalg.solve(K, np.concatenate([-s.e, s.h[J]]))
        soly = np.linalg.solve(K, np.vstack([np.zeros((n, m)), s.G[J]]))
        z0, Zy, l0, Ly = sol0[:n], soly[:n], sol0[n:], soly[n:]
        # A y - E z <= b;  F_rest z - G_rest y <= h_rest;  lam_J >= 0,   as  C' y >= b
        M = np.vstack([s.A - s.E @ Zy, s.F[rest] @ Zy - s.G[rest], -Ly])
        u = np.concatenate([s.b + s.E @ z0, s.h[rest] - s.F[rest] @ z0, l0])
        return Region(z0=z0, ZyT=np.ascontiguousarray(Zy.T), C=np.ascontiguousarray(-M.T), b=-u)

    def solve(self, mask: int, c: np.ndarray, d: np.ndarray) -> tuple[float, np.ndarray] | None:
        """``(objective, y)``: the leader's best point in region ``mask`` for instance ``(c, d)``; None if empty."""
        r = self.region(mask)
        if r is None:
            return None
        self.solves += 1
        try:
            y, value = quadprog.solve_qp(self.Q, -(c + r.ZyT @ d), r.C, r.b, 0)[:2]
        except ValueError:                  # "constraints are inconsistent": the region is empty, for every
            self._cache[mask] = None        # instance (its constraints depend on the structure only)
            return None
        return float(value + d @ r.z0 + self.s.q), y

    def follower_mask(self, y: np.ndarray) -> int:
        """The follower's active rows at ``y`` (its QP solved by quadprog): positive multiplier or zero slack.

        quadprog is called directly, not through the KKT-checked :func:`bilevelbench.qp.solve_strictly_convex_qp`:
        only the search's start depends on it (every answer is a region's optimum), and on the committed test sets
        the check changes no start region while doubling this step's cost (0.04 to 0.09 ms per instance)."""
        s = self.s
        rhs = s.h + s.G @ y
        z, _, _, _, lagr, _ = quadprog.solve_qp(self.H, -s.e, self.minus_FT, -rhs, 0)
        slack = rhs - s.F @ z
        active = (lagr > ACTIVE_TOL) | (slack <= ACTIVE_TOL * max(1.0, float(np.abs(rhs).max())))
        return int(sum(1 << j for j in np.flatnonzero(active)))


def _better(value: float, than: float | None) -> bool:
    return than is None or value < than - 1e-12 * max(1.0, abs(than))


def local_search(regions: Regions, c: np.ndarray, d: np.ndarray, start: int, radius: int = 2,
                 max_moves: int = 50) -> tuple[tuple[float, np.ndarray] | None, int, int]:
    """Best-improvement search over regions from region ``start``: move to the best region one row away while
    that improves; when none does, look up to ``radius`` rows away before stopping.

    Returns ``((objective, y) or None, mask, moves)``: the best region optimum found (None if every region tried
    was empty), its region and the moves made.
    """
    p = regions.p
    mask, best = start, regions.solve(start, c, d)
    moves = 0
    while moves < max_moves:
        found, found_mask = None, None
        for flips in range(1, min(radius, p) + 1):
            for rows in itertools.combinations(range(p), flips):
                other = mask
                for j in rows:
                    other ^= 1 << j
                sol = regions.solve(other, c, d)
                if sol is not None and _better(sol[0], (found or best or (None,))[0]):
                    found, found_mask = sol, other
            if found is not None:
                break
        if found is None:
            break
        best, mask, moves = found, found_mask, moves + 1
    return best, mask, moves
