"""The follower's response by a fixed number of solver iterations, differentiated by unrolling them.

The baseline that implicit differentiation (``qp_layer.FollowerLayer``, ``bigrad.BiGradFollower``) is
compared with: ``z(y)`` is computed by ``iterations`` steps of accelerated projected gradient ascent
(FISTA) on the dual of the follower's QP

    max_{lam >= 0}  -1/2 (e + F'lam)' H^{-1} (e + F'lam) - b(y)'lam,     z(lam) = -H^{-1} (e + F'lam),

with ``b(y) = h + G y`` and step ``1 / ||F H^{-1} F'||_2``, and autograd records every step, so the
backward pass differentiates the iterations themselves (memory and time grow with ``iterations``; the
answer and its derivative are only as exact as the iterations have converged).
"""

from __future__ import annotations

import torch


class UnrolledFollower(torch.nn.Module):
    """``z(y)`` of a BQP structure by ``iterations`` unrolled dual FISTA steps from ``lam = 0``.

    Parameters
    ----------
    structure : BQPStructure
    iterations : int
        Dual projected-gradient steps (default 200).
    """

    def __init__(self, structure, iterations: int = 200) -> None:
        super().__init__()
        for key in ("H", "F", "e", "h", "G"):
            self.register_buffer(key, torch.tensor(getattr(structure, key), dtype=torch.float64))
        self.register_buffer("H_inv", torch.linalg.inv(self.H))
        dual_hessian = self.F @ self.H_inv @ self.F.T
        self.step = 1.0 / float(torch.linalg.eigvalsh(dual_hessian).max()) if self.F.shape[0] else 0.0
        self.iterations = int(iterations)

    def primal(self, lam: torch.Tensor) -> torch.Tensor:
        """``z(lam) = -H^{-1} (e + F'lam)`` for a batch of multipliers."""
        return -(self.e + lam @ self.F) @ self.H_inv

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """``z(y)`` (B, n) after ``iterations`` steps; differentiable in ``y`` through every step."""
        b = self.h + y.to(torch.float64) @ self.G.T
        lam = b.new_zeros(b.shape)
        momentum_point, t = lam, 1.0
        for _ in range(self.iterations):
            dual_grad = self.primal(momentum_point) @ self.F.T - b      # gradient of the dual objective
            lam_next = torch.relu(momentum_point + self.step * dual_grad)
            t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
            momentum_point = lam_next + ((t - 1.0) / t_next) * (lam_next - lam)
            lam, t = lam_next, t_next
        return self.primal(lam)
