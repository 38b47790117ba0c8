"""Scoring tsp-interdiction answers: regret with the follower re-solved, infeasible answers of every kind, an
answer that leaves no tour, the record's headline metrics, and the exact solver."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bilevelbench.core.registry import get_family
from bilevelbench.evaluate.records import build_record
from bilevelbench.families.tsp import tour
from bilevelbench.families.tsp.exact import ExactTSPSolver
from bilevelbench.families.tsp.problem import TSPStructure, city_set, distances_of
from bilevelbench.families.tsp.score import score_tsp
from bilevelbench.solvers import TaskSpec

S = TSPStructure(5, 1, city_set())
D = distances_of(S.city_xy, np.array([3, 17, 42, 66, 90]))


def _edge(a, b, k=5):
    m = np.zeros((k, k))
    m[a, b] = m[b, a] = 1.0
    return m.reshape(-1)


def _score(y):
    y = np.atleast_2d(np.asarray(y, float))
    n = len(y)
    best = tour.interdict_search(D, 1)
    labels = {"objective": np.full(n, best.objective), "status": np.array(["certified_optimal"] * n),
              "removed": np.tile(best.removed.reshape(-1), (n, 1)), "tour": np.tile(best.tour.astype(float), (n, 1))}
    answers = SimpleNamespace(params={"distances": np.tile(D, (n, 1, 1))}, y=y, answered=np.ones(n, bool),
                              reasons={}, labels=labels)
    return score_tsp(SimpleNamespace(structure=S), answers), best


def test_answers_score_by_hand():
    best = tour.interdict_search(D, 1)
    on_tour = (int(best.tour[0]), int(best.tour[1]))
    worst_removal = next(m for m in (_edge(a, b) for a in range(5) for b in range(a + 1, 5))
                         if tour.held_karp(tour.blocked(D, m.reshape(5, 5)))[0] == tour.held_karp(D)[0])
    asym = best.removed.reshape(-1).copy()
    asym[np.flatnonzero(asym)[0]] = 0.0
    no_tour = (_edge(0, 1) + _edge(0, 2) + _edge(0, 3))          # city 0 keeps one edge: no tour at all
    score, best = _score([best.removed.reshape(-1), np.zeros(25), worst_removal, _edge(*on_tour) + _edge(1, 2),
                          asym, 0.5 * best.removed.reshape(-1), no_tour])
    v = score.values
    assert score.feasible.tolist() == [True, True, True, False, False, False, False]
    plain = tour.held_karp(D)[0]
    np.testing.assert_allclose(v["gap"][:3], [0.0, (best.objective - plain) / best.objective,
                                              (best.objective - plain) / best.objective])
    assert np.all(np.isnan(v["gap"][3:]))
    assert v["removed_hamming"][0] == 0 and v["tour_hamming"][0] == 0
    assert v["removed_hamming"][1] == pytest.approx(1 / 10)
    np.testing.assert_array_equal(v["over_budget"], [0, 0, 0, 1, 0, 0, 2])
    np.testing.assert_array_equal(v["asymmetric"], [0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(v["non_binary"], [0, 0, 0, 0, 0, 1, 0])
    assert np.isnan(v["objective"][6])                       # no tour: nothing to measure
    record = build_record(mode="score", dataset={}, solver={}, score=score, protocol={}, provenance={},
                          family=get_family("tsp-interdiction"))
    m = record["metrics"]
    assert m["feasible_rate"] == pytest.approx(3 / 7)
    assert m["regret_mean"] == pytest.approx(np.mean(v["gap"][:3]))


def test_the_exact_solver_has_zero_regret():
    solver = ExactTSPSolver()
    solver.setup(TaskSpec("tsp-interdiction", "t", "test", 1, S, ("cities", "distances"), 25, 0), None)
    y = solver.solve({"distances": D[None]}).y
    score, _ = _score(y)
    assert score.feasible.all() and score.values["gap"][0] == pytest.approx(0.0, abs=1e-12)
