"""BiGrad (Alesiani) as a per-instance bilevel solver: penalised descent with the exact implicit hypergradient.

For every instance of the batch at once, minimise

    Phi(y) = L(y, z(y)) + rho * ||ReLU(A y - b - E z(y))||^2

by gradient descent with per-instance Armijo backtracking in the whitened variable ``w = L' y`` (``Q = L L'``: the upper objective's Hessian is badly
conditioned, and plain descent in ``y`` stalls along its weak directions), where ``z(y)`` is the follower's response (batched interior point) and the total derivative
``dPhi/dy`` comes from BiGrad's Theorem 2: autograd vector-Jacobian products plus conjugate-gradient solves
of the follower's KKT system (``bilevelbench.torch.bigrad``). ``rho`` grows geometrically so the final point
is close to feasible. There are no upper-level-only constraints in the BQP, so the projection is the identity.

``Phi`` is nonconvex (piecewise quadratic over the follower's active sets), so one descent stops at the local
minimum of its start. The solver runs ``starts`` descents per instance, all in one batch: from ``y = 0`` and
from ``starts - 1`` points drawn uniformly (fixed seed, the same for every instance) in the search box of
:func:`bilevelbench.search_box.search_box` (the valid split's labelled ``y`` range, widened by a quarter), and
returns the start with the lowest penalised objective under the final ``rho``. On the bqp-3x2 valid split
(first 100 instances) the mean gap is 0.51 from one start, 0.088 from 8 and 0.017 from 32 (at 3.4x the
time of 8). At bqp-9x6 (first 20 valid instances) the gap stays near 0.65 with 1 or 8 starts and 100 or 400
iterations: ``z(y)`` has kinks where the follower's active set changes, and descent with a gradient that is exact
on each piece stalls at them. Hence 8 starts by default.
"""

from __future__ import annotations

import numpy as np
import torch

from bilevelbench.search_box import readable_splits, search_box
from bilevelbench.solvers import Prediction
from bilevelbench.solvers import Solver as _Base
from bilevelbench.torch.bigrad import BiGradFollower
from bilevelbench.torch.coupling import BQPTorch


class Solver(_Base):
    name = "bigrad"
    version = "2"
    description = "penalised descent on L(y, z(y)) with BiGrad's implicit hypergradient (CG adjoint solves)"
    iterations = 100
    rho_start = 100.0
    rho_growth = 10.0
    rho_every = 20
    backtracks = 8
    max_step = 4.0
    #: Descents per instance (the first from y = 0).
    starts = 8
    box_margin = 0.25
    seed = 0

    def skip(self, spec):
        return (spec.family != "bqp", f"handles bqp only, not {spec.family!r}")

    def setup(self, spec, train_set) -> None:
        self.problem = BQPTorch(spec.structure)
        self.follower = BiGradFollower(spec.structure)
        self.L = torch.linalg.cholesky(self.problem.Q)
        (lo, hi), self.box_source = search_box(spec.structure, readable_splits(spec.split, train_set),
                                               self.box_margin)
        rng = np.random.default_rng(self.seed)
        draws = lo + (hi - lo) * rng.random((max(self.starts, 1) - 1, spec.structure.m))
        self.start_points = torch.from_numpy(np.vstack([np.zeros(spec.structure.m), draws]))

    def _phi(self, c, d, w, rho):
        y = self._unwhiten(w)
        return self.problem.penalized(c, d, y, self.follower(y), rho)[0]

    def solve(self, params) -> Prediction:
        c = torch.from_numpy(np.asarray(params["c"], dtype=np.float64))
        d = torch.from_numpy(np.asarray(params["d"], dtype=np.float64))
        K = self.start_points.shape[0]
        c, d = c.repeat_interleave(K, 0), d.repeat_interleave(K, 0)
        y_start = self.start_points.repeat(c.shape[0] // K, 1)
        w, rho = self.descend(c, d, y_start @ self.L)                  # w = L'y, row form y L
        with torch.no_grad():
            phi = self._phi(c, d, w, rho).view(-1, K)
        best = phi.argmin(1) + K * torch.arange(phi.shape[0])
        return Prediction(y=self._unwhiten(w[best]).numpy())

    def descend(self, c: torch.Tensor, d: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Penalised descent from ``w`` (one row per start); the final iterates and the final ``rho``."""
        B = c.shape[0]
        step = torch.ones(B, dtype=torch.float64)
        rho = self.rho_start
        for it in range(self.iterations):
            if it and it % self.rho_every == 0:
                rho *= self.rho_growth
                step = torch.ones_like(step)
            with torch.enable_grad():
                w_var = w.clone().requires_grad_(True)
                phi = self._phi(c, d, w_var, rho)
                (grad,) = torch.autograd.grad(phi.sum(), w_var)   # BiGrad hypergradient (VJP + CG adjoint)
            with torch.no_grad():
                phi = phi.detach()
                pending = torch.ones(B, dtype=torch.bool)
                start = w
                for _ in range(self.backtracks):                  # Armijo backtracking, per instance
                    trial = start - step[:, None] * grad
                    ok = pending & (self._phi(c, d, trial, rho) <= phi - 0.5 * step * (grad * grad).sum(1))
                    w = torch.where(ok[:, None], trial, w)
                    pending &= ~ok
                    step = torch.where(pending, 0.5 * step, step)
                    if not bool(torch.any(pending)):
                        break
                step = torch.clamp(step * 2.0, max=self.max_step)
        return w, rho

    def _unwhiten(self, w: torch.Tensor) -> torch.Tensor:
        """``y = L'^{-1} w`` (a triangular solve), so that ``1/2 y'Qy = 1/2 ||w||^2``."""
        return torch.linalg.solve_triangular(self.L.T, w.T, upper=True).T
