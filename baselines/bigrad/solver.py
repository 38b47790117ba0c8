"""BiGrad (Alesiani) as a per-instance bilevel solver: penalised descent with the exact implicit hypergradient.

For every instance of the batch at once, minimise

    Phi(y) = L(y, z(y)) + rho * ||ReLU(A y - b - E z(y))||^2

by gradient descent with per-instance Armijo backtracking in the whitened variable ``w = L' y`` (``Q = L L'``: the upper objective's Hessian is badly
conditioned, and plain descent in ``y`` stalls along its weak directions), where ``z(y)`` is the follower's response (batched interior point) and the total derivative
``dPhi/dy`` comes from BiGrad's Theorem 2: autograd vector-Jacobian products plus conjugate-gradient solves
of the follower's KKT system (``bilevelbench.families.bqp.bigrad``). ``rho`` grows geometrically so the final point
is close to feasible. There are no upper-level-only constraints in the BQP, so the projection is the identity.

``Phi`` is nonconvex (piecewise quadratic over the follower's active sets, with kinks where the active set
changes, at which descent with a gradient that is exact on each piece stalls), so one descent stops near its
start. The solver runs ``starts`` descents per instance, all in one batch: from ``y = 0`` and from the certified
``y`` of the ``starts - 1`` nearest instances (Euclidean distance of the parameters ``(c, d)``) of the first
labelled split setup may read (the valid split: never the evaluated one); without labels, from uniform draws in
the search box of :func:`bilevelbench.families.bqp.search_box.search_box`. After the penalised descent, ``restoration_steps``
descent steps on the squared violation alone restore feasibility; among the starts, the feasible one with the
lowest objective wins (else the least violating). A trial step whose lower level has no solution is rejected.

Measured on valid instances 100-129 with the neighbours taken from valid instances 0-99 (8 starts): mean gap
0.096 at bqp-6x4 and 0.27 at bqp-9x6, all feasible; with uniform starts in the box instead, 5.7 and 0.7 (the
descent from y = 0 alone ends infeasible). With this start rule it is a warm-started local method, not a global
one.
"""

from __future__ import annotations

import numpy as np
import torch

from bilevelbench.families.bqp.bigrad import BiGradFollower
from bilevelbench.families.bqp.coupling import BQPTorch
from bilevelbench.families.bqp.search_box import certified_labels, readable_splits, search_box
from bilevelbench.solvers import Prediction
from bilevelbench.solvers import Solver as _Base
from bilevelbench.torch.qp_layer import IPMSettings


def labelled_neighbours(splits) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(params (P, m + n), y (P, m))`` of the certified instances of the first labelled split, or None."""
    for _name, split in splits:
        certified = certified_labels(split)
        if certified is not None:
            return torch.from_numpy(certified[0]), torch.from_numpy(certified[1])
    return None


class Solver(_Base):
    name = "bigrad"
    version = "3"
    description = ("penalised descent on L(y, z(y)) with BiGrad's implicit hypergradient (CG adjoint solves), "
                   "8 starts from y = 0 and the nearest valid instances' labels, feasibility restoration")
    iterations = 100
    rho_start = 100.0
    rho_growth = 10.0
    rho_every = 20
    backtracks = 8
    max_step = 4.0
    #: Descents per instance (the first from y = 0).
    starts = 8
    #: Start from the certified y of the nearest instances (parameters (c, d), Euclidean) of the first labelled
    #: readable split instead of uniform draws in the box (the start y = 0 is always kept).
    from_neighbours = True
    #: Final descent steps on the squared coupling violation alone (feasibility restoration).
    restoration_steps = 30
    #: Coupling violation (L2) under which a start counts as feasible when choosing among starts.
    feasible_violation = 1e-7
    box_margin = 0.25
    seed = 0

    def skip(self, spec):
        return (spec.family != "bqp", f"handles bqp only, not {spec.family!r}")

    def setup(self, spec, train_set) -> None:
        self.problem = BQPTorch(spec.structure)
        # a trial step may reach a y whose lower level is infeasible: such rows come back as NaN and are rejected
        self.follower = BiGradFollower(spec.structure, IPMSettings(on_failure="nan"))
        self.L = torch.linalg.cholesky(self.problem.Q)
        splits = readable_splits(spec.split, train_set)
        (lo, hi), self.box_source = search_box(spec.structure, splits, self.box_margin)
        rng = np.random.default_rng(self.seed)
        draws = lo + (hi - lo) * rng.random((max(self.starts, 1) - 1, spec.structure.m))
        self.start_points = torch.from_numpy(np.vstack([np.zeros(spec.structure.m), draws]))
        self.neighbours = labelled_neighbours(splits) if self.from_neighbours else None

    def _terms(self, c, d, w):
        """Upper objective and squared coupling violation per row; +inf where ``y`` is not finite or the
        follower has no solution there."""
        y = self._unwhiten(w)
        finite = torch.isfinite(y).all(1)
        y = torch.where(finite[:, None], y, torch.zeros_like(y))
        _, obj, viol_sq = self.problem.penalized(c, d, y, self.follower(y), 0.0)
        ok = finite & torch.isfinite(obj) & torch.isfinite(viol_sq)
        inf = torch.full_like(obj, float("inf"))
        return torch.where(ok, obj, inf), torch.where(ok, viol_sq, inf)

    def solve(self, params) -> Prediction:
        c = torch.from_numpy(np.asarray(params["c"], dtype=np.float64))
        d = torch.from_numpy(np.asarray(params["d"], dtype=np.float64))
        K = self.start_points.shape[0]
        y_start = self.start_points.repeat(c.shape[0], 1, 1)                 # (B, K, m)
        if self.neighbours is not None and K > 1:
            params, labels = self.neighbours
            dist = torch.cdist(torch.cat([c, d], 1), params)
            nearest = dist.topk(min(K - 1, params.shape[0]), largest=False).indices
            y_start[:, 1:1 + nearest.shape[1]] = labels[nearest]
        y_start = y_start.reshape(-1, y_start.shape[-1])
        c, d = c.repeat_interleave(K, 0), d.repeat_interleave(K, 0)
        w = y_start @ self.L                                            # w = L'y, row form y L

        def penalised(w_, it):
            obj, viol_sq = self._terms(c, d, w_)
            rho = self.rho_start * self.rho_growth ** (it // self.rho_every)
            return obj + rho * viol_sq

        w = self.descend(penalised, w, self.iterations)
        w = self.descend(lambda w_, it: self._terms(c, d, w_)[1], w, self.restoration_steps)
        with torch.no_grad():
            obj, viol_sq = self._terms(c, d, w)
        # per instance: the feasible start with the lowest objective, else the least violating one
        feasible = viol_sq.sqrt() <= self.feasible_violation
        score = torch.where(feasible, obj, float("inf")).view(-1, K)
        fallback = viol_sq.view(-1, K).argmin(1)
        pick = torch.where(torch.isfinite(score.min(1).values), score.argmin(1), fallback)
        best = pick + K * torch.arange(score.shape[0])
        return Prediction(y=self._unwhiten(w[best]).numpy())

    def descend(self, f, w: torch.Tensor, iterations: int) -> torch.Tensor:
        """Gradient descent on ``f(w, iteration)`` (one value per row) with per-row Armijo backtracking, the
        gradient being BiGrad's hypergradient; the step restarts at 1 whenever ``f`` changes (``rho_every``)."""
        B = w.shape[0]
        step = torch.ones(B, dtype=torch.float64)
        for it in range(iterations):
            if it and it % self.rho_every == 0:
                step = torch.ones_like(step)
            with torch.enable_grad():
                w_var = w.clone().requires_grad_(True)
                value = f(w_var, it)
                (grad,) = torch.autograd.grad(value.sum(), w_var)   # BiGrad hypergradient (VJP + CG adjoint)
            with torch.no_grad():
                grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)   # rows at +inf stay put
                value = value.detach()
                pending = torch.ones(B, dtype=torch.bool)
                start = w
                for _ in range(self.backtracks):                  # Armijo backtracking, per row
                    trial = start - step[:, None] * grad
                    ok = pending & (f(trial, it) <= value - 0.5 * step * (grad * grad).sum(1))
                    w = torch.where(ok[:, None], trial, w)
                    pending &= ~ok
                    step = torch.where(pending, 0.5 * step, step)
                    if not bool(torch.any(pending)):
                        break
                step = torch.clamp(step * 2.0, max=self.max_step)
        return w

    def _unwhiten(self, w: torch.Tensor) -> torch.Tensor:
        """``y = L'^{-1} w`` (a triangular solve), so that ``1/2 y'Qy = 1/2 ||w||^2``."""
        return torch.linalg.solve_triangular(self.L.T, w.T, upper=True).T
