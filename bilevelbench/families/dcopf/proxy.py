"""Differentiable pieces of the end-to-end feasible DC-OPF proxy (Chen, Tanneau and Van Hentenryck).

A network maps the loads ``pd`` to a raw vector in ``R^ng``; two closed-form layers then make the dispatch
feasible for the hard constraints of :mod:`bilevelbench.families.dcopf`, for *every* input:

1. **Bound clamp** (:func:`bound_clamp`): ``p0 = pmin + (pmax - pmin) * sigmoid(raw)``, so
   ``pmin <= p0 <= pmax``.
2. **Hypersimplex projection** (:func:`hypersimplex_projection`): the scalar shift ``t`` with
   ``sum_g clip(p0_g + t, pmin_g, pmax_g) = D``, ``D = sum(pd) + sum(gs)``, and ``pg = clip(p0 + t)``. The sum
   is continuous, piecewise linear and non-decreasing in ``t``, so ``t`` is found by bisection on
   ``[min(pmin - p0), max(pmax - p0)]`` (or exactly, from the sorted breakpoints), then finished by one exact
   step on its linear piece; the output meets balance to rounding and the bounds exactly (it is a clip).
   Its gradient follows from the implicit function theorem on the set ``F`` of generators strictly inside
   their limits: ``dpg_g/dp0_h = [g in F] (delta_gh - [h in F] / |F|)`` and ``dpg_g/dD = [g in F] / |F|``.

   When ``D`` lies outside ``[sum pmin, sum pmax]`` no dispatch balances: the output is the nearest bound
   vector (every generator at ``pmin``, or every one at ``pmax``), with zero gradient, and the evaluator
   reports its balance violation.

Training is self-supervised (:class:`DCOPFObjective`): the objective ``cost(pg) + M sum max(0, |f| - rate)``
with DC flows from a dense PTDF, ``f = PTDF (Cg pg - pd - gs - Pbusinj) + Pfinj``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bilevelbench.errors import UsageError
from bilevelbench.families.dcopf.problem import DCOPFStructure

#: How the shift ``t`` is found: bisection (the paper's binary search) or the sorted breakpoints (exact).
SHIFT_METHODS = ("bisection", "sort")
#: Default bisection steps: the bracket shrinks by 2**-60 before the exact final step.
DEFAULT_ITERATIONS = 60
#: Normalised network inputs are clipped to this magnitude (keeps absurd loads from overflowing float32).
INPUT_CLIP = 1e6


# -- bound clamp ---------------------------------------------------------------------------------------------
def bound_clamp(raw: torch.Tensor, pmin: torch.Tensor, pmax: torch.Tensor) -> torch.Tensor:
    """``pmin + (pmax - pmin) * sigmoid(raw)`` (B, ng): inside the generator limits for any finite ``raw``.

    Parameters
    ----------
    raw : (B, ng) tensor
        Unconstrained network output.
    pmin, pmax : (ng,) tensor
        Generator limits, MW.

    Returns
    -------
    (B, ng) tensor
        ``p0`` with ``pmin <= p0 <= pmax``.
    """
    return pmin + (pmax - pmin) * torch.sigmoid(raw)


# -- hypersimplex projection ---------------------------------------------------------------------------------
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


# -- the network ---------------------------------------------------------------------------------------------
class DCOPFProxy(torch.nn.Module):
    """MLP -> bound clamp -> hypersimplex projection: loads ``pd`` (B, nb) to a dispatch ``pg`` (B, ng).

    The MLP runs in float32 on loads normalised by the train split's mean and standard deviation (stored
    as buffers); the clamp and the projection run in float64, so feasibility does not depend on the
    network's precision.

    Parameters
    ----------
    structure : DCOPFStructure
        The grid (limits and shunt demand).
    x_mean, x_std : (nb,) array
        Input normalisation (a zero ``x_std`` is replaced by 1).
    hidden : sequence of int
        Hidden widths (ReLU).
    method, iterations
        Projection settings (:func:`find_shift`).
    """

    def __init__(self, structure: DCOPFStructure, x_mean: np.ndarray, x_std: np.ndarray,
                 hidden: Sequence[int] = (256, 256, 256), method: str = "bisection",
                 iterations: int = DEFAULT_ITERATIONS) -> None:
        super().__init__()
        if method not in SHIFT_METHODS:
            raise UsageError(f"shift method must be one of {', '.join(SHIFT_METHODS)}; received {method!r}")
        s = structure
        std = np.where(np.asarray(x_std, float) > 0, np.asarray(x_std, float), 1.0)
        self.register_buffer("x_mean", torch.tensor(np.asarray(x_mean, float), dtype=torch.float64))
        self.register_buffer("x_std", torch.tensor(std, dtype=torch.float64))
        self.register_buffer("pmin", torch.tensor(s.pmin, dtype=torch.float64), persistent=False)
        self.register_buffer("pmax", torch.tensor(s.pmax, dtype=torch.float64), persistent=False)
        self.gs_total = float(np.sum(s.gs))
        self.method, self.iterations = method, int(iterations)
        layers: list[torch.nn.Module] = []
        width = s.n_bus
        for h in hidden:
            layers += [torch.nn.Linear(width, int(h)), torch.nn.ReLU()]
            width = int(h)
        layers.append(torch.nn.Linear(width, s.n_gen))
        self.mlp = torch.nn.Sequential(*layers)

    def raw(self, pd: torch.Tensor) -> torch.Tensor:
        """The network's unconstrained output (B, ng), float64, finite for any input."""
        x = ((pd - self.x_mean) / self.x_std).clamp(-INPUT_CLIP, INPUT_CLIP)
        x = torch.nan_to_num(x, nan=0.0).float()
        return torch.nan_to_num(self.mlp(x).double(), nan=0.0, posinf=50.0, neginf=-50.0)

    def demand(self, pd: torch.Tensor) -> torch.Tensor:
        """``D = sum(pd) + sum(gs)`` (B,)."""
        return pd.sum(1) + self.gs_total

    def forward(self, pd: torch.Tensor) -> torch.Tensor:
        """Dispatch ``pg`` (B, ng), float64, for loads ``pd`` (B, nb) float64."""
        p0 = bound_clamp(self.raw(pd), self.pmin, self.pmax)
        return hypersimplex_projection(p0, self.demand(pd), self.pmin, self.pmax, self.method, self.iterations)

    @torch.no_grad()
    def predict(self, pd: np.ndarray) -> np.ndarray:
        """NumPy in, NumPy out: ``pg`` (B, ng) for ``pd`` (B, nb) or (nb,)."""
        x = torch.as_tensor(np.atleast_2d(np.asarray(pd, dtype=np.float64)))
        return self.forward(x).numpy()


# -- inference without autograd -----------------------------------------------------------------------------
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


class FrozenProxy:
    """A trained :class:`DCOPFProxy` as plain NumPy (float32 MLP, float64 clamp and projection): the same
    function, for fast inference at small batch sizes.

    Parameters
    ----------
    model : DCOPFProxy
    """

    def __init__(self, model: DCOPFProxy) -> None:
        self.x_mean = model.x_mean.numpy().copy()
        self.x_std = model.x_std.numpy().copy()
        self.pmin = model.pmin.numpy().copy()
        self.pmax = model.pmax.numpy().copy()
        self.gs_total = model.gs_total
        linear = [m for m in model.mlp if isinstance(m, torch.nn.Linear)]
        self.layers = [(m.weight.detach().float().numpy().T.copy(), m.bias.detach().float().numpy().copy())
                       for m in linear]

    def raw(self, pd: np.ndarray) -> np.ndarray:
        """The network's unconstrained output (B, ng), float64, finite for any input."""
        with np.errstate(invalid="ignore", over="ignore"):
            x = np.clip((pd - self.x_mean) / self.x_std, -INPUT_CLIP, INPUT_CLIP)
            x = np.nan_to_num(x, nan=0.0).astype(np.float32)
            last = len(self.layers) - 1
            for i, (w, b) in enumerate(self.layers):
                x = x @ w + b
                if i < last:
                    np.maximum(x, 0.0, out=x)
        return np.nan_to_num(x.astype(np.float64), nan=0.0, posinf=50.0, neginf=-50.0)

    def __call__(self, pd: np.ndarray) -> np.ndarray:
        """Dispatch ``pg`` (B, ng) for loads ``pd`` (B, nb) or (nb,)."""
        pd = np.atleast_2d(np.asarray(pd, dtype=np.float64))
        raw = np.clip(self.raw(pd), -700.0, 700.0)
        p0 = self.pmin + (self.pmax - self.pmin) / (1.0 + np.exp(-raw))
        with np.errstate(invalid="ignore", over="ignore"):
            demand = pd.sum(1) + self.gs_total
        return project_numpy(p0, demand, self.pmin, self.pmax)


# -- the self-supervised objective ---------------------------------------------------------------------------
def dense_ptdf(structure: DCOPFStructure) -> np.ndarray:
    """The PTDF (nl, nb), MW of branch flow per MW injected at each bus (withdrawn at the reference bus).

    Row ``l`` is ``PTDF' e_l`` (:meth:`DCOPFStructure.ptdf_t`); the reference bus's column is 0.
    """
    return structure.ptdf_t(np.eye(structure.n_branch))


class DCOPFObjective(torch.nn.Module):
    """The family's objective in torch: ``cost(pg) + M sum_l max(0, |f_l| - rate_l)`` with dense-PTDF flows.

    ``f = PTDF[:, gen_bus] pg - PTDF pd + offset`` with ``offset = Pfinj - PTDF (gs + Pbusinj)`` (MATPOWER's DC
    flows, as :meth:`DCOPFStructure.flows`). Only branches with a finite limit enter the penalty.

    Parameters
    ----------
    structure : DCOPFStructure
    ptdf : (nl, nb) array, optional
        A precomputed :func:`dense_ptdf`.
    margin : float
        Penalise flows beyond ``(1 - margin) * rate`` instead of ``rate`` (a training-time safety margin;
        0 is the family's objective).
    """

    def __init__(self, structure: DCOPFStructure, ptdf: np.ndarray | None = None, margin: float = 0.0) -> None:
        super().__init__()
        s = structure
        ptdf = dense_ptdf(s) if ptdf is None else np.asarray(ptdf, float)
        if ptdf.shape != (s.n_branch, s.n_bus):
            raise UsageError(f"ptdf must have shape ({s.n_branch}, {s.n_bus}); got {ptdf.shape}")
        offset = s.pfinj - ptdf @ (s.gs + s.pbusinj)
        limited = s.limited
        f64 = torch.float64
        self.register_buffer("ptdf", torch.tensor(ptdf, dtype=f64))
        self.register_buffer("ptdf_gen", torch.tensor(ptdf[:, s.gen_bus], dtype=f64))
        self.register_buffer("offset", torch.tensor(offset, dtype=f64))
        self.register_buffer("limited", torch.tensor(limited, dtype=torch.long))
        self.register_buffer("rate", torch.tensor((1.0 - float(margin)) * s.rate[limited], dtype=f64))
        self.register_buffer("cost", torch.tensor(s.cost, dtype=f64))
        self.penalty = float(s.penalty)

    def base_flows(self, pd: torch.Tensor) -> torch.Tensor:
        """Flows with no generation, ``-PTDF pd + offset`` (B, nl): constant per instance, precompute it."""
        return self.offset - pd @ self.ptdf.T

    def flows(self, pg: torch.Tensor, pd: torch.Tensor | None = None, base: torch.Tensor | None = None
              ) -> torch.Tensor:
        """Branch flows (B, nl), MW, from ``pd`` or from precomputed ``base`` flows."""
        if base is None:
            if pd is None:
                raise UsageError("flows needs pd or base")
            base = self.base_flows(pd)
        return pg @ self.ptdf_gen.T + base

    def generation_cost(self, pg: torch.Tensor) -> torch.Tensor:
        """``sum_g c2 pg^2 + c1 pg + c0`` (B,)."""
        c2, c1, c0 = self.cost[:, 0], self.cost[:, 1], self.cost[:, 2]
        return (c2 * pg * pg + c1 * pg).sum(1) + c0.sum()

    def thermal_violation(self, flows: torch.Tensor) -> torch.Tensor:
        """``sum_l max(0, |f_l| - rate_l)`` over limited branches (B,), MW."""
        return torch.relu(flows[:, self.limited].abs() - self.rate).sum(1)

    def forward(self, pg: torch.Tensor, pd: torch.Tensor | None = None, base: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Objective, generation cost and thermal violation (MW), each (B,)."""
        cost = self.generation_cost(pg)
        xi = self.thermal_violation(self.flows(pg, pd, base))
        return cost + self.penalty * xi, cost, xi
