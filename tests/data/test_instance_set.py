import numpy as np
import pytest

from bilevelbench import InstanceSet
from bilevelbench.errors import MissingDataError, UsageError
from bilevelbench.families.bqp.problem import upper_objective


def test_length_indexing_and_splits(small_set):
    ds = InstanceSet.open(small_set)
    assert len(ds) == 15 and ds.split_names == ["train", "valid", "test"]
    test = ds.split("test")
    assert len(test) == 8 and list(test.indices) == list(range(7, 15))
    first = test[0]
    assert first.index == 7
    np.testing.assert_array_equal(first.params["c"], ds[7].params["c"])
    assert first.label["status"] == "certified_optimal"
    obj = upper_objective(ds.structure, first.params["c"], first.params["d"], first.label["y"], first.label["z"])
    assert first.label["objective"] == pytest.approx(float(obj[0]))
    assert test[-1].index == 14
    assert set(first.label["checks"]) >= {"follower_z_diff", "rel_gap"}


def test_errors_name_what_exists(small_set):
    ds = InstanceSet.open(small_set)
    with pytest.raises(MissingDataError, match="available: train, valid, test"):
        ds.split("holdout")
    with pytest.raises(MissingDataError, match="holds 15 instance"):
        ds[15]
    with pytest.raises(UsageError, match="integer position"):
        ds["0"]
    with pytest.raises(UsageError, match="unknown label field"):
        next(ds.batches(4, label_fields=("x_star",)))


def test_numpy_batches_cover_the_split_in_order(small_set):
    test = InstanceSet.open(small_set).split("test")
    batches = list(test.batches(3))
    assert [len(b["index"]) for b in batches] == [3, 3, 2]
    np.testing.assert_array_equal(np.concatenate([b["c"] for b in batches]), test.params["c"])
    np.testing.assert_array_equal(np.concatenate([b["y"] for b in batches]), test.labels["y"])


def test_torch_dataset_adapter(small_set):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    test = InstanceSet.open(small_set).split("test")
    tds = test.to_torch()
    assert len(tds) == 8
    batch = next(iter(DataLoader(tds, batch_size=5, shuffle=False)))
    assert batch["c"].shape == (5, 3) and batch["y"].shape == (5, 3) and batch["c"].dtype == torch.float64
    np.testing.assert_array_equal(batch["index"].numpy(), test.indices[:5])
    np.testing.assert_allclose(batch["objective"].numpy(), test.labels["objective"][:5])
