"""PSO and L2O-with-correction on the control co-design families, through the solver contract."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from baselines.pso.solver import Solver as PSO
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.evaluate.evaluator import score_split
from bilevelbench.families.ccd.generate import CCDRequest, generate_ccd
from bilevelbench.solvers import TaskSpec


@pytest.fixture(scope="module", params=["ccd-twotank", "ccd-hvac"])
def small(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "set.h5"
    generate_ccd(CCDRequest(family=request.param, n_train=4, n_valid=0, n_test=3, seed=11), out)
    return InstanceSet.open(out)


def spec_of(ds: InstanceSet) -> TaskSpec:
    test = ds.split("test")
    return TaskSpec(family=ds.family, dataset="small", split="test", n_instances=len(test), structure=ds.structure,
                    param_names=tuple(test.params), y_dim=ds.structure.design_dim, z_dim=0)


class ShortPSO(PSO):
    n_particles = 16
    iterations = 8


class OneIterationPSO(ShortPSO):
    iterations = 1


def test_pso_answers_are_feasible_reproducible_and_improve_with_iterations(small):
    solver = ShortPSO()
    assert solver.skip(spec_of(small)) == (False, None)
    solver.setup(spec_of(small), small.split("train"))
    test = small.split("test")
    first = solver.solve(test.params).y
    again = solver.solve({k: v[1:2] for k, v in test.params.items()}).y
    np.testing.assert_array_equal(first[1:2], again)                # an instance's swarm does not depend on the batch
    score = score_split(small, test.params, test.labels, first, np.ones(len(test), bool), {})
    assert score.feasible.all()
    short = OneIterationPSO()
    short.setup(spec_of(small), None)
    start = score_split(small, test.params, test.labels, short.solve(test.params).y, np.ones(len(test), bool), {})
    # the same swarms (same seeds), 8 iterations against 1: the global best only improves (the swarm's own
    # follower is a warm-started approximation of the evaluator's, hence the 1% slack)
    assert np.all(score.values["objective"] <= start.values["objective"] * 1.01 + 1e-9)
    assert score.values["objective"].mean() < start.values["objective"].mean()


def test_l2o_correction_uses_the_committed_weights_and_improves_on_its_network(small):
    from baselines.l2o_correction.solver import NetworkOnly, Solver

    full, bare = Solver(), NetworkOnly()
    for solver in (full, bare):
        assert solver.skip(spec_of(small)) == (False, None)
        solver.setup(spec_of(small), None)
    test = small.split("test")
    corrected = score_split(small, test.params, test.labels, full.solve(test.params).y, np.ones(len(test), bool), {})
    network = score_split(small, test.params, test.labels, bare.solve(test.params).y, np.ones(len(test), bool), {})
    assert corrected.feasible.all() and network.feasible.all()
    assert corrected.values["violation"].mean() <= network.values["violation"].mean() + 1e-12


@pytest.fixture(scope="module", params=["ccd-twotank", "ccd-hvac"])
def trainable(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param + "-train") / "set.h5"
    generate_ccd(CCDRequest(family=request.param, n_train=48, n_valid=8, n_test=1, seed=5), out)
    return out


def test_converged_training_resumes_keeps_the_best_epoch_and_tunes_its_correction(trainable, tmp_path):
    from baselines.l2o_correction.ccd import TrainOptions, choose_correction, train, tune
    from baselines.l2o_correction.solver import Converged

    ds = InstanceSet.open(trainable)
    out = tmp_path / f"{ds.family}-converged.pt"
    opts = {"seed": 0, "lam": float(ds.structure.kappa), "train_steps": 1, "batch": 24, "patience": 4, "n_valid": 8,
            "choose_test_steps": True, "keep_nonconverged": True, "cold_starts": "family"}
    first = train(trainable, out=out, options=TrainOptions(epochs=1, **opts))
    assert out.with_suffix(".ckpt").is_file()
    second = train(trainable, out=out, options=TrainOptions(epochs=2, **opts))
    assert [h["epoch"] for h in second["history"]] == [1, 2]
    assert second["history"][0] == first["history"][0]                 # epoch 1 was resumed, not retrained
    assert all(np.isfinite(h["valid_objective_network_only"]) for h in second["history"])
    assert second["test_steps"] in {int(k) for k in second["test_step_sweep"]}
    best = tune(out, trainable, n_valid=8, steps_grid=(0, 1, 2))
    meta = __import__("json").loads(out.with_suffix(".json").read_text())
    assert meta["test_steps"] == best["steps"] and best["steps"] in (0, 1, 2)
    lowest = min(r["valid_objective"] for r in meta["correction_sweep"])
    assert lowest <= best["valid_objective"] <= lowest * 1.001
    assert all(r["steps"] >= best["steps"] for r in meta["correction_sweep"] if r["valid_objective"] <= lowest * 1.001)

    class Local(Converged):
        weights_dir = tmp_path

    solver = Local()
    solver.setup(spec_of(ds), None)
    test = ds.split("test")
    y = solver.solve(test.params).y
    assert y.shape == (1, ds.structure.design_dim) and np.isfinite(y).all()
    assert ("of the objective" in solver.version) == (best["correction"] == "objective")

    class OneStep(Local):
        max_test_steps = 1

    fast = OneStep()
    fast.setup(spec_of(ds), None)
    pick = choose_correction(meta["correction_sweep"], max_steps=1)
    assert pick["steps"] <= 1
    assert (fast.steps, fast.gamma, fast.search) == (pick["steps"], pick["gamma"], pick["correction"] == "search")
    assert np.isfinite(fast.solve(test.params).y).all()


def test_search_correction_never_raises_the_methods_objective(trainable):
    """The search's local phase from arbitrary designs: per row, the method's own penalised objective never rises
    and the designs stay in the design set."""
    import torch

    from baselines.l2o_correction.ccd import CCDProblem, search_path

    ds = InstanceSet.open(trainable)
    s = ds.structure
    problem = CCDProblem(ds.family, s, "authors")
    valid = ds.split("valid").params
    tens = problem.tensors(valid)
    n = len(ds.split("valid"))
    rng = np.random.default_rng(0)
    y0 = torch.as_tensor(rng.uniform(0.05, 0.3, (n, s.design_dim)) if ds.family == "ccd-twotank"
                         else rng.uniform(0.0, 3.0, (n, s.design_dim)))
    values = []
    for _, y, u in search_path(problem, y0, tens, 4, 1e-2, float(s.kappa)):
        assert torch.equal(problem.project(y), y)
        v, _ = problem.value(y, tens, u)
        values.append((y.sum(1) + s.kappa * v).numpy())
    values = np.array(values)
    assert np.all(np.diff(values, axis=0) <= 1e-9 * (1 + np.abs(values[:-1])))
    assert values[-1].mean() < values[0].mean()
