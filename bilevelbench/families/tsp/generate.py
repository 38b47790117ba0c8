"""Sample -> label -> write for ``tsp-interdiction`` on the core pipeline
(:func:`bilevelbench.core.pipeline.generate_sharded`).

Split ``k`` (train, valid, test = 0, 1, 2) draws its instances from ``SeedSequence(seed, spawn_key=(14, k))`` in
one block, so the same seed and counts give the same instances whatever the number of workers. Each label is the
exact removal of :func:`~bilevelbench.families.tsp.tour.interdict_search` (Held-Karp inside), re-checked before it
is written: the follower re-solved at the removal by an independent MILP (:func:`~.tour.tsp_milp`) must
reproduce the tour length, and the stored tour must avoid every removed edge. A label that fails keeps its place,
with its reason and no solution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

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
from bilevelbench.families.tsp import tour
from bilevelbench.families.tsp.problem import FAMILY, TSPStructure, city_set, sample_instances

GENERATOR_VERSION = 1
SEED_STREAM = 14
CHUNK = 50
#: Relative agreement required between the Held-Karp and the MILP tour lengths.
RECHECK_TOL = 1e-9
SAMPLER = ("k distinct cities drawn uniformly from a fixed set of 100 points (uniform in [0, 100]^2, seed "
           "20200214), sorted by index; Euclidean distances")


@dataclass(frozen=True)
class TSPRequest(SplitRequest):
    """What to generate."""

    size: int = 10
    budget: int = 1
    n_train: int = 0
    n_valid: int = 0
    n_test: int = 100
    seed: int = 0
    time_limit: float = 60.0

    def __post_init__(self) -> None:
        self.check_counts()
        self.check_time_limit(self.time_limit)
        self.structure()

    def structure(self) -> TSPStructure:
        return TSPStructure(self.size, self.budget, city_set())


def label_chunk(s: TSPStructure, distances: np.ndarray, time_limit: float) -> dict[str, np.ndarray]:
    """Exact labels of a chunk (n, k, k): ``removed`` (n, k*k) row-major, ``tour`` (n, k), ``objective``."""
    n, k = distances.shape[0], int(s.k)
    out = {"removed": np.full((n, k * k), np.nan), "tour": np.full((n, k), np.nan),
           "objective": np.full(n, np.nan), "solve_time": np.full(n, np.nan),
           "check_follower_recompute": np.full(n, np.nan)}
    status, reason = [], []
    for i in range(n):
        res = tour.interdict_search(distances[i], s.budget)
        out["solve_time"][i] = res.time_s
        try:
            again, _ = tour.tsp_milp(tour.blocked(distances[i], res.removed), time_limit)
        except SolverError as exc:
            status.append("failed")
            reason.append(f"the MILP re-check failed: {exc}"[:200])
            continue
        gap = abs(again - res.objective)
        out["check_follower_recompute"][i] = gap
        edges = int(np.triu(res.removed, 1).sum())
        if gap > RECHECK_TOL * max(1.0, abs(res.objective)):
            status.append("failed")
            reason.append(f"Held-Karp {res.objective:.12g} and the MILP {again:.12g} disagree"[:200])
        elif edges > s.budget or not np.isfinite(tour.tour_length(tour.blocked(distances[i], res.removed),
                                                                  res.tour)):
            status.append("failed")
            reason.append("the removal exceeds the budget or the tour uses a removed edge")
        else:
            status.append("certified_optimal")
            reason.append(f"exact search ({res.detail}); follower re-solved by a MILP: {again:.12g}"[:200])
            out["removed"][i] = res.removed.reshape(-1)
            out["tour"][i] = res.tour
            out["objective"][i] = res.objective
    out["status"] = np.array(status, dtype="U20")
    out["reason"] = np.array(reason, dtype="U200")
    return out


def _scipy_highs() -> str:
    import scipy

    return f"HiGHS (scipy {scipy.__version__}, scipy.optimize.milp)"


_STATE: dict = {}


def _init_worker(request: TSPRequest) -> None:
    _STATE.update(request=request, s=request.structure())


def _chunk_task(task):
    split, chunk, params = task
    return shard_name(split, chunk), label_chunk(_STATE["s"], params["distances"], _STATE["request"].time_limit)


def generate_tsp(request: TSPRequest, out: Path | str, workers: int = 1, overwrite: bool = False, progress=None,
                 name: str | None = None, spec: dict | None = None, scheduler: str | None = None) -> Path:
    """Generate, label and write a ``tsp-interdiction`` instance set (resumable); returns the written path."""
    check_output_path(Path(out), overwrite)
    s = request.structure()
    counts = request.split_counts()
    draws = {}
    for k, split in enumerate(SPLITS):
        rng = np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(SEED_STREAM, k)))
        draws[split] = sample_instances(s, rng, counts[split])
    settings = {"time_limit": request.time_limit, "follower": "held-karp", "recheck": "highs-milp"}
    key = request_key(asdict(request), s.digest(), settings, GENERATOR_VERSION, CHUNK)

    def assemble(parts) -> InstanceSetData:
        merged = merge_shards([part for split in SPLITS for part in parts[split]])
        labels = label_arrays(merged, ("removed", "tour", "objective", "solve_time"), "held-karp")
        params = split_params(draws)
        attrs = root_attrs(FAMILY, GENERATOR_VERSION, request.seed, s, name=name, spec=spec,
                           certifier_settings=settings, backend_versions={"highs": _scipy_highs()},
                           sampling={**asdict(request), "sampler": SAMPLER})
        return InstanceSetData(attrs=attrs, structure=s.arrays(), params=params, labels=labels,
                               checks={"follower_recompute": merged["check_follower_recompute"]},
                               splits=split_positions(counts))

    return generate_sharded(out, key, draws, SPLITS, CHUNK, _chunk_task, assemble=assemble,
                            initializer=_init_worker, initargs=(request,), workers=workers, scheduler=scheduler,
                            progress=progress, overwrite=overwrite)
