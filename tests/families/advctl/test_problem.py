"""adv-control: the adversary's QP, the exact labels and the oracle against brute-force enumeration (issue 19)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bilevelbench.errors import UsageError
from bilevelbench.families.advctl import problem
from bilevelbench.families.advctl.kkt import ScipKKT
from bilevelbench.families.advctl.oracle import branch_and_bound
from bilevelbench.qp import solve_convex_qp


def small(horizon=2, disturbances=1, seed=3):
    return problem.draw_structure(seed, 2, 1, disturbances, horizon, 0.1, 1.0, 0.3, 0.1, 2.0, 1.05)


def enumerate_active_sets(s, x0, target) -> float:
    """The leader's optimum by brute force: every lower / free / upper pattern of the adversary, each a convex QP
    in (U, W) with the pattern's KKT conditions as linear constraints."""
    nc, nd, w = s.n_controls, s.n_disturbances, s.w_max
    G = np.hstack([s.gu, s.gw])
    free = s.phi @ x0
    P = 2 * G.T @ G
    P[:nc, :nc] += 2 * s.r * np.eye(nc)
    rows = np.hstack([s.gw.T @ s.gu, s.follower_hessian])
    g0 = problem.follower_linear(s, x0, target, np.zeros(nc))
    best = np.inf
    for pattern in itertools.product((-1, 0, 1), repeat=nd):
        pattern = np.array(pattern)
        lo = np.concatenate([np.full(nc, -s.u_max), np.where(pattern == 1, w, -w)])
        hi = np.concatenate([np.full(nc, s.u_max), np.where(pattern == -1, -w, w)])
        r_lo = np.where(pattern == 1, -np.inf, 0.0) + g0
        r_hi = np.where(pattern == -1, np.inf, 0.0) + g0
        res = solve_convex_qp(P, 2 * G.T @ free, rows, r_lo, r_hi, lo, hi, offset=float(free @ free))
        if res.optimal:
            best = min(best, res.objective)
    return best


def test_box_qp_agrees_with_highs():
    s = small(horizon=4, disturbances=2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x0, target = rng.uniform(-2, 2, (2, s.nx))
        U = rng.uniform(-1, 1, s.n_controls)
        g = problem.follower_linear(s, x0, target, U)
        w, ok = problem.box_qp(s.follower_hessian, g, s.w_max)
        assert ok
        np.testing.assert_allclose(w, problem.follower_highs(s, g), atol=1e-7)


def test_the_adversary_pushes_against_its_bounds_at_the_defaults():
    s = small(horizon=5, disturbances=2)
    rng = np.random.default_rng(1)
    d = problem.sample_instances(s, rng, 10)
    W = problem.follower_response(s, d["x0"], d["target"], np.zeros((10, s.n_controls)))
    assert np.mean(np.isclose(np.abs(W), s.w_max)) > 0.5


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_labels_and_oracle_agree_with_enumeration(seed):
    s = small(horizon=2, disturbances=2, seed=seed)
    d = problem.sample_instances(s, np.random.default_rng(seed), 4)
    kkt = ScipKKT(s)
    for x0, target in zip(d["x0"], d["target"]):
        truth = enumerate_active_sets(s, x0, target)
        res = kkt.solve(x0, target, 60)
        label = float(problem.true_cost(s, x0, target, res.U)[0][0])
        assert res.status == "optimal" and res.dual_bound <= truth + 1e-7 * max(1.0, truth)
        assert label == pytest.approx(truth, rel=1e-6, abs=1e-9)
        oracle = branch_and_bound(s, x0, target, rel_gap=1e-9)
        assert oracle.closed and oracle.objective == pytest.approx(truth, rel=1e-7, abs=1e-9)


def test_the_differentiated_adversary_changes_the_leader_cost():
    """Not zero-sum: the leader's cost moves with the adversary's answer at its optimum (dJ/dW != 0)."""
    s = small(horizon=3, disturbances=1)
    x0, target = np.array([1.0, -1.0]), np.array([-1.5, 1.5])
    U = np.zeros(s.n_controls)
    W = problem.follower_response(s, x0, target, U)[0]
    X = problem.states(s, x0, U, W)
    assert np.linalg.norm(2 * s.gw.T @ X) > 1e-3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"gamma_factor": 0.0}, "--gamma-factor must be a positive number"),
    ({"horizon": 0}, "--horizon must be at least 1"),
    ({"horizon": 31}, "the exact certifier is offered at most 60"),
    ({"u_max": float("nan")}, "u_max must be a positive number"),
    ({"states": 0}, "--states must be at least 1"),
])
def test_bad_structure_arguments(kwargs, message):
    args = {"seed": 0, "states": 2, "controls": 1, "disturbances": 2, "horizon": 3, "r": 0.1, "u_max": 1.0,
            "w_max": 0.3, "gamma_factor": 0.1, "x0_max": 2.0, "spectral_radius": 1.05, **kwargs}
    with pytest.raises(UsageError, match=message):
        problem.draw_structure(**args)


def test_nan_matrices_are_refused():
    s = small()
    with pytest.raises(UsageError, match="A holds NaN or inf"):
        problem.AdvStructure(np.full((2, 2), np.nan), s.B, s.D, 2, 0.1, 1.0, 0.3, 1.0, 2.0)


def test_the_oracle_dual_bound_is_valid_and_tight():
    """The fallback node bound (OSQP's multipliers in the Lagrangian dual, the box minimised exactly) never exceeds
    HiGHS's optimum of the same node QP and is within 1e-6 of it."""
    from bilevelbench.families.advctl.oracle import dual_bound

    rng = np.random.default_rng(7)
    for _ in range(5):
        n, k = 8, 4
        G = rng.standard_normal((10, n))
        P = G.T @ G + 0.1 * np.eye(n)
        c, A = rng.standard_normal(n), rng.standard_normal((k, n))
        z0 = rng.uniform(-0.5, 0.5, n)                       # a feasible point inside the box
        r_lo, r_hi = A @ z0 - rng.uniform(0, 1, k), A @ z0 + rng.uniform(0, 1, k)
        lo, hi = -np.ones(n), np.ones(n)
        exact = solve_convex_qp(P, c, A, r_lo, r_hi, lo, hi, offset=2.0)
        z, bound = dual_bound(P, c, A, r_lo, r_hi, lo, hi, 2.0)
        assert exact.optimal and bound <= exact.objective + 1e-9
        assert bound == pytest.approx(exact.objective, abs=1e-6)
        assert np.all((z >= lo) & (z <= hi))
