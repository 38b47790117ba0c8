"""Worst-case verification on knapsack: an integer follower (compact formulation only) and a greedy repair layer."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import UsageError
from bilevelbench.testing.contract import run_cli
from bilevelbench.verification.attack import AttackSettings
from bilevelbench.verification.graph import Affine, GreedyRepair, ProxyGraph, ReLU
from bilevelbench.verification.run import VerifySettings, verify_proxy


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("knapsack-verify") / "k.h5"
    res = run_cli("generate", "knapsack", "--items", "8", "--constraints", "2", "--n-train", "30", "--n-test", "3",
                  "--seed", "2", "--out", str(path))
    assert res.rc == 0, res.err
    return path


def _random_proxy(s, seed: int) -> ProxyGraph:
    rng = np.random.default_rng(seed)
    m, n = s.weight.shape
    scale = 1.0 / s.weight.sum(1)
    layers = (Affine(rng.normal(size=(10, m)) * scale * 4, rng.normal(size=10)), ReLU(),
              Affine(rng.normal(size=(n, 10)), rng.normal(size=n) + 0.5),
              GreedyRepair(s.weight.astype(float), np.eye(m), np.zeros(m)))
    return ProxyGraph("capacity", "y", m, layers, "random greedy proxy")


def test_worst_case_is_proved_and_reached(small_set):
    ds = InstanceSet.open(small_set)
    problem = ds.family_descriptor.verification_problem(ds)
    graph = _random_proxy(ds.structure, seed=4)
    settings = VerifySettings(method="both", delta=0.3, time_limit=120, attack=AttackSettings(starts=8, steps=10))
    block = verify_proxy(problem, graph, graph.forward, settings)
    assert block["status"] == "optimal" and block["formulation"] == "compact"
    # the lower bound is a re-checked point: the perturbations around the MILP's point reach the proved optimum
    assert block["lower_bound"] == pytest.approx(block["upper_bound"], abs=1e-6)
    assert block["witness"]["proxy_feasible"] is True
    lower, upper = problem.domain("box", 0.3)
    x = lower + (upper - lower) * np.random.default_rng(0).random((150, lower.size))
    gaps = problem.gap(problem.answer_value(x, graph.forward(x)), problem.exact_optimum(x))
    assert np.all(gaps >= -1e-9) and gaps.max() <= block["upper_bound"] + 1e-6


def test_kkt_needs_a_linear_follower(small_set):
    ds = InstanceSet.open(small_set)
    problem = ds.family_descriptor.verification_problem(ds)
    graph = _random_proxy(ds.structure, seed=1)
    with pytest.raises(UsageError, match="KKT formulation needs a linear-programming follower"):
        verify_proxy(problem, graph, graph.forward, VerifySettings(method="milp", formulation="kkt"))


def test_an_infeasible_answer_is_reported(small_set):
    ds = InstanceSet.open(small_set)
    problem = ds.family_descriptor.verification_problem(ds)
    graph = _random_proxy(ds.structure, seed=2)
    everything = lambda x: np.ones((len(x), ds.structure.n_items))          # noqa: E731  (over capacity)
    block = verify_proxy(problem, graph, everything, VerifySettings(method="pga", delta=0.1,
                                                                     attack=AttackSettings(starts=4, steps=2)))
    assert block["witness"]["proxy_feasible"] is False
    assert any("infeasible" in note for note in block["notes"])
