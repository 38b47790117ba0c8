"""Projected gradient attack (PGA): batched multi-start ascent of the gap ``F(x, proxy(x)) - Phi(x)`` over the box.

Every start takes signed-gradient steps ``x <- clip(x + alpha_t (upper - lower) sign(grad), lower, upper)`` with
``alpha_t`` decaying linearly from ``alpha_0`` to ``alpha_0 / 10``; the starts cycle through ``alpha_0 = 2 step,
step, step / 2, step / 4`` (a portfolio: the gap of a proxy with soft penalties jumps where a line starts to
overload, and large steps cross such plateaus that small ones never leave). The gradient of ``F(x, proxy(x))`` comes from torch
autograd through the exported graph (:func:`torch_forward`); the gradient of ``Phi`` from the follower's exact LP
duals or, for integer followers, the LP relaxation's duals (the value-function approximation, VFA, of
:mod:`bilevelbench.verification.value`). Gaps are always evaluated with the exact ``Phi``. Starts are the
nominal point, train-split parameters inside the box, and uniform draws from the box (seeded).

The best point found is only a candidate: :mod:`bilevelbench.verification.run` re-checks it with the
submission's own ``solve`` and the family's exact solver before it is reported.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from bilevelbench.verification.graph import ProxyGraph, greedy_repair
from bilevelbench.verification.problem import VerificationProblem
from bilevelbench.verification.value import ProgramValue

log = logging.getLogger(__name__)


def torch_forward(graph: ProxyGraph, x: torch.Tensor) -> torch.Tensor:
    """The graph in torch (float64), differentiable in ``x`` wherever its layers are (the greedy repair is
    piecewise constant: no gradient flows through it)."""
    from bilevelbench.torch.projection import hypersimplex_projection

    z = x
    for layer in graph.layers:
        kind = layer.kind
        if kind == "affine":
            z = z @ torch.as_tensor(layer.weight).T + torch.as_tensor(layer.bias)
        elif kind == "relu":
            z = torch.relu(z)
        elif kind == "clamp":
            z = torch.minimum(torch.maximum(z, torch.as_tensor(layer.lower)), torch.as_tensor(layer.upper))
        elif kind == "shift_clip":
            total = x @ torch.as_tensor(layer.total_weight) + layer.total_offset
            z = hypersimplex_projection(z, total, torch.as_tensor(layer.lower), torch.as_tensor(layer.upper),
                                        method="sort")
        elif kind == "greedy_repair":
            cap = layer.capacity(x.detach().numpy())
            z = torch.as_tensor(greedy_repair(z.detach().numpy(), layer.weight, cap))
        elif kind == "sigmoid":
            z = torch.sigmoid(z)
    return z


@dataclass
class AttackSettings:
    """Multi-start PGA settings."""

    starts: int = 64
    steps: int = 60
    step: float = 0.1
    seed: int = 0
    time_limit: float = 600.0
    #: Integer followers: the exact ``Phi`` (a MILP per start) every this many steps and at the end; the steps in
    #: between climb the VFA alone. LP followers are exact at every step (it costs the same).
    exact_every: int = 10


@dataclass
class AttackResult:
    """The best point found and how the search went."""

    x: np.ndarray
    gap: float
    time_s: float
    evaluations: int
    history: list = field(default_factory=list)
    start_gaps: np.ndarray | None = None


def attack(problem: VerificationProblem, graph: ProxyGraph, lower: np.ndarray, upper: np.ndarray,
           settings: AttackSettings, progress=None) -> AttackResult:
    """Run PGA and return the best (largest-gap) point found.

    Parameters
    ----------
    problem : VerificationProblem
    graph : ProxyGraph
    lower, upper : (nx,) arrays
        The domain.
    settings : AttackSettings
    progress : callable, optional
        Called with the number of steps done.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    n = max(1, int(settings.starts))
    starts = [0.5 * (lower + upper)]
    nominal = np.clip(problem.nominal, lower, upper)
    starts.append(nominal)
    train = problem.train_params
    if train.size:
        inside = train[np.all((train >= lower - 1e-12) & (train <= upper + 1e-12), axis=1)]
        take = min(len(inside), max(0, (n - 2) // 2))
        if take:
            starts += list(inside[rng.choice(len(inside), take, replace=False)])
    while len(starts) < n:
        starts.append(lower + (upper - lower) * rng.random(lower.size))
    x = np.asarray(starts[:n], float)
    value = ProgramValue(problem.program)
    answer = _AnswerTorch(problem)
    sense = 1.0 if problem.sense == "min" else -1.0
    width = upper - lower
    best_x, best_gap = x[0].copy(), -np.inf
    start_best = np.full(n, -np.inf)
    history = []
    evaluations = 0
    steps = max(1, int(settings.steps))
    alpha0 = settings.step * np.array([2.0, 1.0, 0.5, 0.25])[np.arange(n) % 4][:, None]
    for t in range(steps + 1):
        xt = torch.tensor(x, requires_grad=True)
        yhat = torch_forward(graph, xt)
        F = answer(xt, yhat)
        if F.requires_grad:
            F.sum().backward()
            grad_F = xt.grad.numpy()
        else:                      # a piecewise-constant proxy (greedy repair): only Phi moves the ascent
            grad_F = np.zeros_like(x)
        exact = problem.program.is_lp or t % max(1, settings.exact_every) == 0 or t == steps
        phi, grad_phi = value.value_and_grad(x, exact=exact)
        if exact:
            evaluations += n
            gap = sense * (F.detach().numpy() - phi)
            gap = np.where(np.isfinite(gap), gap, -np.inf)
            improved = gap > start_best
            start_best = np.where(improved, gap, start_best)
            i = int(np.argmax(gap))
            if gap[i] > best_gap:
                best_gap, best_x = float(gap[i]), x[i].copy()
        history.append(float(best_gap))
        if progress is not None:
            progress(t)
        if t == steps or time.perf_counter() - start > settings.time_limit:
            break
        grad = sense * (grad_F - grad_phi)
        alpha = alpha0 * (1.0 - 0.9 * t / steps)
        x = np.clip(x + alpha * width * np.sign(grad), lower, upper)
    return AttackResult(best_x, best_gap, time.perf_counter() - start, evaluations, history, start_best)


class _AnswerTorch:
    """``F(x, yhat)`` in torch, its matrices converted once."""

    def __init__(self, problem: VerificationProblem) -> None:
        a = problem.answer
        self.c, self.c0 = torch.as_tensor(a.c), a.c0
        self.penalised = bool(a.h.size)
        if self.penalised:
            self.G, self.H = torch.as_tensor(a.G.toarray()), torch.as_tensor(a.H.toarray())
            self.h, self.price = torch.as_tensor(a.h), torch.as_tensor(a.price)

    def __call__(self, x: torch.Tensor, yhat: torch.Tensor) -> torch.Tensor:
        value = yhat @ self.c + self.c0
        if self.penalised:
            value = value + torch.relu(yhat @ self.G.T + x @ self.H.T + self.h) @ self.price
        return value
