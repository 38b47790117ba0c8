"""BiGrad (Alesiani) as a per-instance bilevel solver: penalised descent with the exact implicit hypergradient.

For every instance of the batch at once, minimise

    Phi(y) = L(y, z(y)) + rho * ||ReLU(A y - b - E z(y))||^2

by gradient descent with per-instance Armijo backtracking in the whitened variable ``w = L' y`` (``Q = L L'``: the upper objective's Hessian is badly
conditioned, and plain descent in ``y`` stalls along its weak directions), where ``z(y)`` is the follower's response (batched interior point) and the total derivative
``dPhi/dy`` comes from BiGrad's Theorem 2: autograd vector-Jacobian products plus conjugate-gradient solves
of the follower's KKT system (``bilevelbench.torch.bigrad``). ``rho`` grows geometrically so the final point
is close to feasible. There are no upper-level-only constraints in the BQP, so the projection is the identity.
The iterate with the best penalised objective under the final ``rho`` is returned.
"""

from __future__ import annotations

import numpy as np
import torch

from bilevelbench.solvers import Prediction
from bilevelbench.solvers import Solver as _Base
from bilevelbench.torch.bigrad import BiGradFollower
from bilevelbench.torch.coupling import BQPTorch


class Solver(_Base):
    name = "bigrad"
    version = "1"
    description = "penalised descent on L(y, z(y)) with BiGrad's implicit hypergradient (CG adjoint solves)"
    iterations = 100
    rho_start = 100.0
    rho_growth = 10.0
    rho_every = 20
    backtracks = 8
    max_step = 4.0

    def skip(self, spec):
        return (spec.family != "bqp", f"handles bqp only, not {spec.family!r}")

    def setup(self, spec, train_set) -> None:
        self.problem = BQPTorch(spec.structure)
        self.follower = BiGradFollower(spec.structure)
        self.L = torch.linalg.cholesky(self.problem.Q)

    def _phi(self, c, d, w, rho):
        y = self._unwhiten(w)
        return self.problem.penalized(c, d, y, self.follower(y), rho)[0]

    def solve(self, params) -> Prediction:
        c = torch.from_numpy(np.asarray(params["c"], dtype=np.float64))
        d = torch.from_numpy(np.asarray(params["d"], dtype=np.float64))
        B = c.shape[0]
        w = torch.zeros(B, self.problem.Q.shape[0], dtype=torch.float64)
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
        return Prediction(y=self._unwhiten(w).numpy())

    def _unwhiten(self, w: torch.Tensor) -> torch.Tensor:
        """``y = L'^{-1} w`` (a triangular solve), so that ``1/2 y'Qy = 1/2 ||w||^2``."""
        return torch.linalg.solve_triangular(self.L.T, w.T, upper=True).T
