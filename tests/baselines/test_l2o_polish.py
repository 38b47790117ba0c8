"""l2o-polish: the reduced region QPs are the enumeration oracle's regions, the search only improves, and the
solver scored by the evaluator reaches the certified optimum from the committed network's predictions."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.l2o_polish.regions import Regions, local_search
from bilevelbench.evaluate.evaluator import Protocol, evaluate_solver
from bilevelbench.families.bqp.enumeration import solve_by_enumeration, solve_region_qp
from bilevelbench.families.bqp.problem import follower_response, upper_objective
from tests.conftest import random_instances


@pytest.mark.parametrize(("m", "n", "seed"), [(3, 2, 0), (5, 4, 1), (6, 4, 2)])
def test_every_region_matches_the_oracle_and_the_best_is_the_global_optimum(m, n, seed):
    s, params = random_instances(m, n, 4, seed)
    regions = Regions(s)
    p = s.n_lower_constraints
    for c, d in zip(params["c"], params["d"]):
        values = {}
        for mask in range(1 << p):
            active = np.array([(mask >> j) & 1 for j in range(p)], bool)
            ours, oracle = regions.solve(mask, c, d), solve_region_qp(s, c, d, active)
            if oracle.optimal and ours is not None:
                assert ours[0] == pytest.approx(oracle.objective, rel=1e-7, abs=1e-7)
                values[mask] = ours
            else:        # empty (or a rank-deficient F_J whose region lies inside a smaller one's)
                assert ours is None or oracle.optimal, (mask, ours, oracle.status)
        best = min(values.values(), key=lambda v: v[0])
        exact = solve_by_enumeration(s, c, d)
        assert best[0] == pytest.approx(exact.objective, rel=1e-7, abs=1e-7)
        # a region's optimum is bilevel feasible: the follower re-solved at y gives the same leader objective
        z = follower_response(s, best[1]).z
        assert upper_objective(s, c, d, best[1], z)[0] == pytest.approx(best[0], rel=1e-6, abs=1e-6)


def test_search_never_worsens_and_full_radius_is_exhaustive():
    s, params = random_instances(6, 4, 5, 3)
    regions = Regions(s)
    p = s.n_lower_constraints
    for c, d in zip(params["c"], params["d"]):
        exact = solve_by_enumeration(s, c, d).objective
        for start in range(1 << p):
            first = regions.solve(start, c, d)
            found, mask, moves = local_search(regions, c, d, start, radius=1)
            assert found is not None
            assert first is None or found[0] <= first[0] + 1e-9
            assert regions.solve(mask, c, d)[0] == pytest.approx(found[0])
            assert (moves == 0) == (mask == start)          # every move strictly improves: never back to the start
            full, _, _ = local_search(regions, c, d, start, radius=p)
            assert full[0] == pytest.approx(exact, rel=1e-7, abs=1e-7)


def test_the_evaluator_scores_it_at_the_certified_optimum(tmp_path):
    """The structure of datasets/bqp-3x2.toml (seed 1), whose committed network weights the solver loads."""
    from bilevelbench.families.bqp.certifier import CertifierSettings
    from bilevelbench.families.bqp.generate import BQPRequest, generate_bqp

    path = generate_bqp(BQPRequest(m=3, n=2, n_train=0, n_valid=0, n_test=40, seed=1), tmp_path / "bqp-3x2.h5",
                        CertifierSettings(backend="scip", time_limit=60))
    record = evaluate_solver(path, "baselines/l2o_polish", protocol=Protocol(warmup=1, batch_size=20,
                                                                            exact_instances=0))
    m = record["metrics"]
    assert record["status"] == "complete", record["failures"][:3]
    # within ten times the labels' own certification gap (1e-6): the evaluator re-solves the follower with HiGHS
    assert m["feasible_rate"] == 1.0 and m["gap_max"] <= 1e-5 and m["gap_mean"] <= 1e-6, m
    assert record["solver"]["name"] == "l2o-polish"


def test_other_families_are_skipped(tank_set):
    record = evaluate_solver(tank_set, "baselines/l2o_polish", protocol=Protocol(exact_instances=0))
    assert record["status"] == "skipped" and "bqp only" in record["status_reason"]


