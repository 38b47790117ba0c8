"""Instance sets with the labels of some splits withheld: the evaluator's copy for a solver's sandbox, and the
public release of a set whose test labels only a scoring service may hold.

Every withheld row carries no information: floating-point labels and checks are NaN, integer labels 0, the
status the given one (``unlabeled`` or ``hidden``), the reason a fixed sentence, other strings empty. The
``/closed_loop`` group goes too: the exact MPC's reference episodes start from test instances, so their first
steps are labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bilevelbench.data.hdf5 import (
    BACKEND_DTYPE,
    STATUS_DTYPE,
    InstanceSetData,
    as_fixed_ascii,
    read_instance_set,
    write_instance_set,
)
from bilevelbench.errors import UsageError


def withhold_labels(data: InstanceSetData, splits: tuple[str, ...] | list[str], status: str,
                    reason: str) -> InstanceSetData:
    """``data`` with the labels and checks of ``splits`` replaced by values that carry no information."""
    unknown = [s for s in splits if s not in data.splits]
    if unknown:
        raise UsageError(f"cannot withhold the labels of {', '.join(unknown)}: the set's splits are "
                         f"{', '.join(data.splits) or 'none'}")
    idx = np.concatenate([np.asarray(data.splits[s], dtype=np.int64) for s in splits]) if splits else \
        np.zeros(0, np.int64)
    labels = {}
    for key, value in data.labels.items():
        value = np.array(value)
        if value.dtype.kind == "f":
            value[idx] = np.nan
        elif value.dtype.kind in "iu":
            value[idx] = 0
        elif value.dtype.kind == "b":
            value[idx] = False
        else:                                          # text: decode bytes before writing the fixed words
            value = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in value], dtype=object)
            value[idx] = status if key == "status" else reason if key == "reason" else ""
        if key == "status":
            value = as_fixed_ascii([str(v) for v in value], STATUS_DTYPE)
        elif key == "backend":
            value = as_fixed_ascii([str(v) for v in value], BACKEND_DTYPE)
        elif value.dtype.kind == "O":
            value = np.array([str(v) for v in value], dtype=str)
        labels[key] = value
    checks = {}
    for key, value in data.checks.items():
        value = np.array(value, dtype=float)
        value[idx] = np.nan
        checks[key] = value
    data.labels, data.checks = labels, checks
    data.closed_loop = {}
    return data


def public_release(source: Path | str, target: Path | str, hidden: tuple[str, ...] = ("test",)) -> Path:
    """Write the public copy of a released set: the ``hidden`` splits keep their parameters only.

    The copy records ``public = true``, the ``hidden_splits`` and the full file's content digest
    (``private_content_digest``), which ties it to the file a scoring service holds. It opens, ``info`` and
    ``verify`` work on the splits it holds, and the evaluator refuses to score a hidden split.
    """
    from bilevelbench.data.fetch import file_content_digest

    data = read_instance_set(source)
    digest = file_content_digest(Path(source))
    withhold_labels(data, tuple(hidden), "hidden", "hidden: this split is scored by the service holding the full file")
    data.attrs = {**data.attrs, "public": True, "hidden_splits": list(hidden), "private_content_digest": digest}
    return write_instance_set(target, data, overwrite=True)


def hidden_split(ds, split: str) -> bool:
    """Whether ``split`` of an opened set is hidden (a public release's split without labels)."""
    status = np.asarray(ds.split(split).labels["status"]).astype(str)
    return status.size > 0 and bool(np.all(status == "hidden"))
