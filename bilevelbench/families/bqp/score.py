"""Score a split's predictions against its certified labels (bilevel quadratic programs).

The follower's response ``z(y)`` is computed here, by HiGHS, for every
submitted ``y``; the pair ``(y, z(y))`` is what gets scored. A submitted ``z`` is
only compared with ``z(y)`` (distance, follower regret), never used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.errors import SolverError
from bilevelbench.evaluate import metrics
from bilevelbench.evaluate.scoring import SplitScore
from bilevelbench.families.bqp.problem import (
    BQPStructure,
    coupling_residual,
    follower_response,
    lower_objective,
    lower_residual,
    upper_objective,
)
from bilevelbench.qp import INF, solve_convex_qp

log = logging.getLogger(__name__)

#: Per-instance float metrics, in the order they are reported.
FLOAT_FIELDS = ("objective", "reference_objective", "gap", "signed_gap", "paper_gap", "coupling_violation_l2",
                "coupling_violation_max", "upper_violation_max", "lower_violation_max")
Z_FIELDS = ("z_distance", "follower_regret", "z_lower_violation_max")


def lower_infeasibility(s: BQPStructure, y: np.ndarray) -> float:
    """Smallest uniform relaxation ``t >= 0`` making ``{z : F z <= h + G y + t}`` non-empty (an LP)."""
    n, p = s.n, s.n_lower_constraints
    A = np.hstack([s.F, -np.ones((p, 1))])
    cost = np.zeros(n + 1)
    cost[-1] = 1.0
    lo = np.full(n + 1, -INF)
    lo[-1] = 0.0
    res = solve_convex_qp(None, cost, A, np.full(p, -INF), s.h + s.G @ y, lo, None)
    return float(res.x[-1]) if res.optimal else float("nan")


def reference_objectives(s: BQPStructure, c: np.ndarray, d: np.ndarray, labels: dict[str, np.ndarray]) -> np.ndarray:
    """``L* = L(y*, z(y*))`` of every label with a solution, NaN for the others.

    The follower's response at the label's ``y*`` is recomputed with the same
    HiGHS solve used for submissions, so the reference and the scored point are
    evaluated by one oracle (a submission equal to ``y*`` scores gap 0 exactly).
    It differs from the stored ``objective`` (computed from the MIP's ``z``) by
    at most the label checks' tolerance; the stored value is the fallback.
    """
    status = np.asarray(labels["status"]).astype(str)
    stored = np.asarray(labels["objective"], float)
    y_star = np.asarray(labels["y"], float)
    out = np.full(stored.shape[0], np.nan)
    for i in np.flatnonzero(np.isin(status, SOLUTION_STATUSES)):
        out[i] = stored[i]
        if np.all(np.isfinite(y_star[i])):
            try:
                z = follower_response(s, y_star[i]).z
            except SolverError:
                continue
            out[i] = float(upper_objective(s, c[i], d[i], y_star[i], z)[0])
    return out


def score_bqp(structure: BQPStructure, params: dict[str, np.ndarray], labels: dict[str, np.ndarray],
              y: np.ndarray, answered: np.ndarray, reasons: dict[int, str], z: np.ndarray | None = None,
              paper_offset: float | None = None,
              progress: Callable[[int], object] | None = None) -> SplitScore:
    """Score one split.

    Parameters
    ----------
    structure : BQPStructure
    params : dict
        ``c`` (n, m) and ``d`` (n, n_z) of the split's instances.
    labels : dict
        The split's label arrays (``objective``, ``status``).
    y : (n, m) array
        Submitted upper-level decisions (rows of unanswered instances are ignored).
    answered : (n,) bool array
        Which instances have a submitted row.
    reasons : dict
        Why an unanswered instance has no row (instance position -> one line).
    z : (n, n_z) array, optional
        Submitted lower-level decisions; compared with ``z(y)``, never trusted.
    paper_offset : float, optional
        The reproduced paper's objective offset for :func:`metrics.offset_relative_gap`.
    progress : callable, optional
        Called with 1 after each instance.
    """
    s = structure
    c, d = np.asarray(params["c"], float), np.asarray(params["d"], float)
    n = c.shape[0]
    values = {key: np.full(n, np.nan) for key in FLOAT_FIELDS}
    if z is not None:
        values.update({key: np.full(n, np.nan) for key in Z_FIELDS})
    feasible = np.zeros(n, bool)
    scored = np.zeros(n, bool)
    failures: list[dict] = []
    reference = reference_objectives(s, c, d, labels)
    references_missing = int(np.sum(~np.isfinite(reference)))
    scale_u = max(1.0, float(np.max(np.abs(s.b))))
    scale_l = max(1.0, float(np.max(np.abs(s.h))))
    for i in range(n):
        if progress is not None:
            progress(1)
        if not answered[i]:
            failures.append({"instance": i, "reason": reasons.get(i, "no prediction for this instance")})
            continue
        yi = y[i]
        if not np.all(np.isfinite(yi)):
            bad = "NaN" if np.any(np.isnan(yi)) else "inf"
            failures.append({"instance": i, "reason": f"y contains {bad}"})
            continue
        scored[i] = True
        values["upper_violation_max"][i] = 0.0  # the BQP family has no upper-level-only constraints
        try:
            resp = follower_response(s, yi)
        except SolverError as exc:
            values["lower_violation_max"][i] = lower_infeasibility(s, yi)
            log.debug("instance %d: follower has no response (%s)", i, exc)
            continue
        values["lower_violation_max"][i] = 0.0
        zi = resp.z
        obj = float(upper_objective(s, c[i], d[i], yi, zi)[0])
        values["objective"][i] = obj
        values["reference_objective"][i] = reference[i]
        values["gap"][i] = metrics.relative_gap(obj, reference[i])
        values["signed_gap"][i] = metrics.signed_relative_gap(obj, reference[i])
        if paper_offset is not None:
            values["paper_gap"][i] = metrics.offset_relative_gap(obj, reference[i], paper_offset)
        r = coupling_residual(s, yi, zi)
        values["coupling_violation_l2"][i] = metrics.relu_l2(r)[0]
        values["coupling_violation_max"][i] = metrics.relu_max(r)[0]
        feasible[i] = values["coupling_violation_max"][i] <= metrics.FEASIBILITY_TOL * scale_u
        if z is not None and np.all(np.isfinite(z[i])):
            values["z_distance"][i] = metrics.euclidean_distance(z[i], zi)[0]
            values["follower_regret"][i] = float(lower_objective(s, yi, z[i])[0]) - resp.objective
            values["z_lower_violation_max"][i] = metrics.relu_max(lower_residual(s, yi, z[i]))[0] / scale_l
    return SplitScore(values=values, feasible=feasible, scored=scored, failures=failures,
                      z_submitted=z is not None, references_missing=references_missing)
