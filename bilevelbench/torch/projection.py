"""Euclidean projection onto a capped simplex ``{y : sum y = D, lo <= y <= hi}``: ``y = clip(p0 + t, lo, hi)``
with one scalar shift ``t`` (the "hypersimplex projection" of end-to-end feasible proxies).

The sum ``sum_g clip(p0_g + t, lo_g, hi_g)`` is continuous, piecewise linear and non-decreasing in ``t``, so
``t`` is found by bisection or exactly from the sorted breakpoints, then finished by one exact step on its
linear piece. The torch layer's gradient follows from the implicit function theorem on the set ``F`` of
coordinates strictly inside their limits: ``dy_g/dp0_h = [g in F] (delta_gh - [h in F] / |F|)`` and
``dy_g/dD = [g in F] / |F|``. Because it is a clip of an affine shift, the map is piecewise linear and can be
encoded exactly in a MILP (:mod:`bilevelbench.verification.encode`).

When ``D`` lies outside ``[sum lo, sum hi]`` nothing balances: the output is the nearest bound vector (all at
``lo`` or all at ``hi``), with zero gradient.
"""

from __future__ import annotations

import numpy as np
import torch

from bilevelbench.errors import UsageError

#: How the shift ``t`` is found: bisection (the paper's binary search) or the sorted breakpoints (exact).
SHIFT_METHODS = ("bisection", "sort")
#: Default bisection steps: the bracket shrinks by 2**-60 before the exact final step.
DEFAULT_ITERATIONS = 60
def _clip(x: torch.Tensor, pmin: torch.Tensor, pmax: torch.Tensor) -> torch.Tensor:
    return torch.minimum(torch.maximum(x, pmin), pmax)


def _shift_bisection(p0: torch.Tensor, demand: torch.Tensor, pmin: torch.Tensor, pmax: torch.Tensor,
                     iterations: int) -> torch.Tensor:
    lo = (pmin - p0).min(1).values
    hi = (pmax - p0).max(1).values
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = _clip(p0 + mid[:, None], pmin, pmax).sum(1) < demand
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _shift_sort(p0: torch.Tensor, demand: torch.Tensor, pmin: torch.Tensor, pmax: torch.Tensor) -> torch.Tensor:
    B, ng = p0.shape
    knots = torch.cat([pmin - p0, pmax - p0], 1)                     # a generator starts / stops moving
    step = torch.cat([p0.new_ones(B, ng), -p0.new_ones(B, ng)], 1)
    knots, order = torch.sort(knots, dim=1, stable=True)
    slope = torch.cumsum(torch.gather(step, 1, order), 1)          # slope of the sum after each knot
    rise = slope[:, :-1] * torch.diff(knots, dim=1)
    at_knots = torch.cat([p0.new_zeros(B, 1), torch.cumsum(rise, 1)], 1) + pmin.sum()
    k = (torch.searchsorted(at_knots.contiguous(), demand[:, None].contiguous(), right=True) - 1)
    k = k.clamp(0, 2 * ng - 2)
    s_k = torch.gather(slope, 1, k)[:, 0]
    t = torch.gather(knots, 1, k)[:, 0]
    gap = demand - torch.gather(at_knots, 1, k)[:, 0]
    return t + torch.where(s_k > 0, gap / s_k.clamp(min=1), torch.zeros_like(gap))


def find_shift(p0: torch.Tensor, demand: torch.Tensor, pmin: torch.Tensor, pmax: torch.Tensor,
               method: str = "bisection", iterations: int = DEFAULT_ITERATIONS
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve ``sum_g clip(p0_g + t, pmin_g, pmax_g) = D`` for ``t`` (no gradient).

    Parameters
    ----------
    p0 : (B, ng) tensor
        Dispatch to shift (any real values; the bound clamp keeps it inside the limits, but it need not).
    demand : (B,) tensor
        ``D``, MW. Values outside ``[sum pmin, sum pmax]`` are clamped to that range (no balanced answer).
    pmin, pmax : (ng,) tensor
        Generator limits.
    method : {"bisection", "sort"}
        ``bisection``: ``iterations`` halvings of the bracket ``[min(pmin - p0), max(pmax - p0)]``;
        ``sort``: the exact piece from the sorted breakpoints. Both end with one exact step on the piece.
    iterations : int
        Bisection steps.

    Returns
    -------
    t : (B,) tensor
        The shift.
    pg : (B, ng) tensor
        ``clip(p0 + t, pmin, pmax)``.
    free : (B, ng) bool tensor
        Generators strictly inside their limits at ``pg`` (all False where ``D`` is out of range).
    """
    if method not in SHIFT_METHODS:
        raise UsageError(f"shift method must be one of {', '.join(SHIFT_METHODS)}; received {method!r}")
    with torch.no_grad():
        lo_total, hi_total = pmin.sum(), pmax.sum()
        inside = (demand > lo_total) & (demand < hi_total)
        target = torch.minimum(torch.maximum(demand, lo_total), hi_total)
        if method == "bisection":
            t = _shift_bisection(p0, target, pmin, pmax, int(iterations))
        else:
            t = _shift_sort(p0, target, pmin, pmax)
        # one exact step on the linear piece that holds t (Newton on a piecewise-linear function)
        x = p0 + t[:, None]
        free = (x > pmin) & (x < pmax)
        n_free = free.sum(1)
        residual = target - _clip(x, pmin, pmax).sum(1)
        t = t + torch.where(n_free > 0, residual / n_free.clamp(min=1), torch.zeros_like(t))
        # out of range: every generator at the nearest bound vector, exactly
        t = torch.where(demand <= lo_total, (pmin - p0).min(1).values, t)
        t = torch.where(demand >= hi_total, (pmax - p0).max(1).values, t)
        x = p0 + t[:, None]
        pg = _clip(x, pmin, pmax)
        free = (x > pmin) & (x < pmax) & inside[:, None]
    return t, pg, free


class _HypersimplexProjection(torch.autograd.Function):
    """``pg = clip(p0 + t(p0, D))``; backward by the implicit function theorem on the free set."""

    @staticmethod
    def forward(ctx, p0, demand, pmin, pmax, method, iterations):
        _, pg, free = find_shift(p0.detach(), demand.detach(), pmin, pmax, method, iterations)
        ctx.save_for_backward(free)
        return pg

    @staticmethod
    def backward(ctx, grad_pg):
        (free,) = ctx.saved_tensors
        f = free.to(grad_pg.dtype)
        n_free = f.sum(1, keepdim=True)
        mean_free = torch.where(n_free > 0, (grad_pg * f).sum(1, keepdim=True) / n_free.clamp(min=1),
                                torch.zeros_like(n_free))
        grad_p0 = f * (grad_pg - mean_free)
        grad_demand = mean_free[:, 0]
        return grad_p0, grad_demand, None, None, None, None


def hypersimplex_projection(p0: torch.Tensor, demand: torch.Tensor, pmin: torch.Tensor, pmax: torch.Tensor,
                            method: str = "bisection", iterations: int = DEFAULT_ITERATIONS) -> torch.Tensor:
    """Shift every generator by one scalar and clip, so the dispatch meets demand: differentiable.

    Parameters
    ----------
    p0 : (B, ng) tensor
        Dispatch inside the limits (e.g. from :func:`bound_clamp`).
    demand : (B,) tensor
        ``D = sum(pd) + sum(gs)``, MW.
    pmin, pmax : (ng,) tensor
        Generator limits (same dtype as ``p0``).
    method, iterations
        See :func:`find_shift`.

    Returns
    -------
    (B, ng) tensor
        ``pg`` with ``pmin <= pg <= pmax`` exactly and ``sum pg = D`` to rounding when
        ``sum pmin <= D <= sum pmax``; otherwise the nearest bound vector (all ``pmin`` or all ``pmax``).
        Gradients with respect to ``p0`` and ``demand`` follow the implicit function theorem (zero outside
        the free set, and zero where ``D`` is out of range).
    """
    if p0.ndim != 2 or demand.shape != p0.shape[:1]:
        raise UsageError(f"p0 must be (B, ng) and demand (B,); got {tuple(p0.shape)} and {tuple(demand.shape)}")
    return _HypersimplexProjection.apply(p0, demand, pmin, pmax, method, iterations)


def project_numpy(p0: np.ndarray, demand: np.ndarray, pmin: np.ndarray, pmax: np.ndarray) -> np.ndarray:
    """:func:`hypersimplex_projection` in NumPy (sorted breakpoints, then the exact step): no gradient, but a
    fraction of torch's per-operation overhead at batch size 1.

    Parameters
    ----------
    p0 : (B, ng) array
    demand : (B,) array
    pmin, pmax : (ng,) array

    Returns
    -------
    (B, ng) array
        ``clip(p0 + t, pmin, pmax)`` with ``sum = demand`` (to rounding) where ``demand`` is in
        ``[sum pmin, sum pmax]``; the nearest bound vector otherwise.
    """
    ng = p0.shape[1]
    lo_total, hi_total = float(pmin.sum()), float(pmax.sum())
    target = np.clip(demand, lo_total, hi_total)
    knots = np.concatenate([pmin - p0, pmax - p0], 1)
    order = np.argsort(knots, axis=1, kind="stable")
    knots = np.take_along_axis(knots, order, 1)
    step = np.where(order < ng, 1.0, -1.0)
    slope = np.cumsum(step, 1)
    at_knots = np.empty_like(knots)
    at_knots[:, 0] = lo_total
    np.cumsum(slope[:, :-1] * np.diff(knots, axis=1), axis=1, out=at_knots[:, 1:])
    at_knots[:, 1:] += lo_total
    k = np.clip((at_knots <= target[:, None]).sum(1) - 1, 0, 2 * ng - 2)[:, None]
    s_k = np.take_along_axis(slope, k, 1)[:, 0]
    t = np.take_along_axis(knots, k, 1)[:, 0]
    t = t + np.where(s_k > 0, (target - np.take_along_axis(at_knots, k, 1)[:, 0]) / np.maximum(s_k, 1.0), 0.0)
    x = p0 + t[:, None]
    free = (x > pmin) & (x < pmax)
    n_free = free.sum(1)
    residual = target - np.clip(x, pmin, pmax).sum(1)
    t = t + np.where(n_free > 0, residual / np.maximum(n_free, 1), 0.0)
    t = np.where(demand <= lo_total, (pmin - p0).min(1), t)
    t = np.where(demand >= hi_total, (pmax - p0).max(1), t)
    return np.clip(p0 + t[:, None], pmin, pmax)


