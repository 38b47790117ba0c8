"""The sharded, resumable labelling pipeline any family's generator can use (it names no family).

A generation draws every split's parameters up front (from the family's own seed streams), cuts the splits that
get labels into chunks, and labels the chunks in worker processes or on a Dask cluster
(:func:`bilevelbench.parallel.map_tasks`). Each finished chunk is saved at once as a shard in ``OUT.partial/``
(:class:`bilevelbench.data.shards.ShardStore`), so a killed run resumes where it stopped; the HDF5 file is written
atomically from the shards at the end, so it does not depend on where the run was interrupted or on the number of
workers. A family supplies three things:

* ``task((split, chunk, params)) -> (shard_name, arrays)``: a module-level function (it is pickled to the
  workers) that labels one chunk; the arrays must include ``status`` (one entry per instance);
* ``initializer(*initargs)``: builds the worker's state once (solver models, structures);
* ``assemble(parts) -> InstanceSetData``: the file's content from the loaded shards of each labelled split.

Example (the shape of ``docs/families/adding-a-family.md``'s template)::

    key = request_key(asdict(request), structure.digest(), settings, GENERATOR_VERSION, CHUNK)
    return generate_sharded(out, key, draws, ("train", "valid", "test"), CHUNK, label_task,
                            initializer=init_worker, initargs=(settings,), assemble=assemble)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

import bilevelbench
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
from bilevelbench.data.shards import ShardStore, save_missing, shard_name
from bilevelbench.errors import UsageError


def chunk_count(n: int, chunk: int) -> int:
    """How many chunks of ``chunk`` instances ``n`` instances make."""
    return (n + chunk - 1) // chunk


def generate_sharded(out: Path | str, key: str, draws: dict[str, dict[str, np.ndarray]],
                     label_splits: tuple[str, ...], chunk: int, task: Callable, *,
                     assemble: Callable[[dict[str, list[dict[str, np.ndarray]]]], InstanceSetData],
                     initializer: Callable | None = None, initargs: tuple = (), workers: int = 1,
                     scheduler: str | None = None, progress: Callable[[int], object] | None = None,
                     overwrite: bool = False) -> Path:
    """Label the chunks of ``label_splits`` that ``OUT.partial/`` lacks, then write ``out`` from the shards.

    Parameters
    ----------
    out : Path
        The HDF5 file to write.
    key : str
        Digest of everything the shards depend on (:func:`bilevelbench.data.shards.request_key`); a partial folder
        made for another key is refused.
    draws : dict
        Every split's parameter arrays (``split -> {name: (n, ...) array}``).
    label_splits : tuple of str
        The splits that get labels (the others are left to ``assemble``).
    chunk : int
        Instances per shard.
    task, assemble, initializer, initargs
        See the module docstring.
    workers, scheduler, progress, overwrite
        As for ``bilevelbench generate``.

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    check_output_path(out, overwrite)
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    sizes = {split: _rows(draws.get(split, {})) for split in label_splits}
    store = ShardStore(out, key)
    try:
        tasks = []
        for split in label_splits:
            for c, start in enumerate(range(0, sizes[split], chunk)):
                if not store.has(shard_name(split, c)):
                    tasks.append((split, c, {k: v[start:start + chunk] for k, v in draws[split].items()}))
        save_missing(store, task, tasks, total=sum(sizes.values()), pending=sum(_rows(t[2]) for t in tasks),
                     progress=progress, workers=workers, scheduler=scheduler, initializer=initializer,
                     initargs=initargs, key=key)
        parts = {split: [store.load(shard_name(split, c)) for c in range(chunk_count(sizes[split], chunk))]
                 for split in label_splits}
        write_instance_set(out, assemble(parts), overwrite=overwrite)
    except BaseException:
        store.close()
        raise
    store.finish()
    return out


def _rows(params: dict[str, np.ndarray]) -> int:
    return int(next(iter(params.values())).shape[0]) if params else 0


def split_positions(sizes: dict[str, int], order: tuple[str, ...] = SPLITS) -> dict[str, np.ndarray]:
    """File positions of each split when the splits are stored one after the other in ``order``."""
    out, start = {}, 0
    for split in order:
        out[split] = np.arange(start, start + sizes.get(split, 0), dtype=np.int64)
        start += sizes.get(split, 0)
    return out


def merge_shards(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The shards' arrays concatenated along the instance axis (every shard has the same keys)."""
    if not parts:
        raise UsageError("nothing was generated")
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def label_arrays(merged: dict[str, np.ndarray], keys: tuple[str, ...] | list[str], backend: str
                 ) -> dict[str, np.ndarray]:
    """The label datasets of merged shards: ``keys`` as they are, plus ``status`` and ``reason`` as strings and
    ``backend`` (the same for every instance) in the file's fixed-width encodings."""
    status = [str(v) for v in merged["status"]]
    labels = {key: merged[key] for key in keys}
    labels["status"] = as_fixed_ascii(status, STATUS_DTYPE)
    labels["reason"] = np.array([str(v) for v in merged["reason"]], dtype=str)
    labels["backend"] = as_fixed_ascii([backend] * len(status), BACKEND_DTYPE)
    return labels


def split_params(draws: dict[str, dict[str, np.ndarray]], order: tuple[str, ...] = SPLITS) -> dict[str, np.ndarray]:
    """Every parameter array of the per-split draws, the splits one after the other in ``order``."""
    return {key: np.concatenate([draws[split][key] for split in order]) for key in draws[order[-1]]}


def root_attrs(family: str, generator_version, seed: int, structure, *, name: str | None = None,
               spec: dict | None = None, **extra) -> dict:
    """The root attributes every file carries (``docs/format.md``), then the family's own ``extra`` ones."""
    attrs = {
        "family": family,
        "generator_version": generator_version,
        "bilevelbench_version": bilevelbench.__version__,
        "seed": int(seed),
        "size": structure.size,
        "structure_hash": structure.digest(),
        "package_versions": package_versions(),
        **extra,
    }
    if name:
        attrs["name"] = name
    if spec:
        attrs["spec"] = spec
    return attrs

