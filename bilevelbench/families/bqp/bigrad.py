"""BiGrad-style implicit hypergradients (Alesiani, Theorem 2) for the bilevel QP.

The follower's response ``z(y)`` is differentiated through the KKT conditions of its active set; the
backward pass computes the vector-Jacobian product ``(dz/dy)' g`` with **conjugate-gradient** solves
(no explicit inverse, no factorisation): with ``S = F_A H^{-1} F_A'`` (SPD on the active set),

    S v = F_A H^{-1} g,      u = H^{-1} (g - F_A' v),      (dz/db)' g = -v on active rows, (dz/dq)' g = -u

where ``H^{-1} x`` uses the Cholesky factor of the follower's Hessian ``H``, computed once per structure
(``H`` does not depend on ``y``); the adjoint system itself is solved by CG. The total derivative of ``L(y, z(y))`` is then
``grad_y L + G' (dz/db)' grad_z L`` via autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bilevelbench.torch.qp_layer import IPMSettings, solve_qp_batch

MatVec = Callable[[torch.Tensor], torch.Tensor]


def batched_cg(matvec: MatVec, rhs: torch.Tensor, iters: int, tol: float = 1e-13) -> torch.Tensor:
    """Conjugate gradients for a batch of SPD systems ``A x = rhs`` (rows independent)."""
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rs = (r * r).sum(1)
    scale = rs.clamp(min=1e-300)
    for _ in range(iters):
        if bool(torch.all(rs <= tol * tol * scale)):
            break
        Ap = matvec(p)
        denom = (p * Ap).sum(1)
        alpha = torch.where(denom > 0, rs / denom.clamp(min=1e-300), torch.zeros_like(rs))
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * Ap
        rs_new = (r * r).sum(1)
        beta = torch.where(rs > 0, rs_new / rs.clamp(min=1e-300), torch.zeros_like(rs))
        p = r + beta[:, None] * p
        rs = rs_new
    return x


class _BiGradQP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, b, H, F, L, settings, active_guess):
        z, lam, s = solve_qp_batch(H, F, q, b, settings, active_guess)
        active = lam > settings.active_ratio * s
        ctx.save_for_backward(L, F, active.to(H.dtype))
        ctx.mark_non_differentiable(active)
        return z, active

    @staticmethod
    def backward(ctx, g, _grad_active):
        L, F, D = ctx.saved_tensors
        p = F.shape[0]

        def h_inv(x: torch.Tensor) -> torch.Tensor:
            return torch.cholesky_solve(x.T, L).T

        def schur(v: torch.Tensor) -> torch.Tensor:  # F_A H^{-1} F_A' v on active rows, identity elsewhere
            return D * (h_inv((D * v) @ F) @ F.T) + (1.0 - D) * v

        hg = h_inv(g)
        v = batched_cg(schur, D * (hg @ F.T), 4 * p + 10) if p else g.new_zeros(g.shape[0], 0)
        u = h_inv(g - (D * v) @ F)
        return -u, D * v, None, None, None, None, None


class BiGradFollower(torch.nn.Module):
    """``z(y)`` of a BQP structure whose backward pass is the BiGrad CG hypergradient (warm-started from the
    previous call's active sets, as :class:`~bilevelbench.torch.qp_layer.FollowerLayer`)."""

    def __init__(self, structure, settings: IPMSettings | None = None, warm_start: bool = True) -> None:
        super().__init__()
        for key in ("H", "F", "e", "h", "G"):
            self.register_buffer(key, torch.tensor(getattr(structure, key), dtype=torch.float64))
        self.register_buffer("L", torch.linalg.cholesky(self.H))
        self.settings = settings or IPMSettings()
        self.warm_start = bool(warm_start)
        self._last_active: torch.Tensor | None = None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        q = self.e.expand(y.shape[0], -1)
        guess = self._last_active if self.warm_start else None
        z, active = _BiGradQP.apply(q, self.h + y.to(torch.float64) @ self.G.T, self.H, self.F, self.L,
                                    self.settings, guess)
        if self.warm_start:
            self._last_active = active
        return z
