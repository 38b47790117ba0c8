"""The HDF5 contract: round trip, refusal of foreign / newer / corrupt files, atomic writes."""

import h5py
import numpy as np
import pytest

from bilevelbench.data.hdf5 import SCHEMA_VERSION, read_instance_set, write_instance_set
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import MissingDataError, OutputExistsError, SchemaError


def test_round_trip_preserves_every_array(small_set, tmp_path):
    data = read_instance_set(small_set)
    copy = write_instance_set(tmp_path / "copy.h5", data)
    again = read_instance_set(copy)
    assert again.attrs == {**data.attrs, "schema_version": SCHEMA_VERSION}
    for group in ("structure", "params", "labels", "checks", "splits"):
        a, b = getattr(data, group), getattr(again, group)
        assert a.keys() == b.keys()
        for key in a:
            if a[key].dtype == object:
                assert list(a[key]) == list(b[key])
            else:
                np.testing.assert_array_equal(a[key], b[key])


def test_root_contract_fields(small_set):
    with h5py.File(small_set) as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION and f.attrs["family"] == "bqp"
        for key in ("generator_version", "seed", "structure_hash", "certifier_settings", "package_versions"):
            assert key in f.attrs
        assert set(f["structure"]) == {"Q", "A", "b", "E", "H", "e", "F", "h", "G", "f", "q", "g"}
        assert f["params/c"].shape == (15, 3) and f["params/d"].shape == (15, 2)
        for key in ("y", "z", "lam", "objective", "status", "reason", "backend", "dual_bound", "solve_time"):
            assert key in f["labels"]
        assert "rel_gap" in f["labels/checks"]
        assert [len(f["splits"][k]) for k in ("train", "valid", "test")] == [4, 3, 8]


def test_identical_content_gives_identical_bytes(small_set, tmp_path):
    data = read_instance_set(small_set)
    a = write_instance_set(tmp_path / "a.h5", data).read_bytes()
    b = write_instance_set(tmp_path / "b.h5", data).read_bytes()
    assert a == b


def test_newer_schema_is_refused(small_set, tmp_path):
    path = tmp_path / "newer.h5"
    path.write_bytes(small_set.read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(SchemaError, match="newer than the 1 this bilevelbench reads"):
        InstanceSet.open(path)


def test_foreign_hdf5_is_refused(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(SchemaError, match="not a bilevelbench instance set"):
        InstanceSet.open(path)


def test_non_hdf5_and_truncated_and_missing_files_are_refused(small_set, tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(SchemaError, match="not an HDF5 file"):
        InstanceSet.open(text)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(small_set.read_bytes()[:4000])
    with pytest.raises(SchemaError, match="corrupt or truncated"):
        InstanceSet.open(cut)
    with pytest.raises(MissingDataError, match="no such"):
        InstanceSet.open(tmp_path / "absent.h5")


def test_edited_structure_fails_the_hash(small_set, tmp_path):
    path = tmp_path / "edited.h5"
    path.write_bytes(small_set.read_bytes())
    with h5py.File(path, "r+") as f:
        f["structure/b"][0] += 1.0
    with pytest.raises(SchemaError, match="does not match the recorded"):
        InstanceSet.open(path)


def test_inconsistent_lengths_are_refused(small_set, tmp_path):
    path = tmp_path / "short.h5"
    path.write_bytes(small_set.read_bytes())
    with h5py.File(path, "r+") as f:
        del f["labels/objective"]
        f["labels/objective"] = np.zeros(3)
    with pytest.raises(SchemaError, match="expected 15 instances"):
        InstanceSet.open(path)


def test_existing_output_is_kept_and_failed_write_leaves_nothing(small_set, tmp_path):
    data = read_instance_set(small_set)
    target = tmp_path / "keep.h5"
    target.write_text("precious")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_instance_set(target, data)
    assert target.read_text() == "precious"
    data.labels["bad"] = np.array([object()] * data.n_instances)  # h5py cannot store this
    with pytest.raises(TypeError):
        write_instance_set(tmp_path / "new.h5", data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5"]
