"""The two-tank model, its follower and the implicit-gradient layer, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bilevelbench.families.ccd import twotank as tt
from bilevelbench.families.ccd.layers import twotank_final_state

S = tt.TwoTankStructure()


def hand_trajectory(c1, c2, controls, dt=0.5):
    """Euler integration of the authors' equations written out with math.sqrt, one scalar at a time."""
    h1 = h2 = 0.0
    out = [(h1, h2)]
    for pump, valve in controls:
        a1, a2 = min(max(h1, 0.0), 1.0), min(max(h2, 0.0), 1.0)
        d1 = c1 * (1 - valve) * pump - c2 * math.sqrt(a1 + 1e-5)
        d2 = c1 * valve * pump + c2 * math.sqrt(a1 + 1e-5) - c2 * math.sqrt(a2 + 1e-5)
        h1, h2 = h1 + dt * d1, h2 + dt * d2
        out.append((h1, h2))
    return np.array(out)


def test_rollout_matches_a_hand_integrated_trajectory():
    rng = np.random.default_rng(0)
    for _ in range(5):
        c = rng.uniform(0.01, 0.32, 2)
        u = rng.uniform(0, 1, (S.steps, 2))
        got = tt.rollout(S, torch.tensor(u[None]), torch.tensor(c[None]))[0].numpy()
        np.testing.assert_allclose(got, hand_trajectory(c[0], c[1], u), rtol=0, atol=1e-15)
    assert got.shape == (21, 2)                                        # x_0 .. x_20: 20 Euler steps of dt 0.5


def test_sensitivities_equal_autograd():
    rng = np.random.default_rng(1)
    u = torch.tensor(rng.uniform(0, 1, (2, S.steps, 2)))
    c = torch.tensor(rng.uniform(0.01, 0.32, (2, 2)))
    _, sens = tt.rollout_with_sensitivity(S, u, c)
    for b in range(2):
        jac = torch.autograd.functional.jacobian(
            lambda v, b=b: tt.rollout(S, v.view(1, S.steps, 2), c[b:b + 1])[0, 1:].reshape(-1), u[b].reshape(-1))
        torch.testing.assert_close(sens[b], jac, rtol=0, atol=1e-12)


def test_targets_follow_the_authors_sampler():
    p = tt.sample_targets(np.random.default_rng(0), 5000)
    assert p[:, 1].min() >= 0.2 and p[:, 1].max() <= 1.0
    ratio = p[:, 0] / p[:, 1]
    assert ratio.min() >= 0.5 and ratio.max() <= 1.0
    assert abs(ratio.mean() - 0.75) < 0.01


def test_follower_is_the_best_start_and_does_not_depend_on_the_batch():
    rng = np.random.default_rng(2)
    p = tt.sample_targets(rng, 12)
    c = rng.uniform(0.01, 0.32, (12, 2))
    batch = tt.solve_follower(S, c, p)
    np.testing.assert_array_equal(batch.objective, batch.start_objectives.min(1))
    assert np.all(batch.start == batch.start_objectives.argmin(1))
    for i in (0, 5, 11):
        alone = tt.solve_follower(S, c[i:i + 1], p[i:i + 1])
        assert abs(alone.objective[0] - batch.objective[i]) <= 1e-12 * (1 + batch.objective[i])
    # the response is a box-feasible point whose objective equals the lower objective of its own trajectory
    assert batch.u.min() >= 0 and batch.u.max() <= 1
    f = tt.lower_objective(S, torch.tensor(batch.x), torch.tensor(batch.u), torch.tensor(p)).numpy()
    np.testing.assert_allclose(f, batch.objective, rtol=1e-12)


def test_converged_responses_are_stationary_and_no_start_beats_them():
    rng = np.random.default_rng(3)
    p = tt.sample_targets(rng, 8)
    c = np.column_stack([rng.uniform(0.1, 0.3, 8), np.full(8, 0.01)])      # the region the labels live in
    res = tt.solve_follower(S, c, p)
    assert res.converged.mean() >= 0.75
    assert np.all(res.stationarity[res.converged] <= S.follower_tol)


def finite_difference(c, p, i, h=1e-6):
    """Central difference of ``||x_T - p||^2`` of row ``i`` in ``c1``, through the defined follower."""
    cp, cm = c.detach().numpy().copy(), c.detach().numpy().copy()
    cp[i, 0] += h
    cm[i, 0] -= h
    return (np.sum((tt.solve_follower(S, cp, p.numpy()).x[i, -1] - p[i].numpy()) ** 2)
            - np.sum((tt.solve_follower(S, cm, p.numpy()).x[i, -1] - p[i].numpy()) ** 2)) / (2 * h)


def test_implicit_gradient_matches_finite_differences_where_converged():
    p = torch.tensor([[0.45, 0.6], [0.3, 0.5]], dtype=torch.float64)
    c = torch.tensor([[0.2, 0.01], [0.15, 0.01]], dtype=torch.float64, requires_grad=True)
    x_final, converged = twotank_final_state(S, c, p)
    assert bool(converged.all())
    loss = ((x_final - p) ** 2).sum(1)
    (grad,) = torch.autograd.grad(loss.sum(), c)
    for i in range(2):
        assert grad[i, 0].item() == pytest.approx(finite_difference(c, p, i), rel=1e-3, abs=1e-8)


def test_structure_round_trips_and_hash_changes_with_settings():
    arrays = S.arrays()
    assert tt.TwoTankStructure.from_arrays(arrays).digest() == S.digest()
    assert tt.TwoTankStructure(kappa=10.0).digest() != S.digest()


def test_closed_form_hessian_equals_autodiff_at_interior_states():
    from bilevelbench.families.ccd.layers import twotank_hessian

    rng = np.random.default_rng(5)
    p = torch.as_tensor(tt.sample_targets(rng, 6))
    c = torch.as_tensor(rng.uniform(0.05, 0.3, (6, 2)))
    u = torch.as_tensor(rng.uniform(0.05, 0.95, (6, 2 * S.steps)))
    x = tt.rollout(S, u.view(6, S.steps, 2), c)[:, 1:]
    assert not bool(((x == 0) | (x == 1)).any())            # no level exactly on the clip's edge (see docstring)
    assert float(((x > 0) & (x < 1)).double().mean()) > 0.9
    auto = twotank_hessian(S, u, c, p)
    closed = tt.exact_hessian(S, u, c, p)
    assert torch.allclose(closed, auto, rtol=1e-10, atol=1e-9 * float(auto.abs().max()))
    gauss_newton = tt._gradient_and_hessian(S, u, c, p)[2]
    assert float((closed - gauss_newton).abs().max()) > 1e-3                 # the second-order part is there


def test_warm_started_layer_with_the_closed_form_hessian_matches_finite_differences():
    from bilevelbench.families.ccd.layers import twotank_response

    p = torch.tensor([[0.45, 0.6], [0.3, 0.5]], dtype=torch.float64)
    c0 = torch.tensor([[0.2, 0.01], [0.15, 0.01]], dtype=torch.float64)
    cold = twotank_response(S, c0, p)
    c = (c0 + 1e-4).requires_grad_(True)
    warm = twotank_response(S, c, p, u0=cold.u, hessian="closed-form")
    assert bool(warm.converged.all())
    (grad,) = torch.autograd.grad(((warm.final_state(S, c) - p) ** 2).sum(), c)
    for i in range(2):
        assert grad[i, 0].item() == pytest.approx(finite_difference(c, p, i), rel=1e-3, abs=1e-8)
    with pytest.raises(ValueError, match="hessian"):
        twotank_response(S, c0, p, hessian="newton")
