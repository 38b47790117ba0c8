"""The knapsack_proxy baseline: a short reproducible training run (weights load with weights_only=True), every
answer feasible, export_graph computing exactly what solve computes, and a clear error where no weights match."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.knapsack_proxy.solver import Solver, find_weights
from baselines.knapsack_proxy.train import KnapsackMLP, build_parser, train
from bilevelbench.cli import main
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import MissingDataError, UsageError
from bilevelbench.families.knapsack.generate import KnapsackRequest, generate_knapsack
from bilevelbench.solvers import TaskSpec
from bilevelbench.verification.graph import Affine, GreedyRepair, ProxyGraph, ReLU


@pytest.fixture(scope="module")
def ks_set(tmp_path_factory):
    """12 items, 2 constraints: 60 train, 20 valid, 40 test, every label certified."""
    out = tmp_path_factory.mktemp("knapsack") / "knapsack-small.h5"
    return generate_knapsack(KnapsackRequest(items=12, constraints=2, n_train=60, n_valid=20, n_test=40, seed=5),
                             out, name="knapsack-small")


@pytest.fixture(scope="module")
def trained(ks_set, tmp_path_factory):
    weights = tmp_path_factory.mktemp("weights")
    return train(quick_args(ks_set, weights)), weights


def quick_args(dataset, weights_dir, *extra):
    return build_parser().parse_args(["--dataset", str(dataset), "--epochs", "4", "--batch-size", "16",
                                      "--weights-dir", str(weights_dir), "-q", *extra])


def spec_of(ds: InstanceSet) -> TaskSpec:
    return TaskSpec("knapsack", "knapsack-small", "test", len(ds.split("test")), ds.structure, ("capacity",),
                    ds.structure.n_items, 0)


def solver_for(ds: InstanceSet, weights) -> Solver:
    solver = Solver()
    solver.weights_dir = weights
    solver.setup(spec_of(ds), None)
    return solver


def test_training_writes_loadable_reproducible_weights(ks_set, trained, tmp_path):
    out, weights = trained
    assert out == weights / "knapsack-small.pt"
    blob = torch.load(out, weights_only=True)
    meta = blob["meta"]
    ds = InstanceSet.open(ks_set)
    assert meta["structure_hash"] == ds.structure.digest() and meta["method"] == "knapsack_proxy"
    assert meta["hidden"] == [32, 32] and meta["train_instances"] == 60 and 1 <= meta["selected_epoch"] <= 4
    record = json.loads(out.with_suffix(".json").read_text())
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3, 4]
    kept = record["history"][meta["selected_epoch"] - 1]["valid_gap_mean"]
    assert kept == pytest.approx(min(h["valid_gap_mean"] for h in record["history"]), rel=1e-5)
    assert record["valid"]["feasible_rate"] == 1.0
    assert find_weights(ds.structure.digest(), weights) == out
    again = train(quick_args(ks_set, tmp_path / "again"))
    state = torch.load(again, weights_only=True)["state_dict"]
    assert all(torch.equal(state[k], v) for k, v in blob["state_dict"].items())


def test_answers_are_binary_and_feasible_even_for_odd_capacities(ks_set, trained):
    ds = InstanceSet.open(ks_set)
    solver = solver_for(ds, trained[1])
    s = ds.structure
    rng = np.random.default_rng(0)
    capacity = np.vstack([ds.params["capacity"], rng.uniform(0, 2, (50, 2)) * s.weight.sum(1),
                          np.zeros((1, 2)), np.array([[0.5, 1e9]]), np.full((1, 2), 1e12)])
    y = solver.solve({"capacity": capacity}).y
    assert set(np.unique(y)) <= {0.0, 1.0}
    assert np.all(y @ s.weight.T <= capacity)
    assert not y[-3].any() and not y[-2].any()                 # nothing fits in a capacity below 1
    with pytest.raises(UsageError, match="expected 2"):
        solver.solve({"capacity": np.ones((1, 3))})


def test_export_graph_computes_what_solve_computes(ks_set, trained):
    ds = InstanceSet.open(ks_set)
    solver = solver_for(ds, trained[1])
    graph = solver.export_graph(spec_of(ds))
    assert [type(layer) for layer in graph.layers] == [Affine, ReLU, Affine, ReLU, Affine, GreedyRepair]
    assert graph.input == "capacity" and graph.output == "y" and graph.n_inputs == 2 and graph.n_outputs == 12
    repair = graph.layers[-1]
    np.testing.assert_array_equal(repair.weight, ds.structure.weight)
    np.testing.assert_array_equal(repair.capacity_weight, np.eye(2))
    np.testing.assert_array_equal(repair.capacity_offset, np.zeros(2))
    graph.check_supported()
    capacity = ds.split("test").params["capacity"]
    np.testing.assert_array_equal(graph.forward(capacity), solver.solve({"capacity": capacity}).y)
    # the folded first layer gives the network's scores: compare before the repair with the torch model
    state = torch.load(solver.weights_path, weights_only=True)["state_dict"]
    model = KnapsackMLP(state["x_mean"].numpy(), state["x_std"].numpy(), 12, [32, 32])
    model.load_state_dict(state)
    z_graph = ProxyGraph("capacity", "z", 2, graph.layers[:-1]).forward(capacity)
    with torch.no_grad():
        z_torch = model(torch.tensor(capacity)).double().numpy()
    np.testing.assert_allclose(z_graph, z_torch, atol=1e-4)
    assert ProxyGraph.from_dict(json.loads(json.dumps(graph.to_dict()))).forward(capacity).tolist() == \
        graph.forward(capacity).tolist()


def test_evaluate_scores_every_answer_feasible(ks_set, trained, tmp_path):
    solver_file = tmp_path / "proxy_tmp.py"
    solver_file.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from baselines.knapsack_proxy.solver import Solver as _Proxy

        class Solver(_Proxy):
            weights_dir = Path({str(trained[1])!r})
        """))
    result = tmp_path / "proxy.json"
    assert main(["-q", "evaluate", "--dataset", str(ks_set), "--solver", str(solver_file), "--out", str(result),
                 "--exact-instances", "0", "--warmup", "1"]) == 0
    m = json.loads(result.read_text())["metrics"]
    assert m["feasible_rate"] == 1.0 and m["n_scored"] == 40 and m["capacity_violated_rate"] == 0.0
    assert m["non_binary_rate"] == 0.0 and 0.0 <= m["gap_mean"] <= m["gap_max"] <= 1.0


def test_missing_weights_and_other_families_are_refused(ks_set, tmp_path):
    ds = InstanceSet.open(ks_set)
    solver = Solver()
    solver.weights_dir = tmp_path
    with pytest.raises(MissingDataError, match="no knapsack_proxy weights.*available: none"):
        solver.setup(spec_of(ds), None)
    skip, reason = solver.skip(TaskSpec("dcopf", "x", "test", 1, None, ("pd",), 3, 0))
    assert skip and "knapsack only" in reason


def test_training_refuses_another_family(small_set, tmp_path):
    """``small_set`` is the shared bqp fixture of tests/conftest.py."""
    with pytest.raises(UsageError, match="holds family 'bqp'; knapsack_proxy trains on knapsack"):
        train(quick_args(small_set, tmp_path))


def test_committed_weights_export_exactly_what_they_solve_on_the_released_test_split():
    """knapsack-20x2's structure and test capacities follow from its spec alone (no labels needed): the committed
    weights match its structure, and their graph gives the same 0/1 answers as solve on all 500 test instances."""
    from pathlib import Path

    from bilevelbench.data.spec import load_spec
    from bilevelbench.families.knapsack.generate import draws_for, structure_for

    spec = load_spec(Path(__file__).resolve().parents[2] / "datasets" / "knapsack-20x2.toml")
    o = spec.options
    request = KnapsackRequest(items=o["items"], constraints=o["constraints"], n_train=spec.n_train,
                              n_valid=spec.n_valid, n_test=spec.n_test, seed=spec.seed,
                              capacity_ratio=tuple(o["capacity_ratio"]), weight_max=o["weight_max"])
    s = structure_for(request)
    capacity = draws_for(request, s, 2)
    task = TaskSpec("knapsack", "knapsack-20x2", "test", capacity.shape[0], s, ("capacity",), s.n_items, 0)
    solver = Solver()
    solver.setup(task, None)
    y = solver.solve({"capacity": capacity}).y
    np.testing.assert_array_equal(solver.export_graph(task).forward(capacity), y)
    assert capacity.shape == (500, 2) and np.all(y @ s.weight.T <= capacity) and 0 < y.mean() < 1
