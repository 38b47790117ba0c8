"""Independent re-checks of mixed-integer MPC labels (``verify``) and the second-solver oracle (``--oracle``)."""

from __future__ import annotations

import numpy as np

from bilevelbench.core.family import LabelCheck
from bilevelbench.errors import OracleUnavailableError

#: Relative agreement required between the label and the oracle's optimum (the certifier's gap is 1e-6).
ORACLE_TOL = 1e-6


def label_checker(ds) -> LabelCheck:
    """Re-check every label with HiGHS only (no MIQP solver involved).

    Certified labels, under the tolerances recorded in the file (``certifier_settings``: ``feasibility_tol``,
    ``agreement_tol``, ``gap``; defaults 1e-7, 1e-6, 1e-6): exact integrality, rows and bounds within
    ``feasibility_tol`` (scaled), the stored objective equal to ``f`` at the stored point (1e-9 relative: a
    recomputation), the continuous QP re-solved with the stored integers not better than the stored point (within
    ``agreement_tol``), and the stored dual bound within ``gap`` of the objective. Infeasible labels: HiGHS's MILP
    proves infeasibility again. Other statuses must store no point.
    """
    from bilevelbench.families.mimpc.certify import MIQPCertifierSettings, check_point
    from bilevelbench.families.mimpc.miqp import integer_feasibility, objective, solve_fixed_integers

    s = ds.structure
    params, labels = ds.params, ds.labels
    recorded = ds.meta.get("certifier_settings", {})
    defaults = MIQPCertifierSettings()
    feas, agree, gap = (float(recorded.get(key, getattr(defaults, key)))
                        for key in ("feasibility_tol", "agreement_tol", "gap"))

    def check(pos: int, status: str) -> list[str]:
        theta, x = params["theta"][pos], labels["x"][pos]
        problems: list[str] = []
        if not np.all(np.isfinite(theta)):
            problems.append("parameters contain NaN or inf")
        elif status in ("certified_optimal", "best_known"):
            # best_known: the certifier's checks passed but the solver stopped above the gap (time limit); the
            # point is re-checked like a certified one, only the gap to its dual bound is not required
            f_stored = float(labels["objective"][pos])
            rows, bounds, integ = check_point(s, theta, x)
            if max(rows, bounds) > feas or integ > 0:
                problems.append(f"stored point violates rows {rows:.1e} / bounds {bounds:.1e} / integrality {integ:.1e}")
            f = float(objective(s, x, theta)[0])
            if abs(f - f_stored) > 1e-9 * max(1.0, abs(f)):
                problems.append(f"stored objective {f_stored:.10g} differs from f(x) = {f:.10g}")
            fixed = solve_fixed_integers(s, theta, x[s.integer])
            if fixed.status != "optimal" or fixed.objective < f - agree * max(1.0, abs(f)):
                problems.append(f"re-solving the continuous part gives {fixed.status} {fixed.objective:.10g} < {f:.10g}")
            if status == "certified_optimal" and f - float(labels["dual_bound"][pos]) > gap * max(1.0, abs(f)):
                problems.append(f"gap to the stored dual bound {labels['dual_bound'][pos]:.10g} exceeds {gap:g}")
        elif status == "infeasible":
            verdict = integer_feasibility(s, theta)
            if verdict != "infeasible":
                problems.append(f"labelled infeasible but HiGHS's MILP check says {verdict}")
        elif np.any(np.isfinite(x)):
            problems.append(f"status {status!r} but a solution is stored (unchecked points must not be published)")
        return problems

    return check


def oracle_checker(ds) -> LabelCheck:
    """Re-solve every certified instance with the *other* MIQP solver than the one that labelled it.

    Labels certified by SCIP are re-solved by Gurobi and labels certified by Gurobi by SCIP (each with its own
    branch and bound, presolve and LP solver), and the optima must agree to :data:`ORACLE_TOL` relative.

    Raises
    ------
    OracleUnavailableError
        If a label's second solver cannot run here (Gurobi not installed, no license, or the model above the
        size-limited license); the message says which and why.
    """
    from bilevelbench.errors import BackendUnavailableError
    from bilevelbench.families.mimpc.certify import MIQPCertifierSettings, certify_miqp, choose_backend

    s = ds.structure
    labels = ds.labels
    certified = np.asarray(labels["status"]).astype(str) == "certified_optimal"
    used = {str(b) for b in np.asarray(labels["backend"]).astype(str)[certified]}
    if "scip" in used:
        try:
            choose_backend(s, "gurobi")          # the certifier's own rule for when Gurobi can take the model
        except BackendUnavailableError as exc:
            raise OracleUnavailableError(f"{ds.family} labels certified by SCIP are re-solved by Gurobi, which cannot "
                                         f"run here ({exc}); without --oracle, verify re-checks every label with "
                                         "HiGHS") from None
    recorded = ds.meta.get("certifier_settings", {})
    gap = float(recorded.get("gap", MIQPCertifierSettings.gap))
    # the oracle's solver stops at a tenth of the gap its certificate must prove (module docstring of certify)
    settings = MIQPCertifierSettings(time_limit=float(recorded.get("time_limit", 600)), gap=gap,
                                     solver_gap=gap / 10)
    params = ds.params

    def check(pos: int, status: str) -> list[str]:
        other = "gurobi" if str(labels["backend"][pos]) == "scip" else "scip"
        label = certify_miqp(s, params["theta"][pos], settings, other)
        f = float(labels["objective"][pos])
        if label.status != "certified_optimal":
            return [f"the oracle ({other}) could not certify this instance: {label.status} ({label.reason})"]
        if abs(label.objective - f) > ORACLE_TOL * max(1.0, abs(f)):
            return [f"objective {f:.10g} differs from {other}'s optimum {label.objective:.10g}"]
        return []

    return check
