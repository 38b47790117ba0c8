"""Gradients through a discrete bilevel solver: BiGrad's eq. 8 (BB) and eq. 9 (PT), and their single-level forms.

A network predicts the costs ``c`` that both levels read. The bilevel solver returns the leader's decision
``x(c)`` and the follower's response ``y(c, x)``, both 0/1 arrays shaped like ``c``. With a loss ``L(x, y)`` and
its gradients ``g_x = dL/dx``, ``g_y = dL/dy``:

The follower reads ``w = c + D x`` (``D = task.coupling``: on ``spi-grid`` the interdiction cost of each tile; on
``tsp-interdiction`` zero, since a removal deletes an edge and has no finite derivative), so the loss reaches the
leader's decision both directly and through the follower: ``G_x = g_x + D * dL/dw``.

* **BB** (blackbox differentiation of both levels; Pogancic et al. 2020 applied to each level, BiGrad eq. 8)::

      dL/dw = (y(w + lam g_y) - y(w)) / lam
      dL/dc = dL/dw  +  (x(c + lam G_x) - x(c)) / lam

  Two extra solves per sample: the follower at perturbed costs and the leader at perturbed costs. The leader's
  term uses the same sign as the follower's: both decisions move away from an element whose cost rises (a path
  avoids an expensive tile, and an interdiction is worth less there), which is the monotonicity Pogancic's
  interpolation assumes.
* **PT** (straight-through, BiGrad eq. 9): each solver's Jacobian replaced by ``-I`` (the same monotonicity):
  ``dL/dw = -g_y``, ``dL/dc = dL/dw - G_x``; no extra solve.
* **BB-1 / PT-1** (single level): the leader's decision is held at the label ``x*`` and only the follower
  ``y(c, x*)`` is differentiated, by BB or PT; at test time the full bilevel solver runs on the predicted costs.

The loss is a batch mean of per-sample losses; each sample is perturbed along its own loss's gradient (the
batch size does not change ``lam``'s scale). Solves are farmed out to a process pool (:class:`SolvePool`), one task per sample.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

MODES = ("bb", "pt", "bb1", "pt1")


class SolvePool:
    """Run per-sample solver calls in ``workers`` processes (``workers <= 1``: in this process)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = int(workers)
        self._pool = ProcessPoolExecutor(self.workers) if self.workers > 1 else None

    def map(self, fn: Callable, *columns) -> list:
        if self._pool is None:
            return [fn(*args) for args in zip(*columns, strict=True)]
        return list(self._pool.map(fn, *columns, chunksize=max(1, len(columns[0]) // (4 * self.workers))))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


class BilevelLayer(torch.autograd.Function):
    """``(x, y) = solver(c)`` with a BB or PT backward (see the module docstring).

    ``task`` provides ``leader(c, ctx) -> x`` and ``follower(c, x, ctx) -> y`` as picklable module functions
    on one sample (NumPy), ``pool`` a :class:`SolvePool`, ``contexts`` one object per sample (what the solver
    needs besides the costs, e.g. the interdiction cost), ``fixed_x`` the label's ``x*`` for the single-level
    modes (else None).
    """

    @staticmethod
    def forward(ctx, c, task, pool, contexts, mode, lam, fixed_x):
        cn = c.detach().double().numpy()
        if fixed_x is None:
            x = np.stack(pool.map(task.leader, list(cn), contexts))
        else:
            x = np.asarray(fixed_x, dtype=np.float64)
        y = np.stack(pool.map(task.follower, list(cn), list(x), contexts))
        ctx.state = (cn, x, y, task, pool, contexts, mode, lam)
        return torch.from_numpy(x).to(c.dtype), torch.from_numpy(y).to(c.dtype)

    @staticmethod
    def backward(ctx, g_x, g_y):
        cn, x, y, task, pool, contexts, mode, lam = ctx.state
        # the training loss is the batch mean of per-sample losses: perturb along each sample's own gradient
        n = max(1, cn.shape[0])
        gx, gy = n * g_x.double().numpy(), n * g_y.double().numpy()
        if mode in ("pt", "pt1"):
            grad_w = -gy
        else:
            y_lam = np.stack(pool.map(task.follower, list(task.perturb(cn + lam * gy)), list(x), contexts))
            grad_w = (y_lam - y) / lam
        grad = grad_w
        if mode in ("pt", "bb"):
            total_x = gx + task.coupling(contexts) * grad_w
            if mode == "pt":
                grad = grad - total_x
            else:
                x_lam = np.stack(pool.map(task.leader, list(task.perturb(cn + lam * total_x)), contexts))
                grad = grad + (x_lam - x) / lam
        return torch.from_numpy(grad / n).to(g_x.dtype), None, None, None, None, None, None


def hamming(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample Hamming loss of 0/1 ``pred`` against ``target``, summed over entries (gradient ``1 - 2 t``)."""
    flat = pred.reshape(pred.shape[0], -1)
    t = target.reshape(target.shape[0], -1).to(flat.dtype)
    return (flat * (1 - 2 * t) + t).sum(1)
