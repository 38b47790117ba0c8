"""Sample -> label -> write for ``spi-grid`` on the core pipeline (:func:`bilevelbench.core.pipeline.generate_sharded`).

Split ``k`` (train, valid, test = 0, 1, 2) draws its maps from ``SeedSequence(seed, spawn_key=(13, k))`` in one
block, so the same seed and counts give the same instances whatever the number of workers. Each label is the
exact interdiction of :func:`~bilevelbench.families.spi.grid.interdict_milp` (SCIP at zero gap), re-checked
before it is written: the follower re-solved by Dijkstra must reproduce the stored path cost, and the
interdiction must be feasible. A label SCIP did not prove keeps its place, with its reason and no solution.
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
from bilevelbench.data.hdf5 import (
    SPLITS,
    InstanceSetData,
    check_output_path,
)
from bilevelbench.data.shards import request_key, shard_name
from bilevelbench.errors import SolverError
from bilevelbench.families.spi import grid, terrain
from bilevelbench.families.spi.problem import FAMILY, SPIStructure, sample_instances

GENERATOR_VERSION = 1
SEED_STREAM = 13
CHUNK = 20
SAMPLER = ("Voronoi terrain (about k^2/6 regions, types road/grass/forest/hills/water with weights "
           "0.15/0.35/0.25/0.15/0.10, costs 0.8/1.2/5.3/7.7/9.2); 8x8-pixel procedural texture per type plus "
           "N(0, 8) pixel noise; interdiction cost the same on every tile")


@dataclass(frozen=True)
class SPIRequest(SplitRequest):
    """What to generate."""

    size: int = 12
    budget: int = 3
    interdiction_cost: float = 1.0
    n_train: int = 0
    n_valid: int = 0
    n_test: int = 100
    seed: int = 0
    time_limit: float = 600.0

    def __post_init__(self) -> None:
        self.check_counts()
        self.check_time_limit(self.time_limit)
        self.structure()

    def structure(self) -> SPIStructure:
        return SPIStructure(self.size, self.budget, self.interdiction_cost, terrain.TERRAIN_COST)


def label_chunk(s: SPIStructure, costs: np.ndarray, d: np.ndarray, time_limit: float) -> dict[str, np.ndarray]:
    """Exact labels of a chunk of maps (n, k, k): ``interdiction`` and ``path`` (n, k*k) row-major, ``objective``."""
    n, t = costs.shape[0], s.n_tiles
    out = {"interdiction": np.full((n, t), np.nan), "path": np.full((n, t), np.nan),
           "objective": np.full(n, np.nan), "solve_time": np.full(n, np.nan),
           "check_follower_recompute": np.full(n, np.nan)}
    status, reason = [], []
    for i in range(n):
        try:
            res = grid.interdict_milp(costs[i], d[i], s.budget, time_limit)
        except SolverError as exc:
            status.append("failed")
            reason.append(str(exc)[:200])
            continue
        out["solve_time"][i] = res.time_s
        value, path = grid.shortest_path(grid.interdicted(costs[i], d[i], res.x))
        out["check_follower_recompute"][i] = abs(value - res.objective)
        feasible = res.x.sum() <= s.budget and res.x[0, 0] == 0 and res.x[-1, -1] == 0
        if res.status != "optimal":
            status.append("failed")
            reason.append(f"SCIP did not prove the interdiction optimal: {res.detail}"[:200])
        elif not feasible:
            status.append("failed")
            reason.append("the interdiction exceeds the budget or touches the start or target tile")
        else:
            status.append("certified_optimal")
            reason.append(f"SCIP optimal at gap 0; follower re-solved by Dijkstra: {value:.12g}"[:200])
            out["interdiction"][i] = res.x.reshape(-1)
            out["path"][i] = path.reshape(-1)
            out["objective"][i] = value
    out["status"] = np.array(status, dtype="U20")
    out["reason"] = np.array(reason, dtype="U200")
    return out


_STATE: dict = {}


def _init_worker(request: SPIRequest) -> None:
    _STATE.update(request=request, s=request.structure())


def _chunk_task(task):
    split, chunk, params = task
    r = _STATE["request"]
    return shard_name(split, chunk), label_chunk(_STATE["s"], params["costs"], params["interdiction_cost"],
                                                 r.time_limit)


def generate_spi(request: SPIRequest, out: Path | str, workers: int = 1, overwrite: bool = False, progress=None,
                 name: str | None = None, spec: dict | None = None, scheduler: str | None = None) -> Path:
    """Generate, label and write an ``spi-grid`` instance set (resumable); returns the written path."""
    check_output_path(Path(out), overwrite)
    s = request.structure()
    counts = request.split_counts()
    draws = {}
    for k, split in enumerate(SPLITS):
        rng = np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(SEED_STREAM, k)))
        maps = sample_instances(s, rng, counts[split])
        draws[split] = {key: maps[key] for key in ("costs", "interdiction_cost", "image")}
    settings = {"time_limit": request.time_limit, "backend": "scip", "gap": 0.0}
    key = request_key(asdict(request), s.digest(), settings, GENERATOR_VERSION, CHUNK)

    def assemble(parts) -> InstanceSetData:
        merged = merge_shards([part for split in SPLITS for part in parts[split]])
        labels = label_arrays(merged, ("interdiction", "path", "objective", "solve_time"), "scip")
        params = split_params(draws)
        attrs = root_attrs(FAMILY, GENERATOR_VERSION, request.seed, s, name=name, spec=spec,
                           certifier_settings=settings, backend_versions={"scip": backend_version("scip")},
                           sampling={**asdict(request), "sampler": SAMPLER})
        return InstanceSetData(attrs=attrs, structure=s.arrays(), params=params, labels=labels,
                               checks={"follower_recompute": merged["check_follower_recompute"]},
                               splits=split_positions(counts))

    return generate_sharded(out, key, draws, SPLITS, CHUNK, _chunk_task, assemble=assemble,
                            initializer=_init_worker, initargs=(request,), workers=workers, scheduler=scheduler,
                            progress=progress, overwrite=overwrite)
