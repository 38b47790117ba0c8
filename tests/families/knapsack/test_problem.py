"""knapsack's problem module: the sampler, the density order, the dynamic programme and the measures."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bilevelbench.errors import SchemaError, UsageError
from bilevelbench.families.knapsack import problem
from bilevelbench.families.knapsack.problem import KnapsackStructure


def brute_force(weight: np.ndarray, value: np.ndarray, capacity: np.ndarray) -> float:
    """The optimum by enumerating every 0/1 vector (small n only)."""
    best = 0.0
    for bits in itertools.product((0, 1), repeat=weight.shape[1]):
        y = np.array(bits, float)
        if np.all(weight @ y <= capacity):
            best = max(best, float(value @ y))
    return best


def test_structure_is_sampled_as_documented_and_sorted_by_density():
    s = problem.sample_structure(np.random.default_rng(0), 30, 3, 50)
    assert s.weight.shape == (3, 30) and s.weight.dtype == np.int64
    assert s.weight.min() >= 1 and s.weight.max() <= 50
    noise = s.value - s.weight.mean(axis=0)
    assert np.all(noise >= -0.005) and np.all(noise <= 10.005)             # mean weight + U(0, 10), 2 decimals
    np.testing.assert_array_equal(s.value, np.round(s.value, 2))
    density = s.value / (s.weight / s.weight.sum(axis=1, keepdims=True)).sum(axis=0)
    assert np.all(np.diff(density) <= 0)                                    # index order = greedy order
    np.testing.assert_array_equal(problem.density_order(s.weight, s.value), np.arange(30))


def test_capacities_are_ratios_of_the_row_sums():
    s = problem.sample_structure(np.random.default_rng(1), 10, 2)
    c = problem.sample_capacities(s, np.random.default_rng(2), 500, (0.3, 0.4))
    ratio = c / s.weight.sum(axis=1)
    assert c.shape == (500, 2) and ratio.min() >= 0.3 and ratio.max() <= 0.4
    assert ratio.max() - ratio.min() > 0.09                                 # drawn per instance and constraint
    assert not np.allclose(ratio[:, 0], ratio[:, 1])


@pytest.mark.parametrize("ratio", [(0.6, 0.2), (-0.1, 0.5), (0.2, 1.5)])
def test_bad_capacity_ratios_are_refused(ratio):
    s = problem.sample_structure(np.random.default_rng(1), 4, 1)
    with pytest.raises(UsageError, match="0 <= LO <= HI <= 1"):
        problem.sample_capacities(s, np.random.default_rng(0), 3, ratio)


def test_bad_structures_are_refused():
    with pytest.raises(SchemaError, match="integers >= 1"):
        KnapsackStructure(weight=np.array([[1.5, 2.0]]), value=np.array([1.0, 2.0]))
    with pytest.raises(SchemaError, match="integers >= 1"):
        KnapsackStructure(weight=np.array([[0, 2]]), value=np.array([1.0, 2.0]))
    with pytest.raises(SchemaError, match="2 positive finite numbers"):
        KnapsackStructure(weight=np.array([[1, 2]]), value=np.array([1.0, -2.0]))
    with pytest.raises(UsageError, match="--items >= 1"):
        problem.sample_structure(np.random.default_rng(0), 0, 2)


def test_dynamic_programme_equals_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(30):
        s = problem.sample_structure(rng, int(rng.integers(1, 11)), 1, 30)
        c = int(rng.integers(0, s.weight.sum() + 5))
        assert problem.dp_optimum(s.weight[0], s.value, c) == pytest.approx(
            brute_force(s.weight, s.value, np.array([c])), abs=1e-9)


def test_dynamic_programme_takes_each_item_once():
    assert problem.dp_optimum(np.array([1]), np.array([5.0]), 10) == 5.0
    assert problem.dp_optimum(np.array([3, 4, 5]), np.array([4.0, 5.0, 6.0]), 7) == 9.0
    with pytest.raises(UsageError, match="positive integer weights"):
        problem.dp_optimum(np.array([1.5]), np.array([1.0]), 3)


def test_integer_capacity_is_the_floor_and_refuses_non_finite():
    np.testing.assert_array_equal(problem.integer_capacity(np.array([4.999999, 5.0, 0.2])), [4, 5, 0])
    with pytest.raises(UsageError, match="finite"):
        problem.integer_capacity(np.array([np.inf]))
