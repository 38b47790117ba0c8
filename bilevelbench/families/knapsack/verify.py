"""Independent re-checks of knapsack labels (``verify``) and the HiGHS oracle (``verify --oracle``).

``verify`` trusts nothing but the stored structure and parameters: a label that stores a point must be exactly
binary, meet ``W y <= capacity`` exactly and carry the objective ``v . y``; for a single-constraint set (m = 1)
with ``n * (floor(c) + 1) <= DP_MAX_CELLS`` a dynamic programme over the integer capacities ``0..floor(c)`` must
give the certified optimum (no solver at all). The oracle re-solves every certified instance with another exact
method: HiGHS's MILP branch-and-bound (gap limits 0, one thread), whose optimum must agree to :data:`ORACLE_TOL`.
"""

from __future__ import annotations

import numpy as np

from bilevelbench.core.family import LabelCheck
from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.errors import SolverError
from bilevelbench.families.knapsack.problem import DP_MAX_CELLS, KnapsackStructure, dp_optimum, integer_capacity

#: Agreement required between a stored objective and a recomputation (relative to ``max(1, |f|)``).
RECOMPUTE_TOL = 1e-9
#: Agreement required between a certified objective and the oracle's (the values are multiples of 0.01, so any
#: other feasible point differs by far more).
ORACLE_TOL = 1e-6


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


def dp_applies(s: KnapsackStructure, capacity: np.ndarray) -> bool:
    """Whether the dynamic-programming check runs: one constraint and ``n * (floor(c) + 1) <= DP_MAX_CELLS``."""
    if s.n_constraints != 1:
        return False
    c = int(integer_capacity(capacity)[0])
    return 0 <= c and s.n_items * (c + 1) <= DP_MAX_CELLS


def check_label(s: KnapsackStructure, capacity: np.ndarray, y: np.ndarray, objective: float, status: str
                ) -> list[str]:
    """The problems with one stored label (empty: it passes); see the module docstring."""
    capacity = np.asarray(capacity, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(capacity)):
        return ["the capacities contain NaN or inf"]
    if status not in SOLUTION_STATUSES:
        if np.any(np.isfinite(y)) or np.isfinite(objective):
            return [f"status {status!r} but a point or objective is stored (unchecked points must not be published)"]
        return []
    if not np.all((y == 0) | (y == 1)):
        return ["the stored point is not exactly binary"]
    problems = []
    load = s.weight @ y.astype(np.int64)
    if np.any(load > capacity):
        i = int(np.argmax(load - capacity))
        problems.append(f"W y exceeds capacity {i}: {load[i]} > {capacity[i]:.10g}")
    f = float(s.value @ y)
    if not _close(f, float(objective), RECOMPUTE_TOL):
        problems.append(f"stored objective {objective:.12g} differs from v . y = {f:.12g}")
    if status == "certified_optimal" and dp_applies(s, capacity):
        best = dp_optimum(s.weight[0], s.value, int(integer_capacity(capacity)[0]))
        if not _close(best, f, RECOMPUTE_TOL):
            problems.append(f"the dynamic programme finds {best:.12g}, the label {f:.12g}")
    return problems


def label_checker(ds) -> LabelCheck:
    """:func:`check_label` on every stored label of ``ds``."""
    s, params, labels = ds.structure, ds.params, ds.labels

    def check(pos: int, status: str) -> list[str]:
        return check_label(s, params["capacity"][pos], labels["y"][pos], float(labels["objective"][pos]), status)

    return check


def solve_highs(s: KnapsackStructure, capacity: np.ndarray, time_limit: float = 60.0) -> tuple[float, np.ndarray]:
    """The instance's optimum by HiGHS's MILP solver (rows ``W y <= floor(c)``); returns ``(objective, y)``.

    Raises
    ------
    SolverError
        If HiGHS does not report an optimal solution.
    """
    import highspy

    from bilevelbench.qp import _stdout_silenced

    with _stdout_silenced():                       # HiGHS prints a banner from its first constructor
        h = highspy.Highs()
    for key, value in (("output_flag", False), ("mip_rel_gap", 0.0), ("mip_abs_gap", 0.0), ("threads", 1),
                       ("random_seed", 0), ("time_limit", float(time_limit))):
        h.setOptionValue(key, value)
    n, m = s.n_items, s.n_constraints
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_ = -s.value                        # HiGHS minimises
    lp.col_lower_, lp.col_upper_ = np.zeros(n), np.ones(n)
    lp.row_lower_ = np.full(m, -highspy.kHighsInf)
    lp.row_upper_ = integer_capacity(capacity).astype(np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, n * m + 1, m, dtype=np.int32)
    lp.a_matrix_.index_ = np.tile(np.arange(m, dtype=np.int32), n)
    lp.a_matrix_.value_ = s.weight.T.reshape(-1).astype(np.float64)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise SolverError(f"HiGHS ended with status {h.modelStatusToString(status)!r}")
    y = np.round(np.asarray(h.getSolution().col_value, dtype=np.float64))
    return float(s.value @ y), y


def oracle_checker(ds) -> LabelCheck:
    """Every certified optimum against HiGHS's MILP optimum (see the module docstring)."""
    s, params, labels = ds.structure, ds.params, ds.labels

    def check(pos: int, status: str) -> list[str]:
        f = float(labels["objective"][pos])
        try:
            other, _ = solve_highs(s, params["capacity"][pos])
        except SolverError as exc:
            return [f"the oracle (HiGHS MILP) failed: {exc}"]
        if not _close(other, f, ORACLE_TOL):
            return [f"objective {f:.10g} differs from HiGHS's MILP optimum {other:.10g}"]
        return []

    return check
