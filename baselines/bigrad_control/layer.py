"""The adversary as a differentiable layer, and the policy network of every ``adv-control`` reference method.

Forward: the adversary's exact answer ``W*(U)`` for each sample (the family's active-set solver, HiGHS where it
does not converge). Backward, two ways:

* ``implicit`` (BiGrad's continuous hypergradient): the implicit function theorem on the adversary's KKT
  conditions. On its free entries ``F``, ``W_F = M_FF^-1 (g_F(U) - M_FB W_B)`` with ``dg/dU = -Gw'Gu``; entries on a
  bound do not move. The vector-Jacobian product of ``v = dL/dW`` is ``-(Gw'Gu)_F' M_FF^-1 v_F``.
* ``fixed`` (the two-step layer): the adversary is solved, then held fixed, so the leader's gradient is its
  explicit ``dJ/dU`` alone.

The envelope theorem would make the two equal if the leader paid the adversary's objective; in ``adv-control`` it
does not (see ``bilevelbench/families/advctl/problem.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from bilevelbench.families.advctl import problem

MODES = ("implicit", "fixed")


class AdversaryLayer(torch.autograd.Function):
    """``W = AdversaryLayer.apply(U, x0, target, structure, mode)`` for a batch (B, T n_u) of controls."""

    @staticmethod
    def forward(ctx, U, x0, target, s, mode):
        u = U.detach().double().numpy()
        W = problem.follower_response(s, x0.detach().double().numpy(), target.detach().double().numpy(), u)
        ctx.s, ctx.mode = s, mode
        ctx.save_for_backward(torch.from_numpy(W))
        return torch.from_numpy(W).to(U.dtype)

    @staticmethod
    def backward(ctx, grad_W):
        s, mode = ctx.s, ctx.mode
        if mode == "fixed":
            return None, None, None, None, None
        (W,) = ctx.saved_tensors
        W, v = W.numpy(), grad_W.detach().double().numpy()
        M, C = s.follower_hessian, s.gw.T @ s.gu
        out = np.zeros((W.shape[0], s.n_controls))
        for i in range(W.shape[0]):
            free = np.abs(W[i]) < s.w_max * (1 - 1e-9)
            if free.any():
                y = np.linalg.solve(M[np.ix_(free, free)], v[i, free])
                out[i] = -C[free].T @ y
        return torch.from_numpy(out).to(grad_W.dtype), None, None, None, None


class Matrices:
    """The structure's prediction matrices as tensors (double precision)."""

    def __init__(self, s: problem.AdvStructure) -> None:
        self.s = s
        self.phi, self.gu, self.gw = (torch.from_numpy(a) for a in (s.phi, s.gu, s.gw))

    def cost(self, x0: torch.Tensor, U: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """The leader's cost ``J(U, W)`` per sample."""
        X = x0 @ self.phi.T + U @ self.gu.T + W @ self.gw.T
        return (X * X).sum(1) + float(self.s.r) * (U * U).sum(1)


class Policy(torch.nn.Module):
    """``(x0, target) -> U``: an MLP with ``u_max * tanh`` outputs, inputs scaled by ``x0_max``."""

    def __init__(self, s: problem.AdvStructure, hidden: int = 256) -> None:
        super().__init__()
        self.scale, self.u_max = float(s.x0_max), float(s.u_max)
        self.net = torch.nn.Sequential(torch.nn.Linear(2 * s.nx, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, s.n_controls))

    def forward(self, x0: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.u_max * torch.tanh(self.net(torch.cat([x0, target], dim=1) / self.scale))
