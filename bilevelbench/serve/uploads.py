"""The checks every upload passes before it is queued, run in a helper process.

An uploaded file is untrusted input to a C library (HDF5), so it is opened in a process of the
:class:`UploadChecker` pool, never in the service itself: a file that crashes the reader costs a helper
process, and the upload is refused with that reason. Nothing is ever unpickled from an upload; only plain
numeric datasets and string attributes are read.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import threading
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_OBJECTS = 64


@dataclass(frozen=True)
class UploadRules:
    """What an upload for one data set must match (picklable: it travels to the checker process)."""

    dataset: str
    split: str
    y_dim: int
    z_dim: int
    n_instances: int
    sha256: tuple[str, ...]


def _links(f: h5py.File) -> list[str]:
    """Every reason the file's links or datasets could make a reader open another file (empty when none)."""
    problems: list[str] = []
    seen = 0
    stack = [f]
    while stack:
        group = stack.pop()
        for name in group:
            seen += 1
            if seen > MAX_OBJECTS:
                problems.append(f"the file holds more than {MAX_OBJECTS} objects; a predictions file holds /y, "
                                "/instance_index and optionally /z")
                return problems
            link = group.get(name, getlink=True)
            path = f"{group.name.rstrip('/')}/{name}"
            if isinstance(link, h5py.ExternalLink):
                problems.append(f"{path} is an external link to another file; everything must be stored in the "
                                "file itself")
                continue
            if isinstance(link, h5py.SoftLink):
                problems.append(f"{path} is a soft link; store datasets under their own names")
                continue
            obj = group[name]
            if isinstance(obj, h5py.Group):
                stack.append(obj)
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    problems.append(f"{path} is a virtual dataset; store the numbers in the file itself")
                elif obj.external:
                    problems.append(f"{path} keeps its data in external raw files; not allowed")
    return problems


def check_upload(path: str, rules: UploadRules) -> dict:
    """Check an uploaded predictions file; return ``{"ok": True, solver_name, solver_version}`` or
    ``{"ok": False, "reason": ...}`` with one reason that names what was expected and what was received."""
    from bilevelbench.errors import BilevelBenchError
    from bilevelbench.evaluate.predictions import read_predictions

    file = Path(path)
    size = file.stat().st_size
    if size == 0:
        return {"ok": False, "reason": "the uploaded file is empty; expected an HDF5 predictions file "
                                       "(docs/format.md)"}
    with open(file, "rb") as handle:
        head = handle.read(len(HDF5_SIGNATURE))
    if head != HDF5_SIGNATURE:
        return {"ok": False, "reason": f"the uploaded file is not HDF5 (it starts with {head[:8]!r}, not the HDF5 "
                                       "signature); expected a predictions file written as in docs/format.md"}
    try:
        with h5py.File(file, "r") as f:
            problems = _links(f)
    except (OSError, RuntimeError, ValueError) as exc:
        return {"ok": False, "reason": f"the uploaded file is not a readable HDF5 file "
                                       f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"}
    if problems:
        return {"ok": False, "reason": problems[0]}
    try:
        pred = read_predictions(file, rules.y_dim, rules.z_dim, rules.n_instances)
    except BilevelBenchError as exc:
        return {"ok": False, "reason": str(exc).replace(repr(str(file)), "the uploaded file")}
    split = pred.attrs.get("split") or "test"
    if split != rules.split:
        return {"ok": False, "reason": f"the file answers split {split!r}; this service scores only the hidden "
                                       f"split {rules.split!r} (score the others yourself: bilevelbench score)"}
    if pred.instance.size != rules.n_instances:
        have = np.zeros(rules.n_instances, bool)
        have[pred.instance] = True
        missing = np.flatnonzero(~have)
        return {"ok": False, "reason": f"the file answers {pred.instance.size} of the {rules.n_instances} instances "
                                       f"of {rules.dataset}/{rules.split} (first missing: {int(missing[0])}); the "
                                       "service scores complete submissions only: give every instance a row, your "
                                       "best guess where your solver failed"}
    for name, values in (("y", pred.y), ("z", pred.z)):
        if values is None:
            continue
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            kind = "NaN" if np.isnan(values[row]).any() else "inf"
            return {"ok": False, "reason": f"/{name} has {int(bad.sum())} row(s) with NaN or inf (first: row {row}, "
                                           f"instance {int(pred.instance[row])}, {kind}); expected finite numbers "
                                           "in every row"}
    claimed = pred.attrs.get("dataset_sha256")
    if claimed and claimed not in rules.sha256:
        return {"ok": False, "reason": f"the file says it was made for a data set with sha256 {claimed[:16]}..., "
                                       f"not {rules.dataset} as this service holds it (or its public release); "
                                       "remove the attribute or predict on the released file"}
    return {"ok": True, "solver_name": str(pred.attrs.get("solver_name") or "unnamed-solver")[:200],
            "solver_version": str(pred.attrs.get("solver_version") or "0")[:200]}


class UploadChecker:
    """A small pool of helper processes that run :func:`check_upload`; a crashed or stuck helper is replaced.

    Parameters
    ----------
    processes : int
        Helper processes.
    timeout_s : float
        A check that takes longer is refused.
    """

    def __init__(self, processes: int = 2, timeout_s: float = 60.0) -> None:
        self.processes = processes
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"))

    def _replace(self, broken: cf.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                for process in list(getattr(broken, "_processes", {}).values()):
                    process.kill()
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()

    def check(self, path: Path, rules: UploadRules) -> dict:
        """Run :func:`check_upload` in a helper; a crash or a timeout becomes a refusal."""
        for attempt in range(2):
            pool = self._pool
            try:
                future = pool.submit(check_upload, str(path), rules)
                return future.result(timeout=self.timeout_s)
            except cf.TimeoutError:
                self._replace(pool)
                return {"ok": False, "reason": f"checking the file took more than {self.timeout_s:.0f} s; expected "
                                               "a plain predictions file"}
            except cf.process.BrokenProcessPool:
                # another upload may have broken the pool this check ran in: try once more on a fresh one
                self._replace(pool)
        return {"ok": False, "reason": "the file crashed the HDF5 reader; expected a plain predictions file"}

    def close(self) -> None:
        """Stop the helpers."""
        self._pool.shutdown(wait=False, cancel_futures=True)
