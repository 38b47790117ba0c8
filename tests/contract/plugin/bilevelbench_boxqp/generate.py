"""Generation through bilevelbench's sharded, resumable pipeline (:mod:`bilevelbench.core.pipeline`)."""

from __future__ import annotations

import time

import numpy as np

from bilevelbench.core.pipeline import generate_sharded, merge_shards, root_attrs, split_positions
from bilevelbench.data.hdf5 import SPLITS, InstanceSetData
from bilevelbench.data.shards import request_key, shard_name
from bilevelbench_boxqp import problem

GENERATOR_VERSION = 1
SEED_STREAM = 11
CHUNK = 4
_STATE: dict = {}


def _init(structure_arrays: dict) -> None:
    _STATE["s"] = problem.BoxQPStructure(**structure_arrays)


def label_task(task):
    split, chunk, params = task
    s, p = _STATE["s"], params["p"]
    t0 = time.perf_counter()
    x = problem.solve(s, p)
    elapsed = (time.perf_counter() - t0) / max(len(p), 1)
    residual = problem.kkt_residual(s, x, p)
    ok = residual <= 1e-12
    out = {"x": np.where(ok[:, None], x, np.nan), "objective": np.where(ok, problem.objective(s, x, p), np.nan),
           "solve_time": np.full(len(p), elapsed), "check_kkt_residual": residual,
           "status": np.array(["certified_optimal" if k else "failed" for k in ok], dtype="U20"),
           "reason": np.array(["closed form, KKT residual 0" if k else "KKT residual above 1e-12" for k in ok],
                              dtype="U60")}
    return shard_name(split, chunk), out


def generate(request) -> object:
    k = int(request.options["k"])
    s = problem.sample_structure(np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(SEED_STREAM,))), k)
    sizes = {"train": request.n_train, "valid": request.n_valid, "test": request.n_test}
    draws = {split: {"p": np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(SEED_STREAM, i)))
                     .normal(size=(sizes[split], k))} for i, split in enumerate(SPLITS)}
    key = request_key({"k": k, **sizes, "seed": request.seed, "oracle": request.options["oracle"]}, s.digest(), {}, GENERATOR_VERSION, CHUNK)

    def assemble(parts) -> InstanceSetData:
        merged = merge_shards([p for split in SPLITS for p in parts[split]])
        labels = {key: merged[key] for key in ("x", "objective", "solve_time")}
        labels["status"] = np.array([str(v).encode() for v in merged["status"]], dtype="S20")
        labels["reason"] = np.array([str(v) for v in merged["reason"]], dtype=str)
        labels["backend"] = np.array([b"closed-form"] * len(labels["objective"]), dtype="S16")
        attrs = root_attrs("boxqp", GENERATOR_VERSION, request.seed, s, name=request.name, spec=request.spec,
                           certifier_settings={"time_limit": None, "kkt_tol": 1e-12},
                           sampling={"k": k, "oracle": request.options["oracle"], **sizes})
        return InstanceSetData(attrs=attrs, structure=s.arrays(),
                               params={"p": np.concatenate([draws[split]["p"] for split in SPLITS])},
                               labels=labels, checks={"kkt_residual": merged["check_kkt_residual"]},
                               splits=split_positions(sizes))

    return generate_sharded(request.out, key, draws, SPLITS, CHUNK, label_task, assemble=assemble,
                            initializer=_init, initargs=(s.arrays(),), workers=request.workers,
                            scheduler=request.scheduler, progress=request.progress, overwrite=request.overwrite)
