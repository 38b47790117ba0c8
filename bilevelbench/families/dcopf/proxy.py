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
from bilevelbench.torch.projection import (  # noqa: F401  (re-exported: the proxy's feasibility layer)
    DEFAULT_ITERATIONS,
    SHIFT_METHODS,
    find_shift,
    hypersimplex_projection,
    project_numpy,
)

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


#: Bound clamps: ``sigmoid`` (smooth, the paper's) or ``hard`` (piecewise linear, so the proxy can be verified).
CLAMPS = ("sigmoid", "hard")


def hard_bound_clamp(raw: torch.Tensor, pmin: torch.Tensor, pmax: torch.Tensor) -> torch.Tensor:
    """``pmin + (pmax - pmin) * clip(1/2 + raw/4, 0, 1)`` (B, ng): the sigmoid's slope at 0, but piecewise
    linear, so a MILP encodes it exactly (:mod:`bilevelbench.verification`)."""
    return pmin + (pmax - pmin) * torch.clamp(0.5 + 0.25 * raw, 0.0, 1.0)


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
    clamp : {"sigmoid", "hard"}
        The bound clamp (:func:`bound_clamp` or :func:`hard_bound_clamp`).
    """

    def __init__(self, structure: DCOPFStructure, x_mean: np.ndarray, x_std: np.ndarray,
                 hidden: Sequence[int] = (256, 256, 256), method: str = "bisection",
                 iterations: int = DEFAULT_ITERATIONS, clamp: str = "sigmoid") -> None:
        super().__init__()
        if method not in SHIFT_METHODS:
            raise UsageError(f"shift method must be one of {', '.join(SHIFT_METHODS)}; received {method!r}")
        if clamp not in CLAMPS:
            raise UsageError(f"bound clamp must be one of {', '.join(CLAMPS)}; received {clamp!r}")
        self.clamp = clamp
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
        clamp = hard_bound_clamp if self.clamp == "hard" else bound_clamp
        p0 = clamp(self.raw(pd), self.pmin, self.pmax)
        return hypersimplex_projection(p0, self.demand(pd), self.pmin, self.pmax, self.method, self.iterations)

    @torch.no_grad()
    def predict(self, pd: np.ndarray) -> np.ndarray:
        """NumPy in, NumPy out: ``pg`` (B, ng) for ``pd`` (B, nb) or (nb,)."""
        x = torch.as_tensor(np.atleast_2d(np.asarray(pd, dtype=np.float64)))
        return self.forward(x).numpy()


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
        self.clamp = model.clamp
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
        if self.clamp == "hard":
            p0 = self.pmin + (self.pmax - self.pmin) * np.clip(0.5 + 0.25 * raw, 0.0, 1.0)
        else:
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
