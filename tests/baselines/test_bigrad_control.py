"""bigrad_control: the implicit adversary layer's gradient against finite differences of the true cost, the
two-step layer's gradient against the explicit one, a short training run of every method (weights load with
weights_only=True and are found by structure and method), scoring through the evaluator, clear refusals."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.bigrad_control.layer import AdversaryLayer, Matrices
from baselines.bigrad_control.solver import BiGrad, find_weights
from baselines.bigrad_control.train import METHODS, build_parser, train
from bilevelbench.cli import main
from bilevelbench.errors import MissingDataError, UsageError
from bilevelbench.families.advctl import problem
from bilevelbench.families.advctl.generate import AdvRequest, generate_adv
from bilevelbench.solvers import TaskSpec


@pytest.fixture(scope="module")
def adv_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("control")
    return generate_adv(AdvRequest(states=2, horizon=3, n_train=12, n_valid=4, n_test=5, seed=2), root / "adv.h5",
                        name="adv-small")


def structure():
    return problem.draw_structure(1, 3, 2, 2, 4, 0.1, 1.0, 0.3, 0.1, 2.0, 1.05)


def test_the_implicit_layer_gives_the_true_cost_gradient():
    s = structure()
    d = problem.sample_instances(s, np.random.default_rng(0), 3)
    x0, a = torch.tensor(d["x0"]), torch.tensor(d["target"])
    U = torch.tensor(np.random.default_rng(1).uniform(-0.5, 0.5, (3, s.n_controls)), requires_grad=True)
    Matrices(s).cost(x0, U, AdversaryLayer.apply(U, x0, a, s, "implicit")).sum().backward()
    eps, fd = 1e-6, np.zeros((3, s.n_controls))
    for i in range(3):
        for j in range(s.n_controls):
            up, um = U.detach().numpy()[i].copy(), U.detach().numpy()[i].copy()
            up[j] += eps
            um[j] -= eps
            fd[i, j] = (problem.true_cost(s, d["x0"][i], d["target"][i], up)[0][0]
                        - problem.true_cost(s, d["x0"][i], d["target"][i], um)[0][0]) / (2 * eps)
    np.testing.assert_allclose(U.grad.numpy(), fd, atol=1e-6)


def test_the_two_step_layer_holds_the_adversary_fixed_and_differs():
    s = structure()
    d = problem.sample_instances(s, np.random.default_rng(2), 4)
    x0, a = torch.tensor(d["x0"]), torch.tensor(d["target"])
    U0 = np.random.default_rng(3).uniform(-0.5, 0.5, (4, s.n_controls))
    grads = {}
    for mode in ("implicit", "fixed"):
        U = torch.tensor(U0, requires_grad=True)
        Matrices(s).cost(x0, U, AdversaryLayer.apply(U, x0, a, s, mode)).sum().backward()
        grads[mode] = U.grad.numpy()
    W = torch.from_numpy(problem.follower_response(s, d["x0"], d["target"], U0))
    U = torch.tensor(U0, requires_grad=True)
    Matrices(s).cost(x0, U, W).sum().backward()
    np.testing.assert_allclose(grads["fixed"], U.grad.numpy(), atol=1e-12)
    assert np.abs(grads["implicit"] - grads["fixed"]).max() > 1e-3


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_is_found(adv_set, method, tmp_path):
    args = build_parser().parse_args(["--dataset", str(adv_set), "--method", method, "--epochs", "2",
                                      "--batch-size", "4", "--hidden", "8", "--weights-dir", str(tmp_path), "-q"])
    path = train(args)
    blob = torch.load(path, weights_only=True)
    assert blob["meta"]["method"] == method
    assert len(json.loads(path.with_suffix(".json").read_text())["history"]) == 2
    assert find_weights(blob["meta"]["structure_hash"], method, tmp_path) == path


def test_evaluate_scores_a_trained_policy(adv_set, tmp_path):
    train(build_parser().parse_args(["--dataset", str(adv_set), "--method", "bigrad", "--epochs", "2",
                                     "--hidden", "8", "--weights-dir", str(tmp_path), "-q"]))
    solver_file = tmp_path / "bigrad_tmp.py"
    solver_file.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from baselines.bigrad_control.solver import BiGrad

        class Solver(BiGrad):
            weights_dir = Path({str(tmp_path)!r})
        """))
    result = tmp_path / "r.json"
    assert main(["-q", "evaluate", "--dataset", str(adv_set), "--solver", str(solver_file), "--out", str(result),
                 "--exact-instances", "0", "--warmup", "1"]) == 0
    m = json.loads(result.read_text())["metrics"]
    assert m["feasible_rate"] == 1.0 and m["n_scored"] == 5 and m["gap_mean"] >= -1e-6


def test_missing_weights_and_other_families_are_refused(adv_set, small_set, tmp_path):
    solver = BiGrad()
    solver.weights_dir = tmp_path
    spec = TaskSpec("adv-control", "t", "test", 5, structure(), ("x0", "target"), 8, 8)
    with pytest.raises(MissingDataError, match="no bigrad_control bigrad weights.*available: none"):
        solver.setup(spec, None)
    skip, reason = BiGrad().skip(TaskSpec("bqp", "x", "test", 1, None, ("c",), 3, 0))
    assert skip and "adv-control only" in reason
    with pytest.raises(UsageError, match="trains on adv-control sets, not 'bqp'"):
        train(build_parser().parse_args(["--dataset", str(small_set), "--method", "sl", "--weights-dir",
                                         str(tmp_path), "-q"]))
