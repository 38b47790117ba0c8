"""Search boxes for search-based baselines: widened label range, fallback, and never the evaluated split."""

from __future__ import annotations

import numpy as np

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.families.bqp.search_box import label_box, readable_splits, search_box, structure_box


def test_label_box_widens_the_label_range(small_set):
    split = InstanceSet.open(small_set).split("valid")
    y = split.labels["y"]
    lo, hi = label_box(split, 0.25)
    pad = 0.25 * np.maximum(y.max(0) - y.min(0), 1.0)
    np.testing.assert_allclose(lo, y.min(0) - pad)
    np.testing.assert_allclose(hi, y.max(0) + pad)


def test_search_box_falls_back_to_the_structure_box_without_labels(small_set):
    ds = InstanceSet.open(small_set)
    box, source = search_box(ds.structure, [], 0.25)
    np.testing.assert_array_equal(box[0], structure_box(ds.structure)[0])
    assert source.startswith("+-2 max")


def test_readable_splits_never_include_the_evaluated_split(small_set):
    train = InstanceSet.open(small_set).split("train")
    assert [name for name, _ in readable_splits("test", train)] == ["train", "valid"]
    assert [name for name, _ in readable_splits("valid", train)] == ["train"]
    structure = InstanceSet.open(small_set).structure
    assert search_box(structure, readable_splits("test", train), 0.25)[1] == "labels of the train split"
    assert search_box(structure, readable_splits("train", train), 0.25)[1] == "labels of the valid split"
