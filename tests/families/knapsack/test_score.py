"""Scoring knapsack answers by hand: feasible, over capacity, non-binary and nearly binary answers, the gap's
sign convention, the record's headline metrics, and the exact solver."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.core.registry import get_family
from bilevelbench.evaluate.records import build_record
from bilevelbench.families.knapsack.exact import ExactKnapsackSolver
from bilevelbench.families.knapsack.problem import KnapsackStructure
from bilevelbench.families.knapsack.score import score_knapsack
from bilevelbench.solvers import TaskSpec

#: Two constraints, three items; at capacity (5, 5) the optimum is items 0 and 1 (value 7, loads 5 and 3).
S = KnapsackStructure(weight=np.array([[2, 3, 4], [1, 2, 5]]), value=np.array([3.0, 4.0, 5.0]))
CAPACITY = np.array([5.0, 5.0])


def _score(y, status="certified_optimal"):
    y = np.atleast_2d(np.asarray(y, float))
    n = y.shape[0]
    labels = {"objective": np.full(n, 7.0), "status": np.array([status] * n)}
    return score_knapsack(S, {"capacity": np.tile(CAPACITY, (n, 1))}, labels, y, np.ones(n, bool), {})


def test_answers_score_by_hand():
    score = _score([[1, 1, 0],                  # the optimum
                    [0, 0, 1],                  # feasible, value 5: gap 2/7
                    [1 - 1e-7, 1e-8, 0],        # nearly binary: rounded to (1, 0, 0), value 3
                    [1, 1, 1],                  # over capacity by 4 + 3
                    [1, 0.5, 0],                # not binary
                    [0, 0, 0]])                 # nothing: feasible, gap 1
    v = score.values
    assert score.feasible.tolist() == [True, True, True, False, False, True]
    np.testing.assert_allclose(v["objective"], [7, 5, 3, 12, 5, 0])
    np.testing.assert_allclose(v["gap"][[0, 1, 2, 5]], [0, 2 / 7, 4 / 7, 1])
    assert np.isnan(v["gap"][3]) and np.isnan(v["gap"][4])                 # no gap for infeasible answers
    np.testing.assert_allclose(v["signed_gap"][3], -5 / 7)                 # beats the optimum by breaking it
    np.testing.assert_allclose(v["capacity_excess"], [0, 0, 0, 7, 0, 0])
    np.testing.assert_array_equal(v["non_binary"], [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(v["capacity_violated"], [0, 0, 0, 1, 0, 0])
    record = build_record(mode="score", dataset={}, solver={}, score=score, protocol={}, provenance={},
                          family=get_family("knapsack"))
    m = record["metrics"]
    assert m["feasible_rate"] == pytest.approx(4 / 6)
    assert m["gap_mean"] == pytest.approx((0 + 2 / 7 + 4 / 7 + 1) / 4) and m["gap_max"] == pytest.approx(1.0)
    assert m["capacity_violated_rate"] == pytest.approx(1 / 6) and m["non_binary_rate"] == pytest.approx(1 / 6)
    assert m["capacity_excess_mean"] == pytest.approx(7 / 6)


def test_the_binary_tolerance_is_strict():
    score = _score([[1, 1 - 2e-6, 0], [2, 0, 0], [-1, 1, 0]])
    assert not score.feasible.any()
    np.testing.assert_array_equal(score.values["non_binary"], [1, 1, 1])


def test_a_capacity_just_below_an_integer_load_is_violated():
    labels = {"objective": np.array([7.0]), "status": np.array(["certified_optimal"])}
    score = score_knapsack(S, {"capacity": np.array([[5.0 - 1e-9, 5.0]])}, labels, np.array([[1.0, 1.0, 0.0]]),
                           np.ones(1, bool), {})
    assert not score.feasible[0] and score.values["capacity_excess"][0] == pytest.approx(1e-9, rel=1e-3)


def test_unanswered_and_nan_rows_are_failures():
    labels = {"objective": np.full(2, 7.0), "status": np.array(["certified_optimal"] * 2)}
    y = np.array([[np.nan, 0, 0], [1, 1, 0]])
    score = score_knapsack(S, {"capacity": np.tile(CAPACITY, (2, 1))}, labels, y, np.array([True, False]), {1: "x"})
    assert not score.scored.any() and [f["reason"] for f in score.failures] == ["y contains NaN", "x"]


def test_the_exact_solver_returns_the_optimum():
    solver = ExactKnapsackSolver()
    solver.setup(TaskSpec("knapsack", "t", "test", 2, S, ("capacity",), 3, 0), None)
    y = solver.solve({"capacity": np.array([[5.0, 5.0], [0.5, 9.0]])}).y
    np.testing.assert_array_equal(y, [[1, 1, 0], [0, 0, 0]])
