"""Unrolled dual FISTA: converges to the exact follower response, and its unrolled gradient to the implicit one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevelbench.errors import UsageError
from bilevelbench.families.bqp.coupling import FOLLOWER_GRADIENTS, BQPTorch, make_follower
from bilevelbench.families.bqp.follower_layer import FollowerLayer
from bilevelbench.families.bqp.problem import sample_structure
from bilevelbench.families.bqp.unrolled import UnrolledFollower


def _setup(m=6, n=4, seed=3):
    rng = np.random.default_rng(seed)
    s = sample_structure(rng, m, n)
    return s, torch.tensor(rng.normal(size=(16, m)) * 3)


def test_enough_iterations_reproduce_the_exact_response_and_its_gradient():
    s, y = _setup()
    w = torch.randn(16, s.n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y1, y2 = y.clone().requires_grad_(), y.clone().requires_grad_()
    z_exact = FollowerLayer(s)(y1)
    z_unrolled = UnrolledFollower(s, iterations=3000)(y2)
    torch.testing.assert_close(z_unrolled, z_exact, rtol=0, atol=1e-7)
    (z_exact * w).sum().backward()
    (z_unrolled * w).sum().backward()
    torch.testing.assert_close(y2.grad, y1.grad, rtol=0, atol=1e-5)


def test_few_iterations_are_measurably_inexact():
    s, y = _setup()
    z_exact = FollowerLayer(s)(y)
    err_5 = (UnrolledFollower(s, iterations=5)(y) - z_exact).abs().max().item()
    err_500 = (UnrolledFollower(s, iterations=500)(y) - z_exact).abs().max().item()
    assert err_500 < 1e-3 * err_5


@pytest.mark.parametrize("gradient", FOLLOWER_GRADIENTS)
def test_every_follower_gradient_gives_the_same_hypergradient(gradient):
    s, y = _setup(3, 2, seed=5)
    rng = np.random.default_rng(0)
    c, d = torch.tensor(rng.normal(size=(16, s.m))), torch.tensor(rng.normal(size=(16, s.n)))
    grads = {}
    for kind in ("implicit", gradient):
        p = BQPTorch(s, kind)
        yv = y.clone().requires_grad_()
        (p.objective(c, d, yv, p.follower(yv)).sum() + 100 * p.violation_sq(yv).sum()).backward()
        grads[kind] = yv.grad
    torch.testing.assert_close(grads[gradient], grads["implicit"], rtol=1e-4, atol=1e-4)


def test_unknown_follower_gradient_is_a_clear_error():
    s, _ = _setup(3, 2)
    with pytest.raises(UsageError, match="implicit, bigrad, unrolled; received 'finite-differences'"):
        make_follower(s, "finite-differences")
