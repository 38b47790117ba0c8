"""``InstanceSet``: a map-style reader over one HDF5 instance-set file.

Example
-------
>>> ds = InstanceSet.open("bqp-3x2.h5")            # doctest: +SKIP
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

from bilevelbench.data.hdf5 import SPLITS, InstanceSetData, decode_strings, read_instance_set
from bilevelbench.errors import MissingDataError, SchemaError, UsageError
from bilevelbench.families.bqp import STRUCTURE_KEYS, BQPStructure
from bilevelbench.families.dcopf import DCOPFStructure
from bilevelbench.families.miqp import MIQPStructure

#: Families this bilevelbench reads.
FAMILIES = ("bqp", "mimpc-robot", "mimpc-tank", "dcopf", "ccd-twotank", "ccd-hvac")
#: Splits in the order they are listed (``infeasible``: certified-infeasible draws of the mixed-integer families).
ALL_SPLITS = (*SPLITS, "infeasible")

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
        self._structure: BQPStructure | MIQPStructure | DCOPFStructure | None = None

    # -- construction ---------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> InstanceSet:
        """Open an instance-set file, validating its schema version and structure hash.

        ``path`` may also be the name of a released dataset (``"bqp-3x2"``): when no such file exists, the
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
        if data.attrs.get("family") not in FAMILIES:
            raise SchemaError(f"{str(path)!r} holds family {data.attrs.get('family')!r}; "
                              f"this bilevelbench reads: {', '.join(FAMILIES)}")
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
    def is_miqp(self) -> bool:
        """Whether this is a mixed-integer family (decision ``x``, parameters ``theta``)."""
        return self.family.startswith("mimpc")

    @property
    def is_dcopf(self) -> bool:
        """Whether this is a DC-OPF set (decision ``pg``, parameters ``pd``)."""
        return self.family == "dcopf"

    @property
    def is_ccd(self) -> bool:
        """Whether this is a control co-design set (decision ``design``; best-known labels)."""
        return self.family.startswith("ccd-")

    @property
    def decision_dims(self) -> tuple[int, int]:
        """``(y_dim, z_dim)`` of a submission's answer: ``(m, n)`` for bqp (leader ``y``, follower ``z``),
        ``(n, 0)`` for the mixed-integer families (all of ``x``), ``(n_gen, 0)`` for dcopf (``pg``)."""
        s = self.structure
        if self.is_dcopf:
            return s.n_gen, 0
        if self.is_ccd:
            return s.design_dim, 0
        return (s.n, 0) if self.is_miqp else (s.m, s.n)

    @property
    def structure(self) -> BQPStructure | MIQPStructure | DCOPFStructure:
        """The problem structure shared by every instance."""
        if self._structure is None:
            if self.is_ccd:
                from bilevelbench.generate_ccd import structure_from_arrays as ccd_structure

                self._structure = ccd_structure(self.family, self._data.structure)
            elif self.is_dcopf:
                from bilevelbench.families.dcopf import structure_from_arrays

                case = (self._data.attrs.get("dcopf") or {}).get("case", "")
                self._structure = structure_from_arrays(self._data.structure, case)
            elif self.is_miqp:
                self._structure = _miqp_structure(self._data)
            else:
                arrays = {key: self._data.structure[key] for key in STRUCTURE_KEYS}
                self._structure = BQPStructure(**arrays)
        return self._structure

    @property
    def closed_loop(self) -> dict[str, np.ndarray]:
        """Reference episodes of the exact MPC (``/closed_loop``); empty when the file has none."""
        return dict(self._data.closed_loop)

    @property
    def split_names(self) -> list[str]:
        return [name for name in ALL_SPLITS if name in self._data.splits]

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
            label_fields = (("x", "objective") if self.is_miqp else ("pg", "objective") if self.is_dcopf
                            else ("design", "objective") if self.is_ccd
                            else ("y", "z", "objective"))
        missing = [f for f in label_fields if f not in self._data.labels]
        if missing:
            raise UsageError(f"unknown label field(s) {missing}; available: {sorted(self._data.labels)}")
        for start in range(0, len(self), batch_size):
            idx = self._indices[start:start + batch_size]
            batch = {key: value[idx] for key, value in self._data.params.items()}
            batch.update({key: self._data.labels[key][idx] for key in label_fields})
            batch["index"] = idx
            yield batch

    def to_torch(self, label_fields: tuple[str, ...] = ("y", "z", "objective")):
        """A ``torch.utils.data.Dataset`` over this view (requires torch)."""
        from bilevelbench.data.torch_dataset import TorchInstanceDataset

        return TorchInstanceDataset(self, label_fields)

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


def _miqp_structure(data: InstanceSetData) -> MIQPStructure:
    from bilevelbench.families.miqp import STRUCTURE_KEYS as MIQP_KEYS

    meta = data.attrs.get("miqp")
    if not isinstance(meta, dict):
        raise SchemaError("a mixed-integer instance set needs the root attribute 'miqp' (class and decision names)")
    arrays = {key: data.structure[key] for key in MIQP_KEYS}
    arrays["c0"] = float(np.asarray(arrays["c0"]).reshape(()))
    extra = {key: np.asarray(value, dtype=float) for key, value in meta.get("extra", {}).items()}
    return MIQPStructure(**arrays, class_names=tuple(meta["class_names"]),
                         decision_names=tuple(meta.get("decision_names", ())), extra=extra)
