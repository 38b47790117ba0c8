"""The relaxed MIQP layer (bilevelbench.torch.miqp_layer): row merging is exact, the layer equals HiGHS's
fixed-integer QP when no slack is needed, is feasible for any integers, and its gradients match finite
differences."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("osqp")

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import UsageError
from bilevelbench.families.mimpc import problem as mimpc
from bilevelbench.families.mimpc.miqp import row_residual, row_scale, solve_fixed_integers
from bilevelbench.families.mimpc.miqp_layer import RelaxedMIQPLayer, merge_rows

FAMILIES = ("mimpc-robot", "mimpc-tank")


def _random_integers(s, rng, count):
    lo, hi = s.lb[s.integer], s.ub[s.integer]
    return rng.integers(lo, hi + 1, size=(count, lo.size)).astype(float)


@pytest.mark.parametrize("family", FAMILIES)
def test_merged_rows_are_the_original_rows(family):
    """For any x, theta and real x_I, each merged row's residual is the largest scaled residual of its members."""
    s = mimpc.structure_for(family)
    layer = RelaxedMIQPLayer(s)
    rng = np.random.default_rng(0)
    theta = mimpc.sample_theta(family, rng, 5)
    x = rng.uniform(s.lb, s.ub, size=(5, s.n))
    _, b = layer.qp_data(torch.tensor(theta), torch.tensor(x[:, s.integer]))
    merged = x[:, ~s.integer] @ layer.merged.A.T - b[:, : layer.n_rows].numpy()
    res = row_residual(s, x, theta) / layer.merged.scale
    expect = np.stack([res[:, m[m >= 0]].max(1) for m in layer.merged.members], 1)
    np.testing.assert_allclose(merged, expect, atol=1e-9)
    # every row with a continuous variable is in exactly one merged row; integer-only rows in none
    members = layer.merged.members[layer.merged.members >= 0]
    has_c = np.any(s.G[:, ~s.integer] != 0, 1)
    assert sorted(members.tolist()) == np.flatnonzero(has_c).tolist()


def test_robot_obstacle_rows_merge_into_position_bounds():
    s = mimpc.structure_for("mimpc-robot")
    merged = merge_rows(s)
    # 4 position + 4 velocity rows per step, except step 1 where p_1 and v_1 are both multiples of a_0
    assert merged.A.shape[0] == 8 * 20 - 4
    counts = (merged.members >= 0).sum(1)
    # velocity rows alone (1), a box row with one side of each obstacle (4), and at step 1 also the velocity row
    assert sorted(set(counts.tolist())) == [1, 4, 5]
    assert counts.sum() == 160 + 240
    assert set(np.unique(merged.step)) == set(range(20))


@pytest.mark.parametrize("which", ["tank_set", "robot_set"])
def test_layer_equals_highs_on_certified_integers(which, request):
    ds = InstanceSet.open(request.getfixturevalue(which))
    s = ds.structure
    split = ds.split("test")
    theta, X = split.params["theta"], split.labels["x"]
    layer = RelaxedMIQPLayer(s)
    sol = layer.solve_exact(theta, X[:, s.integer])
    assert float(sol.slack.max()) < 1e-8
    for i in range(theta.shape[0]):
        ref = solve_fixed_integers(s, theta[i], X[i, s.integer])
        assert ref.status == "optimal"
        np.testing.assert_allclose(sol.x[i].numpy(), ref.x, atol=1e-5)
    # the differentiable path gives the same answer
    x_int = torch.tensor(X[:, s.integer], requires_grad=True)
    diff = layer(torch.tensor(theta), x_int)
    np.testing.assert_allclose(diff.x.detach().numpy(), sol.x.numpy(), atol=1e-8)


@pytest.mark.parametrize("slack", ["step", "row"])
@pytest.mark.parametrize("family", FAMILIES)
def test_layer_is_feasible_for_any_integers(family, slack):
    """Random integers (and, for the robot, a start faster than v_max): an answer exists, satisfies the relaxed
    rows, and equals the hard QP wherever HiGHS finds one."""
    s = mimpc.structure_for(family)
    rng = np.random.default_rng(1)
    theta = mimpc.sample_theta(family, rng, 6)
    if family == "mimpc-robot":
        theta[0, 2:4] = [2.0, -2.0]                       # no input can keep |v| <= 0.5: state rows need slack
    x_int = _random_integers(s, rng, 6)
    layer = RelaxedMIQPLayer(s, slack=slack)
    sol = layer.solve_exact(theta, x_int)
    z = torch.cat([sol.x_cont, sol.slack], 1).numpy()
    _, b = layer.qp_data(torch.tensor(theta), torch.tensor(x_int))
    assert np.all(np.isfinite(z))
    assert np.all(z @ layer._F.T <= b.numpy() + 1e-7)
    assert np.all(sol.slack.numpy() >= -1e-9)
    positive = sol.slack.numpy().max(1) > 1e-7
    assert positive.any()
    if family == "mimpc-robot":
        assert positive[0]
    cont_rows = np.any(s.G[:, ~s.integer] != 0, 1)
    for i in range(6):
        ref = solve_fixed_integers(s, theta[i], x_int[i])
        res = row_residual(s, sol.x[i].numpy(), theta[i])[0] / row_scale(s)
        if not positive[i]:
            assert np.all(res[cont_rows] <= 1e-7)
        if ref.status == "optimal":
            assert not positive[i]
            np.testing.assert_allclose(sol.x[i].numpy(), ref.x, atol=1e-5)


@pytest.mark.parametrize("slack", ["step", "row"])
@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_match_finite_differences(family, slack):
    s = mimpc.structure_for(family)
    rng = np.random.default_rng(2)
    theta = mimpc.sample_theta(family, rng, 3)
    x_int = _random_integers(s, rng, 3)
    layer = RelaxedMIQPLayer(s, rho=1e2, slack=slack)
    w = torch.tensor(rng.standard_normal((3, layer.n_c + layer.n_s)))
    th = torch.tensor(theta)

    def loss(xi):
        sol = layer(th, xi)
        return (torch.cat([sol.x_cont, sol.slack], 1) * w).sum(1)

    xi = torch.tensor(x_int, requires_grad=True)
    loss(xi).sum().backward()
    grad = xi.grad.numpy()
    eps = 1e-6
    cols = rng.choice(layer.n_i, size=6, replace=False)
    with torch.no_grad():
        for j in cols:
            up, down = torch.tensor(x_int), torch.tensor(x_int)
            up[:, j] += eps
            down[:, j] -= eps
            fd = ((loss(up) - loss(down)) / (2 * eps)).numpy()
            np.testing.assert_allclose(grad[:, j], fd, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(fd).max()))
    assert np.abs(grad).max() > 0


def test_bad_arguments():
    s = mimpc.structure_for("mimpc-tank")
    with pytest.raises(UsageError):
        RelaxedMIQPLayer(s, rho=0.0)
    layer = RelaxedMIQPLayer(s)
    with pytest.raises(UsageError):
        layer.qp_data(torch.zeros(2, s.p), torch.zeros(2, 3))
    with pytest.raises(UsageError):
        merge_rows(s, steps=7)
    with pytest.raises(UsageError):
        RelaxedMIQPLayer(s, slack="column")
    # one slack per row with an integer: every tank state row but x1 at step 1 (no pump level acts on it yet)
    assert RelaxedMIQPLayer(s, slack="row").n_s == 79


@pytest.mark.parametrize("family", FAMILIES)
def test_answers_do_not_depend_on_batch_order_or_history(family):
    """Each row's answer is a function of its own data: OSQP restarts from zero with its initial rho for every
    row (its default keeps the last solve's iterate and adapted rho), and HiGHS's fallback gets its own time
    limit however long earlier fallbacks ran."""
    s = mimpc.structure_for(family)
    rng = np.random.default_rng(3)
    theta = mimpc.sample_theta(family, rng, 12)
    x_int = _random_integers(s, rng, 12)                  # mostly infeasible choices: the slack path
    layer = RelaxedMIQPLayer(s)
    forward = layer.solve_exact(theta, x_int).x.numpy()
    backward = layer.solve_exact(theta[::-1].copy(), x_int[::-1].copy()).x.numpy()[::-1]
    np.testing.assert_allclose(backward, forward, rtol=0, atol=1e-9)
    for i in (0, 5, 11):
        alone = RelaxedMIQPLayer(s).solve_exact(theta[i:i + 1], x_int[i:i + 1]).x.numpy()[0]
        np.testing.assert_allclose(alone, forward[i], rtol=0, atol=1e-9)


@pytest.mark.parametrize("which", ["tank_set", "robot_set"])
def test_infeasible_integers_can_be_skipped(which, request):
    """``relax_infeasible=False`` (the repair's screen): rows whose integers admit no feasible continuous part,
    as HiGHS's fixed-integer QP says too, come back with NaN inputs and infinite slack; every other row gets
    the same answer as the full solve. Rows: certified labels' integers, then random integers."""
    ds = InstanceSet.open(request.getfixturevalue(which))
    s = ds.structure
    split = ds.split("test")
    k = min(5, len(split))
    rng = np.random.default_rng(4)
    theta = np.concatenate([split.params["theta"][:k], split.params["theta"][:k]])
    x_int = np.concatenate([split.labels["x"][:k, s.integer], _random_integers(s, rng, k)])
    if which == "tank_set":
        # random pump levels rarely break a tank; a burst on a nearly empty tank 2 with the pump off does
        theta[k:, :2] = 0.1
        theta[k:, 3:9:2] = 16.0
        x_int[k:] = 0.0
    layer = RelaxedMIQPLayer(s)
    full = layer.solve_exact(theta, x_int)
    screened = layer.solve_exact(theta, x_int, relax_infeasible=False)
    skipped = ~np.isfinite(screened.slack.numpy()).all(1)
    for i in range(2 * k):
        ref = solve_fixed_integers(s, theta[i], x_int[i])
        if skipped[i]:
            assert ref.status == "infeasible"
            assert np.isnan(screened.x_cont[i].numpy()).all()
        else:
            np.testing.assert_allclose(screened.x[i].numpy(), full.x[i].numpy(), rtol=0, atol=1e-9)
    # labels are feasible, the other rows are not: both branches above ran
    assert not skipped[:k].any() and skipped[k:].all()


def test_hard_qp_oracle_agrees_with_highs_and_reports_multipliers_below_rho():
    """quadprog on the QP without slacks: an accepted row is HiGHS's fixed-integer optimum, and a tiny ``rho``
    (below the hard QP's multipliers, so the slack penalty is not exact) makes the oracle decline the row."""
    s = mimpc.structure_for("mimpc-tank")
    rng = np.random.default_rng(5)
    theta = mimpc.sample_theta("mimpc-tank", rng, 8)
    x_int = np.zeros((8, 20))                           # pump off: feasible unless tank 2 runs dry
    layer = RelaxedMIQPLayer(s)
    q, b = layer.qp_data(torch.tensor(theta), torch.tensor(x_int))
    z, active, found, infeasible = layer.hard_oracle.solve(q.numpy(), b.numpy())
    assert found.any()
    for i in np.flatnonzero(found):
        ref = solve_fixed_integers(s, theta[i], x_int[i])
        np.testing.assert_allclose(z[i, : layer.n_c], ref.x[~s.integer], atol=1e-6)
        assert np.all(z[i, layer.n_c:] == 0.0) and active[i, layer.n_rows: layer.n_rows + layer.n_s].all()
    assert not (found & infeasible).any()
    tight = RelaxedMIQPLayer(s, rho=1e-9)
    _, _, found_tight, _ = tight.hard_oracle.solve(q.numpy(), b.numpy())
    constrained = active[:, : layer.n_rows].any(1) & found
    assert constrained.any() and not found_tight[constrained].any()
