"""Certify one BQP instance: incumbent -> provable bounds -> exact KKT-MIP -> independent checks."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from bilevelbench.errors import SolverError
from bilevelbench.families.bqp.backends import BackendSettings, KKTBackend, make_backend
from bilevelbench.families.bqp.bounds import BoundDeriver, VariableBounds
from bilevelbench.families.bqp.checks import Tolerances, check_label
from bilevelbench.families.bqp.enumeration import solve_region_qp
from bilevelbench.families.bqp.label import Label
from bilevelbench.families.bqp.problem import BQPStructure, coupling_residual, follower_response, upper_objective

log = logging.getLogger(__name__)

#: A heuristic point counts as an incumbent only with this much slack on every
#: upper constraint, so solver round-off in z(y) cannot make it infeasible.
INCUMBENT_MARGIN = 1e-7
#: Tightening of the upper constraints when searching for an incumbent with the MIP.
SEARCH_MARGIN = 1e-5


@dataclass(frozen=True)
class CertifierSettings:
    """Everything that determines a label besides the instance; stored in each file."""

    backend: str = "scip"
    time_limit: float = 120.0
    backend_settings: BackendSettings = field(default_factory=BackendSettings)
    tolerances: Tolerances = field(default_factory=Tolerances)

    def as_dict(self) -> dict:
        return asdict(self)


class Certifier:
    """Exact certifier for every instance of one BQP structure.

    Parameters
    ----------
    structure : BQPStructure
    settings : CertifierSettings
    """

    def __init__(self, structure: BQPStructure, settings: CertifierSettings | None = None) -> None:
        self.s = structure
        self.settings = settings or CertifierSettings()
        self.deriver = BoundDeriver(structure)
        self.backend: KKTBackend = make_backend(self.settings.backend, structure, self.settings.backend_settings)
        self._used = False

    def _fresh_backend(self) -> KKTBackend:
        """A backend with no memory of earlier instances (for the second and later labels).

        A reused SCIP model keeps the solutions of earlier solves and feeds them to the next one, so on
        instances with several optimal points the label would depend (within the gap) on what was solved
        before it; a fresh model per instance makes every label a function of its own data and settings.
        """
        if self._used:
            self.backend = make_backend(self.backend.name, self.s, self.settings.backend_settings)
        self._used = True
        return self.backend

    # -- incumbent ------------------------------------------------------------------
    def _candidate(self, c: np.ndarray, d: np.ndarray, y: np.ndarray,
                   z: np.ndarray | None = None) -> tuple[float, np.ndarray] | None:
        """Objective of ``y`` if it is strictly bilevel feasible; ``z`` is the follower's
        response when already computed by HiGHS, otherwise it is solved here."""
        if z is None:
            try:
                z = follower_response(self.s, y).z
            except SolverError:
                return None
        if np.max(coupling_residual(self.s, y, z)) > -INCUMBENT_MARGIN:
            return None
        return float(upper_objective(self.s, c, d, y, z)[0]), y

    def incumbent(self, c: np.ndarray, d: np.ndarray) -> float | None:
        """Best objective among cheap bilevel-feasible candidates (None if none is feasible).

        Candidates: ``y = 0`` and ``y = -Q^{-1} c``, and for each the optimum of the convex
        upper QP over the KKT region of the follower's active set at that ``y`` (with the
        upper rows tightened by a margin, so the point is strictly feasible). Every
        candidate is re-checked with an independent follower solve before it counts.
        """
        s = self.s
        starts = [np.zeros(s.m), -self.deriver.Q_inv @ c]
        tightened = s.b - SEARCH_MARGIN * max(1.0, float(np.max(np.abs(s.b))))
        values = []
        for y0 in starts:
            try:
                response = follower_response(s, y0)
            except SolverError:
                continue
            if (found := self._candidate(c, d, y0, response.z)) is not None:
                values.append(found[0])
            slack = s.h + s.G @ y0 - s.F @ response.z
            active = slack <= 1e-9 * max(1.0, float(np.max(np.abs(s.h))))
            region = solve_region_qp(s, c, d, active, upper_rhs=tightened)
            # The region point is re-checked with its own follower solve before it counts.
            if region.optimal and (found := self._candidate(c, d, region.x[:s.m])) is not None:
                values.append(found[0])
        return min(values) if values else None

    # -- certification --------------------------------------------------------------
    def certify(self, c: np.ndarray, d: np.ndarray) -> Label:
        """Certify instance ``(c, d)``; never raises for a numerical failure (the label says why)."""
        s, st = self.s, self.settings
        c = np.asarray(c, dtype=float)
        d = np.asarray(d, dtype=float)
        start = time.perf_counter()
        p = s.n_lower_constraints
        self._fresh_backend()
        cap = self.incumbent(c, d)
        if cap is None:
            cap = self._incumbent_from_search(c, d)
        if cap is None:
            return Label.empty(s.m, s.n, p, "failed", "no bilevel-feasible point found to derive valid bounds from",
                               self.backend.name)
        cap += 1e-6 * max(1.0, abs(cap))  # absorbs the round-off of z(y) in the incumbent's objective
        bounds = self.deriver.derive(c, d, cap)
        res = self.backend.solve(c, d, bounds, st.time_limit)
        elapsed = time.perf_counter() - start
        label = Label.empty(s.m, s.n, p, "failed", "", self.backend.name)
        label.solve_time, label.nodes = elapsed, res.nodes
        label.primal_bound, label.dual_bound = res.primal_bound, res.dual_bound
        label.bounds_radius = float(max(np.max(np.abs(bounds.y_lo)), np.max(np.abs(bounds.y_hi))))
        if res.status == "infeasible":
            label.reason = "solver reported infeasible although a bilevel-feasible point lies within the bounds"
            return label
        if not np.all(np.isfinite(res.y)):
            label.reason = f"no solution returned ({res.message})"
            return label
        label.y, label.z, label.lam = res.y, res.z, res.lam
        label.objective = float(upper_objective(s, c, d, res.y, res.z)[0])
        report = check_label(s, c, d, res.y, res.z, res.lam, label.objective, res.dual_bound, st.tolerances)
        label.checks = report.values
        if res.status == "optimal" and report.passed:
            label.status = "certified_optimal"
        elif report.feasible:
            label.status = "best_known"
            label.reason = "; ".join([f"solver status {res.status}"] * (res.status != "optimal") + report.failures)
        else:
            label.status = "failed"
            label.reason = "; ".join(report.failures)
        return label

    def _incumbent_from_search(self, c: np.ndarray, d: np.ndarray) -> float | None:
        """Last resort: solve the KKT-MIP in a wide heuristic box with every upper constraint
        tightened by a margin, and keep the point only if it is strictly bilevel feasible.
        The box and the margin are used to *find* a point, never to certify one."""
        s = self.s
        radius = 1e3 * max(1.0, float(np.max(np.abs(s.b))), float(np.max(np.abs(s.h))))
        box = VariableBounds(
            y_lo=np.full(s.m, -radius), y_hi=np.full(s.m, radius), z_lo=np.full(s.n, -radius),
            z_hi=np.full(s.n, radius), lam_hi=np.full(s.n_lower_constraints, radius),
            slack_hi=np.full(s.n_lower_constraints, 10 * radius), epigraph_hi=float(1e4 * radius**2),
            objective_cap=np.inf)
        margin = SEARCH_MARGIN * max(1.0, float(np.max(np.abs(s.b))))
        res = self.backend.solve(c, d, box, min(self.settings.time_limit, 30.0), upper_rhs=s.b - margin)
        if not np.all(np.isfinite(res.y)):
            return None
        found = self._candidate(c, d, res.y)
        return None if found is None else found[0]
