"""Provably valid variable bounds for the KKT reformulation of a BQP.

The KKT-MIP needs finite bounds on ``y``, ``z``, the lower-level multipliers
``lam`` and slacks ``s``: SCIP on the unbounded model can run for many minutes on
a 3x2 instance. A guessed box (or a guessed big-M) can cut off the true optimum
and yield a wrong "optimal" label. The bounds below are *derived*: every
bilevel-feasible point whose upper objective is at most a known achievable
value ``U`` lies inside them. They rely on three facts.

1. **The follower's response is an H-projection.** With ``z_u = -H^{-1} e``,
   ``1/2 z'Hz + e'z = 1/2 ||z - z_u||_H^2 + const``, so ``z(y)`` is the
   H-nearest point to ``z_u`` in ``P(y) = {z : F z <= h + G y}``. Any point
   ``w in P(y)`` gives ``||z(y) - z_u||_H <= ||w - z_u||_H``.
2. **A strictly feasible direction.** An LP finds ``v`` (``||v||_inf <= 1``) with
   ``-(F v)_i = s_i > 0`` for all rows. ``w = z_u + t v`` lies in ``P(y)`` as soon as
   ``t >= max(0, max_i (a_i - G_i y) / s_i)`` with ``a = F z_u - h``. Hence
   ``||z(y) - z_u||_H <= ||v||_H * t(y)``, and ``t(y) <= alpha + beta ||y||_inf``.
3. **The upper objective's level set.** With Cauchy-Schwarz in the H-norm,
   ``d'z >= d'z_u - ||d||_{H^-1} ||z - z_u||_H``; together with
   ``1/2 y'Qy >= 1/2 mu_min(Q) ||y||^2`` the set ``{objective <= U}`` bounds
   ``||y||_2`` by the root of a scalar quadratic, and then each ``y_j`` by the
   ellipsoid ``1/2 y'Qy + c'y <= Gamma``.

Multipliers follow from stationarity ``H z + e + F' lam = 0``: multiplying by
``v`` gives ``sum_i lam_i s_i = v'(H z + e)``, and every term is non-negative, so
``lam_i <= max_{z in box} v'(Hz + e) / s_i``.

Each bound is slightly widened (relative 1e-6 plus absolute 1e-6) to absorb
rounding in its own computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bilevelbench.errors import CertificationError
from bilevelbench.families.bqp.problem import BQPStructure
from bilevelbench.qp import INF, solve_convex_qp

_WIDEN_REL = 1e-6
_WIDEN_ABS = 1e-6


def _widen(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pad = _WIDEN_REL * np.maximum(np.abs(lo), np.abs(hi)) + _WIDEN_ABS
    return lo - pad, hi + pad


def _box_max_linear(w: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Row-wise ``max_{lo <= x <= hi} w x`` for a matrix (or vector) ``w``."""
    return np.sum(np.maximum(w * lo, w * hi), axis=-1)


@dataclass(frozen=True)
class VariableBounds:
    """Boxes valid for every bilevel-feasible point with objective <= ``objective_cap``."""

    y_lo: np.ndarray
    y_hi: np.ndarray
    z_lo: np.ndarray
    z_hi: np.ndarray
    lam_hi: np.ndarray
    slack_hi: np.ndarray
    epigraph_hi: float
    objective_cap: float


class BoundDeriver:
    """Per-structure constants of the bound derivation (computed once, reused per instance).

    Raises
    ------
    CertificationError
        If ``Q`` or ``H`` is not positive definite, or the lower-level constraints
        admit no strictly feasible direction (then no finite bound follows).
    """

    def __init__(self, s: BQPStructure) -> None:
        self.s = s
        eig_q = np.linalg.eigvalsh(s.Q)
        eig_h = np.linalg.eigvalsh(s.H)
        if eig_q[0] <= 1e-12 * max(1.0, eig_q[-1]):
            raise CertificationError(
                f"Q must be positive definite for the level-set bound, smallest eigenvalue is {eig_q[0]:.3e}")
        if eig_h[0] <= 1e-12 * max(1.0, eig_h[-1]):
            raise CertificationError(
                f"H must be positive definite (unique follower response), smallest eigenvalue is {eig_h[0]:.3e}")
        # A small safety factor on the smallest eigenvalue covers eigvalsh rounding.
        self.mu_q = eig_q[0] * (1 - 1e-9)
        self.Q_inv = np.linalg.inv(s.Q)
        self.H_inv = np.linalg.inv(s.H)
        self.z_u = -self.H_inv @ s.e

        # Strictly feasible direction: max tau s.t. F v + tau <= 0, -1 <= v <= 1, tau <= 1.
        n, p = s.n, s.n_lower_constraints
        cost = np.zeros(n + 1)
        cost[-1] = -1.0
        rows = np.hstack([s.F, np.ones((p, 1))])
        res = solve_convex_qp(None, cost, rows, np.full(p, -INF), np.zeros(p),
                              np.r_[-np.ones(n), -INF], np.r_[np.ones(n), 1.0])
        if not res.optimal or res.x[-1] <= 1e-9:
            raise CertificationError(
                "the lower-level constraints F z <= h + G y admit no strictly feasible direction "
                f"(LP status {res.status}, margin {res.x[-1] if res.optimal else float('nan'):.3e}); "
                "finite KKT bounds cannot be derived")
        self.v = res.x[:n]
        self.s_dir = -(s.F @ self.v)  # every entry >= tau > 0
        if np.min(self.s_dir) <= 0:
            raise CertificationError("strictly feasible direction lost to rounding; cannot derive bounds")
        self.v_norm_h = float(np.sqrt(self.v @ s.H @ self.v))
        self.a = s.F @ self.z_u - s.h
        self.alpha = max(0.0, float(np.max(self.a / self.s_dir)))
        self.beta = float(np.max(np.abs(s.G).sum(axis=1) / self.s_dir))
        self.h_inv_diag_sqrt = np.sqrt(np.diag(self.H_inv))
        self.q_inv_diag_sqrt = np.sqrt(np.diag(self.Q_inv))

    def derive(self, c: np.ndarray, d: np.ndarray, objective_cap: float) -> VariableBounds:
        """Bounds for instance ``(c, d)`` given an achievable upper objective ``objective_cap``.

        ``objective_cap`` must be the objective of a bilevel-feasible point (or larger).
        """
        s = self.s
        c = np.asarray(c, dtype=float)
        d = np.asarray(d, dtype=float)
        kappa = float(np.sqrt(d @ self.H_inv @ d)) * self.v_norm_h
        base = objective_cap - s.q - float(d @ self.z_u)  # U - q - d'z_u

        # ||y||_2 <= rho from 1/2 mu rho^2 - (||c|| + kappa beta) rho - (base + kappa alpha) <= 0.
        lin = float(np.linalg.norm(c)) + kappa * self.beta
        const = max(0.0, base + kappa * self.alpha)
        rho = (lin + np.sqrt(lin * lin + 2.0 * self.mu_q * const)) / self.mu_q

        # Ellipsoid 1/2 y'Qy + c'y <= Gamma with Gamma using ||y||_inf <= rho.
        gamma = base + kappa * (self.alpha + self.beta * rho)
        y_c = -self.Q_inv @ c
        radius_sq = max(0.0, 2.0 * (gamma + 0.5 * float(c @ self.Q_inv @ c)))
        half = np.sqrt(radius_sq) * self.q_inv_diag_sqrt
        y_lo = np.maximum(y_c - half, -rho)
        y_hi = np.minimum(y_c + half, rho)
        y_lo, y_hi = _widen(y_lo, y_hi)

        # z(y) within the H-ball around z_u of radius ||v||_H * T, T = max over the y-box of t(y).
        worst = self.a + _box_max_linear(-s.G, y_lo, y_hi)
        t_max = max(0.0, float(np.max(worst / self.s_dir)))
        z_half = self.v_norm_h * t_max * self.h_inv_diag_sqrt
        z_lo, z_hi = _widen(self.z_u - z_half, self.z_u + z_half)

        # Multipliers from sum_i lam_i s_i = v'(Hz + e) with every term non-negative.
        weighted = float(_box_max_linear(s.H @ self.v, z_lo, z_hi)) + float(self.v @ s.e)
        lam_hi = np.maximum(weighted, 0.0) / self.s_dir
        slack_hi = s.h + _box_max_linear(s.G, y_lo, y_hi) + _box_max_linear(-s.F, z_lo, z_hi)
        _, lam_hi = _widen(np.zeros_like(lam_hi), lam_hi)
        _, slack_hi = _widen(np.zeros_like(slack_hi), np.maximum(slack_hi, 0.0))
        y_abs = np.maximum(np.abs(y_lo), np.abs(y_hi))
        epigraph_hi = 0.5 * float(y_abs @ np.abs(s.Q) @ y_abs) * (1 + _WIDEN_REL) + _WIDEN_ABS
        return VariableBounds(y_lo=y_lo, y_hi=y_hi, z_lo=z_lo, z_hi=z_hi, lam_hi=lam_hi,
                              slack_hi=slack_hi, epigraph_hi=epigraph_hi, objective_cap=float(objective_cap))
