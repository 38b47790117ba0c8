"""Sample -> certify -> write: build one certified BQP instance set.

Randomness: the structure comes from ``SeedSequence(seed, spawn_key=(0,))`` and
each split's parameters from ``SeedSequence(seed, spawn_key=(1, k))`` with
``k = 0, 1, 2`` for train, valid, test. The same seed therefore gives the same
structure, and a split's parameters do not depend on the sizes of the other
splits (``--n-train 0 --n-test 60`` has the same test set as ``--n-train 10000
--n-test 60``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bilevelbench.core.backends import backend_version
from bilevelbench.core.family import SplitRequest
from bilevelbench.core.pipeline import generate_sharded, merge_shards, root_attrs
from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.data.hdf5 import (
    BACKEND_DTYPE,
    SPLITS,
    STATUS_DTYPE,
    InstanceSetData,
    as_fixed_ascii,
    check_output_path,
)
from bilevelbench.data.shards import shard_name
from bilevelbench.families.bqp import problem as bqp
from bilevelbench.families.bqp.certifier import Certifier, CertifierSettings
from bilevelbench.families.bqp.checks import CHECK_FIELDS
from bilevelbench.families.bqp.label import Label

log = logging.getLogger(__name__)

ProgressFactory = Callable[[int], "object"]


@dataclass(frozen=True)
class BQPRequest(SplitRequest):
    """What to generate: sizes, split counts, seed and sampling settings."""

    m: int
    n: int
    n_train: int
    n_valid: int
    n_test: int
    seed: int
    label_train: bool = True
    n_upper_constraints: int | None = None
    n_lower_constraints: int | None = None
    lower_ridge: float = 0.1

    def __post_init__(self) -> None:
        self.check_counts()


def structure_for(request: BQPRequest) -> bqp.BQPStructure:
    """The structure a request's seed determines."""
    rng = np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(0,)))
    return bqp.sample_structure(rng, request.m, request.n, request.n_upper_constraints,
                                request.n_lower_constraints, lower_ridge=request.lower_ridge)


def params_for(request: BQPRequest, structure: bqp.BQPStructure) -> tuple[dict[str, np.ndarray], dict]:
    """Parameters of every split (train, valid, test order) and the split index arrays."""
    chunks, splits, start = [], {}, 0
    for k, name in enumerate(SPLITS):
        count = request.split_counts()[name]
        rng = np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(1, k)))
        chunks.append(bqp.sample_params(rng, structure, count))
        splits[name] = np.arange(start, start + count, dtype=np.int64)
        start += count
    params = {key: np.concatenate([chunk[key] for chunk in chunks]) for key in ("c", "d")}
    return params, splits


# -- worker processes -----------------------------------------------------------------
_WORKER: Certifier | None = None


def labels_to_arrays(labels: list[Label], m: int, n: int, p: int) -> tuple[dict, dict]:
    """Stack labels into the ``/labels`` and ``/labels/checks`` arrays.

    A label that is not ``certified_optimal`` or ``best_known`` keeps no solution
    (NaN): a point that failed a check is never published, only its reason.
    """
    keep = [lab.status in SOLUTION_STATUSES for lab in labels]
    nan_if = lambda arr, k: arr if k else np.full_like(arr, np.nan, dtype=float)
    out = {
        "y": np.array([nan_if(lab.y, k) for lab, k in zip(labels, keep)]).reshape(len(labels), m),
        "z": np.array([nan_if(lab.z, k) for lab, k in zip(labels, keep)]).reshape(len(labels), n),
        "lam": np.array([nan_if(lab.lam, k) for lab, k in zip(labels, keep)]).reshape(len(labels), p),
        "objective": np.array([lab.objective if k else np.nan for lab, k in zip(labels, keep)], dtype=float),
        "status": as_fixed_ascii([lab.status for lab in labels], STATUS_DTYPE),
        "reason": np.array([lab.reason for lab in labels], dtype=str),
        "backend": as_fixed_ascii([lab.backend for lab in labels], BACKEND_DTYPE),
        "primal_bound": np.array([lab.primal_bound for lab in labels], dtype=float),
        "dual_bound": np.array([lab.dual_bound for lab in labels], dtype=float),
        "solve_time": np.array([lab.solve_time for lab in labels], dtype=float),
        "nodes": np.array([lab.nodes for lab in labels], dtype=np.int64),
        "bounds_radius": np.array([lab.bounds_radius for lab in labels], dtype=float),
    }
    checks = {key: np.array([lab.checks.get(key, np.nan) for lab in labels], dtype=float) for key in CHECK_FIELDS}
    return out, checks


#: Instances per resumable shard.
SHARD = 20


def _bqp_shard(task: tuple[str, int, dict[str, np.ndarray]]) -> tuple[str, dict]:
    """Certify one shard (in whichever worker runs it); returns its name and its label arrays."""
    split, chunk, params = task
    assert _WORKER is not None
    c, d = params["c"], params["d"]
    labels = [_WORKER.certify(c[k], d[k]) for k in range(c.shape[0])]
    s = _WORKER.s
    arrays, checks = labels_to_arrays(labels, s.m, s.n, s.n_lower_constraints)
    arrays.update({f"check_{k}": v for k, v in checks.items()})
    for key in ("status", "backend"):
        arrays[key] = arrays[key].astype("U32")
    return shard_name(split, chunk), arrays


def _init_bqp_worker(structure: bqp.BQPStructure, settings: CertifierSettings) -> None:
    global _WORKER
    _WORKER = Certifier(structure, settings)


def generate_bqp(request: BQPRequest, out: Path | str, settings: CertifierSettings | None = None, workers: int = 1,
                 overwrite: bool = False, progress: ProgressFactory | None = None, name: str | None = None,
                 spec: dict | None = None, scheduler: str | None = None) -> Path:
    """Generate, certify and write a BQP instance set; returns the written path.

    Nothing is written under ``out`` unless the whole set was generated. Labels are computed in shards of
    :data:`SHARD` instances by the core pipeline (:func:`bilevelbench.core.pipeline.generate_sharded`: kept in
    ``OUT.partial/``, so a killed run resumes where it stopped and gives the same content; ``scheduler`` sends the
    shards to a Dask cluster). ``name`` and ``spec`` (from a dataset spec) are stored as root attributes.
    """
    check_output_path(Path(out), overwrite)
    settings = settings or CertifierSettings()
    structure = structure_for(request)
    params, splits = params_for(request, structure)
    draws = {split: {key: params[key][splits[split]] for key in ("c", "d")} for split in SPLITS}
    labelled = tuple(split for split in SPLITS if split != "train" or request.label_train)
    log.info("certifying %s (%s, backend %s, %s)", ", ".join(f"{k} {len(splits[k])}" for k in labelled),
             structure.size, settings.backend, scheduler or f"{workers} worker(s)")

    def assemble(parts: dict[str, list[dict[str, np.ndarray]]]) -> InstanceSetData:
        p = structure.n_lower_constraints
        blocks = []
        for split in SPLITS:
            if split in labelled:
                blocks += parts[split]
            elif len(splits[split]):
                empty = Label.empty(structure.m, structure.n, p, "unlabeled",
                                    "train split generated with --no-label-train")
                arrays, checks = labels_to_arrays([empty] * len(splits[split]), structure.m, structure.n, p)
                arrays.update({f"check_{k}": v for k, v in checks.items()})
                blocks.append({k: (v.astype("U32") if k in ("status", "backend") else v) for k, v in arrays.items()})
        merged = merge_shards(blocks)
        label_arrays = {key: merged[key] for key in LABEL_FIELDS}
        label_arrays["status"] = as_fixed_ascii([str(v) for v in merged["status"]], STATUS_DTYPE)
        label_arrays["backend"] = as_fixed_ascii([str(v) for v in merged["backend"]], BACKEND_DTYPE)
        label_arrays["reason"] = np.array([str(v) for v in merged["reason"]], dtype=str)
        checks = {key: merged[f"check_{key}"] for key in CHECK_FIELDS}
        used = sorted({str(v) for split in labelled for part in parts[split] for v in part["backend"] if str(v)})
        return _bqp_data(request, structure, settings, params, splits, label_arrays, checks, used, name, spec)

    return generate_sharded(out, _request_key(request, structure, settings), draws, labelled, SHARD, _bqp_shard,
                            assemble=assemble, initializer=_init_bqp_worker, initargs=(structure, settings),
                            workers=workers, scheduler=scheduler, progress=progress, overwrite=overwrite)


#: The label arrays in the order they are stored.
LABEL_FIELDS = ("y", "z", "lam", "objective", "status", "reason", "backend", "primal_bound", "dual_bound",
                "solve_time", "nodes", "bounds_radius")


def _request_key(request: BQPRequest, structure: bqp.BQPStructure, settings: CertifierSettings) -> str:
    import hashlib
    import json

    blob = json.dumps({"request": asdict(request), "structure": structure.digest(), "settings": settings.as_dict(),
                       "generator": bqp.GENERATOR_VERSION, "shard": SHARD, "shards": "per split"}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _bqp_data(request, structure, settings, params, splits, label_arrays, checks, used_backends, name, spec
              ) -> InstanceSetData:
    attrs = root_attrs(
        bqp.FAMILY, bqp.GENERATOR_VERSION, request.seed, structure, name=name, spec=spec,
        certifier_settings=settings.as_dict(),
        backend_versions={b: backend_version(b) for b in used_backends},
        paper_convention={"paper": bqp.PAPER, "gap_offset": bqp.PAPER_GAP_OFFSET},
        sampling={**asdict(request), "n_upper_constraints": structure.n_upper_constraints,
                  "n_lower_constraints": structure.n_lower_constraints, "q": structure.q,
                  "c": "2 U(0,1)^m", "d": "2 U(0,1)^n",
                  "H": "S S' + lower_ridge I, S ~ U(0,1)^(n x n)", "Q": "R R', R ~ U(0,1)^(m x m)"})
    return InstanceSetData(attrs=attrs, structure=structure.arrays(), params=params, labels=label_arrays,
                           checks=checks, splits=splits)
