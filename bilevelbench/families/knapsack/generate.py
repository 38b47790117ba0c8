"""Sample -> certify -> write for ``knapsack`` on the core pipeline.

Structure. ``W`` and ``v`` come from ``SeedSequence(seed, spawn_key=(5,))`` (:func:`structure_for`), so the run's
seed and options alone rebuild them. Splits. Split ``k`` (train, valid, test = 0, 1, 2) draws its capacities from
``SeedSequence(seed, spawn_key=(5, k))`` in one block of its requested size, so the same seed and counts give the
same instances whatever the number of workers. Every split is labelled (SCIP, :mod:`.certify`); a label that is
not certified keeps its place with its reason and no point.

Resuming: shards of :data:`CHUNK` instances in ``OUT.partial/``
(:func:`bilevelbench.core.pipeline.generate_sharded`).
"""

from __future__ import annotations

from collections.abc import Callable
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
from bilevelbench.errors import UsageError
from bilevelbench.families.knapsack import problem
from bilevelbench.families.knapsack.certify import KnapsackCertifierSettings, solve_scip
from bilevelbench.families.knapsack.problem import KnapsackStructure

GENERATOR_VERSION = 1
#: The first spawn-key entry of every stream of the family (structure and splits).
SEED_STREAM = 5
#: Instances per resumable shard.
CHUNK = 50
SAMPLER = ("W_ij ~ U{1..weight_max}; v_j = mean_i W_ij + U(0, 10), 2 decimals; items sorted by decreasing "
           "v_j / sum_i (W_ij / sum_k W_ik); capacity_i = U[lo, hi] * sum_j W_ij per instance and constraint")
ProgressFactory = Callable[[int], object]


@dataclass(frozen=True)
class KnapsackRequest(SplitRequest):
    """What to generate: the sizes of the structure, split sizes, the seed and the capacity distribution."""

    items: int = 20
    constraints: int = 2
    n_train: int = 0
    n_valid: int = 0
    n_test: int = 100
    seed: int = 0
    capacity_ratio: tuple[float, float] = problem.DEFAULT_CAPACITY_RATIO
    weight_max: int = problem.DEFAULT_WEIGHT_MAX

    def __post_init__(self) -> None:
        self.check_counts()
        if self.items < 1 or self.constraints < 1 or self.weight_max < 1:
            raise UsageError(f"--items, --constraints and --weight-max must be >= 1; got {self.items}, "
                             f"{self.constraints} and {self.weight_max}")
        problem.check_ratio(self.capacity_ratio)


def structure_for(request: KnapsackRequest) -> KnapsackStructure:
    """The data set's ``W`` and ``v``, drawn from the run's seed on the family's structure stream."""
    rng = np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(SEED_STREAM,)))
    return problem.sample_structure(rng, request.items, request.constraints, request.weight_max)


def draws_for(request: KnapsackRequest, s: KnapsackStructure, split_k: int) -> np.ndarray:
    """The capacities (n, m) of split ``k``: one block of the split's size from its own stream."""
    rng = np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(SEED_STREAM, split_k)))
    n = request.split_counts()[SPLITS[split_k]]
    return problem.sample_capacities(s, rng, n, request.capacity_ratio)


def label_chunk(s: KnapsackStructure, capacity: np.ndarray, settings: KnapsackCertifierSettings
                ) -> dict[str, np.ndarray]:
    """Certify every row of ``capacity`` (n, m); the chunk's label arrays (NaN where no point is stored)."""
    n = capacity.shape[0]
    out = {"y": np.full((n, s.n_items), np.nan), "objective": np.full(n, np.nan), "dual_bound": np.full(n, np.nan),
           "solve_time": np.full(n, np.nan)}
    status, reason = [], []
    for i in range(n):
        label = solve_scip(s, capacity[i], settings.time_limit)
        if label.y is not None:
            out["y"][i] = label.y
            out["objective"][i] = label.objective
        out["dual_bound"][i] = label.dual_bound
        out["solve_time"][i] = label.solve_time
        status.append(label.status)
        reason.append(label.reason)
    out["status"] = np.array(status, dtype="U20")
    out["reason"] = np.array(reason, dtype="U200")
    return out


_STATE: dict = {}


def _init_worker(arrays: dict[str, np.ndarray], settings: KnapsackCertifierSettings) -> None:
    _STATE.update(s=KnapsackStructure(**arrays), settings=settings)


def _chunk_task(task: tuple[str, int, dict[str, np.ndarray]]) -> tuple[str, dict]:
    split, chunk, params = task
    return shard_name(split, chunk), label_chunk(_STATE["s"], params["capacity"], _STATE["settings"])


def _request_dict(request: KnapsackRequest) -> dict:
    return {**asdict(request), "capacity_ratio": [float(r) for r in request.capacity_ratio]}


def generate_knapsack(request: KnapsackRequest, out: Path | str, settings: KnapsackCertifierSettings | None = None,
                      workers: int = 1, overwrite: bool = False, progress: ProgressFactory | None = None,
                      name: str | None = None, spec: dict | None = None, scheduler: str | None = None) -> Path:
    """Generate, certify and write a ``knapsack`` instance set; returns the written path (resumable:
    :func:`bilevelbench.core.pipeline.generate_sharded`)."""
    check_output_path(Path(out), overwrite)
    settings = settings or KnapsackCertifierSettings()
    if not (np.isfinite(settings.time_limit) and settings.time_limit > 0):
        raise UsageError(f"--time-limit must be a positive number of seconds, got {settings.time_limit}")
    s = structure_for(request)
    draws = {split: {"capacity": draws_for(request, s, k)} for k, split in enumerate(SPLITS)}
    key = request_key(_request_dict(request), s.digest(), settings.as_dict(), GENERATOR_VERSION, CHUNK)

    def assemble(parts: dict[str, list[dict[str, np.ndarray]]]) -> InstanceSetData:
        return _assemble(request, s, settings, draws, parts, name, spec)

    return generate_sharded(out, key, draws, SPLITS, CHUNK, _chunk_task, assemble=assemble,
                            initializer=_init_worker, initargs=(s.arrays(), settings), workers=workers,
                            scheduler=scheduler, progress=progress, overwrite=overwrite)


def _assemble(request: KnapsackRequest, s: KnapsackStructure, settings: KnapsackCertifierSettings, draws: dict,
              parts: dict[str, list[dict[str, np.ndarray]]], name: str | None, spec: dict | None) -> InstanceSetData:
    merged = merge_shards([part for split in SPLITS for part in parts[split]])
    labels = label_arrays(merged, ("y", "objective", "dual_bound", "solve_time"), "scip")
    params = split_params(draws)
    y = np.nan_to_num(labels["y"])
    checks = {"capacity_violation": np.max(np.maximum(y @ s.weight.T - params["capacity"], 0.0), axis=1),
              "objective_recompute_abs": np.abs(y @ s.value - labels["objective"])}
    attrs = root_attrs(problem.FAMILY, GENERATOR_VERSION, request.seed, s, name=name, spec=spec,
                       certifier_settings=settings.as_dict(), backend_versions={"scip": backend_version("scip")},
                       sampling={**_request_dict(request), "sampler": SAMPLER})
    return InstanceSetData(attrs=attrs, structure=s.arrays(), params=params, labels=labels, checks=checks,
                           splits=split_positions(request.split_counts()))
