"""Sample -> certify -> write for ``dcopf`` (DC optimal power flow on a PGLib grid).

Splits. Split ``k`` (train, valid, test = 0, 1, 2) draws its loads from ``SeedSequence(seed, spawn_key=(2, k))``
in one block of its requested size, so the same seed and counts give the same loads whatever the number of
workers. Every draw keeps its place: a label that is not certified stays in its split with no solution and
the reason (``failed``; ``infeasible`` when demand is outside the fleet's range), and is never scored.

Resuming. Labels are computed in shards of :data:`CHUNK` instances by the core pipeline
(:func:`bilevelbench.core.pipeline.generate_sharded`: ``OUT.partial/<split>-<chunk>.npz``, written atomically, and a
lock against a second writer). Running the same command again skips the shards already there. The HDF5 file is
written atomically at the end and the folder removed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bilevelbench.core.backends import highs_version
from bilevelbench.core.family import SplitRequest
from bilevelbench.core.pipeline import (
    generate_sharded,
    label_arrays,
    merge_shards,
    root_attrs,
    split_positions,
)
from bilevelbench.data.hdf5 import (
    SPLITS,
    InstanceSetData,
    check_output_path,
)
from bilevelbench.data.shards import request_key, shard_name
from bilevelbench.errors import UsageError
from bilevelbench.families.dcopf import problem as dcopf
from bilevelbench.families.dcopf.certify import DCOPF_CHECK_FIELDS, DCOPFCertifierSettings, DCOPFModel, certify_dcopf
from bilevelbench.families.dcopf.problem import DCOPFStructure

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
#: Instances per resumable chunk.
CHUNK = 100
ARRAY_LABELS = ("pg", "flow", "xi", "lmp", "line_dual")
SCALAR_LABELS = ("price", "objective", "dual_bound", "solve_time")

ProgressFactory = Callable[[int], "object"]


@dataclass(frozen=True)
class DCOPFRequest(SplitRequest):
    """What to generate: a case, split sizes, the load distribution and the thermal penalty."""

    case: str
    n_train: int = 0
    n_valid: int = 0
    n_test: int = 100
    seed: int = 0
    load_scale: tuple[float, float] = dcopf.DEFAULT_LOAD_SCALE
    load_noise: float = dcopf.DEFAULT_LOAD_NOISE
    penalty: float = dcopf.DEFAULT_PENALTY

    def __post_init__(self) -> None:
        self.check_counts()
        lo, hi = self.load_scale
        if not (0 <= lo <= hi and np.isfinite(hi)):
            raise UsageError(f"--load-scale must be LO,HI with 0 <= LO <= HI, got {lo},{hi}")
        if not 0 <= self.load_noise < 1:
            raise UsageError(f"--load-noise must be in [0, 1), got {self.load_noise}")
        if not (np.isfinite(self.penalty) and self.penalty > 0):
            raise UsageError(f"--penalty must be positive, got {self.penalty}")


def draws_for(request: DCOPFRequest, s: DCOPFStructure, split_k: int) -> np.ndarray:
    """The loads (n, nb) of split ``k``: one block of the split's size from its own stream."""
    rng = np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(2, split_k)))
    n = request.split_counts()[SPLITS[split_k]]
    return dcopf.sample_loads(s, rng, n, request.load_scale, request.load_noise)


def load_structure(case: str, penalty: float = dcopf.DEFAULT_PENALTY) -> tuple[DCOPFStructure, object]:
    """Parse ``case`` (a shipped name or a path) and build the family's structure; returns it and the case."""
    from bilevelbench.families.dcopf.power import load_case

    parsed = load_case(case)
    return dcopf.structure_from_case(parsed, penalty), parsed


# -- chunks and workers -----------------------------------------------------------------------------------
_STATE: dict = {}


def _init_worker(case: str, penalty: float, settings: DCOPFCertifierSettings) -> None:
    s, _ = load_structure(case, penalty)
    _STATE.update(structure=s, model=DCOPFModel(s, settings.time_limit), settings=settings)


def label_chunk(model: DCOPFModel, pd: np.ndarray, settings: DCOPFCertifierSettings,
                on_label: Callable[[], None] | None = None) -> dict[str, np.ndarray]:
    """Certify every row of ``pd``; returns the chunk's label arrays (NaN where no solution is published).

    The model starts cold (:meth:`DCOPFModel.reset`) and warm-starts within the chunk, so the labels depend on
    the chunk's loads only."""
    s = model.s
    model.reset()
    n = pd.shape[0]
    width = {"pg": s.n_gen, "flow": s.n_branch, "xi": s.n_branch, "lmp": s.n_bus, "line_dual": s.n_branch}
    out = {key: np.full((n, w), np.nan) for key, w in width.items()}
    out.update({key: np.full(n, np.nan) for key in SCALAR_LABELS})
    out.update({f"check_{key}": np.full(n, np.nan) for key in DCOPF_CHECK_FIELDS})
    out["iterations"] = np.zeros(n, np.int64)
    status, reason = [], []
    for i in range(n):
        label = certify_dcopf(model, pd[i], settings)
        published = label.status == "certified_optimal"
        if published:
            for key in ARRAY_LABELS:
                out[key][i] = getattr(label, key)
            for key in ("price", "objective"):
                out[key][i] = getattr(label, key)
        out["dual_bound"][i] = label.dual_bound
        out["solve_time"][i] = label.solve_time
        out["iterations"][i] = label.iterations
        for key in DCOPF_CHECK_FIELDS:
            out[f"check_{key}"][i] = label.checks.get(key, np.nan)
        status.append(label.status)
        reason.append(label.reason)
        if on_label is not None:
            on_label()
    out["status"] = np.array(status, dtype="U20")
    out["reason"] = np.array(reason, dtype="U400")
    return out


def _chunk_task(task: tuple[str, int, dict[str, np.ndarray]]) -> tuple[str, dict]:
    split, chunk, params = task
    return shard_name(split, chunk), label_chunk(_STATE["model"], params["pd"], _STATE["settings"])


def _request_key(request: DCOPFRequest, structure_hash: str, settings: DCOPFCertifierSettings) -> str:
    return request_key(asdict(request), structure_hash, settings.as_dict(), GENERATOR_VERSION, CHUNK)


def generate_dcopf(request: DCOPFRequest, out: Path | str, settings: DCOPFCertifierSettings | None = None,
                   workers: int = 1, overwrite: bool = False, progress: ProgressFactory | None = None,
                   name: str | None = None, spec: dict | None = None, scheduler: str | None = None) -> Path:
    """Generate, certify and write a ``dcopf`` instance set; returns the written path (resumable; ``scheduler``
    sends the shards to a Dask cluster): :func:`bilevelbench.core.pipeline.generate_sharded`."""
    check_output_path(Path(out), overwrite)
    settings = settings or DCOPFCertifierSettings()
    s, case = load_structure(request.case, request.penalty)
    draws = {split: {"pd": draws_for(request, s, k)} for k, split in enumerate(SPLITS)}

    def assemble(parts: dict[str, list[dict[str, np.ndarray]]]) -> InstanceSetData:
        return _assemble(request, s, case, settings, draws, parts, name, spec)

    return generate_sharded(out, _request_key(request, s.digest(), settings), draws, SPLITS, CHUNK, _chunk_task,
                            assemble=assemble, initializer=_init_worker,
                            initargs=(request.case, request.penalty, settings), workers=workers,
                            scheduler=scheduler, progress=progress, overwrite=overwrite)


def _assemble(request, s, case, settings, draws, parts, name, spec=None) -> InstanceSetData:
    merged = merge_shards([part for split in SPLITS for part in parts[split]])
    labels = label_arrays(merged, (*ARRAY_LABELS, *SCALAR_LABELS, "iterations"), "highs")
    checks = {key: merged[f"check_{key}"] for key in DCOPF_CHECK_FIELDS}
    params = {"pd": np.concatenate([draws[split]["pd"] for split in SPLITS])}
    attrs = root_attrs(
        dcopf.FAMILY, GENERATOR_VERSION, request.seed, s, name=name, spec=spec,
        certifier_settings={**settings.as_dict(), "backend_used": "highs"},
        backend_versions={"highs": highs_version()},
        sampling={**asdict(request), "sampler": "pd = alpha * eta (.) pd_ref, alpha ~ U[lo, hi] per instance, "
                                                "eta ~ U[1 - noise, 1 + noise] per bus"},
        dcopf={"case": case.name, "case_sha256": case.sha256, "case_source": case.source,
               "case_header": case.header, "out_of_service": dict(case.out_of_service)})
    return InstanceSetData(attrs=attrs, structure=s.arrays(), params=params, labels=labels, checks=checks,
                           splits=split_positions({split: draws[split]["pd"].shape[0] for split in SPLITS}))

