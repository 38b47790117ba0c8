"""L2O with coupling correction: training lowers the loss, weights round-trip safely, the evaluator scores it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from baselines.l2o_correction import train
from baselines.l2o_correction.solver import find_weights
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import MissingDataError
from bilevelbench.evaluate.evaluator import Protocol, evaluate_solver
from bilevelbench.evaluate.sandbox import Limits
from bilevelbench.families.bqp.coupling import FOLLOWER_GRADIENTS, L2OCorrection


@pytest.mark.parametrize("follower_gradient", FOLLOWER_GRADIENTS)
def test_a_few_steps_lower_the_self_supervised_loss(small_set, follower_gradient):
    torch.manual_seed(0)
    ds = InstanceSet.open(small_set)
    p = ds.split("train").params
    c, d = torch.tensor(p["c"]), torch.tensor(p["d"])
    model = L2OCorrection(ds.structure, [16, 16], gamma=1e-3, follower_gradient=follower_gradient)
    opt = torch.optim.Adam(model.mlp.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        model.train()
        loss, _, _ = model.loss(c, d, model(c, d, steps=3), penalty=100.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < losses[0] - 0.1


def test_correction_steps_reduce_coupling_violation(small_set):
    ds = InstanceSet.open(small_set)
    p = ds.split("test").params
    c, _d = torch.tensor(p["c"]), torch.tensor(p["d"])
    model = L2OCorrection(ds.structure, [8], gamma=1e-2).eval()
    y0 = torch.full((c.shape[0], ds.structure.m), 20.0, dtype=torch.float64)   # A >= 0: far from feasible
    from bilevelbench.families.bqp.coupling import correct
    before = model.problem.violation_sq(y0).sum().item()
    after = model.problem.violation_sq(correct(model.problem, y0, 20, 1e-2, create_graph=False)).sum().item()
    assert before > 0 and after < before


def test_train_command_writes_weights_the_solver_and_evaluator_use(small_set, tmp_path):
    out = tmp_path / "weights" / "tiny.pt"
    assert train.main(["--dataset", str(small_set), "--epochs", "2", "--batch-size", "2", "--width-factors", "2,2",
                       "--follower-gradient", "bigrad", "--out", str(out), "-q"]) == 0
    blob = torch.load(out, weights_only=True)
    assert blob["meta"]["structure_hash"] == InstanceSet.open(small_set).structure.digest()
    assert blob["meta"]["follower_gradient"] == "bigrad"
    report = json.loads(out.with_suffix(".json").read_text())
    history = report["history"]
    # the test-time step is the best of the tried steps that meets the violation tolerance (or the least violating)
    trials = report["test_gamma_trials"]
    assert blob["meta"]["test_gamma"] in [t["gamma"] for t in trials]
    ok = [t for t in trials if t["valid_violation"] <= 1e-6]
    expected = min(ok, key=lambda t: t["valid_gap"]) if ok else min(trials, key=lambda t: t["valid_violation"])
    assert blob["meta"]["test_gamma"] == expected["gamma"]
    assert len(history) == 2 and all(np.isfinite(h["valid_gap"]) for h in history)
    assert out.with_name("tiny-curve.png").stat().st_size > 1000
    assert find_weights(blob["meta"]["structure_hash"], out.parent) == out
    with pytest.raises(MissingDataError, match="no L2O weights for structure"):
        find_weights("0" * 64, out.parent)

    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "solver.py").write_text(
        "from baselines.l2o_correction.solver import Solver as Base\n\n"
        f"class Solver(Base):\n    weights_dir = {str(out.parent)!r}\n")
    record = evaluate_solver(small_set, str(sub), protocol=Protocol(warmup=1, batch_size=4, exact_instances=0),
                             limits=Limits(setup_timeout=120, solve_timeout=60))
    assert record["status"] == "complete", record["failures"]
    assert record["solver"]["name"] == "l2o-correction"
    assert np.isfinite(record["metrics"]["gap_mean"])


def test_weights_for_another_structure_are_a_clear_failure(small_set, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (tmp_path / "empty").mkdir()
    (sub / "solver.py").write_text(
        "from baselines.l2o_correction.solver import Solver as Base\n\n"
        f"class Solver(Base):\n    weights_dir = {str(tmp_path / 'empty')!r}\n")
    record = evaluate_solver(small_set, str(sub), protocol=Protocol(warmup=0, batch_size=0, exact_instances=0))
    assert record["status"] == "failed" and "no L2O weights for structure" in record["status_reason"]
