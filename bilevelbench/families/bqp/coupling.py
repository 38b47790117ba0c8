"""Differentiable pieces of the L2O method of Kotary et al. (Algorithm 1): the upper objective, the coupling
violation through the follower's response, and the coupling-constraint correction steps.

All functions take a :class:`~bilevelbench.torch.qp_layer.FollowerLayer` so that ``z(y)`` and its
derivative come from one batched, implicitly differentiated QP solve.
"""

from __future__ import annotations

import torch

from bilevelbench.errors import UsageError
from bilevelbench.families.bqp.bigrad import BiGradFollower
from bilevelbench.families.bqp.follower_layer import FollowerLayer
from bilevelbench.families.bqp.problem import BQPStructure
from bilevelbench.families.bqp.unrolled import UnrolledFollower

#: How ``z(y)`` is differentiated: the active-set KKT solved directly (``implicit``), BiGrad's CG adjoint
#: (``bigrad``; both on the exact interior-point answer), or unrolled dual FISTA iterations (``unrolled``).
FOLLOWER_GRADIENTS = ("implicit", "bigrad", "unrolled")


def make_follower(structure: BQPStructure, gradient: str = "implicit") -> torch.nn.Module:
    """The follower's response ``z(y)`` as a batched layer whose backward pass is ``gradient``."""
    if gradient == "implicit":
        return FollowerLayer(structure)
    if gradient == "bigrad":
        return BiGradFollower(structure)
    if gradient == "unrolled":
        return UnrolledFollower(structure)
    raise UsageError(f"follower gradient must be one of {', '.join(FOLLOWER_GRADIENTS)}; received {gradient!r}")


class BQPTorch(torch.nn.Module):
    """The BQP structure as float64 tensors, with batched objective and coupling residual.

    ``follower_gradient`` picks how ``z(y)`` is differentiated (:data:`FOLLOWER_GRADIENTS`).
    """

    def __init__(self, structure: BQPStructure, follower_gradient: str = "implicit") -> None:
        super().__init__()
        for key in ("Q", "A", "b", "E"):
            self.register_buffer(key, torch.tensor(getattr(structure, key), dtype=torch.float64))
        self.q = float(structure.q)
        self.follower = make_follower(structure, follower_gradient)

    def objective(self, c: torch.Tensor, d: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``1/2 y'Qy + c'y + d'z + q`` per row."""
        return 0.5 * ((y @ self.Q) * y).sum(1) + (c * y).sum(1) + (d * z).sum(1) + self.q

    def coupling(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``A y - b - E z`` (feasible where <= 0)."""
        return y @ self.A.T - self.b - z @ self.E.T

    def penalized(self, c: torch.Tensor, d: torch.Tensor, y: torch.Tensor, z: torch.Tensor, penalty: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``L(y, z) + penalty * ||ReLU(A y - b - E z)||^2`` per row, with the objective and squared violation."""
        obj = self.objective(c, d, y, z)
        viol_sq = torch.relu(self.coupling(y, z)).pow(2).sum(1)
        return obj + penalty * viol_sq, obj, viol_sq

    def violation_sq(self, y: torch.Tensor) -> torch.Tensor:
        """``||ReLU(A y - b - E z(y))||^2`` per row, differentiable through the follower."""
        return torch.relu(self.coupling(y, self.follower(y))).pow(2).sum(1)


def correct(problem: BQPTorch, y: torch.Tensor, steps: int, gamma: float, create_graph: bool) -> torch.Tensor:
    """``steps`` coupling-correction steps ``y <- y - gamma * grad ||ReLU(U(y, z(y)))||^2``.

    The BQP has no upper-level-only constraints, so the projection ``Pi_C`` of
    Algorithm 1 is the identity. With ``create_graph`` (training) the steps stay
    differentiable, so the network learns through them.
    """
    for _ in range(steps):
        if not y.requires_grad:
            y = y.detach().requires_grad_(True)
        v = problem.violation_sq(y).sum()
        (grad,) = torch.autograd.grad(v, y, create_graph=create_graph)
        y = y - gamma * grad
        if not create_graph:
            y = y.detach()
    return y


class MLP(torch.nn.Module):
    """ReLU network with batch norm, as in the authors' code (``BQP/main.py``), widths given explicitly."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for i in range(len(widths) - 2):
            layers += [torch.nn.Linear(widths[i], widths[i + 1]), torch.nn.BatchNorm1d(widths[i + 1]),
                       torch.nn.ReLU()]
        layers.append(torch.nn.Linear(widths[-2], widths[-1]))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class L2OCorrection(torch.nn.Module):
    """Parameters ``(c, d)`` -> network -> ``y0`` -> correction steps -> ``y`` (Kotary et al., Algorithm 1).

    Parameters
    ----------
    structure : BQPStructure
    hidden : list of int
        Hidden widths of the MLP (input ``m + n``, output ``m``).
    gamma : float
        Correction step size.
    follower_gradient : str
        How ``z(y)`` is differentiated (:data:`FOLLOWER_GRADIENTS`).
    """

    def __init__(self, structure: BQPStructure, hidden: list[int], gamma: float,
                 follower_gradient: str = "implicit") -> None:
        super().__init__()
        self.problem = BQPTorch(structure, follower_gradient)
        self.mlp = MLP([structure.m + structure.n, *hidden, structure.m]).double()
        self.gamma = float(gamma)

    def forward(self, c: torch.Tensor, d: torch.Tensor, steps: int) -> torch.Tensor:
        y0 = self.mlp(torch.cat([c, d], 1))
        return correct(self.problem, y0, steps, self.gamma, create_graph=self.training)

    def loss(self, c: torch.Tensor, d: torch.Tensor, y: torch.Tensor, penalty: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-supervised loss ``mean(L(y, z(y)) + penalty * ||ReLU(U)||^2)``, with the objective and violation."""
        phi, obj, viol_sq = self.problem.penalized(c, d, y, self.problem.follower(y), penalty)
        return phi.mean(), obj.detach(), viol_sq.detach().sqrt()
