"""The dcopf_proxy baseline: a short training run on a tiny case14 set (reproducible, weights loadable with
weights_only=True), then ``bilevelbench evaluate`` on it with no balance or generator-limit violations, and a
clear error where no weights match."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.dcopf_proxy.solver import Solver, find_weights
from baselines.dcopf_proxy.train import build_parser, train
from bilevelbench.cli import main
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import MissingDataError
from bilevelbench.solvers import TaskSpec


def quick_args(dataset, weights_dir, *extra):
    return build_parser().parse_args(["--dataset", str(dataset), "--epochs", "2", "--batch-size", "8",
                                      "--hidden", "16,16", "--weights-dir", str(weights_dir), "-q", *extra])


def test_train_then_evaluate(case14_set, tmp_path, capsys):
    weights = tmp_path / "weights"
    out = train(quick_args(case14_set, weights))
    assert out == weights / "dcopf-case14-tiny.pt"
    blob = torch.load(out, weights_only=True)
    meta = blob["meta"]
    ds = InstanceSet.open(case14_set)
    assert meta["structure_hash"] == ds.structure.digest() and meta["method"] == "dcopf_proxy"
    assert meta["hidden"] == [16, 16] and meta["train_instances"] == 20 and meta["selected_epoch"] in (1, 2)
    assert meta["train_seconds"] > 0 and len(meta["dataset_sha256"]) == 64 and meta["torch"]
    record = json.loads(out.with_suffix(".json").read_text())
    assert [h["epoch"] for h in record["history"]] == [1, 2] and np.isfinite(record["valid"]["gap_mean"])
    assert find_weights(ds.structure.digest(), weights) == out

    # the same command gives the same weights
    again = train(quick_args(case14_set, tmp_path / "again"))
    state = torch.load(again, weights_only=True)["state_dict"]
    assert all(torch.equal(state[k], v) for k, v in blob["state_dict"].items())

    # the evaluator, in its sandbox, on a solver pointed at the tmp weights
    solver_file = tmp_path / "proxy_tmp.py"
    solver_file.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from baselines.dcopf_proxy.solver import Solver as _Proxy

        class Solver(_Proxy):
            weights_dir = Path({str(weights)!r})
        """))
    result = tmp_path / "proxy.json"
    assert main(["-q", "evaluate", "--dataset", str(case14_set), "--solver", str(solver_file), "--out", str(result),
                 "--exact-instances", "0", "--warmup", "1"]) == 0
    rec = json.loads(result.read_text())
    m = rec["metrics"]
    assert rec["status"] == "complete" and rec["solver"]["name"] == "dcopf-proxy"
    assert m["balance_violation_rate"] == 0.0 and m["generator_violation_rate"] == 0.0
    assert m["feasible_rate"] == 1.0 and np.isfinite(m["gap_mean"])
    capsys.readouterr()


def test_solver_in_process_and_missing_weights(case14_set, tmp_path):
    ds = InstanceSet.open(case14_set)
    s = ds.structure
    spec = TaskSpec(family="dcopf", dataset="tiny", split="test", n_instances=12, structure=s,
                    param_names=("pd",), y_dim=s.n_gen, z_dim=0)
    solver = Solver()
    solver.weights_dir = tmp_path                       # empty: a clear error naming what exists
    with pytest.raises(MissingDataError, match="no dcopf_proxy weights .* available: none"):
        solver.setup(spec, None)
    train(quick_args(case14_set, tmp_path, "--epochs", "1", "--out", str(tmp_path / "other.pt")))
    blob = torch.load(tmp_path / "other.pt", weights_only=True)
    blob["meta"]["structure_hash"] = "f" * 64           # weights of some other grid
    torch.save(blob, tmp_path / "other.pt")
    with pytest.raises(MissingDataError, match=r"available: other.pt \(.*ffffffffffff"):
        solver.setup(spec, None)
    blob["meta"]["structure_hash"] = s.digest()
    torch.save(blob, tmp_path / "other.pt")
    solver.setup(spec, None)
    pd = ds.split("test").params["pd"]
    pg = np.asarray(solver.solve({"pd": pd}).y)
    assert pg.shape == (len(pd), s.n_gen)
    assert np.all(np.abs(s.balance_residual(pg, pd)) <= 1e-9 * pd.sum(1)) and np.all(s.bound_violation(pg) == 0)
    assert solver.skip(spec) == (False, None)
    other = TaskSpec(family="bqp", dataset="x", split="test", n_instances=1, structure=None, param_names=("c",),
                     y_dim=1, z_dim=1)
    assert solver.skip(other)[0] is True


@pytest.mark.parametrize("clamp", ["sigmoid", "hard"])
def test_exported_graph_is_the_function_solve_computes(case14_set, tmp_path, clamp):
    from baselines.dcopf_proxy.solver import VerifiableSolver

    train(quick_args(case14_set, tmp_path, "--clamp", clamp, "--out", str(tmp_path / f"{clamp}.pt")))
    ds = InstanceSet.open(case14_set)
    s = ds.structure
    spec = TaskSpec(family="dcopf", dataset="tiny", split="test", n_instances=12, structure=s,
                    param_names=("pd",), y_dim=s.n_gen, z_dim=0)
    solver = VerifiableSolver() if clamp == "hard" else Solver()
    solver.weights_dir = tmp_path
    solver.setup(spec, None)
    assert solver.weights_path.name == f"{clamp}.pt"            # each solver picks the weights of its clamp
    graph = solver.export_graph(spec)
    kinds = [layer.kind for layer in graph.layers]
    assert ("sigmoid" in kinds) == (clamp == "sigmoid") and kinds[-1] == "shift_clip"
    pd = np.asarray(ds.split("test").params["pd"], float) * np.random.default_rng(0).uniform(0.9, 1.1, (1, s.n_bus))
    np.testing.assert_allclose(graph.forward(pd), solver.solve({"pd": pd}).y, atol=1e-3)   # float32 MLP in solve
