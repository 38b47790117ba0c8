"""Independent re-checks of bqp labels (``bilevelbench verify``) and the enumeration oracle (``--oracle``).

Nothing here trusts the solver that produced the labels: the lower level is re-solved by HiGHS, residuals are
recomputed from the stored structure and parameters, and the oracle re-solves every certified instance by
enumerating the lower level's active sets (no MIP involved).
"""

from __future__ import annotations

import numpy as np

from bilevelbench.core.family import LabelCheck
from bilevelbench.core.statuses import SOLUTION_STATUSES, STATUSES
from bilevelbench.errors import OracleUnavailableError
from bilevelbench.families.bqp.checks import Tolerances, check_label
from bilevelbench.families.bqp.enumeration import MAX_ENUMERATED_ROWS, solve_by_enumeration


def tolerances_of(ds) -> Tolerances:
    """The check tolerances recorded in the file (defaults for any missing entry)."""
    recorded = ds.meta.get("certifier_settings", {}).get("tolerances", {})
    known = set(Tolerances.__dataclass_fields__)
    return Tolerances(**{k: float(v) for k, v in recorded.items() if k in known})


def label_checker(ds) -> LabelCheck:
    """Feasibility, the follower re-solved by HiGHS at ``y*``, stationarity, complementarity and the gap."""
    s = ds.structure
    tol = tolerances_of(ds)
    params, labels = ds.params, ds.labels

    def check(pos: int, status: str) -> list[str]:
        c, d = params["c"][pos], params["d"][pos]
        y, z, lam = labels["y"][pos], labels["z"][pos], labels["lam"][pos]
        problems: list[str] = []
        if not (np.all(np.isfinite(c)) and np.all(np.isfinite(d))):
            problems.append("parameters contain NaN or inf")
        elif status not in STATUSES:
            problems.append(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        elif status in SOLUTION_STATUSES:
            result = check_label(s, c, d, y, z, lam, float(labels["objective"][pos]),
                                 float(labels["dual_bound"][pos]), tol)
            if status == "certified_optimal" and not result.passed:
                problems.extend(result.failures)
            if status == "best_known" and not result.feasible:
                problems.extend(result.failures)
        elif np.any(np.isfinite(y)) or np.any(np.isfinite(z)):
            problems.append(f"status {status!r} but a solution is stored (unchecked points must not be published)")
        return problems

    return check


def oracle_checker(ds) -> LabelCheck:
    """Every certified optimum against the active-set enumeration solver (exact, no MIP; 2^p QPs each).

    Raises
    ------
    OracleUnavailableError
        If the lower level has more rows than the enumeration takes (:data:`MAX_ENUMERATED_ROWS`).
    """
    s = ds.structure
    if s.n_lower_constraints > MAX_ENUMERATED_ROWS:
        raise OracleUnavailableError(f"the bqp oracle enumerates 2^p active sets and takes at most "
                                     f"{MAX_ENUMERATED_ROWS} lower-level rows; this set has {s.n_lower_constraints}")
    tol = tolerances_of(ds)
    params, labels = ds.params, ds.labels

    def check(pos: int, status: str) -> list[str]:
        exact = solve_by_enumeration(s, params["c"][pos], params["d"][pos])
        objective = float(labels["objective"][pos])
        if abs(objective - exact.objective) > tol.rel_gap * max(1.0, abs(exact.objective)):
            return [f"objective {objective:.10g} differs from the enumeration optimum {exact.objective:.10g}"]
        return []

    return check
