"""``InstanceSet``: a map-style reader over one HDF5 instance-set file.

Example
-------
>>> ds = InstanceSet.open("NAME.h5")            # doctest: +SKIP
>>> test = ds.split("test")
>>> len(test), test[0].params["c"], test[0].label["objective"]
>>> for batch in test.batches(256):
...     batch["c"], batch["d"], batch["y"]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bilevelbench.core.family import Family
from bilevelbench.core.registry import get_family
from bilevelbench.data.hdf5 import SPLITS, InstanceSetData, decode_strings, read_instance_set
from bilevelbench.errors import MissingDataError, SchemaError, UnknownFamilyError, UsageError

STRING_LABELS = ("status", "reason", "backend")


@dataclass(frozen=True)
class Instance:
    """One instance: its index in the file, its parameters and its label fields."""

    index: int
    params: dict[str, np.ndarray]
    label: dict


class InstanceSet:
    """Read-only view of (a subset of) the instances of one file.

    Use :meth:`open`; :meth:`split` returns a view of one split.
    """

    def __init__(self, data: InstanceSetData, indices: np.ndarray | None = None, path: Path | None = None,
                 split_name: str | None = None) -> None:
        self._data = data
        self._indices = np.arange(data.n_instances) if indices is None else np.asarray(indices, dtype=np.int64)
        self.path = path
        self.split_name = split_name
        self._structure = None

    # -- construction ---------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> InstanceSet:
        """Open an instance-set file, validating its schema version and structure hash.

        ``path`` may also be the name of a released dataset (``"NAME"``, ``bilevelbench fetch --list``): when no such file exists, the
        name is looked up in the registry and the file fetched into the cache on first use
        (:func:`bilevelbench.data.fetch.fetch`: verified size and SHA-256).

        Raises
        ------
        MissingDataError
            If the file does not exist (and ``path`` is not a released dataset's name).
        bilevelbench.data.fetch.DownloadError
            If a released dataset could not be downloaded (the message says how to generate it instead).
        SchemaError
            If it is corrupt, foreign, newer than this bilevelbench, or its structure
            does not match its recorded hash.
        """
        path = Path(path)
        if not path.exists() and len(path.parts) == 1 and path.suffix in ("", ".h5"):
            path = _fetch_released(path.name) or path
        data = read_instance_set(path)
        ds = cls(data, path=path)
        try:
            get_family(ds.family)
        except UnknownFamilyError as exc:
            raise UnknownFamilyError(f"{str(path)!r} holds family {data.attrs.get('family')!r}, which this "
                                     f"installation cannot read: {exc}") from None
        recorded = data.attrs["structure_hash"]
        try:
            actual = ds.structure.digest()
        except (KeyError, UsageError) as exc:
            raise SchemaError(f"{str(path)!r}: /structure is incomplete or malformed ({exc})") from None
        if actual != recorded:
            raise SchemaError(f"{str(path)!r}: structure hash {actual[:12]}... does not match the recorded "
                              f"{recorded[:12]}...; the file is corrupt or was edited")
        return ds

    # -- metadata -------------------------------------------------------------------
    @property
    def meta(self) -> dict:
        """Root attributes (JSON-valued ones decoded)."""
        return dict(self._data.attrs)

    @property
    def family(self) -> str:
        return str(self._data.attrs["family"])

    @property
    def family_descriptor(self) -> Family:
        """The family's descriptor from the registry (:mod:`bilevelbench.core.registry`).

        Raises
        ------
        UnknownFamilyError
            If no installed plugin provides the file's family.
        """
        return get_family(self.family)

    @property
    def decision_dims(self) -> tuple[int, int]:
        """``(y_dim, z_dim)`` of a submission's answer: the width of the family's decision (``Family.decision``)
        and of its optional follower decision (``Family.follower``; 0 if none)."""
        return self.family_descriptor.decision_dims(self.structure)

    @property
    def structure(self):
        """The problem structure shared by every instance (built by the family, ``Family.structure``)."""
        if self._structure is None:
            self._structure = self.family_descriptor.structure(self._data)
        return self._structure

    @property
    def data(self) -> InstanceSetData:
        """The whole file's content (every instance, whatever this view holds)."""
        return self._data

    def content_digest(self) -> str:
        """The file's content digest (``bilevelbench info``): timings, versions and the family's own timing fields
        left out, so every regeneration of the same spec gives the same one."""
        from bilevelbench.data.digest import content_digest

        return content_digest(self._data, self.family_descriptor.timing_fields)

    @property
    def file_params(self) -> dict[str, np.ndarray]:
        """Parameter arrays of every instance of the file (positions as in the file)."""
        return dict(self._data.params)

    @property
    def closed_loop(self) -> dict[str, np.ndarray]:
        """Reference episodes of the exact MPC (``/closed_loop``); empty when the file has none."""
        return dict(self._data.closed_loop)

    @property
    def split_names(self) -> list[str]:
        extra = sorted(name for name in self._data.splits if name not in SPLITS)
        return [name for name in (*SPLITS, *extra) if name in self._data.splits]

    @property
    def indices(self) -> np.ndarray:
        """Indices of this view's instances in the file."""
        return self._indices.copy()

    # -- access ---------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._indices.shape[0])

    def __getitem__(self, i: int) -> Instance:
        n = len(self)
        if not isinstance(i, (int, np.integer)):
            raise UsageError(f"instances are indexed by integer position, got {type(i).__name__}")
        if not -n <= i < n:
            raise MissingDataError(f"instance {i} is out of range: this set holds {n} instance(s)")
        k = int(self._indices[i])
        params = {key: value[k] for key, value in self._data.params.items()}
        label = {key: self._label_value(key, value[k]) for key, value in self._data.labels.items()}
        label["checks"] = {key: float(value[k]) for key, value in self._data.checks.items()}
        return Instance(index=k, params=params, label=label)

    @staticmethod
    def _label_value(key: str, value):
        if key in STRING_LABELS:
            return value.decode("ascii") if isinstance(value, bytes) else str(value)
        if np.ndim(value) == 0:
            return value.item()
        return value

    def split(self, name: str) -> InstanceSet:
        """View of one split (``train``, ``valid`` or ``test``).

        Raises
        ------
        MissingDataError
            If the file has no such split.
        """
        if name not in self._data.splits:
            raise MissingDataError(f"no split {name!r} in this instance set; available: "
                                   f"{', '.join(self.split_names) or 'none'}")
        index = self._data.splits[name]
        if self.split_name is not None or len(self) != self._data.n_instances:
            index = np.intersect1d(index, self._indices)
        return InstanceSet(self._data, index, self.path, name)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Parameter arrays of this view, instance axis first."""
        return {key: value[self._indices] for key, value in self._data.params.items()}

    @property
    def labels(self) -> dict[str, np.ndarray]:
        """Label arrays of this view, instance axis first (strings decoded)."""
        out = {}
        for key, value in self._data.labels.items():
            part = value[self._indices]
            out[key] = decode_strings(part) if key in STRING_LABELS else part
        return out

    @property
    def checks(self) -> dict[str, np.ndarray]:
        """Stored residuals of the independent label checks."""
        return {key: value[self._indices] for key, value in self._data.checks.items()}

    def status_counts(self) -> dict[str, int]:
        """How many labels have each status."""
        return dict(Counter(str(s) for s in self.labels["status"]))

    def batches(self, batch_size: int = 256, label_fields: tuple[str, ...] | None = None,
                ) -> Iterator[dict[str, np.ndarray]]:
        """Yield dicts of numpy arrays (parameters and the requested label fields) in file order."""
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        if label_fields is None:
            label_fields = self.family_descriptor.label_fields
        missing = [f for f in label_fields if f not in self._data.labels]
        if missing:
            raise UsageError(f"unknown label field(s) {missing}; available: {sorted(self._data.labels)}")
        for start in range(0, len(self), batch_size):
            idx = self._indices[start:start + batch_size]
            batch = {key: value[idx] for key, value in self._data.params.items()}
            batch.update({key: self._data.labels[key][idx] for key in label_fields})
            batch["index"] = idx
            yield batch

    def to_torch(self, label_fields: tuple[str, ...] | None = None):
        """A ``torch.utils.data.Dataset`` over this view (requires torch); by default with the family's label
        fields (``Family.label_fields``)."""
        from bilevelbench.data.torch_dataset import TorchInstanceDataset

        return TorchInstanceDataset(self, self.family_descriptor.label_fields if label_fields is None
                                    else label_fields)

    def __repr__(self) -> str:
        where = f" {self.split_name!r}" if self.split_name else ""
        return (f"<InstanceSet{where} family={self.family} size={self.structure.size} "
                f"instances={len(self)} path={str(self.path)!r}>")


def _fetch_released(name: str) -> Path | None:
    """The cached (fetched if needed) file of released dataset ``name``; None when the registry lacks it."""
    from bilevelbench.data.fetch import fetch
    from bilevelbench.data.registry import load_registry

    try:
        registry = load_registry()
        entry = registry.entry(name)
    except MissingDataError:
        return None
    return fetch(entry.name, registry=registry)
