"""Best-known labels of the control co-design families: a documented global search, never a certificate.

Neither family has an exact bilevel method here (the two-tank follower is nonconvex; the HVAC design enters the
lower level bilinearly), so their labels have status ``best_known``: the best penalised objective this search
found, with the follower solved by the family's own response (two-tank: the multi-start projected Gauss-Newton
of :func:`bilevelbench.families.ccd_twotank.solve_follower`; HVAC: the exact convex QP).

The search, per instance (:class:`SearchSettings` holds every number; the settings are stored in the file):

1. **Global phase.** Two-tank: a ``grid x grid`` lattice over the design box. HVAC: the nominal design, the
   zero design, and every pair of zone-entry levels in ``hvac_levels`` with the other six entries 0.
2. **Local phase.** From the ``refine_starts`` best points of phase 1: ``refine_iters`` iterations (HVAC: ``hvac_refine_*``) of projected
   gradient descent with the implicit-function gradient (:mod:`bilevelbench.families.ccd.layers`), trying the
   step sizes ``t, t/4, t/16`` at once and keeping the best point that lowers the objective (``t`` doubles after
   a success and drops 16-fold after a failure). Designs are projected onto the box (two-tank) or ``[0, box_hi]``
   (HVAC: PSO's box).
3. The label is the best point of all evaluated ones, re-evaluated by the family's follower. Recorded with it:
   the number of designs evaluated, the best value of each local start (``start_objectives``) and their spread.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from bilevelbench.families.ccd import hvac as ccd_hvac
from bilevelbench.families.ccd import twotank as ccd_twotank

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchSettings:
    """Numbers of the best-known search (module docstring)."""

    grid: int = 5
    hvac_levels: tuple[float, ...] = (0.25, 0.75, 1.5, 3.0)
    refine_starts: int = 2
    refine_iters: int = 12
    hvac_refine_starts: int = 3
    hvac_refine_iters: int = 80
    hvac_box_hi: float = 10.0

    def as_dict(self) -> dict:
        return {**asdict(self), "hvac_levels": list(self.hvac_levels), "method": "grid/multistart + projected "
                "gradient (implicit gradients); best of all evaluated designs"}


class _Problem:
    """Penalised objective (numpy, no gradient) and its gradient (torch) for one family."""

    def __init__(self, family: str, structure, params: dict[str, np.ndarray]) -> None:
        self.family, self.s, self.params = family, structure, params
        if family == ccd_hvac.FAMILY:
            from bilevelbench.families.ccd.layers import HVACLayer

            self.layer = HVACLayer(structure)
            self.lo = np.zeros(structure.design_dim)
            self.hi = np.full(structure.design_dim, 10.0)

    def rows(self, index: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[index] for k, v in self.params.items()}

    def values(self, design: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
        if self.family == ccd_twotank.FAMILY:
            return ccd_twotank.evaluate_designs(self.s, design, self.params["p"][index])
        return ccd_hvac.evaluate_designs(self.s, design, self.rows(index), self.layer.cond)

    def gradient(self, design: np.ndarray, index: np.ndarray) -> np.ndarray:
        import torch

        y = torch.tensor(design, dtype=torch.float64, requires_grad=True)
        if self.family == ccd_twotank.FAMILY:
            from bilevelbench.families.ccd.layers import twotank_final_state

            p = torch.as_tensor(self.params["p"][index])
            x_final, _ = twotank_final_state(self.s, y, p)
            f = y.sum(1) + self.s.kappa * ((x_final - p) ** 2).sum(1)
        else:
            slack, _ = self.layer.slacks(y, *ccd_hvac.as_tensors(self.rows(index)))
            f = y.sum(1) + self.s.kappa * (slack ** 2).sum(1)
        (grad,) = torch.autograd.grad(f.sum(), y)
        return grad.numpy()


def _global_candidates(family: str, s, settings: SearchSettings) -> np.ndarray:
    if family == ccd_twotank.FAMILY:
        axes = [np.linspace(s.design_lo[i], s.design_hi[i], settings.grid) for i in range(2)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    k = s.design_dim
    zone = np.flatnonzero(np.isclose(s.nominal_design, s.nominal_design.max()))
    out = [s.nominal_design, np.zeros(k)]
    for a in settings.hvac_levels:
        for b in settings.hvac_levels:
            y = np.zeros(k)
            y[zone] = (a, b)
            out.append(y)
    return np.array(out)


def search(family: str, structure, params: dict[str, np.ndarray], settings: SearchSettings = SearchSettings()
           ) -> dict[str, np.ndarray]:
    """Best-known designs for every instance of ``params`` (arrays, instance axis first); see the module doc.

    Returns ``design``, ``objective``, ``cost``, ``violation``, ``n_evaluated``, ``start_objectives``
    (n, refine_starts), ``spread`` (largest minus smallest of them), ``follower_stationarity`` and
    ``solve_time`` (seconds per instance, wall clock of the batch divided evenly).
    """
    t0 = time.perf_counter()
    prob = _Problem(family, structure, params)
    n = next(iter(params.values())).shape[0]
    if family == ccd_twotank.FAMILY:
        lo, hi = np.asarray(structure.design_lo, float), np.asarray(structure.design_hi, float)
    else:
        lo, hi = np.zeros(structure.design_dim), np.full(structure.design_dim, settings.hvac_box_hi)
    cands = _global_candidates(family, structure, settings)
    m, k = cands.shape
    inst = np.repeat(np.arange(n), m)
    grid_obj = prob.values(np.tile(cands, (n, 1)), inst)["objective"].reshape(n, m)
    best_obj = grid_obj.min(1)
    best_design = cands[grid_obj.argmin(1)].copy()
    n_eval = np.full(n, m)
    twotank = family == ccd_twotank.FAMILY
    r = min(settings.refine_starts if twotank else settings.hvac_refine_starts, m)
    iters = settings.refine_iters if twotank else settings.hvac_refine_iters
    order = np.argsort(grid_obj, axis=1, kind="stable")[:, :r]
    y = cands[order].reshape(n * r, k)
    f = np.take_along_axis(grid_obj, order, 1).reshape(n * r)
    rows = np.repeat(np.arange(n), r)
    step = np.full(n * r, 0.1 * float(np.min(hi - lo)))
    for _ in range(iters):
        g = prob.gradient(y, rows)
        gnorm = np.linalg.norm(g, axis=1)
        scale = step / np.maximum(gnorm, 1e-12)
        trials = np.stack([np.clip(y - (scale / 4 ** j)[:, None] * g, lo, hi) for j in range(3)], 1)  # (R, 3, k)
        vals = prob.values(trials.reshape(-1, k), np.repeat(rows, 3))["objective"].reshape(-1, 3)
        np.add.at(n_eval, rows, 3)
        j = vals.argmin(1)
        better = vals[np.arange(len(j)), j] < f
        y[better] = trials[better, j[better]]
        f[better] = vals[better, j[better]]
        step = np.where(better, 2 * step / 4 ** j, step / 16)
    f_starts = f.reshape(n, r)
    y_starts = y.reshape(n, r, k)
    use_local = f_starts.min(1) < best_obj
    best_design[use_local] = y_starts[use_local, f_starts[use_local].argmin(1)]
    final = prob.values(best_design, np.arange(n))
    per_instance = (time.perf_counter() - t0) / max(n, 1)
    return {"design": best_design, "objective": final["objective"], "cost": final["cost"],
            "violation": final["violation"], "n_evaluated": n_eval.astype(np.int64),
            "start_objectives": f_starts, "spread": f_starts.max(1) - f_starts.min(1),
            "follower_stationarity": final["follower_stationarity"],
            "follower_converged": final["follower_converged"].astype(bool),
            "solve_time": np.full(n, per_instance)}
