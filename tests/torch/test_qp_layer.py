"""The batched differentiable QP layer (bilevelbench.torch.qp_layer): solutions against HiGHS, gradients against
finite differences and closed forms, the corner cases (no constraint, every constraint active, p = 0), and errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bilevelbench.errors import SolverError, UsageError
from bilevelbench.families.bqp.follower_layer import FollowerLayer
from bilevelbench.families.bqp.problem import follower_response, sample_structure
from bilevelbench.torch.qp_layer import BatchedQP, IPMSettings, solve_qp_batch

SIZES = [(3, 2), (9, 6), (12, 9)]
BATCH = 200


def _t(a) -> torch.Tensor:
    return torch.tensor(np.array(a, dtype=np.float64))


def _problem(m: int, n: int, seed: int = 1, batch: int = BATCH):
    """A BQP structure and a batch of y ~ 5 N(0, 1), drawn as the comparison benchmark draws them."""
    rng = np.random.default_rng([seed, m, n])
    s = sample_structure(rng, m, n)
    y = 5.0 * rng.standard_normal((batch, m))
    return s, y


def _row_losses(layer: BatchedQP, q: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return (w * layer(q, b)).sum(1).numpy()


def _fd_grads(layer: BatchedQP, q: torch.Tensor, b: torch.Tensor, w: torch.Tensor, eps: float = 1e-6):
    """Central differences of each row's ``w_i . z_i`` wrt every entry of that row's ``q`` and ``b``.

    Rows are independent, so perturbing one column in every row at once gives all rows' derivatives.
    """
    grads = []
    for x in (q, b):
        g = np.zeros(tuple(x.shape))
        for j in range(x.shape[1]):
            step = torch.zeros_like(x)
            step[:, j] = eps
            args_plus = (q + step, b) if x is q else (q, b + step)
            args_minus = (q - step, b) if x is q else (q, b - step)
            g[:, j] = (_row_losses(layer, *args_plus, w) - _row_losses(layer, *args_minus, w)) / (2 * eps)
        grads.append(g)
    return grads


def _autograd(layer: BatchedQP, q: torch.Tensor, b: torch.Tensor, w: torch.Tensor):
    q = q.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    (w * layer(q, b)).sum().backward()
    return q.grad.numpy(), b.grad.numpy()


# -- agreement with HiGHS ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("m", "n"), SIZES, ids=[f"{m}x{n}" for m, n in SIZES])
def test_follower_layer_matches_highs(m: int, n: int) -> None:
    s, y = _problem(m, n)
    z = FollowerLayer(s)(_t(y))
    assert z.dtype == torch.float64 and z.shape == (BATCH, n)
    refs = [follower_response(s, yi) for yi in y]
    z_ref = np.stack([r.z for r in refs])
    np.testing.assert_allclose(z.detach().numpy(), z_ref, rtol=0, atol=1e-8)
    n_active = np.array([(r.lam > 1e-9).sum() for r in refs])
    assert (n_active == 0).any() and (n_active > 0).any(), "the batch should mix inactive and active rows"


def test_multipliers_match_highs() -> None:
    s, y = _problem(9, 6)
    layer = FollowerLayer(s)
    with torch.no_grad():
        _, lam = layer.qp.solve(layer.e.expand(BATCH, -1), layer.h + _t(y) @ layer.G.T)
    lam_ref = np.stack([follower_response(s, yi).lam for yi in y])
    assert (lam.numpy() >= 0).all()
    np.testing.assert_allclose(lam.numpy(), lam_ref, rtol=0, atol=1e-7 * (1 + np.abs(lam_ref).max()))


# -- gradients -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("m", "n"), SIZES, ids=[f"{m}x{n}" for m, n in SIZES])
def test_gradients_match_finite_differences(m: int, n: int) -> None:
    s, y = _problem(m, n, batch=60)
    layer = BatchedQP(_t(s.H), _t(s.F))
    q = _t(s.e).expand(y.shape[0], -1).contiguous()
    b = _t(s.h + y @ s.G.T)
    with torch.no_grad():
        z, lam = layer.solve(q, b)
    slack = (b - z @ layer.F.T).numpy()
    # Keep rows away from kinks of z(q, b): every constraint clearly inactive or clearly active.
    strict = np.all(np.maximum(slack, lam.numpy()) > 1e-3, axis=1)
    assert (strict & (lam.numpy() > 1e-3).any(axis=1)).sum() >= 3, "need rows with active constraints"
    q, b = q[strict], b[strict]
    w = _t(np.random.default_rng(5).standard_normal((q.shape[0], n)))
    grad_q, grad_b = _autograd(layer, q, b, w)
    fd_q, fd_b = _fd_grads(layer, q, b, w)
    for got, fd in ((grad_q, fd_q), (grad_b, fd_b)):
        np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))


def test_follower_layer_gradient_wrt_y() -> None:
    s, y = _problem(9, 6, batch=40)
    layer = FollowerLayer(s)
    w = _t(np.random.default_rng(3).standard_normal((y.shape[0], s.n)))
    yt = _t(y).requires_grad_(True)
    (w * layer(yt)).sum().backward()
    eps = 1e-6
    fd = np.zeros_like(y)
    for j in range(s.m):
        step = np.zeros_like(y)
        step[:, j] = eps
        with torch.no_grad():
            up = (w * layer(_t(y + step))).sum(1).numpy()
            down = (w * layer(_t(y - step))).sum(1).numpy()
        fd[:, j] = (up - down) / (2 * eps)
    np.testing.assert_allclose(yt.grad.numpy(), fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))


def test_no_active_constraint_is_the_unconstrained_minimiser() -> None:
    s, _ = _problem(9, 6)
    rng = np.random.default_rng(7)
    layer = BatchedQP(_t(s.H), _t(s.F))
    q = _t(rng.standard_normal((8, s.n)))
    b = _t(np.full((8, s.n_lower_constraints), 1e3))
    w = _t(rng.standard_normal((8, s.n)))
    with torch.no_grad():
        z, lam = layer.solve(q, b)
    Hinv = np.linalg.inv(s.H)
    np.testing.assert_allclose(z.numpy(), -q.numpy() @ Hinv, rtol=0, atol=1e-10)
    assert np.all(lam.numpy() == 0)
    grad_q, grad_b = _autograd(layer, q, b, w)
    np.testing.assert_allclose(grad_q, -w.numpy() @ Hinv, rtol=0, atol=1e-10)
    assert np.all(grad_b == 0)


def test_every_constraint_active_square() -> None:
    """p = n, all constraints active with positive multipliers: z = F^-1 b, so dz/db = F^-1 and dz/dq = 0."""
    rng = np.random.default_rng(11)
    n, B = 3, 6
    S = rng.standard_normal((n, n))
    H = S @ S.T + np.eye(n)
    F = np.eye(n) + 0.3 * rng.standard_normal((n, n))
    z_star = rng.standard_normal((B, n))
    lam_star = rng.uniform(0.5, 2.0, (B, n))
    q = -z_star @ H - lam_star @ F  # stationarity: H z + q + F' lam = 0
    b = z_star @ F.T
    w = rng.standard_normal((B, n))
    layer = BatchedQP(_t(H), _t(F))
    with torch.no_grad():
        z, lam = layer.solve(_t(q), _t(b))
    np.testing.assert_allclose(z.numpy(), z_star, rtol=0, atol=1e-10)
    np.testing.assert_allclose(lam.numpy(), lam_star, rtol=0, atol=1e-9)
    grad_q, grad_b = _autograd(layer, _t(q), _t(b), _t(w))
    np.testing.assert_allclose(grad_q, 0.0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(grad_b, w @ np.linalg.inv(F), rtol=0, atol=1e-9)


def test_every_constraint_active_fewer_than_n() -> None:
    """p < n, all active: dz/db = H^-1 F'(F H^-1 F')^-1, dz/dq = -(H^-1 - H^-1 F'(F H^-1 F')^-1 F H^-1)."""
    rng = np.random.default_rng(12)
    n, p, B = 5, 2, 4
    S = rng.standard_normal((n, n))
    H = S @ S.T + np.eye(n)
    F = rng.standard_normal((p, n))
    z_star = rng.standard_normal((B, n))
    lam_star = rng.uniform(0.5, 2.0, (B, p))
    q = -z_star @ H - lam_star @ F
    b = z_star @ F.T
    w = rng.standard_normal((B, n))
    layer = BatchedQP(_t(H), _t(F))
    z = layer(_t(q), _t(b)).detach().numpy()
    np.testing.assert_allclose(z, z_star, rtol=0, atol=1e-10)
    Hi = np.linalg.inv(H)
    P = Hi @ F.T @ np.linalg.inv(F @ Hi @ F.T)
    dz_db = P                      # (n, p)
    dz_dq = -(Hi - P @ F @ Hi)     # (n, n)
    grad_q, grad_b = _autograd(layer, _t(q), _t(b), _t(w))
    np.testing.assert_allclose(grad_b, w @ dz_db, rtol=0, atol=1e-9)
    np.testing.assert_allclose(grad_q, w @ dz_dq, rtol=0, atol=1e-9)


def test_no_constraints() -> None:
    rng = np.random.default_rng(13)
    n, B = 4, 5
    S = rng.standard_normal((n, n))
    H = S @ S.T + np.eye(n)
    layer = BatchedQP(_t(H), torch.zeros(0, n, dtype=torch.float64))
    q = _t(rng.standard_normal((B, n)))
    w = _t(rng.standard_normal((B, n)))
    b = torch.zeros(B, 0, dtype=torch.float64)
    z, lam = layer.solve(q, b)
    assert lam.shape == (B, 0)
    np.testing.assert_allclose(z.detach().numpy(), -q.numpy() @ np.linalg.inv(H), rtol=0, atol=1e-12)
    grad_q, grad_b = _autograd(layer, q, b, w)
    assert grad_b.shape == (B, 0)
    np.testing.assert_allclose(grad_q, -w.numpy() @ np.linalg.inv(H), rtol=0, atol=1e-12)


def test_float32_inputs_give_float64_and_float32_gradients() -> None:
    s, y = _problem(3, 2, batch=10)
    layer = BatchedQP(_t(s.H), _t(s.F))
    q = torch.tensor(np.broadcast_to(s.e, (10, s.n)), dtype=torch.float32, requires_grad=True)
    b = torch.tensor(s.h + y @ s.G.T, dtype=torch.float32, requires_grad=True)
    z = layer(q, b)
    assert z.dtype == torch.float64
    z.sum().backward()
    assert q.grad.dtype == torch.float32 and b.grad.dtype == torch.float32


# -- errors --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("q_shape", "b_shape"),
    [((3,), (3, 2)), ((3, 2), (2,)), ((3, 3), (3, 2)), ((3, 2), (3, 3)), ((3, 2), (4, 2)), ((1, 3, 2), (1, 3, 2))],
    ids=["q-1d", "b-1d", "q-wrong-n", "b-wrong-p", "batch-mismatch", "3d"],
)
def test_wrong_input_shapes_raise_usage_error(q_shape, b_shape) -> None:
    layer = BatchedQP(torch.eye(2, dtype=torch.float64), torch.ones(2, 2, dtype=torch.float64))
    with pytest.raises(UsageError, match="expected q"):
        layer(torch.zeros(q_shape, dtype=torch.float64), torch.zeros(b_shape, dtype=torch.float64))


@pytest.mark.parametrize(
    ("H", "F"),
    [(np.eye(2)[0], np.ones((1, 2))), (np.ones((2, 3)), np.ones((1, 3))), (np.eye(2), np.ones((1, 3))),
     (np.eye(2), np.ones(2))],
    ids=["H-1d", "H-not-square", "F-wrong-n", "F-1d"],
)
def test_wrong_matrix_shapes_raise_usage_error(H, F) -> None:
    with pytest.raises(UsageError, match="expected H"):
        BatchedQP(_t(H), _t(F))




@pytest.mark.parametrize(
    "b",
    [
        pytest.param([[-1.0, -1.0]], id="z<=-1,z>=1"),
        pytest.param([[-1.0, -1.0], [1.0, 1.0]], id="one-bad-row-of-two"),
        pytest.param([[-1.0, 0.5]], id="z<=-1,z>=-0.5"),
    ],
)
def test_infeasible_row_raises_solver_error(b) -> None:
    layer = BatchedQP(torch.eye(1, dtype=torch.float64), torch.tensor([[1.0], [-1.0]], dtype=torch.float64))
    b = torch.tensor(b, dtype=torch.float64)
    with pytest.raises(SolverError, match=r"did not converge.*infeasible"):
        layer(torch.zeros(b.shape[0], 1, dtype=torch.float64), b)


# -- known failures on feasible rows (see the reasons) -------------------------------------------------------------
def _hard_row(seed: int, m: int, n: int, batch: int, row: int):
    rng = np.random.default_rng([seed, m, n])
    s = sample_structure(rng, m, n)
    y = 5.0 * rng.standard_normal((batch, m))[row]
    return s, y


def test_feasible_row_with_large_multiplier_converges() -> None:
    s, y = _hard_row(6, 3, 2, 2000, 0)
    z = FollowerLayer(s)(_t(y[None]))
    np.testing.assert_allclose(z.detach().numpy()[0], follower_response(s, y).z, rtol=0, atol=1e-8)


def test_feasible_row_mehrotra_cycle_converges() -> None:
    s, y = _hard_row(0, 9, 6, 1000, 735)
    z = FollowerLayer(s)(_t(y[None]))
    np.testing.assert_allclose(z.detach().numpy()[0], follower_response(s, y).z, rtol=0, atol=1e-8)


def test_backward_at_degenerate_vertex_is_finite() -> None:
    F = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    layer = BatchedQP(torch.eye(2, dtype=torch.float64), F)
    q = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[-1.0, -1.0, -2.0]], dtype=torch.float64, requires_grad=True)
    z = layer(q, b)
    np.testing.assert_allclose(z.detach().numpy(), [[-1.0, -1.0]], atol=1e-8)
    z.sum().backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(b.grad).all()


def _qp_batch(m: int, n: int):
    s, y = _problem(m, n)
    H, F = torch.tensor(s.H), torch.tensor(s.F)
    q = torch.tensor(s.e).expand(y.shape[0], -1)
    return H, F, q, torch.tensor(s.h + y @ s.G.T)


def test_a_right_active_set_guess_needs_no_interior_point_iteration() -> None:
    H, F, q, b = _qp_batch(6, 4)
    z, lam, s = solve_qp_batch(H, F, q, b)
    active = lam > s
    no_iterations = IPMSettings(max_iter=0)
    with pytest.raises(SolverError):
        solve_qp_batch(H, F, q, b, no_iterations)
    z_guess, lam_guess, _ = solve_qp_batch(H, F, q, b, no_iterations, active_guess=active)
    torch.testing.assert_close(z_guess, z, rtol=0, atol=1e-9)
    torch.testing.assert_close(lam_guess, lam, rtol=0, atol=1e-7)


def test_a_wrong_active_set_guess_changes_nothing() -> None:
    H, F, q, b = _qp_batch(6, 4)
    z, _, _ = solve_qp_batch(H, F, q, b)
    wrong = torch.rand(b.shape, generator=torch.Generator().manual_seed(0)) < 0.5
    torch.testing.assert_close(solve_qp_batch(H, F, q, b, active_guess=wrong)[0], z, rtol=0, atol=1e-9)


def test_warm_started_layer_gives_the_cold_answers_and_gradients() -> None:
    rng = np.random.default_rng(4)
    s = sample_structure(rng, 6, 4)
    warm, cold = FollowerLayer(s, warm_start=True), FollowerLayer(s, warm_start=False)
    for scale in (5.0, 5.0, 1.0):          # the second call reuses the first's active sets, the third is unrelated
        y = torch.tensor(rng.normal(size=(32, 6)) * scale)
        y1, y2 = y.clone().requires_grad_(), y.clone().requires_grad_()
        z1, z2 = warm(y1), cold(y2)
        torch.testing.assert_close(z1, z2, rtol=0, atol=1e-9)
        z1.sum().backward()
        z2.sum().backward()
        torch.testing.assert_close(y1.grad, y2.grad, rtol=0, atol=1e-8)
