"""BiGrad: the CG hypergradient equals the direct implicit gradient, descent lowers the objective, and it scores."""

from __future__ import annotations

import numpy as np
import torch

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.evaluate.evaluator import Protocol, evaluate_solver
from bilevelbench.families.bqp.bigrad import BiGradFollower, batched_cg
from bilevelbench.families.bqp.follower_layer import FollowerLayer
from bilevelbench.families.bqp.problem import sample_structure


def test_cg_solves_spd_batches():
    rng = np.random.default_rng(0)
    M = torch.tensor(rng.normal(size=(5, 5)))
    A = M @ M.T + torch.eye(5, dtype=torch.float64)
    rhs = torch.tensor(rng.normal(size=(3, 5)))
    x = batched_cg(lambda v: v @ A, rhs, 30)
    torch.testing.assert_close(x @ A, rhs, rtol=1e-10, atol=1e-10)


def test_hypergradient_matches_direct_implicit_differentiation():
    rng = np.random.default_rng(1)
    for m, n in [(3, 2), (9, 6)]:
        s = sample_structure(rng, m, n)
        y = torch.tensor(rng.normal(size=(20, m)) * 5)
        w = torch.tensor(rng.normal(size=(20, n)))
        y1, y2 = y.clone().requires_grad_(), y.clone().requires_grad_()
        (FollowerLayer(s)(y1) * w).sum().backward()
        (BiGradFollower(s)(y2) * w).sum().backward()
        torch.testing.assert_close(y2.grad, y1.grad, rtol=1e-9, atol=1e-9)


def test_bigrad_solver_descends_and_is_scored(small_set, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "solver.py").write_text("from baselines.bigrad.solver import Solver as Base\n\n"
                                   "class Solver(Base):\n    iterations = 30\n    rho_every = 10\n")
    record = evaluate_solver(small_set, str(sub), protocol=Protocol(warmup=0, batch_size=8, exact_instances=0))
    assert record["status"] == "complete", record["failures"]
    ds = InstanceSet.open(small_set).split("test")
    # compare with the starting point y = 0: descent must improve the objective on average
    from bilevelbench.families.bqp.score import score_bqp
    start = score_bqp(ds.structure if hasattr(ds, "structure") else InstanceSet.open(small_set).structure,
                      ds.params, ds.labels, np.zeros((len(ds), ds.params["c"].shape[1])), np.ones(len(ds), bool),
                      {}, None, None)
    final = np.array([v if v is not None else np.nan for v in record["per_instance"]["objective"]])
    assert np.nanmean(final) < np.nanmean(start.values["objective"])


def test_more_starts_never_end_worse(small_set):
    """The first start is y = 0 whatever the count, so the best of 4 starts is at most the 1-start answer."""
    from baselines.bigrad.solver import Solver
    from bilevelbench.solvers import TaskSpec

    ds = InstanceSet.open(small_set)
    test = ds.split("test")
    spec = TaskSpec(family="bqp", dataset="t", split="test", n_instances=len(test), structure=ds.structure,
                    param_names=("c", "d"), y_dim=ds.structure.m, z_dim=ds.structure.n)
    values = {}
    for starts in (1, 4):
        solver = type("S", (Solver,), {"starts": starts, "iterations": 30, "rho_every": 10})()
        solver.setup(spec, ds.split("train"))
        assert solver.start_points.shape == (starts, ds.structure.m)
        assert "labels of the train split" in solver.box_source
        np.testing.assert_array_equal(solver.neighbours[1].numpy(), ds.split("train").labels["y"])   # all certified
        y = torch.from_numpy(solver.solve(test.params).y)
        c, d = torch.tensor(test.params["c"]), torch.tensor(test.params["d"])
        values[starts] = solver.problem.penalized(c, d, y, solver.follower(y), 1e5)[0]
    assert torch.all(values[4] <= values[1] + 1e-8 * (1 + values[1].abs()))
