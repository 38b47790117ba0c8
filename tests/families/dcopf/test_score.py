"""Scoring dispatches (dcopf): labels score zero, each violation is measured in MW and $, live evaluation."""

from __future__ import annotations

import json

import numpy as np

from bilevelbench.cli import main
from bilevelbench.core.registry import get_family
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.evaluate.evaluator import score_split
from bilevelbench.evaluate.records import build_record
from bilevelbench.families.dcopf.score import score_dcopf
from tests.families.dcopf.test_problem import three_bus


def test_three_bus_scores_by_hand():
    s = three_bus()
    pd = np.tile(s.pd_ref, (4, 1))
    labels = {"objective": np.full(4, 3900.0), "status": np.array(["certified_optimal"] * 4)}
    pg = np.array([[30.0, 120.0],      # the optimum
                   [150.0, 0.0],       # cheap but overloads line 0-2 by 40 MW: 1500 + 1500 * 40
                   [30.0, 110.0],      # 10 MW short
                   [-5.0, 155.0]])     # below pmin by 5 MW
    score = score_dcopf(s, {"pd": pd}, labels, pg, np.ones(4, bool), {})
    v = score.values
    np.testing.assert_allclose(v["gap"][0], 0.0, atol=1e-12)
    assert np.isclose(v["thermal_violation_mw"][1], 40.0) and np.isclose(v["thermal_violation_cost"][1], 60000.0)
    assert np.isclose(v["objective"][1], 1500.0 + 60000.0)
    assert np.isclose(v["balance_violation"][2], 10.0) and v["balance_violated"][2] == 1
    assert np.isclose(v["generator_violation"][3], 5.0) and v["generator_violated"][3] == 1
    assert score.feasible.tolist() == [True, True, False, False]          # overload is soft, priced
    rec = build_record(mode="score", dataset={}, solver={}, score=score, protocol={}, provenance={},
                       family=get_family("dcopf"))
    m = rec["metrics"]
    assert m["balance_violation_rate"] == 0.25 and m["generator_violation_rate"] == 0.25
    assert np.isclose(m["thermal_violation_mw_max"], 40.0)


def test_labels_score_zero_and_bad_rows_are_failures(case14_set):
    ds = InstanceSet.open(case14_set)
    test = ds.split("test")
    pg = test.labels["pg"].copy()
    answered = np.ones(len(test), bool)
    pg[3, 0] = np.nan
    answered[5] = False
    score = score_split(ds, test.params, test.labels, pg, answered, {5: "solver crashed"})
    ok = np.ones(len(test), bool)
    ok[[3, 5]] = False
    assert np.all(score.scored == ok)
    assert np.max(score.values["gap"][ok]) <= 1e-12
    assert {f["instance"]: f["reason"] for f in score.failures} == {3: "pg contains NaN", 5: "solver crashed"}


def test_exact_solver_evaluates_end_to_end(case14_set, tmp_path, capsys):
    out = tmp_path / "exact.json"
    assert main(["-q", "evaluate", "--dataset", str(case14_set), "--solver", "baselines/exact",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "balance" in text and "thermal" in text and "coupling" not in text
    rec = json.loads(out.read_text())
    assert rec["status"] == "complete"
    assert rec["metrics"]["gap_max"] <= 1e-9 and rec["metrics"]["balance_violation_rate"] == 0.0
    assert rec["dataset"]["family"] == "dcopf"
