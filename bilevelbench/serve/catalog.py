"""The private data sets a service scores against, each known by its dataset name."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import BilevelBenchError, MissingDataError, UsageError

log = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".public.h5"


@dataclass(frozen=True)
class DatasetEntry:
    """One scorable data set.

    Attributes
    ----------
    name : str
        Its dataset name (what a submission's ``dataset`` field names).
    path : Path
        The private (full) file.
    family : str
    sha256 : str
        Of the private file.
    content_digest : str
        Of the private file's contents (what the registry and the public release record).
    accepted_sha256 : tuple of str
        Files a predictions file may say it was made for: the public release beside the private file, if any.
    y_dim, z_dim : int
        Decision sizes of a predictions row.
    n_instances : int
        Instances in the scored split.
    public_rows : numpy.ndarray
        The fixed subset of the split scored on the public leaderboard (sorted positions).
    """

    name: str
    path: Path
    family: str
    sha256: str
    content_digest: str
    accepted_sha256: tuple[str, ...]
    y_dim: int
    z_dim: int
    n_instances: int
    public_rows: np.ndarray


def public_rows(secret: str, content_digest: str, n: int, fraction: float) -> np.ndarray:
    """The public subset of an ``n``-instance split: ``ceil(fraction * n)`` positions (at least 1), drawn from the
    service's secret and the data set's digest, so it is fixed for a service and unknown to its users."""
    k = min(n, max(1, int(np.ceil(fraction * n))))
    seed = int.from_bytes(hashlib.sha256(f"{secret}:{content_digest}".encode()).digest()[:8], "little")
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def load_catalog(data_dir: Path, split: str, secret: str, fraction: float) -> dict[str, DatasetEntry]:
    """Every private data set in ``data_dir`` (``*.h5`` except ``*.public.h5``), by dataset name.

    Raises
    ------
    MissingDataError
        If the folder does not exist or holds no data set.
    UsageError
        If two files have the same dataset name, a file lacks the scored split, or a file is itself a public
        release (its labels are withheld, so nothing could be scored against it).
    """
    from bilevelbench.data.redact import hidden_split
    from bilevelbench.evaluate.provenance import file_sha256

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MissingDataError(f"--data {str(data_dir)!r} is not a folder; expected the folder of private (full) "
                               "data set files")
    entries: dict[str, DatasetEntry] = {}
    for path in sorted(data_dir.glob("*.h5")):
        if path.name.endswith(PUBLIC_SUFFIX) or path.name.endswith(".mismatch.h5"):
            continue
        try:
            ds = InstanceSet.open(path)
            name = str(ds.meta.get("name") or path.stem)
            if split not in ds.split_names:
                raise UsageError(f"{path.name} has no {split!r} split (it has {', '.join(ds.split_names) or 'none'})")
            if ds.meta.get("public") or hidden_split(ds, split):
                raise UsageError(f"{path.name} is a public release (its {split!r} labels are withheld); the "
                                 "service needs the full file")
            part = ds.split(split)
            y_dim, z_dim = ds.decision_dims
            digest = ds.content_digest()
            family = ds.family
        except BilevelBenchError as exc:
            raise UsageError(f"--data {str(data_dir)!r}: {exc}") from None
        if name in entries:
            raise UsageError(f"--data {str(data_dir)!r}: {entries[name].path.name} and {path.name} both hold the "
                             f"dataset {name!r}; keep one")
        public = path.with_name(path.name[:-3] + PUBLIC_SUFFIX)
        accepted = (file_sha256(public),) if public.is_file() else ()
        entries[name] = DatasetEntry(name=name, path=path, family=family, sha256=file_sha256(path),
                                     content_digest=digest, accepted_sha256=accepted, y_dim=int(y_dim),
                                     z_dim=int(z_dim), n_instances=len(part),
                                     public_rows=public_rows(secret, digest, len(part), fraction))
        log.info("serving %s (%s, %d %s instances) from %s", name, family, len(part), split, path.name)
    if not entries:
        raise MissingDataError(f"--data {str(data_dir)!r} holds no data set (*.h5); put the private (full) files of "
                               "the released sets there")
    return entries
