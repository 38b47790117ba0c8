"""Scoring: the evaluator computes z(y) itself, and each metric catches what it should."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.families.bqp.problem import BQPStructure, follower_response, upper_objective
from bilevelbench.families.bqp.score import lower_infeasibility, score_bqp


@pytest.fixture(scope="module")
def test_split(small_set):
    ds = InstanceSet.open(small_set)
    return ds.structure, ds.split("test")


def _score(s, part, y, z=None, answered=None):
    n = len(part)
    answered = np.ones(n, bool) if answered is None else answered
    return score_bqp(s, part.params, part.labels, y, answered, {}, z, 100.0)


def test_labels_score_gap_zero_and_feasible(test_split):
    s, part = test_split
    sc = _score(s, part, part.labels["y"])
    assert np.all(sc.feasible) and np.all(sc.scored)
    assert np.nanmax(sc.values["gap"]) == 0.0  # reference and submission evaluated by the same follower solve
    np.testing.assert_allclose(sc.values["reference_objective"], part.labels["objective"], rtol=1e-6, atol=1e-6)
    assert np.nanmax(sc.values["paper_gap"]) <= np.nanmax(sc.values["gap"])


def test_a_claimed_z_is_never_trusted(test_split):
    """A submission claims the labels' objective with a made-up z; it is scored at z(y) instead."""
    s, part = test_split
    y = part.labels["y"] + 0.5          # a worse leader decision
    fake_z = part.labels["z"] - 1.0     # a follower decision chosen to lower d'z (d > 0)
    sc = _score(s, part, y, z=fake_z)
    c, d = part.params["c"], part.params["d"]
    for i in range(len(part)):
        z_true = follower_response(s, y[i]).z
        expected = upper_objective(s, c[i], d[i], y[i], z_true)[0]
        claimed = upper_objective(s, c[i], d[i], y[i], fake_z[i])[0]
        assert sc.values["objective"][i] == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert claimed < expected - 1e-3
        assert sc.values["z_distance"][i] == pytest.approx(np.linalg.norm(fake_z[i] - z_true))
    assert np.nanmin(sc.values["z_distance"]) > 1e-3
    assert np.nanmin(sc.values["gap"]) > 0


def test_coupling_violation_matches_a_direct_computation(test_split):
    s, part = test_split
    y = part.labels["y"] * 3.0
    sc = _score(s, part, y)
    for i in range(len(part)):
        z = follower_response(s, y[i]).z
        r = s.A @ y[i] - s.b - s.E @ z
        assert sc.values["coupling_violation_l2"][i] == pytest.approx(np.linalg.norm(np.maximum(r, 0)), abs=1e-9)
        assert sc.feasible[i] == (max(r.max(), 0) <= 1e-6 * max(1, np.abs(s.b).max()))
    assert not np.all(sc.feasible)


def test_follower_infeasible_y_is_scored_infeasible(test_split):
    """A y for which the lower level has no feasible z: lower-level violation, no objective, infeasible."""
    # Sampled structures have F > 0, so z -> -inf is always feasible; build one where it is not:
    # z <= y and -z <= y, empty for y < 0 (relaxation needed: t = -y).
    s = BQPStructure(Q=np.eye(1), A=np.ones((1, 1)), b=np.ones(1), E=np.zeros((1, 1)), H=np.eye(1),
                     e=np.zeros(1), F=np.array([[1.0], [-1.0]]), h=np.zeros(2), G=np.ones((2, 1)), f=np.zeros(1),
                     q=0.0, g=0.0)
    y = np.array([[-2.0], [0.5]])
    assert lower_infeasibility(s, y[0]) == pytest.approx(2.0)
    params = {"c": np.zeros((2, 1)), "d": np.zeros((2, 1))}
    labels = {"status": np.array(["certified_optimal"] * 2, dtype=object), "objective": np.zeros(2),
              "y": np.full((2, 1), np.nan)}
    sc = score_bqp(s, params, labels, y, np.ones(2, bool), {}, None, None)
    assert sc.feasible.tolist() == [False, True]
    assert np.isnan(sc.values["gap"][0]) and np.isnan(sc.values["objective"][0])
    assert sc.values["lower_violation_max"].tolist() == [pytest.approx(2.0), 0.0]
    assert sc.values["objective"][1] == pytest.approx(0.125)


def test_unanswered_rows_are_failures_not_scores(test_split):
    s, part = test_split
    answered = np.ones(len(part), bool)
    answered[0] = False
    sc = score_bqp(s, part.params, part.labels, part.labels["y"], answered, {0: "solver crashed"}, None, None)
    assert sc.failures == [{"instance": 0, "reason": "solver crashed"}]
    assert not sc.feasible[0] and np.isnan(sc.values["gap"][0])
    assert np.all(np.isnan(sc.values["paper_gap"]))  # no paper offset given


def test_labels_without_solution_have_no_reference(test_split):
    s, part = test_split
    labels = dict(part.labels)
    labels["status"] = np.array(["failed"] + ["certified_optimal"] * (len(part) - 1), dtype=object)
    sc = score_bqp(s, part.params, labels, part.labels["y"], np.ones(len(part), bool), {}, None, None)
    assert sc.references_missing == 1
    assert np.isnan(sc.values["gap"][0]) and sc.feasible[0]
