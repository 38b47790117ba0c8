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

import bilevelbench
from bilevelbench.core.backends import backend_version
from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.core.versions import package_versions
from bilevelbench.data.hdf5 import (
    BACKEND_DTYPE,
    SPLITS,
    STATUS_DTYPE,
    InstanceSetData,
    as_fixed_ascii,
    check_output_path,
    write_instance_set,
)
from bilevelbench.errors import UsageError
from bilevelbench.families.bqp import problem as bqp
from bilevelbench.families.bqp.certifier import Certifier, CertifierSettings
from bilevelbench.families.bqp.checks import CHECK_FIELDS
from bilevelbench.families.bqp.label import Label

log = logging.getLogger(__name__)

ProgressFactory = Callable[[int], "object"]


@dataclass(frozen=True)
class BQPRequest:
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
        for name in ("n_train", "n_valid", "n_test"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.n_train + self.n_valid + self.n_test == 0:
            raise UsageError("nothing to generate: --n-train, --n-valid and --n-test are all 0")
        if not 0 <= self.seed < 2**63:
            raise UsageError(f"--seed must be a non-negative integer below 2**63, got {self.seed}")

    def split_counts(self) -> dict[str, int]:
        return {"train": self.n_train, "valid": self.n_valid, "test": self.n_test}


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


def _bqp_shard(task: tuple[str, np.ndarray, np.ndarray, np.ndarray]) -> tuple[str, dict]:
    """Certify one shard (in whichever worker runs it); returns its name and its label arrays."""
    name, index, c, d = task
    assert _WORKER is not None
    labels = [_WORKER.certify(c[k], d[k]) for k in range(index.shape[0])]
    s = _WORKER.s
    arrays, checks = labels_to_arrays(labels, s.m, s.n, s.n_lower_constraints)
    arrays.update({f"check_{k}": v for k, v in checks.items()})
    arrays["index"] = index
    for key in ("status", "backend"):
        arrays[key] = arrays[key].astype("U32")
    return name, arrays


def _init_bqp_worker(structure: bqp.BQPStructure, settings: CertifierSettings) -> None:
    global _WORKER
    _WORKER = Certifier(structure, settings)


def generate_bqp(request: BQPRequest, out: Path | str, settings: CertifierSettings | None = None, workers: int = 1,
                 overwrite: bool = False, progress: ProgressFactory | None = None, name: str | None = None,
                 spec: dict | None = None, scheduler: str | None = None) -> Path:
    """Generate, certify and write a BQP instance set; returns the written path.

    Nothing is written under ``out`` unless the whole set was generated. Labels are computed in shards of
    :data:`SHARD` instances kept in ``OUT.partial/`` (:class:`~bilevelbench.data.shards.ShardStore`), so a
    killed run resumes where it stopped and gives the same file; ``scheduler`` sends the shards to a Dask
    cluster (:func:`bilevelbench.parallel.map_tasks`). ``name`` and ``spec`` (from a dataset spec) are
    stored as root attributes.
    """
    from bilevelbench.data.shards import ShardStore, save_missing

    out = Path(out)
    check_output_path(out, overwrite)
    settings = settings or CertifierSettings()
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    structure = structure_for(request)
    params, splits = params_for(request, structure)
    n_total = params["c"].shape[0]
    to_label = np.array([i for split in SPLITS if split != "train" or request.label_train for i in splits[split]],
                        dtype=np.int64)
    key = _request_key(request, structure, settings)
    store = ShardStore(out, key)
    try:
        shards = [(f"shard-{k:06d}", to_label[start:start + SHARD])
                  for k, start in enumerate(range(0, to_label.shape[0], SHARD))]
        todo = [(sname, idx, params["c"][idx], params["d"][idx]) for sname, idx in shards if not store.has(sname)]
        log.info("certifying %d of %d instances (%s, backend %s, %d shards to do, %s)", to_label.shape[0], n_total,
                 structure.size, settings.backend, len(todo), scheduler or f"{workers} worker(s)")
        save_missing(store, _bqp_shard, todo, total=int(to_label.shape[0]),
                     pending=sum(t[1].shape[0] for t in todo), progress=progress, workers=workers,
                     scheduler=scheduler, initializer=_init_bqp_worker, initargs=(structure, settings), key=key)
        parts = [store.load(sname) for sname, _ in shards]
        p = structure.n_lower_constraints
        empty = Label.empty(structure.m, structure.n, p, "unlabeled", "train split generated with --no-label-train")
        label_arrays, checks = labels_to_arrays([empty] * n_total, structure.m, structure.n, p)
        label_arrays["status"] = label_arrays["status"].astype(STATUS_DTYPE)
        for part in parts:
            idx = part["index"]
            for key_ in label_arrays:
                value = part[key_]
                if key_ == "status":
                    value = as_fixed_ascii([str(v) for v in value], STATUS_DTYPE)
                elif key_ == "backend":
                    value = as_fixed_ascii([str(v) for v in value], BACKEND_DTYPE)
                label_arrays[key_] = _place(label_arrays[key_], idx, value)
            for key_ in checks:
                checks[key_][idx] = part[f"check_{key_}"]
        used_backends = sorted({str(v) for part in parts for v in part["backend"] if str(v)})
        _write_bqp(out, request, structure, settings, params, splits, label_arrays, checks, used_backends, name,
                   spec, overwrite)
    except BaseException:
        store.close()
        raise
    store.finish()
    return out


def _place(target: np.ndarray, idx: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``target`` with rows ``idx`` set to ``value`` (string arrays widened when needed)."""
    if target.dtype.kind in "US" and value.dtype.itemsize > target.dtype.itemsize:
        target = target.astype(value.dtype)
    target[idx] = value
    return target


def _request_key(request: BQPRequest, structure: bqp.BQPStructure, settings: CertifierSettings) -> str:
    import hashlib
    import json

    blob = json.dumps({"request": asdict(request), "structure": structure.digest(), "settings": settings.as_dict(),
                       "generator": bqp.GENERATOR_VERSION, "shard": SHARD}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _write_bqp(out, request, structure, settings, params, splits, label_arrays, checks, used_backends, name, spec,
               overwrite) -> None:
    backend_versions = {b: backend_version(b) for b in used_backends}
    attrs = {
        "family": bqp.FAMILY,
        "generator_version": bqp.GENERATOR_VERSION,
        "bilevelbench_version": bilevelbench.__version__,
        "seed": int(request.seed),
        "size": structure.size,
        "structure_hash": structure.digest(),
        "certifier_settings": settings.as_dict(),
        "package_versions": package_versions(),
        "backend_versions": backend_versions,
        "paper_convention": {"paper": bqp.PAPER, "gap_offset": bqp.PAPER_GAP_OFFSET},
        **({"name": name} if name else {}),
        **({"spec": spec} if spec else {}),
        "sampling": {**asdict(request), "n_upper_constraints": structure.n_upper_constraints,
                     "n_lower_constraints": structure.n_lower_constraints, "q": structure.q,
                     "c": "2 U(0,1)^m", "d": "2 U(0,1)^n",
                     "H": "S S' + lower_ridge I, S ~ U(0,1)^(n x n)", "Q": "R R', R ~ U(0,1)^(m x m)"},
    }
    data = InstanceSetData(attrs=attrs, structure=structure.arrays(), params=params, labels=label_arrays,
                           checks=checks, splits=splits)
    write_instance_set(out, data, overwrite=overwrite)
    times = label_arrays["solve_time"][np.isfinite(label_arrays["solve_time"])]
    if times.size:
        log.info("median certification time %.4f s over %d labels", float(np.median(times)), times.size)

