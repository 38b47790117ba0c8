"""A content digest of an instance set: equal for two generations of one spec, whatever the machine's clock.

The SHA-256 of a file changes between two generations of the same spec because per-instance solve times are
stored. :func:`content_digest` hashes what the file *says* instead: the structure, parameters, labels, checks,
splits and closed-loop references, and the root attributes that decide them (family, generator version, seed,
sampling and certifier settings). Left out are the timing fields (:data:`TIMING_FIELDS`, per family also its
own) and the attributes that only record provenance (:data:`PROVENANCE_ATTRS`: package and solver versions,
the data set's name and the spec file it came from).

Arrays are hashed in a canonical form, so the layout does not matter: floats as little-endian float64 with
every NaN the same, integers as little-endian int64, booleans as bytes, strings (fixed-length ASCII or UTF-8
objects alike) as UTF-8 JSON. ``bilevelbench info FILE`` prints it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import numpy as np

from bilevelbench.data.hdf5 import InstanceSetData

#: Label fields that measure time, never reproduced by a rerun (every family stores ``solve_time``).
TIMING_FIELDS = ("solve_time",)
#: Root attributes that record where and with what a file was made, not what it holds.
PROVENANCE_ATTRS = ("bilevelbench_version", "package_versions", "backend_versions", "name", "spec")
#: Prefix of every digest string.
PREFIX = "sha256:"


def _canonical(value: np.ndarray) -> tuple[str, bytes]:
    value = np.asarray(value)
    kind = value.dtype.kind
    if kind == "f":
        canon = np.ascontiguousarray(value, dtype="<f8").copy()
        canon[np.isnan(canon)] = np.nan
        return "f8", canon.tobytes()
    if kind in "iu":
        return "i8", np.ascontiguousarray(value, dtype="<i8").tobytes()
    if kind == "b":
        return "b1", np.ascontiguousarray(value, dtype=np.uint8).tobytes()
    if kind in "SUO":
        flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.reshape(-1)]
        return "str", json.dumps(flat, ensure_ascii=False).encode("utf-8")
    raise TypeError(f"cannot digest an array of dtype {value.dtype}")


def _update_group(h, name: str, group: dict[str, np.ndarray], skip: Iterable[str] = ()) -> None:
    skip = set(skip)
    h.update(f"[{name}]".encode())
    for key in sorted(group):
        if key in skip:
            continue
        kind, blob = _canonical(group[key])
        h.update(f"{key}|{kind}|{tuple(np.shape(group[key]))}|{len(blob)}|".encode())
        h.update(blob)


def content_digest(data: InstanceSetData, timing_fields: Iterable[str] = ()) -> str:
    """The digest of ``data``'s content (see the module docstring), as ``"sha256:<hex>"``.

    Parameters
    ----------
    data : InstanceSetData
        A file's content (:func:`bilevelbench.data.hdf5.read_instance_set`).
    timing_fields : iterable of str
        Further label fields to leave out (a family's own timing fields).
    """
    h = hashlib.sha256()
    attrs = {k: v for k, v in data.attrs.items() if k not in PROVENANCE_ATTRS}
    h.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    _update_group(h, "structure", data.structure)
    _update_group(h, "params", data.params)
    _update_group(h, "labels", data.labels, skip=(*TIMING_FIELDS, *timing_fields))
    _update_group(h, "checks", data.checks)
    _update_group(h, "splits", data.splits)
    _update_group(h, "closed_loop", data.closed_loop)
    return PREFIX + h.hexdigest()
