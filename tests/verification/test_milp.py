"""The solver-neutral MILP and its three backends: same model, same answer; clear refusals."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.core.backends import gurobi_status
from bilevelbench.errors import BackendUnavailableError, UsageError
from bilevelbench.verification.milp import BACKENDS, MILP, lp_bound, solve, time_to_bound


def small_knapsack() -> MILP:
    """max 5a + 4b + 3c  s.t.  2a + 3b + c <= 4 (a, b, c binary)  -> a = c = 1, value 8."""
    m = MILP()
    v = m.add_vars(3, 0.0, 1.0, integer=True, name="pick")
    m.add_row(v, [2.0, 3.0, 1.0], upper=4.0)
    m.add_objective(v, [5.0, 4.0, 3.0])
    return m


def usable(backend: str) -> bool:
    return backend != "gurobi" or gurobi_status()[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_agree(backend):
    if not usable(backend):
        pytest.skip(f"gurobi: {gurobi_status()[1]}")     # reported as a skip, never counted as a pass
    result = solve(small_knapsack(), backend, time_limit=30)
    assert result.status == "optimal"
    assert result.lower_bound == pytest.approx(8.0) and result.upper_bound == pytest.approx(8.0)
    np.testing.assert_allclose(result.solution, [1.0, 0.0, 1.0], atol=1e-6)


def test_lp_bound_is_the_relaxation():
    # LP relaxation: a = 1, c = 1, b = 1/3 -> 5 + 4/3 + 3
    assert lp_bound(small_knapsack()) == pytest.approx(5 + 4 / 3 + 3)


def test_sos1_needs_a_backend_that_has_it():
    m = MILP()
    a, b = m.add_vars(2, 0.0, 1.0)
    m.add_sos1(a, b)
    m.add_objective([a, b], [1.0, 1.0])
    assert solve(m, "scip", 10).upper_bound == pytest.approx(1.0)
    with pytest.raises(BackendUnavailableError, match="HiGHS has no SOS1"):
        solve(m, "highs", 10)


@pytest.mark.skipif(not gurobi_status()[0], reason="gurobipy has no usable license here")
def test_gurobi_says_when_the_model_exceeds_its_license():
    m = MILP()
    v = m.add_vars(2100, 0.0, 1.0, integer=True)
    m.add_row(v, np.ones(v.size), upper=3.0)
    m.add_objective(v, np.arange(v.size, dtype=float))
    try:
        result = solve(m, "gurobi", 10)
    except BackendUnavailableError as exc:
        assert "does not fit this Gurobi license" in str(exc) and "2100 variables" in str(exc)
    else:                                        # a full license: then it must simply be right
        assert result.upper_bound == pytest.approx(2099 + 2098 + 2097)


def test_warm_start_and_bound_history():
    m = small_knapsack()
    result = solve(m, "scip", 10, warm_start=np.array([1.0, 0.0, 1.0]))
    assert result.lower_bound == pytest.approx(8.0)
    assert result.history and time_to_bound(result.history, 8.0) is not None
    assert time_to_bound([[1.0, 0.0, 9.0]], 8.0) is None


def test_bad_requests():
    with pytest.raises(UsageError, match="backend must be one of"):
        solve(small_knapsack(), "cplex", 10)
    with pytest.raises(UsageError, match="time limit"):
        solve(small_knapsack(), "scip", 0)
    m = MILP()
    with pytest.raises(Exception, match="lower bound .* above upper bound"):
        m.add_vars(1, 2.0, 1.0, name="bad")
