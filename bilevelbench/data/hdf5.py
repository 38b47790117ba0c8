"""Reading and writing the bilevelbench HDF5 contract (documented in docs/format.md).

Files are written to a temporary name beside the target and renamed into place,
so a crash or Ctrl-C never leaves a half-written file under the final name.
Object modification times are not recorded. Measured solve times and package versions are, so two
generations differ in bytes: compare them with :func:`bilevelbench.data.digest.content_digest`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from bilevelbench.atomic import atomic_target
from bilevelbench.errors import MissingDataError, OutputExistsError, SchemaError, UsageError

#: Version of the on-disk layout. Readers refuse files with a newer version.
SCHEMA_VERSION = 1

SPLITS = ("train", "valid", "test")
REQUIRED_ROOT_ATTRS = ("schema_version", "family", "generator_version", "bilevelbench_version", "seed",
                       "structure_hash", "certifier_settings", "package_versions")
STATUS_DTYPE = "S20"
BACKEND_DTYPE = "S16"


@dataclass
class InstanceSetData:
    """Everything one HDF5 instance-set file holds, in memory.

    ``labels`` maps dataset names under ``/labels`` to arrays with the instance axis
    first; ``checks`` maps check names to arrays stored under ``/labels/checks``.
    ``attrs`` are root attributes; JSON-valued ones are stored as JSON strings.
    """

    attrs: dict
    structure: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    checks: dict[str, np.ndarray]
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    #: Optional ``/closed_loop`` group (reference episodes of the exact MPC; mixed-integer families only).
    closed_loop: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_instances(self) -> int:
        return int(next(iter(self.params.values())).shape[0])


def _is_json_attr(value) -> bool:
    """Root attributes holding a dict or list are stored as JSON text (and decoded on reading)."""
    return isinstance(value, (dict, list))


def _decode_attr(value):
    """A stored attribute's value: JSON text of an object or array decoded, numpy scalars as Python values."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_output_path(path: Path, overwrite: bool) -> None:
    """Fail early, before any work, if ``path`` cannot be written.

    Raises
    ------
    OutputExistsError
        If the file exists and ``overwrite`` is False.
    UsageError
        If the parent directory does not exist or is not writable, or the path is a directory.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"output path {str(path)!r} is a directory; expected a file name such as data.h5")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output file {str(path)!r} already exists; pass --overwrite to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"output directory {str(parent)!r} does not exist")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise UsageError(f"output directory {str(parent)!r} is not writable ({exc.strerror})") from None


def _create(group: h5py.Group, name: str, value: np.ndarray) -> None:
    value = np.asarray(value)
    if value.dtype.kind == "U":
        group.create_dataset(name, data=value.astype(object), dtype=h5py.string_dtype("utf-8"),
                             track_times=False)
    else:
        group.create_dataset(name, data=value, track_times=False)


def write_instance_set(path: Path | str, data: InstanceSetData, overwrite: bool = False) -> Path:
    """Write ``data`` atomically to ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    check_output_path(path, overwrite)
    with atomic_target(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        for key, value in data.attrs.items():
            f.attrs[key] = json.dumps(value, sort_keys=True) if _is_json_attr(value) else value
        f.attrs["schema_version"] = SCHEMA_VERSION
        for group_name, content in (("structure", data.structure), ("params", data.params),
                                    ("labels", data.labels), ("splits", data.splits)):
            group = f.create_group(group_name, track_order=True)
            for key, value in content.items():
                _create(group, key, value)
        checks = f["labels"].create_group("checks", track_order=True)
        for key, value in data.checks.items():
            _create(checks, key, value)
        if data.closed_loop:
            group = f.create_group("closed_loop", track_order=True)
            for key, value in data.closed_loop.items():
                _create(group, key, value)
    return path


def _read_group(group: h5py.Group) -> dict[str, np.ndarray]:
    out = {}
    for key, obj in group.items():
        if isinstance(obj, h5py.Dataset):
            if h5py.check_string_dtype(obj.dtype) is not None:
                out[key] = np.array(obj.asstr()[()], dtype=object)
            else:
                out[key] = obj[()]
    return out


def read_instance_set(path: Path | str) -> InstanceSetData:
    """Read and validate a file written by :func:`write_instance_set`.

    Raises
    ------
    MissingDataError
        If the file does not exist.
    SchemaError
        If it is not HDF5, not a bilevelbench file, written by a newer schema, or
        internally inconsistent.
    """
    path = Path(path)
    if not path.exists():
        raise MissingDataError(f"no such instance-set file: {str(path)!r}")
    if path.is_dir():
        raise SchemaError(f"{str(path)!r} is a directory, expected an HDF5 instance-set file")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as exc:
        raise SchemaError(f"{str(path)!r} cannot be read: {exc}") from None
    if not is_hdf5:
        raise SchemaError(f"{str(path)!r} is not an HDF5 file (bad signature); expected a bilevelbench instance set")
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in REQUIRED_ROOT_ATTRS if key not in f.attrs]
            if missing:
                raise SchemaError(f"{str(path)!r} is an HDF5 file but not a bilevelbench instance set "
                                  f"(missing root attributes: {', '.join(missing)})")
            version = int(f.attrs["schema_version"])
            if version > SCHEMA_VERSION:
                raise SchemaError(f"{str(path)!r} uses schema version {version}, newer than the {SCHEMA_VERSION} "
                                  "this bilevelbench reads; upgrade bilevelbench (pip install -U bilevelbench)")
            if version < 1:
                raise SchemaError(f"{str(path)!r} has invalid schema version {version}; expected >= 1")
            for group in ("structure", "params", "labels", "splits"):
                if group not in f:
                    raise SchemaError(f"{str(path)!r} lacks the /{group} group required by schema {version}")
            attrs = {key: _decode_attr(value) for key, value in f.attrs.items()}
            labels = _read_group(f["labels"])
            checks = _read_group(f["labels"]["checks"]) if "checks" in f["labels"] else {}
            data = InstanceSetData(attrs=attrs, structure=_read_group(f["structure"]),
                                   params=_read_group(f["params"]), labels=labels, checks=checks,
                                   splits=_read_group(f["splits"]),
                                   closed_loop=_read_group(f["closed_loop"]) if "closed_loop" in f else {})
    except SchemaError:
        raise
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{str(path)!r} is corrupt or truncated: {exc}") from None
    _validate_lengths(path, data)
    return data


def _validate_lengths(path: Path, data: InstanceSetData) -> None:
    if not data.params:
        raise SchemaError(f"{str(path)!r} has an empty /params group")
    n = data.n_instances
    for group_name, content in (("params", data.params), ("labels", data.labels), ("labels/checks", data.checks)):
        for key, value in content.items():
            if value.ndim == 0 or value.shape[0] != n:
                raise SchemaError(f"{str(path)!r}: /{group_name}/{key} has shape {value.shape}, "
                                  f"expected {n} instances on the first axis")
    for name, index in data.splits.items():
        if index.ndim != 1 or (index.size and (index.min() < 0 or index.max() >= n)):
            raise SchemaError(f"{str(path)!r}: split {name!r} holds indices outside 0..{n - 1}")


def decode_strings(values: np.ndarray) -> np.ndarray:
    """Fixed-length byte strings (as stored) to Python ``str`` objects."""
    if values.dtype.kind == "S":
        return np.char.decode(values, "ascii").astype(object)
    return values.astype(object)


def as_fixed_ascii(values: list[str], dtype: str) -> np.ndarray:
    """Python strings to fixed-length ASCII (readable from any HDF5 binding)."""
    width = int(dtype[1:])
    for value in values:
        if len(value) > width or not value.isascii():
            raise UsageError(f"value {value!r} does not fit {dtype} (ASCII, at most {width} characters)")
    return np.array(values, dtype=dtype)
