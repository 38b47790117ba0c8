"""Predictions files: the HDF5 layout any solver, in any language, can write (``docs/format.md``).

Layout::

    /y               float (k, m)   upper-level decisions, one row per answered instance
    /z               float (k, n)   optional: the lower-level decisions the solver claims
    /instance_index  int (k,)       position of each row's instance in the split (0-based)
    attributes: format = "bilevelbench-predictions", format_version = 1, solver_name,
                solver_version, split (default "test"), optionally dataset_sha256 and the
                self-reported latency_ms_median (shown as unverified).

The reader accepts only hard links to plain datasets inside the file: external
links, soft links and virtual datasets are refused, so a predictions file
cannot make the evaluator read other files. Nothing is ever unpickled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from bilevelbench.errors import MissingDataError, SubmissionError

FORMAT = "bilevelbench-predictions"
FORMAT_VERSION = 1
DATASETS = ("y", "z", "instance_index")
STRING_ATTRS = ("solver_name", "solver_version", "split", "dataset_sha256", "description")


@dataclass
class PredictionSet:
    """Rows of predictions, keyed by instance position in the split."""

    instance: np.ndarray
    y: np.ndarray
    z: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)

    @property
    def latency_ms(self) -> float | None:
        """Self-reported median latency (unverified), if the file gives a finite one."""
        value = self.attrs.get("latency_ms_median")
        return value if isinstance(value, float) and math.isfinite(value) else None


def write_predictions(path: Path | str, y: np.ndarray, instance_index: np.ndarray, z: np.ndarray | None = None,
                      solver_name: str = "unnamed-solver", solver_version: str = "0", split: str = "test",
                      latency_ms_median: float | None = None, dataset_sha256: str | None = None) -> Path:
    """Write a predictions file (a reference writer; any HDF5 library can produce the same layout)."""
    path = Path(path)
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["solver_name"] = solver_name
        f.attrs["solver_version"] = solver_version
        f.attrs["split"] = split
        if latency_ms_median is not None:
            f.attrs["latency_ms_median"] = float(latency_ms_median)
        if dataset_sha256 is not None:
            f.attrs["dataset_sha256"] = dataset_sha256
        f.create_dataset("y", data=np.asarray(y, dtype=np.float64), track_times=False)
        if z is not None:
            f.create_dataset("z", data=np.asarray(z, dtype=np.float64), track_times=False)
        f.create_dataset("instance_index", data=np.asarray(instance_index, dtype=np.int64), track_times=False)
    return path


def _attr(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _dataset(f: h5py.File, name: str, path: Path, required: bool) -> h5py.Dataset | None:
    link = f.get(name, getlink=True)
    if link is None:
        if required:
            raise SubmissionError(f"{str(path)!r} has no /{name} dataset; expected the layout in docs/format.md "
                                  f"(/y, optional /z, /instance_index)")
        return None
    if isinstance(link, h5py.ExternalLink):
        raise SubmissionError(f"{str(path)!r}: /{name} is an external link to {link.filename!r}; predictions must "
                              "be stored in the file itself")
    if isinstance(link, h5py.SoftLink):
        raise SubmissionError(f"{str(path)!r}: /{name} is a soft link; expected a dataset stored under that name")
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise SubmissionError(f"{str(path)!r}: /{name} is a {type(obj).__name__}, expected a dataset")
    if obj.is_virtual:
        raise SubmissionError(f"{str(path)!r}: /{name} is a virtual dataset; predictions must be stored in the file")
    if obj.external:
        raise SubmissionError(f"{str(path)!r}: /{name} keeps its data in external raw files; not allowed")
    return obj


def _read_float(ds: h5py.Dataset, name: str, width: int, max_rows: int, path: Path) -> np.ndarray:
    if ds.dtype.kind not in "fiu":
        raise SubmissionError(f"{str(path)!r}: /{name} has dtype {ds.dtype}; expected float (or integer) numbers")
    if ds.ndim != 2 or ds.shape[1] != width:
        raise SubmissionError(f"{str(path)!r}: /{name} has shape {ds.shape}; expected (rows, {width})")
    if ds.shape[0] > max_rows:
        raise SubmissionError(f"{str(path)!r}: /{name} has {ds.shape[0]} rows but the split has only {max_rows} "
                              "instances")
    return np.asarray(ds[()], dtype=np.float64)


def read_predictions(path: Path | str, y_dim: int, z_dim: int, n_instances: int) -> PredictionSet:
    """Read and validate a predictions file for a split of ``n_instances`` instances.

    Per-row problems (NaN or inf values, missing instances) are *not* errors
    here: the evaluator records them per instance. Problems with the file as a
    whole are.

    Raises
    ------
    MissingDataError
        If the file does not exist.
    SubmissionError
        If it is not HDF5, is from another format or a newer version, has external
        or soft links or virtual datasets, or has wrong dtypes, shapes, duplicated or
        out-of-range instance indices.
    """
    path = Path(path)
    if not path.exists():
        raise MissingDataError(f"predictions file {str(path)!r} does not exist")
    if not path.is_file():
        raise SubmissionError(f"predictions path {str(path)!r} is not a regular file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise SubmissionError(f"{str(path)!r} is not a readable HDF5 file ({str(exc).splitlines()[0]})") from None
    try:
        with f:
            attrs = {key: _attr(f.attrs[key]) for key in f.attrs}
            fmt = attrs.get("format")
            if fmt is not None and fmt != FORMAT:
                raise SubmissionError(f"{str(path)!r} has format {fmt!r}; expected {FORMAT!r}")
            version = attrs.get("format_version", FORMAT_VERSION)
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise SubmissionError(f"{str(path)!r} has format_version {version!r}; this bilevelbench reads "
                                      f"versions up to {FORMAT_VERSION}: upgrade bilevelbench")
            y_ds = _dataset(f, "y", path, required=True)
            z_ds = _dataset(f, "z", path, required=False)
            idx_ds = _dataset(f, "instance_index", path, required=True)
            y = _read_float(y_ds, "y", y_dim, n_instances, path)
            z = None if z_ds is None else _read_float(z_ds, "z", z_dim, n_instances, path)
            if idx_ds.dtype.kind not in "iu":
                raise SubmissionError(f"{str(path)!r}: /instance_index has dtype {idx_ds.dtype}; expected integers")
            if idx_ds.ndim != 1 or idx_ds.shape[0] != y.shape[0]:
                raise SubmissionError(f"{str(path)!r}: /instance_index has shape {idx_ds.shape}; expected "
                                      f"({y.shape[0]},), one entry per row of /y")
            index = np.asarray(idx_ds[()], dtype=np.int64)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise SubmissionError(f"{str(path)!r} could not be read: {type(exc).__name__}: {exc}") from None
    if z is not None and z.shape[0] != y.shape[0]:
        raise SubmissionError(f"{str(path)!r}: /z has {z.shape[0]} rows but /y has {y.shape[0]}")
    bad = index[(index < 0) | (index >= n_instances)]
    if bad.size:
        raise SubmissionError(f"{str(path)!r}: /instance_index holds {bad.size} value(s) outside 0..{n_instances - 1} "
                              f"(first: {int(bad[0])}); the split has {n_instances} instances")
    values, counts = np.unique(index, return_counts=True)
    if np.any(counts > 1):
        dup = values[counts > 1]
        raise SubmissionError(f"{str(path)!r}: /instance_index lists {dup.size} instance(s) more than once "
                              f"(first: {int(dup[0])}, {int(counts[counts > 1][0])} times)")
    for key in STRING_ATTRS:
        if key in attrs:
            attrs[key] = str(attrs[key])[:200]
    if "latency_ms_median" in attrs:
        try:
            attrs["latency_ms_median"] = float(attrs["latency_ms_median"])
        except (TypeError, ValueError):
            raise SubmissionError(f"{str(path)!r}: attribute latency_ms_median is {attrs['latency_ms_median']!r}; "
                                  "expected a number of milliseconds") from None
    return PredictionSet(instance=index, y=y, z=z, attrs=attrs)
