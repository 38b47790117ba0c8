"""tsp-interdiction's problem: Held-Karp, the MILP and brute force agree; the search agrees with enumeration;
bad input is refused in one line."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bilevelbench.errors import UsageError
from bilevelbench.families.tsp import tour
from bilevelbench.families.tsp.problem import TSPStructure, city_set, distances_of, sample_instances


def random_distances(rng, k):
    p = rng.uniform(0, 100, size=(k, 2))
    return np.linalg.norm(p[:, None] - p[None], axis=2)


def brute_force(d):
    k = d.shape[0]
    return min(tour.tour_length(d, np.array((0, *perm))) for perm in itertools.permutations(range(1, k)))


@pytest.mark.parametrize("k", [4, 5, 6, 7, 8])
def test_held_karp_and_milp_equal_brute_force(k):
    rng = np.random.default_rng(k)
    d = random_distances(rng, k)
    d[0, 2] = d[2, 0] = np.inf                       # a removed edge
    length, order = tour.held_karp(d)
    assert length == pytest.approx(brute_force(d), abs=1e-9)
    assert tour.is_tour(order, k) and tour.tour_length(d, order) == pytest.approx(length, abs=1e-9)
    assert order[0] == 0 and order[1] < order[-1]
    assert tour.tsp_milp(d)[0] == pytest.approx(length, abs=1e-7)


def test_held_karp_reports_no_tour_when_none_exists():
    d = random_distances(np.random.default_rng(0), 5)
    d[0, 1:] = d[1:, 0] = np.inf
    d[0, 1] = d[1, 0] = 1.0                          # city 0 has one edge left: no closed tour
    assert tour.held_karp(d)[0] == np.inf


@pytest.mark.parametrize(("k", "budget"), [(5, 1), (6, 2), (7, 1), (7, 3)])
def test_search_agrees_with_enumeration(k, budget):
    for seed in range(3):
        d = random_distances(np.random.default_rng(100 * k + seed), k)
        search = tour.interdict_search(d, budget)
        enum = tour.interdict_enumerate(d, budget)
        assert search.objective == pytest.approx(enum.objective, abs=1e-9)
        assert np.triu(search.removed, 1).sum() <= budget
        assert np.array_equal(search.removed, search.removed.T)
        assert tour.tour_length(tour.blocked(d, search.removed), search.tour) == pytest.approx(search.objective)


def test_city_set_is_fixed_and_instances_sorted_subsets():
    xy = city_set()
    assert xy.shape == (100, 2)
    np.testing.assert_array_equal(xy, city_set())
    s = TSPStructure(8, 1, xy)
    draw = sample_instances(s, np.random.default_rng(0), 4)
    assert draw["cities"].shape == (4, 8) and np.all(np.diff(draw["cities"], axis=1) > 0)
    np.testing.assert_allclose(draw["distances"][1], distances_of(xy, draw["cities"][1]))


def test_bad_input_gets_one_clear_error():
    xy = city_set()
    with pytest.raises(UsageError, match="budget must be between 0 and k - 3 = 5"):
        TSPStructure(8, 6, xy)
    with pytest.raises(UsageError, match="between 4 and 100"):
        TSPStructure(101, 1, xy)
    with pytest.raises(UsageError, match="between 4 and 100"):
        TSPStructure(3, 0, xy)
    with pytest.raises(UsageError, match="above 16 is refused"):
        TSPStructure(20, 1, xy)
    d = random_distances(np.random.default_rng(1), 6)
    bad = d.copy()
    bad[1, 2] = np.nan
    with pytest.raises(UsageError, match="finite and >= 0"):
        tour.interdict_search(bad, 1)
    bad = d.copy()
    bad[1, 2] += 1.0
    with pytest.raises(UsageError, match="symmetric"):
        tour.interdict_search(bad, 1)
    with pytest.raises(UsageError, match="k x k matrix"):
        tour.check_distances(np.ones((3, 4)))
