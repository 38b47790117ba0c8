"""A torch ``Dataset`` adapter over an :class:`~bilevelbench.data.instance_set.InstanceSet`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bilevelbench.errors import UsageError

if TYPE_CHECKING:
    from bilevelbench.data.instance_set import InstanceSet

try:
    import torch
    from torch.utils.data import Dataset
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("the torch adapter needs PyTorch: pip install torch==2.13.0") from exc


class TorchInstanceDataset(Dataset):
    """Items are dicts of float64 tensors: the parameters (``c``, ``d``), the requested label
    fields, and ``index`` (the instance's position in the file).

    Works with ``torch.utils.data.DataLoader`` and its default collate function.
    """

    def __init__(self, instances: InstanceSet, label_fields: tuple[str, ...] = ("y", "z", "objective")) -> None:
        labels = instances.labels
        missing = [f for f in label_fields if f not in labels]
        if missing:
            raise UsageError(f"unknown label field(s) {missing}; available: {sorted(labels)}")
        self._tensors = {key: torch.from_numpy(np.ascontiguousarray(value))
                         for key, value in instances.params.items()}
        for key in label_fields:
            self._tensors[key] = torch.from_numpy(np.ascontiguousarray(labels[key], dtype=np.float64))
        self._index = torch.from_numpy(instances.indices)

    def __len__(self) -> int:
        return int(self._index.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {key: value[i] for key, value in self._tensors.items()}
        item["index"] = self._index[i]
        return item
