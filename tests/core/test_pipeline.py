"""The core sharded pipeline, on the test plugin's generator (see tests/contract) and directly."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.core.pipeline import chunk_count, merge_shards, split_positions
from bilevelbench.errors import UsageError


def test_split_positions_and_chunks():
    pos = split_positions({"train": 2, "valid": 0, "test": 3})
    assert pos["train"].tolist() == [0, 1] and pos["valid"].tolist() == [] and pos["test"].tolist() == [2, 3, 4]
    assert [chunk_count(n, 4) for n in (0, 1, 4, 5)] == [0, 1, 1, 2]
    merged = merge_shards([{"a": np.zeros(2)}, {"a": np.ones(1)}])
    assert merged["a"].tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(UsageError, match="nothing was generated"):
        merge_shards([])
