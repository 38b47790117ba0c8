"""Scoring mixed-integer decisions: exact labels score zero, each violation class is caught, closed loop."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bilevelbench.core.registry import get_family
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.evaluate.evaluator import closed_loop_plan, score_split
from bilevelbench.evaluate.records import build_record
from bilevelbench.families.mimpc.closed_loop import score_closed_loop
from bilevelbench.families.mimpc.score import score_miqp


def _score(ds, part, x, answered=None):
    answered = np.ones(len(part), bool) if answered is None else answered
    return score_split(ds, part.params, part.labels, x, answered, {})


def test_certified_labels_score_gap_zero_and_feasible(tank_set):
    ds = InstanceSet.open(tank_set)
    test = ds.split("test")
    score = _score(ds, test, test.labels["x"])
    assert score.scored.all() and score.feasible.all()
    assert np.max(score.values["gap"]) <= 1e-12  # batched vs one-row evaluation of f: rounding only
    assert np.all(score.values["integer_violated"] == 0) and np.all(score.values["continuous_violated"] == 0)
    rec = build_record(mode="score", dataset={}, solver={}, score=score, protocol={}, provenance={},
                       family=get_family("mimpc-tank"))
    assert rec["metrics"]["integer_violation_rate"] == 0.0 and rec["metrics"]["gap_mean_feasible"] <= 1e-12


def test_each_violation_class_is_caught(tank_set):
    ds = InstanceSet.open(tank_set)
    s = ds.structure
    test = ds.split("test")
    x = test.labels["x"].copy()
    ints = np.flatnonzero(s.integer)
    x[0, ints[0]] += 0.4                     # fractional pump level: integrality
    x[1, ints[0]], x[1, ints[1]] = 0.0, 3.0  # a jump of 3 levels breaks the ramp (integer-only rows)
    x[2, 0] = -1.0                           # negative input: continuous bound
    x[3, :40] = 8.0                          # pumping at full power for 20 steps overfills the tanks
    score = _score(ds, test, x)
    v = score.values
    assert v["integrality"][0] == pytest.approx(0.4) and v["integer_violated"][0] == 1
    assert v["violation_ramp"][1] > 0 and v["integer_violated"][1] == 1 and v["continuous_violated"][1] in (0, 1)
    assert v["bounds_violation"][2] == pytest.approx(1.0) and v["continuous_violated"][2] == 1
    assert v["violation_state"][3] > 0 and v["continuous_violated"][3] == 1
    assert not score.feasible[:4].any() and score.feasible[4:].all()
    assert v["paper_gap"][3] == pytest.approx(abs(v["objective"][3] - v["reference_objective"][3])
                                             / (100 + abs(v["reference_objective"][3])))


def test_unanswered_and_non_finite_rows_are_failures(tank_set):
    ds = InstanceSet.open(tank_set)
    test = ds.split("test")
    x = test.labels["x"].copy()
    x[0, 3] = np.nan
    answered = np.ones(len(test), bool)
    answered[1] = False
    score = score_miqp(ds.structure, test.params, test.labels, x, answered, {1: "solver crashed"})
    assert not score.scored[0] and not score.scored[1] and score.scored[2:].all()
    reasons = {f["instance"]: f["reason"] for f in score.failures}
    assert reasons == {0: "x contains NaN", 1: "solver crashed"}


def test_answers_on_the_infeasible_split_are_scored_for_their_violations(robot_set):
    ds = InstanceSet.open(robot_set)
    bad = ds.split("infeasible")
    x = np.zeros((len(bad), ds.structure.n))  # no acceleration, all obstacle sides enforced
    score = _score(ds, bad, x)
    assert score.scored.all() and not score.feasible.any()
    assert np.isnan(score.values["gap"]).all()  # no reference objective exists there


def test_replaying_the_exact_episodes_gives_cost_ratio_one(tank_set):
    ds = InstanceSet.open(tank_set)
    plan, ref = closed_loop_plan(ds, 3)
    decisions = [list(ref["decisions"][e, :3]) for e in range(len(plan["episodes"]))]
    scored, head = score_closed_loop(ds, plan, ref, decisions, [[1e-3] * 3] * len(decisions))
    np.testing.assert_allclose(scored["per"]["cost_ratio"], 1.0, rtol=1e-12)
    assert head["violation_free_rate"] == 1.0 and head["completed_rate"] == 1.0
    # a policy that stops answering after one step does not complete its episodes
    short, head = score_closed_loop(ds, plan, ref, [d[:1] for d in decisions], [[1e-3]] * len(decisions))
    assert head["completed_rate"] == 0.0 and np.isnan(short["per"]["cost_ratio"]).all()
    with pytest.raises(Exception, match="expected 1..4 steps"):
        closed_loop_plan(ds, 5)


@pytest.mark.slow
def test_cli_closed_loop_with_the_exact_solver(tank_set, tmp_path):
    out = tmp_path / "cl.json"
    proc = subprocess.run([sys.executable, "-m", "bilevelbench", "-q", "evaluate", "--dataset", str(tank_set),
                           "--solver", "baselines/exact", "--closed-loop", "4", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(out.read_text())
    assert rec["mode"] == "closed_loop" and rec["status"] == "complete"
    np.testing.assert_allclose(rec["per_instance"]["cost_ratio"], 1.0, rtol=1e-6)
    assert rec["metrics"]["latency_ms_median"] > 0
    assert "closed-loop cost / exact MPC's" in proc.stdout
