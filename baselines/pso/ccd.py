"""Particle swarm on the control co-design families (Kotary et al.'s PSO baseline, the authors' settings).

One pyswarms ``GlobalBestPSO`` per instance (128 particles, 200 iterations, ``c1 = c2 = 0.5``, ``w = 0.9``; box
``[0.01, 0.32]^2`` for the two-tank, ``[0, 10]^8`` for HVAC as in ``building_pyswarms.py``) minimises the penalised
objective ``cost + kappa violation^2`` (kappa 100; 5). The swarms of a batch advance in lockstep through pyswarms'
own backend (``compute_pbest``, ``Star.compute_gbest``, ``compute_velocity``, ``compute_position``, the loop body
of ``GlobalBestPSO.optimize``) so that one batched follower solve serves every particle of every instance.

Inside the swarm the follower is solved cheaply: each particle's lower level starts from its own previous
controls (warm start) and runs at most ``inner_iters`` projected Newton iterations (the two-tank: from
``u = 0`` at the first iteration, as the authors' iLQR). The answer is the swarm's best design; the evaluator
re-scores it with the family's defined follower, so the shortcut can only cost PSO quality, never
misreport it.

Restarts (two-tank only, the authors' ``twotank_baseline_single.py``): with ``restarts = 5`` a new swarm is run
while ``||x_T - p|| > 0.05`` after a run, at most 5 runs, and the last run is kept, as the authors do.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import torch

from bilevelbench.families.ccd import hvac as ccd_hvac
from bilevelbench.families.ccd import twotank as ccd_twotank


def _seed(base: int, row: np.ndarray, attempt: int) -> int:
    h = hashlib.sha256(f"{base}:{attempt}".encode())
    h.update(np.ascontiguousarray(row, dtype=np.float64).tobytes())
    return int.from_bytes(h.digest()[:4], "little")


class _TwoTankSwarmObjective:
    def __init__(self, s: ccd_twotank.TwoTankStructure, p: np.ndarray, n_particles: int, inner_iters: int) -> None:
        self.s = replace(s, follower_max_iter=inner_iters)
        self.p = torch.as_tensor(np.repeat(p, n_particles, 0))
        self.u = torch.zeros(self.p.shape[0], 2 * s.steps, dtype=torch.float64)

    def __call__(self, designs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = torch.as_tensor(designs)
        with torch.no_grad():
            u, _, _, _ = ccd_twotank._minimise(self.s, self.u.clone(), c, self.p)
            self.u = u
            x = ccd_twotank.rollout(self.s, u.view(-1, self.s.steps, 2), c)
        miss = torch.linalg.norm(x[:, -1] - self.p, dim=1).numpy()
        return designs.sum(1) + self.s.kappa * miss ** 2, miss


class _HVACSwarmObjective:
    def __init__(self, s: ccd_hvac.HVACStructure, params: dict[str, np.ndarray], n_particles: int,
                 inner_iters: int) -> None:
        self.s = replace(s, follower_max_iter=inner_iters)
        self.cond = ccd_hvac.Condensed(s)
        self.params = tuple(torch.as_tensor(np.repeat(np.asarray(params[k], float), n_particles, 0))
                            for k in ("x0", "ymin", "ymax", "d"))
        self.u = None

    def __call__(self, designs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        res = ccd_hvac.solve_follower_torch(self.s, self.cond, torch.as_tensor(designs), *self.params, u0=self.u)
        self.u = res.u
        viol = torch.linalg.norm(res.slack, dim=1).numpy()
        return designs.sum(1) + self.s.kappa * viol ** 2, viol


def run_swarms(family: str, s, params: dict[str, np.ndarray], *, n_particles: int, iters: int, options: dict,
               seed: int, pso_class: type, inner_iters: int, attempt: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run one swarm per instance in lockstep; return the best designs (B, k) and their violations (B,)."""
    from baselines.pso.solver import _no_logging_dictconfig

    with _no_logging_dictconfig():              # importing pyswarms reconfigures logging and writes report.log
        from pyswarms.backend.operators import compute_pbest

    key = "p" if family == ccd_twotank.FAMILY else "x0"
    rows = np.asarray(params[key])
    B = rows.shape[0]
    if family == ccd_twotank.FAMILY:
        lo, hi = np.asarray(s.design_lo, float), np.asarray(s.design_hi, float)
        objective = _TwoTankSwarmObjective(s, np.asarray(params["p"], float), n_particles, inner_iters)
    else:
        lo, hi = np.zeros(s.design_dim), np.full(s.design_dim, 10.0)
        objective = _HVACSwarmObjective(s, params, n_particles, inner_iters)
    swarms, states = [], []
    state = np.random.get_state()
    try:
        for b in range(B):          # each swarm draws from its own stream: an answer does not depend on the batch
            np.random.seed(_seed(seed, rows[b], attempt))
            opt = pso_class(n_particles=n_particles, dimensions=lo.size, options=dict(options), bounds=(lo, hi))
            opt.bh.memory = opt.swarm.position
            opt.vh.memory = opt.swarm.position
            opt.swarm.pbest_cost = np.full(n_particles, np.inf)
            swarms.append(opt)
            states.append(np.random.get_state())
        for i in range(iters):
            positions = np.concatenate([o.swarm.position for o in swarms])
            cost, _ = objective(positions)
            cost = np.where(np.isfinite(cost), cost, 1e300).reshape(B, n_particles)
            for b, o in enumerate(swarms):
                np.random.set_state(states[b])
                o.swarm.current_cost = cost[b]
                o.swarm.pbest_pos, o.swarm.pbest_cost = compute_pbest(o.swarm)
                o.swarm.best_pos, o.swarm.best_cost = o.top.compute_gbest(o.swarm)
                o.swarm.options = o.oh(o.options, iternow=i, itermax=iters)
                o.swarm.velocity = o.top.compute_velocity(o.swarm, o.velocity_clamp, o.vh, o.bounds)
                o.swarm.position = o.top.compute_position(o.swarm, o.bounds, o.bh)
                states[b] = np.random.get_state()
    finally:
        np.random.set_state(state)
    best = np.stack([o.swarm.pbest_pos[o.swarm.pbest_cost.argmin()] for o in swarms])
    return best, np.full(B, np.nan)
