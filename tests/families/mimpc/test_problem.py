"""The mixed-integer MPC models against hand-written simulations and brute-force enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bilevelbench.errors import UsageError
from bilevelbench.families.mimpc import problem as mimpc
from bilevelbench.families.mimpc.certify import MIQPCertifierSettings, certify_miqp
from bilevelbench.families.mimpc.miqp import objective, row_residual, solve_fixed_integers


def tank_cost_by_hand(cfg: mimpc.TankConfig, x0, d, u, delta) -> tuple[float, np.ndarray]:
    """Simulate the tank step by step and add up the cost exactly as the paper writes it."""
    A, r = np.array(cfg.A), np.array(cfg.reference)
    x, cost, states = np.array(x0, float), 0.0, []
    for k in range(cfg.horizon):
        cost += np.sum((x - r) ** 2) + cfg.r_weight * np.sum(u[k] ** 2) + cfg.rho * delta[k] ** 2
        x = A @ x + cfg.b_u * u[k] + np.array(cfg.b_delta) * delta[k] + cfg.e * d[k]
        states.append(x)
    return cost + np.sum((x - r) ** 2), np.array(states)


def test_tank_objective_and_rows_match_a_hand_simulation():
    cfg = mimpc.TankConfig(horizon=3)
    s = mimpc.tank_structure(cfg)
    assert (s.n, s.p, s.n_integer) == (9, 8, 3)
    x0, d = np.array([4.0, 1.0]), np.array([[1.0, 0.0], [2.0, 5.0], [0.5, 0.0]])
    u, delta = np.array([[1.0, 2.0], [0.0, 3.0], [4.0, 0.5]]), np.array([1.0, 2.0, 2.0])
    x = np.concatenate([u.ravel(), delta])
    theta = np.concatenate([x0, d.ravel()])
    cost, states = tank_cost_by_hand(cfg, x0, d, u, delta)
    assert objective(s, x, theta)[0] == pytest.approx(cost, rel=1e-12)
    res = row_residual(s, x, theta)[0]
    state_rows = res[s.row_class == s.class_names.index("state")]
    # rows per step: x <= x_max (2), -x <= 0 (2)
    expected = np.concatenate([np.concatenate([st - np.array(cfg.x_max), -st]) for st in states])
    np.testing.assert_allclose(state_rows, expected, atol=1e-12)
    ramp = res[s.row_class == s.class_names.index("ramp")]
    np.testing.assert_allclose(ramp, [1 - 1, -1 - 1, 0 - 1, 0 - 1])


def test_tank_certified_optimum_equals_brute_force_enumeration():
    cfg = mimpc.TankConfig(horizon=3)
    s = mimpc.tank_structure(cfg)
    theta = np.concatenate([[2.0, 0.4], [3.0, 0.0, 1.0, 9.0, 0.5, 9.0]])
    best = np.inf
    for combo in itertools.product(range(4), repeat=3):
        if max(abs(combo[1] - combo[0]), abs(combo[2] - combo[1])) > 1:
            continue
        sol = solve_fixed_integers(s, theta, np.array(combo, float))
        if sol.status == "optimal":
            best = min(best, sol.objective)
    label = certify_miqp(s, theta, MIQPCertifierSettings(backend="scip", time_limit=60))
    assert label.status == "certified_optimal"
    assert label.objective == pytest.approx(best, rel=1e-7)
    assert label.checks["rel_gap"] <= 1e-6


def test_robot_objective_dynamics_and_obstacle_rows_by_hand():
    cfg = mimpc.RobotConfig(horizon=2)
    s = mimpc.robot_structure(cfg)
    assert (s.n, s.p, s.n_integer) == (4 + 24, 6, 24)
    p0, v0, goal = np.array([2.5, 0.2]), np.array([-0.4, 0.1]), np.array([2.6, -2.0])
    a = np.array([[0.5, -0.5], [0.1, 0.2]])
    b = np.zeros(24)
    tau = cfg.tau
    p1 = p0 + tau * v0 + 0.5 * tau**2 * a[0]
    v1 = v0 + tau * a[0]
    p2 = p1 + tau * v1 + 0.5 * tau**2 * a[1]
    cost = np.sum(a**2) + np.sum((p0 - goal) ** 2) + np.sum((p1 - goal) ** 2) + 10 * np.sum((p2 - goal) ** 2)
    theta = np.concatenate([p0, v0, goal])
    x = np.concatenate([a.ravel(), b])
    assert objective(s, x, theta)[0] == pytest.approx(cost, rel=1e-12)
    res = row_residual(s, x, theta)[0]
    obstacle = res[s.row_class == s.class_names.index("obstacle")]
    # step 1, obstacle 0 (centre (1, 0), half-sizes (0.8, 1.0)), side +x: p_x - 1 >= 0.8 + 0.25
    assert obstacle[0] == pytest.approx((0.8 + 0.25) - (p1[0] - 1.0))
    # relaxing that side with b = 1 adds the problem's own big-M
    x_relaxed = x.copy()
    x_relaxed[4] = 1.0
    assert row_residual(s, x_relaxed, theta)[0][s.row_class == 1][0] == pytest.approx(obstacle[0] - cfg.big_m)
    disjunction = res[s.row_class == s.class_names.index("disjunction")]
    assert disjunction.shape == (6,) and np.all(disjunction == -3)
    assert s.integer_only_classes == ("disjunction",)


def test_samplers_respect_free_space_and_bounds():
    rng = np.random.default_rng(0)
    theta = mimpc.robot_sample(rng, 200)
    cfg = mimpc.RobotConfig()
    centres, half = np.array(cfg.obstacle_centres), np.array(cfg.obstacle_half_sizes)
    for pts, margin in ((theta[:, :2], cfg.d_min), (theta[:, 4:], cfg.d_min + 0.1)):
        inside = np.all(np.abs(pts[:, None] - centres) < half + margin, axis=2).any(1)
        assert not inside.any()
    assert np.all(np.abs(theta[:, 2:4]) <= cfg.v_max)
    tank = mimpc.tank_sample(rng, 200)
    assert tank.shape == (200, 42) and np.all(tank[:, :2] >= 0) and np.all(tank[:, :2] <= [8.4, 3.6])
    assert np.all(tank[:, 2::2] >= 0) and np.all(tank[:, 2::2] <= 7) and np.all(tank[:, 3::2] >= 0)


def test_authors_geometry_two_bit_code_enforces_exactly_the_chosen_side():
    """The authors' robot: their half-sizes and box, and for each value of the two bits exactly one side of
    the obstacle binds (the other three rows are relaxed by at least the big-M)."""
    cfg = mimpc.AUTHORS_ROBOT
    assert cfg.obstacle_half_sizes == ((0.2, 0.25), (0.25, 0.2), (0.2, 0.25)) and cfg.box_hi == (2.0, 0.5)
    s = mimpc.robot_structure(mimpc.RobotConfig(horizon=1, box_hi=cfg.box_hi,
                                                obstacle_half_sizes=cfg.obstacle_half_sizes, side_binaries=2))
    assert (s.n, s.n_integer) == (2 + 6, 6) and s.integer_only_classes == ()
    theta = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])      # at the centre of obstacle 0, at rest
    obstacle = s.row_class == s.class_names.index("obstacle")
    reach = np.array([0.2, 0.25, 0.2, 0.25]) + cfg.d_min
    for (bit_b, bit_c), side in (((0, 0), 0), ((1, 0), 1), ((0, 1), 2), ((1, 1), 3)):
        x = np.zeros(8)
        x[2:4] = [bit_b, bit_c]                              # obstacle 0's bits at step 1
        res = row_residual(s, x, theta)[0][obstacle][:4]     # its four side rows
        assert res[side] == pytest.approx(reach[side])       # enforced: the robot is reach inside
        others = np.delete(res, side)
        assert np.all(others <= reach.max() - cfg.big_m + 1e-9)
    assert mimpc.geometry_of(mimpc.structure_for("mimpc-robot", "authors")) == "authors"
    assert mimpc.geometry_of(mimpc.structure_for("mimpc-robot")) == "issue"
    with pytest.raises(UsageError, match="geometry"):
        mimpc.structure_for("mimpc-tank", "authors")
    with pytest.raises(UsageError, match="unknown robot geometry"):
        mimpc.robot_config("paper")


def test_authors_episode_starts():
    cfg = mimpc.AUTHORS_ROBOT
    starts = mimpc.robot_episode_starts(np.random.default_rng(1), 300)
    centres, half = np.array(cfg.obstacle_centres), np.array(cfg.obstacle_half_sizes)
    margin = cfg.d_min + 0.1
    for pts in (starts[:, :2], starts[:, 4:]):
        assert not np.all(np.abs(pts[:, None] - centres) < half + margin, axis=2).any()
        assert np.all(pts >= np.array(cfg.box_lo)) and np.all(pts <= np.array(cfg.box_hi))
    assert np.all(starts[:, 2:4] == 0.0)                                    # at rest
    assert np.all(np.linalg.norm(starts[:, :2] - starts[:, 4:], axis=1) > 2 * margin)
    np.testing.assert_array_equal(starts[:, 4:], np.round(starts[:, 4:], 2))
