"""spi-grid's problem: the two exact methods agree with each other and with enumeration; bad input is refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bilevelbench.errors import UsageError
from bilevelbench.families.spi import grid
from bilevelbench.families.spi.terrain import TERRAIN_COST, sample_terrain


def enumerate_best(costs, d, budget):
    k = costs.shape[0]
    tiles = [t for t in range(1, k * k - 1)]
    best = -np.inf
    for b in range(budget + 1):
        for chosen in itertools.combinations(tiles, b):
            x = np.zeros(k * k)
            x[list(chosen)] = 1
            best = max(best, grid.shortest_path(grid.interdicted(costs, d, x.reshape(k, k)))[0])
    return best


@pytest.mark.parametrize("seed", range(4))
def test_milp_search_and_enumeration_agree(seed):
    rng = np.random.default_rng(seed)
    k, budget = 4, 2
    costs = TERRAIN_COST[sample_terrain(rng, k, region_size=2.0)]
    d = rng.uniform(0.5, 3.0, size=(k, k))
    milp = grid.interdict_milp(costs, d, budget)
    search = grid.interdict_search(costs, d, budget)
    assert milp.status == "optimal"
    assert milp.objective == pytest.approx(enumerate_best(costs, d, budget), abs=1e-9)
    assert search.objective == pytest.approx(milp.objective, abs=1e-9)
    assert milp.x.sum() <= budget and milp.x[0, 0] == 0 and milp.x[-1, -1] == 0


def test_shortest_path_counts_both_ends_and_moves_diagonally():
    costs = np.ones((3, 3))
    value, path = grid.shortest_path(costs)
    assert value == 3.0                                  # (0,0) -> (1,1) -> (2,2)
    np.testing.assert_array_equal(path, np.eye(3))
    costs[1, 1] = 10.0
    assert grid.shortest_path(costs)[0] == 4.0


def test_bad_input_gets_one_clear_error():
    with pytest.raises(UsageError, match="budget must be between 0 and 7"):
        grid.interdict_milp(np.ones((3, 3)), None, 8)
    with pytest.raises(UsageError, match="finite and positive"):
        grid.interdict_search(np.array([[1.0, np.nan], [1.0, 1.0]]), None, 1)
    with pytest.raises(UsageError, match="k x k grid"):
        grid.check_grid(np.ones((3, 4)))
    with pytest.raises(UsageError, match="interdiction_cost must be finite"):
        grid.check_grid(np.ones((3, 3)), -np.ones((3, 3)))
