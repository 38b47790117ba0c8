"""The MIQP baselines (miqp_sl, miqp_ssl, miqp_hybrid): metrics, a few training steps on a tiny tank set, weight
files that load with weights_only=True, and solvers that return full decisions with exact integers."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("osqp")

from baselines.miqp_common.metrics import miqp_metrics
from baselines.miqp_common.solver import find_weights
from baselines.miqp_common.train import REPAIR_GRID, build_parser, train
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import MissingDataError, UsageError
from bilevelbench.solvers import TaskSpec, load_solver


def test_metrics_on_labels_and_broken_decisions(tank_set):
    ds = InstanceSet.open(tank_set)
    s = ds.structure
    split = ds.split("test")
    theta, X, f = split.params["theta"], split.labels["x"], split.labels["objective"]
    ok = miqp_metrics(s, theta, X, f)
    assert ok["violation_rate"] == 0.0 and ok["mean_gap"] < 1e-6 and ok["gap_count"] == len(f)
    # a ramp jump of 3 breaks an integer-only row; inputs at 10 > u_max break a continuous bound
    bad = X.copy()
    bad[0, s.integer] = 0.0
    bad[0, np.flatnonzero(s.integer)[5]] = 3.0
    bad[1, 0] = 10.0
    bad[2, np.flatnonzero(s.integer)[0]] += 0.5           # not integral
    m = miqp_metrics(s, theta, bad, f)
    n = len(f)
    assert m["integer_violation_rate"] == pytest.approx(2 / n)
    assert m["continuous_violation_rate"] >= 1 / n
    assert m["gap_count"] <= n - 3


@pytest.mark.parametrize("method", ["sl", "ssl", "hybrid"])
def test_train_then_solve(method, tank_set, tmp_path):
    weights = tmp_path / "weights"
    args = build_parser(method).parse_args(["--dataset", str(tank_set), "--epochs", "2", "--batch-size", "4",
                                            "--hidden", "16,16", "-q"])
    out = train(method, args, weights)
    blob = torch.load(out, weights_only=True)
    meta = blob["meta"]
    ds = InstanceSet.open(tank_set)
    assert meta["method"] == method and meta["structure_hash"] == ds.structure.digest()
    history = json.loads(out.with_suffix(".json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert np.isfinite(history[-1]["train_loss"])
    assert find_weights(ds.structure.digest(), weights, method) == out

    solver = load_solver(f"baselines/miqp_{method}")
    solver.weights_dir = weights
    s = ds.structure
    test = ds.split("test")
    spec = TaskSpec(family="mimpc-tank", dataset="tiny", split="test", n_instances=len(test), structure=s,
                    param_names=("theta",), y_dim=s.n, z_dim=0)
    assert solver.skip(spec)[0] is False
    solver.setup(spec, ds.split("train"))
    X = np.asarray(solver.solve({"theta": test.params["theta"]}).y)
    assert X.shape == (len(test), s.n) and np.all(np.isfinite(X))
    xi = X[:, s.integer]
    assert np.array_equal(xi, np.round(xi)) and np.all(xi >= s.lb[s.integer]) and np.all(xi <= s.ub[s.integer])
    assert np.all(X[:, ~s.integer] >= s.lb[~s.integer] - 1e-9) and np.all(X[:, ~s.integer] <= s.ub[~s.integer] + 1e-9)
    assert solver.repair == meta["repair"] and meta["repair"] in (0, 4, 16)
    assert solver.moves == meta["moves"] and (meta["repair"], meta["moves"]) in REPAIR_GRID
    trials = json.loads(out.with_suffix(".json").read_text())["repair_trials"]
    assert [(t["repair"], t["moves"]) for t in trials] == list(REPAIR_GRID)
    # a repair never loses feasibility: it changes only infeasible rows, and only to a feasible candidate
    theta = test.params["theta"]
    plain_x = solver.model.predict(theta, repair=0)
    # the paper's method as published: the same weights, no repair
    paper = load_solver(f"baselines/miqp_{method}/solver.py:PaperSolver")
    paper.weights_dir = weights
    paper.setup(spec, ds.split("train"))
    assert paper.name == f"miqp-{method}-paper" and (paper.repair, paper.moves) == (0, False)
    np.testing.assert_array_equal(np.asarray(paper.solve({"theta": theta}).y), plain_x)
    plain = miqp_metrics(s, theta, plain_x)
    for repair, moves in ((16, False), (0, True)):
        fixed_x = solver.model.predict(theta, repair=repair, moves=moves)
        fixed = miqp_metrics(s, theta, fixed_x)
        assert fixed["violation_rate"] <= plain["violation_rate"]
        for i in np.flatnonzero(np.any(fixed_x != plain_x, axis=1)):
            assert miqp_metrics(s, theta[i:i + 1], plain_x[i:i + 1])["violation_rate"] == 1.0
            assert miqp_metrics(s, theta[i:i + 1], fixed_x[i:i + 1])["violation_rate"] == 0.0


def test_missing_weights_are_a_clear_error(tmp_path):
    with pytest.raises(MissingDataError, match="no miqp_sl weights"):
        find_weights("0" * 64, tmp_path, "sl")


def test_weights_trained_on_the_task_data_set_are_preferred(tmp_path):
    """Two data sets of one structure (mimpc-robot-authors and its 20k variant): each task gets its own weights,
    and a data set with none of its own falls back to the first match by file name."""
    digest = "ab" * 32
    for file, dataset in (("a-large.pt", "robot-large"), ("b-small.pt", "robot-small")):
        torch.save({"state_dict": {}, "meta": {"structure_hash": digest, "method": "sl", "dataset": dataset}},
                   tmp_path / file)
    assert find_weights(digest, tmp_path, "sl", "robot-small") == tmp_path / "b-small.pt"
    assert find_weights(digest, tmp_path, "sl", "robot-large") == tmp_path / "a-large.pt"
    assert find_weights(digest, tmp_path, "sl", "another") == tmp_path / "a-large.pt"
    assert find_weights(digest, tmp_path, "sl") == tmp_path / "a-large.pt"
    with pytest.raises(MissingDataError, match="no miqp_hybrid weights"):
        find_weights(digest, tmp_path, "hybrid", "robot-small")


def test_training_is_deterministic(tank_set, tmp_path):
    outs = []
    for k in range(2):
        args = build_parser("hybrid").parse_args(["--dataset", str(tank_set), "--epochs", "1", "--batch-size", "3",
                                                  "--hidden", "8", "-q", "--out", str(tmp_path / f"w{k}.pt")])
        outs.append(torch.load(train("hybrid", args, tmp_path), weights_only=True)["state_dict"])
    for key in outs[0]:
        assert torch.equal(outs[0][key], outs[1][key])


@pytest.mark.parametrize("method", ["sl", "hybrid"])
def test_interrupted_training_resumes_to_the_weights_of_an_uninterrupted_run(method, tank_set, tmp_path, monkeypatch):
    import baselines.miqp_common.train as trainer
    from baselines.miqp_common.checkpoint import checkpoint_path

    def run(out, epochs=3, extra=()):
        args = build_parser(method).parse_args(["--dataset", str(tank_set), "--epochs", str(epochs), "--batch-size",
                                                "3", "--hidden", "8", "-q", "--out", str(out), *extra])
        return train(method, args, tmp_path)

    straight = torch.load(run(tmp_path / "straight.pt"), weights_only=True)
    assert not checkpoint_path(tmp_path / "straight.pt").exists()   # a finished run leaves no checkpoint

    real_evaluate, calls = trainer.evaluate, []

    def evaluate_then_crash(*a, **k):                                # killed during epoch 2's valid pass
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*a, **k)

    monkeypatch.setattr(trainer, "evaluate", evaluate_then_crash)
    out = tmp_path / "resumed.pt"
    with pytest.raises(KeyboardInterrupt):
        run(out)
    assert checkpoint_path(out).exists() and not out.exists()
    monkeypatch.setattr(trainer, "evaluate", real_evaluate)
    with pytest.raises(UsageError, match="other settings.*lr"):      # another setting: refused, not mixed
        run(out, extra=("--lr", "0.01"))
    with pytest.raises(UsageError, match="more than --epochs 0"):     # fewer epochs than it already holds
        run(out, epochs=0)
    resumed = torch.load(run(out), weights_only=True)
    assert not checkpoint_path(out).exists()
    for key in straight["state_dict"]:
        assert torch.equal(straight["state_dict"][key], resumed["state_dict"][key])
    history = [json.loads(p.with_suffix(".json").read_text())["history"] for p in (tmp_path / "straight.pt", out)]
    assert [h["epoch"] for h in history[1]] == [1, 2, 3]
    drop = ("seconds", "valid_ms_per_instance")
    assert [{k: v for k, v in h.items() if k not in drop} for h in history[0]] == \
        [{k: v for k, v in h.items() if k not in drop} for h in history[1]]
    assert resumed["meta"]["selected_epoch"] == straight["meta"]["selected_epoch"]


def test_warm_starts_survive_a_weights_only_checkpoint(tmp_path):
    from baselines.miqp_common.checkpoint import (
        load_checkpoint,
        pack_warm_starts,
        run_key,
        save_checkpoint,
        unpack_warm_starts,
    )

    rng = np.random.default_rng(0)
    memory = {7: (rng.normal(size=5), rng.random(4)), 2: (rng.normal(size=5), rng.random(4))}
    key = run_key({"method": "hybrid", "lr": 1e-3})
    path = tmp_path / "w.partial.pt"
    save_checkpoint(path, {"key": key, "warm_starts": pack_warm_starts(memory), "empty": pack_warm_starts({})})
    state = load_checkpoint(path, key)
    back = unpack_warm_starts(state["warm_starts"])
    assert sorted(back) == [2, 7] and unpack_warm_starts(state["empty"]) == {}
    for k, (x, y) in memory.items():
        assert np.array_equal(back[k][0], x) and np.array_equal(back[k][1], y)
    assert load_checkpoint(tmp_path / "none.partial.pt", key) is None


def test_canonical_labels_keep_the_optimum(robot_set, tank_set):
    from baselines.miqp_common.labels import canonical_labels, indicator_rows
    from bilevelbench.families.mimpc.miqp import row_residual, row_scale, solve_fixed_integers

    ds = InstanceSet.open(robot_set)
    s = ds.structure
    split = ds.split("test")
    theta, X = split.params["theta"], split.labels["x"]
    cols, _ = indicator_rows(s)
    assert cols.size == 240                                 # every obstacle side is an indicator of one row
    Y = canonical_labels(s, theta, X)
    assert np.array_equal(Y[:, ~s.integer], X[:, ~s.integer])
    assert np.all(Y[:, s.integer] <= X[:, s.integer])       # only relaxed sides that hold become enforced
    assert np.all(row_residual(s, Y, theta) <= 1e-6 * row_scale(s))
    for i in range(theta.shape[0]):
        ref = solve_fixed_integers(s, theta[i], Y[i, s.integer])
        np.testing.assert_allclose(ref.x, Y[i], atol=1e-5)           # the same trajectory (Y has X's)
    tank = InstanceSet.open(tank_set)
    tx = tank.split("test").labels["x"]
    assert np.array_equal(canonical_labels(tank.structure, tank.split("test").params["theta"], tx), tx)


def test_canonical_labels_of_the_two_bit_code_enforce_the_widest_cleared_side(tmp_path):
    """mimpc-robot-authors: two bits per obstacle and step pick the one enforced side; the canonical label picks
    the side the label's trajectory clears by the widest margin, keeps the trajectory, and still solves to it."""
    from baselines.miqp_common.labels import canonical_labels, coded_groups, indicator_rows
    from bilevelbench.families.mimpc.certify import MIQPCertifierSettings
    from bilevelbench.families.mimpc.generate import MIQPRequest, generate_miqp
    from bilevelbench.families.mimpc.miqp import row_residual, row_scale, solve_fixed_integers
    from bilevelbench.families.mimpc.problem import AUTHORS_ROBOT, SIDES, TWO_BIT

    request = MIQPRequest(family="mimpc-robot", n_train=1, n_valid=0, n_test=6, seed=7, geometry="authors")
    ds = InstanceSet.open(generate_miqp(request, tmp_path / "authors.h5", MIQPCertifierSettings(time_limit=120)))
    s, split = ds.structure, ds.split("test")
    theta, X = split.params["theta"], split.labels["x"]
    cfg, H = AUTHORS_ROBOT, AUTHORS_ROBOT.horizon
    assert indicator_rows(s)[0].size == 0
    groups = coded_groups(s)
    assert len(groups) == 3 * H and all(c.size == 2 and r.size == 4 for c, r in groups)
    Y = canonical_labels(s, theta, X)
    assert np.array_equal(Y[:, ~s.integer], X[:, ~s.integer])
    assert np.all(row_residual(s, Y, theta) <= 1e-6 * row_scale(s))
    # the enforced side is the one with the largest clearance at the label's positions
    p, v, a = theta[:, :2].copy(), theta[:, 2:4].copy(), X[:, :2 * H].reshape(-1, H, 2)
    bits = Y[:, 2 * H:].reshape(-1, H, 3, 2)
    centres, half = np.array(cfg.obstacle_centres), np.array(cfg.obstacle_half_sizes)
    reach = np.stack([half[:, 0], half[:, 1], half[:, 0], half[:, 1]], 1) + cfg.d_min
    for k in range(H):
        p, v = p + cfg.tau * v + 0.5 * cfg.tau**2 * a[:, k], v + cfg.tau * a[:, k]
        clearance = np.einsum("jd,bod->boj", SIDES, p[:, None, :] - centres[None]) - reach[None]
        code = TWO_BIT[:, 0] + TWO_BIT[:, 1] * bits[:, k, :, :1] + TWO_BIT[:, 2] * bits[:, k, :, 1:]
        enforced = np.argmin(np.abs(code), axis=-1)
        np.testing.assert_array_equal(enforced, clearance.argmax(-1))
    for i in range(theta.shape[0]):
        ref = solve_fixed_integers(s, theta[i], Y[i, s.integer])
        np.testing.assert_allclose(ref.x, Y[i], atol=1e-5)


def test_torch_terms_match_numpy(robot_set):
    """Objective and scaled violations of MIQPTerms equal the numpy definitions; straight-through rounding."""
    from bilevelbench.families.mimpc.miqp import objective, row_residual, row_scale
    from bilevelbench.families.mimpc.miqp_l2o import MIQPTerms, round_st

    ds = InstanceSet.open(robot_set)
    s = ds.structure
    split = ds.split("test")
    theta = split.params["theta"]
    rng = np.random.default_rng(4)
    X = rng.uniform(s.lb, s.ub, size=(theta.shape[0], s.n))
    terms = MIQPTerms(s)
    th, x = torch.tensor(theta), torch.tensor(X)
    np.testing.assert_allclose(terms.objective(x, th).numpy(), objective(s, X, theta), rtol=1e-12, atol=1e-9)
    viol = np.maximum(row_residual(s, X, theta) / row_scale(s), 0.0)
    int_only = ~np.any(s.G[:, ~s.integer] != 0, axis=1)
    np.testing.assert_allclose(terms.violation(x, th).numpy(), viol.sum(1), rtol=1e-12)
    weighted = viol[:, ~int_only].sum(1) + 7.0 * viol[:, int_only].sum(1)
    np.testing.assert_allclose(terms.violation(x, th, int_weight=7.0).numpy(), weighted, rtol=1e-12)
    v = torch.tensor([0.2, 0.7, 2.6], requires_grad=True)
    out = round_st(v)
    out.sum().backward()
    assert out.tolist() == [0.0, 1.0, 3.0] and v.grad.tolist() == [1.0, 1.0, 1.0]
