"""What the learned reference methods share: finding a weight file by structure and method, and the labelled
instances of a split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.errors import MissingDataError, UsageError


def scan_weights(folder: Path, matches: Callable[[dict], bool], describe: Callable[[Path, dict], str]
                 ) -> tuple[Path | None, list[str]]:
    """The first ``*.pt`` file in ``folder`` (sorted by name) whose meta ``matches``, else None, with
    ``describe(path, meta)`` of every file looked at before it (for the caller's error message). Files are read
    with ``torch.load(..., weights_only=True)``."""
    import torch

    seen = []
    for path in sorted(Path(folder).glob("*.pt")):
        meta = torch.load(path, weights_only=True, map_location="cpu")["meta"]
        if matches(meta):
            return path, seen
        seen.append(describe(path, meta))
    return None, seen


def find_weights(folder: Path, structure_hash: str, method: str, methods: tuple[str, ...], package: str) -> Path:
    """The ``*.pt`` file in ``folder`` whose meta records this structure hash and ``method``
    (``torch.load(..., weights_only=True)``), or a clear error listing what exists and how to train
    (``python -m baselines.<package>.train``)."""
    if method not in methods:
        raise UsageError(f"method must be one of {', '.join(methods)}, received {method!r}")
    found, seen = scan_weights(
        folder, lambda meta: meta.get("structure_hash") == structure_hash and meta.get("method") == method,
        lambda path, meta: f"{path.name} ({meta.get('method')}, {str(meta.get('structure_hash'))[:12]}...)")
    if found is not None:
        return found
    raise MissingDataError(f"no {package} {method} weights for structure {structure_hash[:12]}... in {folder}; "
                           f"available: {', '.join(seen) or 'none'}; train with python -m baselines.{package}.train "
                           f"--dataset FILE --method {method}")


def labelled(split, limit: int | None = None) -> tuple[dict, dict]:
    """Parameters and labels of the split's labelled instances (the first ``limit`` of them)."""
    ok = np.flatnonzero(np.isin(np.asarray(split.labels["status"]).astype(str), SOLUTION_STATUSES))
    if limit is not None:
        ok = ok[:limit]
    return ({k: np.asarray(v)[ok] for k, v in split.params.items()},
            {k: np.asarray(v)[ok] for k, v in split.labels.items()})
