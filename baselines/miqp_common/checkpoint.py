"""Per-epoch checkpoints of the MIQP training command, so that an interrupted run resumes where it stopped.

After every epoch the trainer writes ``<out>.partial.pt`` (atomically: a temporary file, then a rename) with
everything the next epoch depends on: the network and Adam states, the shuffling and torch random states, the
history, the best epoch so far and the OSQP warm starts of the QP layer. Running the same command again loads
it and continues with the next epoch, and the finished run removes it. A resumed run gives the weights an
uninterrupted run gives (tested). The file is read with ``torch.load(..., weights_only=True)``: tensors, numbers,
strings and containers only, never arbitrary pickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from bilevelbench.errors import UsageError


def checkpoint_path(out: Path) -> Path:
    """Where the run writing ``out`` keeps its checkpoint."""
    return out.with_suffix(".partial.pt")


def run_key(settings: dict) -> str:
    """A canonical text of the settings a checkpoint may be resumed under (compared as a whole)."""
    return json.dumps(settings, sort_keys=True, default=str)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (a crash mid-write leaves the previous checkpoint)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, key: str) -> dict | None:
    """The checkpoint at ``path`` if there is one, or None.

    Raises
    ------
    UsageError
        If the checkpoint was written under other settings (another data set file, method or option).
    """
    if not path.exists():
        return None
    state = torch.load(path, weights_only=True, map_location="cpu")
    if state.get("key") != key:
        saved = json.loads(state.get("key", "{}"))
        now = json.loads(key)
        differ = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        raise UsageError(f"{path} holds an interrupted run with other settings (differing: {', '.join(differ)}); "
                         "rerun with the same settings to resume it, or delete it to start afresh")
    return state


def pack_warm_starts(memory: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
    """The QP layer's warm starts (key -> primal, dual) as three tensors."""
    keys = sorted(memory)
    if not keys:
        return {"keys": torch.zeros(0, dtype=torch.int64)}
    return {"keys": torch.tensor(keys, dtype=torch.int64),
            "x": torch.tensor(np.stack([memory[k][0] for k in keys])),
            "y": torch.tensor(np.stack([memory[k][1] for k in keys]))}


def unpack_warm_starts(packed: dict[str, torch.Tensor]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Inverse of :func:`pack_warm_starts`."""
    keys = packed["keys"].tolist()
    if not keys:
        return {}
    x, y = packed["x"].numpy(), packed["y"].numpy()
    return {int(k): (x[i].copy(), y[i].copy()) for i, k in enumerate(keys)}
