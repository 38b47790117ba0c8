"""Worst-case verification on dcopf: the family's problem, a random piecewise-linear proxy, the command line."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.testing.contract import run_cli
from bilevelbench.verification.attack import AttackSettings
from bilevelbench.verification.run import VerifySettings, verify_proxy

SOLVER_FILE = textwrap.dedent('''
    import numpy as np
    from bilevelbench.solvers import Prediction, Solver
    from bilevelbench.verification.graph import Affine, Clamp, ProxyGraph, ReLU, ShiftClip, Sigmoid

    def random_graph(s, seed=0, smooth=False):
        rng = np.random.default_rng(seed)
        width = s.pmax - s.pmin
        scale = 1.0 / np.maximum(s.pd_ref, 1.0)
        layers = [Affine(rng.normal(size=(12, s.n_bus)) * scale, rng.normal(size=12)), ReLU(),
                  Affine(rng.normal(size=(s.n_gen, 12)), rng.normal(size=s.n_gen))]
        if smooth:
            layers += [Sigmoid(), Affine(np.diag(width), s.pmin)]
        else:
            layers += [Affine(np.diag(0.25 * width), s.pmin + 0.5 * width), Clamp(s.pmin, s.pmax)]
        layers.append(ShiftClip(s.pmin, s.pmax, np.ones(s.n_bus), float(np.sum(s.gs))))
        return ProxyGraph("pd", "pg", s.n_bus, tuple(layers), "random test proxy")

    class Solver(Solver):
        name, version = "random-pwl", "1"
        smooth = False

        def setup(self, spec, train_set):
            self.graph = random_graph(spec.structure, smooth=self.smooth)

        def solve(self, params):
            return Prediction(y=self.graph.forward(params["pd"]))

        def export_graph(self, spec):
            return self.graph

    class Smooth(Solver):
        name = "random-sigmoid"
        smooth = True

    class Silent(Solver):
        export_graph = None
''')


@pytest.fixture(scope="module")
def case14(tmp_path_factory):
    work = tmp_path_factory.mktemp("dcopf-verify")
    path = work / "case14.h5"
    res = run_cli("generate", "dcopf", "--case", "case14", "--n-train", "20", "--n-test", "4", "--seed", "3",
                  "--out", str(path))
    assert res.rc == 0, res.err
    solver = work / "random_solver.py"
    solver.write_text(SOLVER_FILE)
    return path, solver


def test_problem_prices_answers_as_the_family_does(case14):
    path, _ = case14
    ds = InstanceSet.open(path)
    problem = ds.family_descriptor.verification_problem(ds)
    s = ds.structure
    pd = np.asarray(ds.split("test").params["pd"], float)
    rng = np.random.default_rng(0)
    pg = s.pmin + (s.pmax - s.pmin) * rng.random((len(pd), s.n_gen))
    np.testing.assert_allclose(problem.answer(pd, pg), s.objective(pg, pd), rtol=1e-10)
    # Phi from the PTDF program equals the certified labels (angle formulation)
    from bilevelbench.verification.value import ProgramValue

    phi, _ = ProgramValue(problem.program).value(pd)
    np.testing.assert_allclose(phi, ds.split("test").labels["objective"], rtol=1e-8)
    np.testing.assert_allclose(problem.exact_optimum(pd), ds.split("test").labels["objective"], rtol=1e-9)


def test_upper_bound_dominates_sampled_gaps(case14):
    path, solver_path = case14
    ds = InstanceSet.open(path)
    problem = ds.family_descriptor.verification_problem(ds)
    module_graph = _random_graph(solver_path, ds.structure)
    settings = VerifySettings(method="both", delta=0.2, time_limit=120,
                              attack=AttackSettings(starts=16, steps=30))
    block = verify_proxy(problem, module_graph, module_graph.forward, settings)
    assert block["status"] == "optimal"
    lower, upper = problem.domain("box", 0.2)
    x = lower + (upper - lower) * np.random.default_rng(1).random((300, lower.size))
    gaps = problem.gap(problem.answer_value(x, module_graph.forward(x)), problem.exact_optimum(x))
    assert np.all(gaps >= -1e-6)
    assert gaps.max() <= block["upper_bound"] + 1e-6 * (1 + abs(block["witness"]["optimal_objective"]))
    assert block["lower_bound"] >= gaps.max() - 1e-6 * (1 + abs(block["witness"]["optimal_objective"]))
    assert block["relative_lower_bound"] == pytest.approx(block["lower_bound"] / block["witness"]["optimal_objective"])
    assert block["pga"]["gap"] <= block["upper_bound"] + 1e-6


def _random_graph(solver_path, structure):
    import importlib.util

    spec = importlib.util.spec_from_file_location("random_solver_graph", solver_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.random_graph(structure)


def test_cli_writes_the_record(case14, tmp_path):
    path, solver = case14
    out = tmp_path / "wc.json"
    res = run_cli("verify-proxy", "--dataset", str(path), "--solver", f"{solver}:Solver", "--delta", "0.1",
                  "--time-limit", "120", "--starts", "8", "--steps", "10", "--out", str(out))
    assert res.rc == 0, res.err
    assert "worst-case gap found" in res.out and "certified upper bound" in res.out
    record = json.loads(out.read_text())
    wc = record["worst_case"]
    for key in ("lower_bound", "upper_bound", "relative_lower_bound", "relative_upper_bound", "status", "method",
                "formulation", "delta", "time_s", "n_binaries", "n_variables"):
        assert key in wc, key
    assert wc["units"] == "$/h" and wc["method"] == "both" and wc["delta"] == 0.1
    assert set(wc["witness"]) == {"source", "params", "proxy_solution", "proxy_objective", "proxy_feasible",
                                  "optimal_objective"}
    assert wc["witness"]["proxy_feasible"] is True
    assert len(wc["witness"]["params"]["pd"]) == 14 and len(wc["witness"]["proxy_solution"]["pg"]) == 5
    assert wc["upper_bound"] >= wc["lower_bound"] >= 0


def test_cli_names_an_unsupported_layer(case14):
    path, solver = case14
    res = run_cli("verify-proxy", "--dataset", str(path), "--solver", f"{solver}:Smooth", "--method", "pga")
    assert res.rc == 2
    assert "layer 3 of the proxy (sigmoid) is not piecewise linear" in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_cli_refuses_a_solver_without_export(case14):
    path, solver = case14
    res = run_cli("verify-proxy", "--dataset", str(path), "--solver", f"{solver}:Silent")
    assert res.rc == 2 and "does not export its network" in res.err
