"""Independent checks run on every label (at generation and again by ``bilevelbench verify``).

None of them trusts the MIP solver that produced the label:

* ``follower_z_diff`` / ``follower_objective_excess``: the lower level is
  re-solved at ``y*`` by HiGHS (a different solver) and compared with ``z*``;
* ``upper_violation``: ``max(A y* - b - E z*)``;
* ``lower_violation``: ``max(F z* - h - G y*)``;
* ``stationarity``: ``||H z* + e + F' lam*||_inf``;
* ``dual_infeasibility``: ``max(-lam*)``;
* ``complementarity``: ``max_i min(lam*_i, s*_i)``;
* ``rel_gap``: ``max(0, objective - dual_bound) / max(1, |objective|)``.

Residuals are scaled by ``max(1, ||data||_inf)`` of the rows they come from, so a
tolerance means the same for small and large instances.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from bilevelbench.errors import SolverError
from bilevelbench.families.bqp.problem import (
    BQPStructure,
    coupling_residual,
    follower_response,
    lower_objective,
    lower_residual,
    upper_objective,
)

CHECK_FIELDS = ("follower_z_diff", "follower_objective_excess", "upper_violation", "lower_violation",
                "stationarity", "dual_infeasibility", "complementarity", "rel_gap")


@dataclass(frozen=True)
class Tolerances:
    """Pass thresholds of the label checks (all on scaled residuals; see the module docstring)."""

    feasibility: float = 1e-6
    stationarity: float = 1e-6
    complementarity: float = 1e-6
    follower_z: float = 1e-5
    follower_objective: float = 1e-6
    rel_gap: float = 1e-6
    objective_match: float = 1e-6

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def limit(self, check: str) -> float:
        return {
            "follower_z_diff": self.follower_z, "follower_objective_excess": self.follower_objective,
            "upper_violation": self.feasibility, "lower_violation": self.feasibility,
            "stationarity": self.stationarity, "dual_infeasibility": self.feasibility,
            "complementarity": self.complementarity, "rel_gap": self.rel_gap,
        }[check]


#: Checks whose failure means the point is not bilevel feasible (not merely unproven).
FEASIBILITY_CHECKS = ("follower_z_diff", "follower_objective_excess", "upper_violation", "lower_violation")


@dataclass
class CheckReport:
    """Scaled residual of each check (NaN when it could not be computed) and, for each
    failed check (or ``"objective"``), the message saying why."""

    values: dict[str, float]
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        return list(self.failed.values())

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def feasible(self) -> bool:
        """Bilevel feasible: z* is the follower's response and every constraint holds."""
        return not any(check in self.failed for check in FEASIBILITY_CHECKS)


def check_label(s: BQPStructure, c: np.ndarray, d: np.ndarray, y: np.ndarray, z: np.ndarray, lam: np.ndarray,
                objective: float, dual_bound: float, tol: Tolerances) -> CheckReport:
    """Run every independent check on one labelled point; see the module docstring."""
    y, z, lam = (np.asarray(a, dtype=float) for a in (y, z, lam))
    values = dict.fromkeys(CHECK_FIELDS, np.nan)
    failed: dict[str, str] = {}
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(z))):
        return CheckReport(values, dict.fromkeys(CHECK_FIELDS, "solution contains NaN or inf"))
    recomputed = float(upper_objective(s, c, d, y, z)[0])
    if not np.isfinite(objective) or abs(recomputed - objective) > tol.objective_match * max(1.0, abs(recomputed)):
        failed["objective"] = f"objective {objective!r} does not match the recomputed {recomputed!r}"

    scale_u = max(1.0, float(np.max(np.abs(s.b))))
    scale_l = max(1.0, float(np.max(np.abs(s.h))))
    values["upper_violation"] = max(0.0, float(np.max(coupling_residual(s, y, z)))) / scale_u
    slack = -lower_residual(s, y, z)[0]
    values["lower_violation"] = max(0.0, float(np.max(-slack))) / scale_l
    if np.all(np.isfinite(lam)):
        scale_e = max(1.0, float(np.max(np.abs(s.e))))
        values["stationarity"] = float(np.max(np.abs(s.H @ z + s.e + s.F.T @ lam))) / scale_e
        values["dual_infeasibility"] = max(0.0, float(np.max(-lam)))
        values["complementarity"] = float(np.max(np.minimum(np.abs(lam), np.abs(slack) / scale_l)))
    try:
        ref = follower_response(s, y)
        values["follower_z_diff"] = float(np.max(np.abs(z - ref.z))) / (1.0 + float(np.max(np.abs(ref.z))))
        excess = float(lower_objective(s, y, z)[0]) - ref.objective
        values["follower_objective_excess"] = max(0.0, excess) / (1.0 + abs(ref.objective))
    except SolverError as exc:
        failed["follower_z_diff"] = f"follower_z_diff: lower level could not be re-solved ({exc})"
    if np.isfinite(dual_bound):
        values["rel_gap"] = max(0.0, recomputed - dual_bound) / max(1.0, abs(recomputed))
    for check in CHECK_FIELDS:
        value = values[check]
        limit = tol.limit(check)
        if np.isnan(value):
            failed.setdefault(check, f"{check} could not be computed")
        elif value > limit:
            failed[check] = f"{check} {value:.3g} exceeds {limit:.0e}"
    return CheckReport(values, failed)
