"""Sample -> label -> write for ``adv-control`` on the core pipeline
(:func:`bilevelbench.core.pipeline.generate_sharded`).

The system is drawn once from ``SeedSequence(seed, spawn_key=(15, 9))``; split ``k`` (train, valid, test = 0, 1,
2) draws its instances from ``SeedSequence(seed, spawn_key=(15, k))`` in one block, so the same seed and counts
give the same data whatever the number of workers. Each label is SCIP's solution of the KKT-SOS1 reformulation
(:mod:`.kkt`), closed to a relative gap of ``rel_gap`` by SCIP's own dual bound, then re-checked before it is
written: the adversary is re-solved at the label's controls by HiGHS (an independent QP solver) and must agree
with the active-set solution, and the leader's cost is recomputed from the dynamics. ``objective`` is that
recomputed cost (achieved by the stored controls against the adversary's exact answer); ``lower_bound`` is SCIP's
dual bound. A label that fails keeps its place, with its reason and no solution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bilevelbench.core.backends import backend_version
from bilevelbench.core.family import SplitRequest
from bilevelbench.core.pipeline import (
    generate_sharded,
    label_arrays,
    merge_shards,
    root_attrs,
    split_params,
    split_positions,
)
from bilevelbench.data.hdf5 import SPLITS, InstanceSetData, check_output_path
from bilevelbench.data.shards import request_key, shard_name
from bilevelbench.errors import SolverError, UsageError
from bilevelbench.families.advctl import problem
from bilevelbench.families.advctl.problem import FAMILY, SEED_STREAM, AdvStructure

GENERATOR_VERSION = 1
CHUNK = 20
#: Agreement required between the active-set and the HiGHS answers of the adversary (max abs over entries).
FOLLOWER_TOL = 1e-6
SAMPLER = "x0 and target uniform in [-x0_max, x0_max]^n_x, independently"


@dataclass(frozen=True)
class AdvRequest(SplitRequest):
    """What to generate."""

    states: int = 4
    controls: int = 2
    disturbances: int = 2
    horizon: int = 5
    r: float = 0.1
    u_max: float = 1.0
    w_max: float = 0.3
    gamma_factor: float = 0.1
    x0_max: float = 2.0
    spectral_radius: float = 1.05
    rel_gap: float = 1e-6
    time_limit: float = 120.0
    n_train: int = 0
    n_valid: int = 0
    n_test: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        self.check_counts()
        self.check_time_limit(self.time_limit)
        if not (np.isfinite(self.rel_gap) and 0 <= self.rel_gap <= 1e-3):
            raise UsageError(f"--rel-gap must be between 0 and 1e-3 (a certified label is closed to it), "
                             f"received {self.rel_gap}")
        self.structure()

    def structure(self) -> AdvStructure:
        return problem.draw_structure(self.seed, self.states, self.controls, self.disturbances, self.horizon,
                                      self.r, self.u_max, self.w_max, self.gamma_factor, self.x0_max,
                                      self.spectral_radius)


def label_chunk(s: AdvStructure, kkt, x0: np.ndarray, target: np.ndarray, rel_gap: float,
                time_limit: float) -> dict[str, np.ndarray]:
    """Certified labels of a chunk: ``u`` (n, T nu), ``w`` (n, T nw), ``objective``, ``lower_bound``."""
    n = x0.shape[0]
    out = {"u": np.full((n, s.n_controls), np.nan), "w": np.full((n, s.n_disturbances), np.nan),
           "objective": np.full(n, np.nan), "lower_bound": np.full(n, np.nan), "solve_time": np.full(n, np.nan),
           "nodes": np.full(n, np.nan), "check_follower_recompute": np.full(n, np.nan)}
    status, reason = [], []
    for i in range(n):
        res = kkt.solve(x0[i], target[i], time_limit)
        out["solve_time"][i], out["nodes"][i] = res.time_s, res.nodes
        if not np.all(np.isfinite(res.U)):
            status.append("time_limit" if res.status == "time_limit" else "failed")
            reason.append(f"SCIP found no solution ({res.detail})"[:200])
            continue
        U = np.clip(res.U, -s.u_max, s.u_max)
        cost, W = problem.true_cost(s, x0[i], target[i], U)
        value = float(cost[0])
        try:
            W_highs = problem.follower_highs(s, problem.follower_linear(s, x0[i], target[i], U))
        except SolverError as exc:
            status.append("failed")
            reason.append(f"the HiGHS re-check of the adversary failed: {exc}"[:200])
            continue
        disagreement = float(np.max(np.abs(W_highs - W[0]))) if W.size else 0.0
        out["check_follower_recompute"][i] = disagreement
        gap = (value - res.dual_bound) / max(1.0, abs(value))
        if disagreement > FOLLOWER_TOL:
            status.append("failed")
            reason.append(f"the adversary's answer differs by {disagreement:.2e} between the active-set method "
                          f"and HiGHS"[:200])
        elif not (res.status == "optimal" and gap <= rel_gap * (1 + 1e-9) + 1e-12):
            status.append("time_limit" if res.status == "time_limit" else "failed")
            reason.append(f"SCIP stopped ({res.detail}) with the cost {value:.10g} and a dual bound "
                          f"{res.dual_bound:.10g}: gap {gap:.2e} above {rel_gap:.0e}"[:200])
        else:
            status.append("certified_optimal")
            reason.append(f"KKT-SOS1 in SCIP, {res.nodes} nodes, dual bound {res.dual_bound:.12g} (relative gap "
                          f"{max(gap, 0.0):.1e}); adversary re-solved by HiGHS"[:200])
            out["u"][i], out["w"][i] = U, W[0]
            out["objective"][i], out["lower_bound"][i] = value, res.dual_bound
    out["status"] = np.array(status, dtype="U20")
    out["reason"] = np.array(reason, dtype="U200")
    return out


_STATE: dict = {}


def _init_worker(request: AdvRequest) -> None:
    from bilevelbench.families.advctl.kkt import ScipKKT

    s = request.structure()
    _STATE.update(request=request, s=s, kkt=ScipKKT(s, seed=request.seed, rel_gap=request.rel_gap))


def _chunk_task(task):
    split, chunk, params = task
    r = _STATE["request"]
    return shard_name(split, chunk), label_chunk(_STATE["s"], _STATE["kkt"], params["x0"], params["target"],
                                                 r.rel_gap, r.time_limit)


def generate_adv(request: AdvRequest, out: Path | str, workers: int = 1, overwrite: bool = False, progress=None,
                 name: str | None = None, spec: dict | None = None, scheduler: str | None = None) -> Path:
    """Generate, label and write an ``adv-control`` instance set (resumable); returns the written path."""
    check_output_path(Path(out), overwrite)
    s = request.structure()
    counts = request.split_counts()
    draws = {}
    for k, split in enumerate(SPLITS):
        rng = np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(SEED_STREAM, k)))
        draws[split] = problem.sample_instances(s, rng, counts[split])
    settings = {"time_limit": request.time_limit, "rel_gap": request.rel_gap, "abs_gap": 1e-9,
                "feasibility_tol": 1e-7, "follower_check": "highs-qp", "follower_tol": FOLLOWER_TOL}
    key = request_key(asdict(request), s.digest(), settings, GENERATOR_VERSION, CHUNK)

    def assemble(parts) -> InstanceSetData:
        merged = merge_shards([part for split in SPLITS for part in parts[split]])
        labels = label_arrays(merged, ("u", "w", "objective", "lower_bound", "solve_time", "nodes"), "scip")
        attrs = root_attrs(FAMILY, GENERATOR_VERSION, request.seed, s, name=name, spec=spec,
                           certifier_settings=settings,
                           backend_versions={"scip": backend_version("scip"), "highs": backend_version("highs")},
                           sampling={**asdict(request), "sampler": SAMPLER})
        return InstanceSetData(attrs=attrs, structure=s.arrays(), params=split_params(draws), labels=labels,
                               checks={"follower_recompute": merged["check_follower_recompute"]},
                               splits=split_positions(counts))

    return generate_sharded(out, key, draws, SPLITS, CHUNK, _chunk_task, assemble=assemble,
                            initializer=_init_worker, initargs=(request,), workers=workers, scheduler=scheduler,
                            progress=progress, overwrite=overwrite)
