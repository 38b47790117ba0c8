"""verify_proxy end to end on problems whose worst case is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.errors import InfeasibleDomainError, UnsupportedLayerError, UsageError
from bilevelbench.verification.attack import AttackSettings
from bilevelbench.verification.graph import Affine, ProxyGraph, Sigmoid
from bilevelbench.verification.run import VerifySettings, recheck, verify_proxy
from tests.verification.synthetic import (
    absolute_value_proxy,
    follower_at_least_sum,
    follower_at_least_x,
    random_proxy,
    shifted_proxy,
)

QUICK = AttackSettings(starts=8, steps=20, step=0.1, seed=0)


def _settings(**kw) -> VerifySettings:
    kw.setdefault("attack", QUICK)
    kw.setdefault("time_limit", 60.0)
    return VerifySettings(**kw)


@pytest.mark.parametrize("method", ["pga", "milp", "both"])
def test_absolute_value_worst_case_is_closed_form(method):
    # x in [-1, 2]: gap |x| - x = 2 max(0, -x), worst at x = -1 with gap 2
    problem = follower_at_least_x(-1.0, 2.0)
    graph = absolute_value_proxy()
    problem.nominal = np.array([0.5])
    block = verify_proxy(problem, graph, graph.forward, _settings(method=method, domain="data"))
    assert block["lower_bound"] == pytest.approx(2.0, abs=1e-7)
    assert block["witness"]["params"]["x"] == pytest.approx([-1.0], abs=1e-7)
    assert block["witness"]["optimal_objective"] == pytest.approx(-1.0, abs=1e-7)
    assert block["witness"]["proxy_objective"] == pytest.approx(1.0, abs=1e-7)
    if method == "pga":
        assert block["upper_bound"] is None and block["status"] == "attack_only"
    else:
        assert block["status"] == "optimal"
        assert block["upper_bound"] == pytest.approx(2.0, abs=1e-6)
    if method == "milp":
        assert block["n_binaries"] >= 1
    if method == "both":        # the attack's witness is optimal: cut at its gap, the bounds fix every unit
        assert block["n_binaries"] == 0 and block["milp"]["obbt_rounds"] == 2


@pytest.mark.parametrize("encoding", ["bigm", "sos1"])
def test_compact_and_kkt_agree_and_kkt_needs_more_binaries(encoding):
    problem = follower_at_least_sum(3)
    graph = random_proxy(3, (8, 8), seed=3)
    kw = dict(method="milp", delta=1.0, encoding=encoding, obbt_rounds=1)
    compact = verify_proxy(problem, graph, graph.forward, _settings(formulation="compact", **kw))
    kkt = verify_proxy(problem, graph, graph.forward, _settings(formulation="kkt", **{**kw, "encoding": "sos1"}))
    assert compact["status"] == kkt["status"] == "optimal"
    assert compact["upper_bound"] == pytest.approx(kkt["upper_bound"], rel=1e-6, abs=1e-6)
    # the KKT model adds one complementarity pair per inequality side and finite bound of the follower: the row
    # y >= sum(x) and the bounds -10 <= y <= 10 (3); the network's units are the same in both
    assert kkt["n_binaries"] - compact["n_binaries"] == 3
    # the second bounding round cuts the compact model at a gap that occurs; the KKT model has no such point
    rounds = verify_proxy(problem, graph, graph.forward, _settings(formulation="compact", **{**kw, "obbt_rounds": 2}))
    assert rounds["upper_bound"] == pytest.approx(compact["upper_bound"], rel=1e-6, abs=1e-6)
    assert rounds["n_binaries"] <= compact["n_binaries"]


def test_upper_bound_dominates_random_sampling():
    problem = follower_at_least_sum(4)
    graph = random_proxy(4, (12, 12), seed=7)
    block = verify_proxy(problem, graph, graph.forward, _settings(method="both", delta=1.0))
    assert block["status"] == "optimal"
    lower, upper = problem.domain("box", 1.0)
    x = lower + (upper - lower) * np.random.default_rng(0).random((2000, 4))
    gaps = problem.gap(problem.answer_value(x, graph.forward(x)), problem.exact_optimum(x))
    assert gaps.max() <= block["upper_bound"] + 1e-6
    assert block["lower_bound"] >= gaps.max() - 1e-6          # proved optimal: nothing sampled beats it
    duals = [d for _, _, d in block["milp"]["bound_history"] if d is not None]
    assert duals and all(b <= a + 1e-9 for a, b in zip(duals, duals[1:], strict=False))   # SCIP's bound only falls
    assert duals[-1] == pytest.approx(block["upper_bound"], abs=1e-6)


def test_witness_is_rechecked_with_the_submissions_own_solve():
    problem = follower_at_least_x(-1.0, 2.0)
    graph = absolute_value_proxy()
    # the submission's solve() answers |x| + 0.25 while its exported graph says |x|
    block = verify_proxy(problem, graph, lambda x: graph.forward(x) + 0.25, _settings(method="both", domain="data"))
    assert block["lower_bound"] == pytest.approx(2.25, abs=1e-7)
    assert any("disagree" in note for note in block["notes"])
    checked = recheck(problem, graph.forward, np.array([-0.5]))
    assert checked["gap"] == pytest.approx(1.0) and checked["optimal_objective"] == pytest.approx(-0.5)


def test_constant_gap_everywhere():
    problem = follower_at_least_x(-1.0, 2.0)
    graph = shifted_proxy(0.5)                     # below the optimum: pays 100 per unit
    block = verify_proxy(problem, graph, graph.forward, _settings(method="both", domain="data"))
    assert block["lower_bound"] == pytest.approx(99 * 0.5, abs=1e-6)
    assert block["upper_bound"] == pytest.approx(99 * 0.5, abs=1e-5)


def test_unsupported_layer_is_named():
    problem = follower_at_least_x()
    graph = ProxyGraph("x", "y", 1, (Affine(np.ones((1, 1)), np.zeros(1)), Sigmoid()), "sigmoid proxy")
    with pytest.raises(UnsupportedLayerError, match=r"layer 1 of the proxy \(sigmoid\) is not piecewise linear"):
        verify_proxy(problem, graph, graph.forward, _settings())


def test_infeasible_domain():
    problem = follower_at_least_x()
    problem.nominal = np.array([20.0])             # y >= x with y <= 10: no x in [18, 22] has an optimum
    graph = absolute_value_proxy()
    with pytest.raises(InfeasibleDomainError, match="no x in the verification domain"):
        verify_proxy(problem, graph, graph.forward, _settings(delta=0.1))


def test_time_limit_gives_both_bounds():
    problem = follower_at_least_sum(6)
    graph = random_proxy(6, (48, 48, 48), seed=11)
    block = verify_proxy(problem, graph, graph.forward,
                         _settings(method="both", delta=2.0, time_limit=1.0))
    assert block["status"] == "time_limit"
    assert block["lower_bound"] is not None and block["upper_bound"] is not None
    assert block["upper_bound"] >= block["lower_bound"]


def test_graph_and_problem_must_match():
    problem = follower_at_least_sum(3)
    graph = random_proxy(2, (4,), seed=0)
    with pytest.raises(UsageError, match="the proxy reads 'x' \\(2 values\\)"):
        verify_proxy(problem, graph, graph.forward, _settings(method="milp"))


def test_bad_settings():
    with pytest.raises(UsageError, match="--method"):
        VerifySettings(method="exhaustive")
    with pytest.raises(UsageError, match="--time-limit"):
        VerifySettings(time_limit=0)
    with pytest.raises(UsageError, match="--delta"):
        follower_at_least_x().domain("box", float("nan"))
