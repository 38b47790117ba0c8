"""bigrad_combinatorial: the BB and PT estimators' gradients by hand on a 3 x 3 grid, a short training run of every
method on spi-grid and tsp-interdiction (weights load with weights_only=True and are found by structure and
method), scoring through the evaluator, and clear errors for missing weights and other families."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.bigrad_combinatorial import model
from baselines.bigrad_combinatorial.estimators import BilevelLayer, SolvePool, hamming
from baselines.bigrad_combinatorial.solver import SL, BiGradBB
from baselines.bigrad_combinatorial.tasks import SPITask, task_for
from baselines.bigrad_combinatorial.train import build_parser, train
from bilevelbench.cli import main
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import MissingDataError, UsageError
from bilevelbench.families.spi.generate import SPIRequest, generate_spi
from bilevelbench.families.tsp.generate import TSPRequest, generate_tsp
from bilevelbench.solvers import TaskSpec


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("combinatorial")
    spi = generate_spi(SPIRequest(size=5, budget=1, n_train=12, n_valid=6, n_test=8, seed=2), root / "spi.h5",
                       name="spi-small")
    tsp = generate_tsp(TSPRequest(size=6, budget=1, n_train=12, n_valid=6, n_test=8, seed=2), root / "tsp.h5",
                       name="tsp-small")
    return {"spi": spi, "tsp": tsp}


def quick(dataset, weights, method):
    return build_parser().parse_args(["--dataset", str(dataset), "--method", method, "--epochs", "2",
                                      "--batch-size", "4", "--workers", "1", "--n-valid", "6",
                                      "--weights-dir", str(weights), "-q"])


def test_bb_and_pt_gradients_by_hand():
    """3 x 3 grid, budget 0: the follower takes the diagonal; the label's path goes through tile (1, 0)."""
    task = SPITask(3, 0)
    c = torch.tensor([[[1.0, 5.0, 5.0], [1.5, 1.0, 5.0], [5.0, 1.5, 1.0]]], dtype=torch.float64, requires_grad=True)
    ctx = [(np.ones((3, 3)), 0)]
    target_y = torch.tensor([[[1.0, 0, 0], [1, 0, 0], [0, 1, 1]]], dtype=torch.float64)
    pool = SolvePool(1)
    x, y = BilevelLayer.apply(c, task, pool, ctx, "bb", 2.0, None)
    np.testing.assert_array_equal(y[0].detach().numpy(), np.eye(3))
    assert float(hamming(y, target_y)[0].detach()) == 3.0
    hamming(y, target_y).mean().backward()
    # perturbed costs c + 2 (1 - 2 y*) make the label's path the shortest: dL/dw = (y* - y) / 2; budget 0, so
    # the leader's term is zero
    np.testing.assert_allclose(c.grad[0].numpy(), (target_y[0].numpy() - np.eye(3)) / 2.0)
    c.grad = None
    x, y = BilevelLayer.apply(c, task, pool, ctx, "pt", 2.0, None)
    (hamming(y, target_y).mean() + hamming(x, torch.zeros_like(x)).mean()).backward()
    # straight-through on both levels with w = c + x: dL/dc = -g_y - (g_x - g_y) = -g_x (the follower's term
    # cancels when the interdiction cost is 1)
    np.testing.assert_allclose(c.grad[0].numpy(), -np.ones((3, 3)))
    c.grad = None
    x, y = BilevelLayer.apply(c, task, pool, ctx, "pt1", 2.0, np.zeros((1, 3, 3)))
    hamming(y, target_y).mean().backward()
    np.testing.assert_allclose(c.grad[0].numpy(), -(1 - 2 * target_y[0].numpy()))


@pytest.mark.parametrize("which", ["spi", "tsp"])
@pytest.mark.parametrize("method", model.METHODS)
def test_every_method_trains_and_solves(sets, which, method, tmp_path):
    path = train(quick(sets[which], tmp_path, method))
    blob = torch.load(path, weights_only=True)
    assert blob["meta"]["method"] == method and len(json.loads(path.with_suffix(".json").read_text())["history"]) == 2
    ds = InstanceSet.open(sets[which])
    assert model.find_weights(ds.structure.digest(), method, tmp_path) == path
    task, net, _ = model.load(path, ds.family, ds.structure)
    x = model.decide(task, net, method, ds.split("test").params)
    k = int(ds.structure.k)
    assert x.shape == (8, k, k) and set(np.unique(x)) <= {0.0, 1.0}
    upper = np.triu(x, 1).sum((1, 2)) if which == "tsp" else x.sum((1, 2))
    assert np.all(upper <= ds.structure.budget)


def test_evaluate_scores_a_trained_method(sets, tmp_path):
    train(quick(sets["spi"], tmp_path, "pt"))
    solver_file = tmp_path / "pt_tmp.py"
    solver_file.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from baselines.bigrad_combinatorial.solver import BiGradPT

        class Solver(BiGradPT):
            weights_dir = Path({str(tmp_path)!r})
        """))
    result = tmp_path / "r.json"
    assert main(["-q", "evaluate", "--dataset", str(sets["spi"]), "--solver", str(solver_file), "--out",
                 str(result), "--exact-instances", "0", "--warmup", "1"]) == 0
    m = json.loads(result.read_text())["metrics"]
    assert m["feasible_rate"] == 1.0 and m["n_scored"] == 8 and 0.0 <= m["regret_mean"] <= 1.0


def test_missing_weights_and_other_families_are_refused(sets, small_set, tmp_path):
    ds = InstanceSet.open(sets["tsp"])
    solver = SL()
    solver.weights_dir = tmp_path
    spec = TaskSpec("tsp-interdiction", "t", "test", 8, ds.structure, ("cities", "distances"), 36, 0)
    with pytest.raises(MissingDataError, match="no bigrad_combinatorial sl weights.*available: none"):
        solver.setup(spec, None)
    skip, reason = BiGradBB().skip(TaskSpec("bqp", "x", "test", 1, None, ("c",), 3, 0))
    assert skip and "spi-grid, tsp-interdiction only" in reason
    with pytest.raises(UsageError, match="trains on spi-grid and tsp-interdiction sets, received 'bqp'"):
        train(quick(small_set, tmp_path, "bb"))


def test_a_process_pool_gives_the_same_solutions_and_gradients(sets):
    """Solver calls farmed out to two processes give what one process gives (BB, both levels)."""
    ds = InstanceSet.open(sets["tsp"])
    task = task_for(ds.family, ds.structure)
    params = ds.split("train").params
    c0 = torch.from_numpy(np.asarray(params["distances"], float)[:6] * 1.1)
    target = torch.from_numpy(task.targets(ds.split("train").labels)[1][:6])
    results = []
    for workers in (1, 2):
        pool = SolvePool(workers)
        try:
            c = c0.clone().requires_grad_(True)
            x, y = BilevelLayer.apply(c, task, pool, task.contexts(params)[:6], "bb", 20.0, None)
            hamming(y, target).mean().backward()
            results.append((x.detach().numpy(), y.detach().numpy(), c.grad.numpy()))
        finally:
            pool.close()
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
