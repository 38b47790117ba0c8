"""Predictions files: the layout round-trips, and every malformed file gets a clear error or a recorded failure."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bilevelbench.errors import MissingDataError, SubmissionError
from bilevelbench.evaluate.evaluator import score_predictions
from bilevelbench.evaluate.predictions import FORMAT, read_predictions, write_predictions
from tests.evaluate.helpers import exact_predictions, labels_of

M, NZ, N = 3, 2, 8


def _raw(path, y=None, index=None, z=None, **attrs):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        for key, value in attrs.items():
            f.attrs[key] = value
        if y is not None:
            f.create_dataset("y", data=y)
        if z is not None:
            f.create_dataset("z", data=z)
        if index is not None:
            f.create_dataset("instance_index", data=index)
    return path


def test_round_trip(tmp_path):
    y = np.arange(N * M, dtype=float).reshape(N, M)
    path = write_predictions(tmp_path / "p.h5", y, np.arange(N), z=np.zeros((N, NZ)), solver_name="me",
                             latency_ms_median=1.5)
    pred = read_predictions(path, M, NZ, N)
    np.testing.assert_array_equal(pred.y, y)
    assert pred.attrs["solver_name"] == "me" and pred.latency_ms == 1.5
    assert pred.z.shape == (N, NZ)


GOOD_Y = np.zeros((N, M))
GOOD_I = np.arange(N)


@pytest.mark.parametrize(("name", "build", "message"), [
    ("string dtype", lambda p: _raw(p, np.array([["a"] * M] * N, dtype="S3"), GOOD_I), "dtype"),
    ("complex dtype", lambda p: _raw(p, GOOD_Y.astype(complex), GOOD_I), "dtype"),
    ("wrong width", lambda p: _raw(p, np.zeros((N, M + 1)), GOOD_I), "expected (rows, 3)"),
    ("1-d y", lambda p: _raw(p, np.zeros(N * M), np.arange(N * M)), "expected (rows, 3)"),
    ("too many rows", lambda p: _raw(p, np.zeros((N + 1, M)), np.arange(N + 1)), "only 8 instances"),
    ("duplicated instances", lambda p: _raw(p, GOOD_Y, np.array([0, 1, 2, 3, 4, 5, 6, 6])), "more than once"),
    ("index out of range", lambda p: _raw(p, GOOD_Y, np.arange(1, N + 1)), "outside 0..7"),
    ("negative index", lambda p: _raw(p, GOOD_Y, np.arange(N) - 1), "outside 0..7"),
    ("float index", lambda p: _raw(p, GOOD_Y, np.arange(N, dtype=float)), "expected integers"),
    ("index length", lambda p: _raw(p, GOOD_Y, np.arange(N - 1)), "one entry per row"),
    ("missing y", lambda p: _raw(p, None, GOOD_I), "no /y dataset"),
    ("missing instance_index", lambda p: _raw(p, GOOD_Y, None), "no /instance_index"),
    ("z wrong width", lambda p: _raw(p, GOOD_Y, GOOD_I, z=np.zeros((N, NZ + 1))), "/z has shape"),
    ("z wrong rows", lambda p: _raw(p, GOOD_Y, GOOD_I, z=np.zeros((N - 1, NZ))), "/z has 7 rows"),
    ("newer format", lambda p: _raw(p, GOOD_Y, GOOD_I, format_version=99), "upgrade bilevelbench"),
    ("foreign format", lambda p: _raw(p, GOOD_Y, GOOD_I, format="something-else"), "expected 'bilevelbench-"),
    ("bad latency attribute", lambda p: _raw(p, GOOD_Y, GOOD_I, latency_ms_median="fast"), "milliseconds"),
])
def test_malformed_files_get_one_clear_error(tmp_path, name, build, message):
    path = build(tmp_path / "p.h5")
    with pytest.raises(SubmissionError, match=None) as info:
        read_predictions(path, M, NZ, N)
    text = str(info.value)
    assert message in text, text
    assert "\n" not in text


def test_not_hdf5_empty_and_truncated(tmp_path):
    (tmp_path / "text.h5").write_text("y,z\n1,2\n")
    (tmp_path / "empty.h5").write_bytes(b"")
    good = write_predictions(tmp_path / "good.h5", GOOD_Y, GOOD_I)
    (tmp_path / "trunc.h5").write_bytes(good.read_bytes()[:600])
    for name in ("text.h5", "empty.h5", "trunc.h5"):
        with pytest.raises(SubmissionError, match="not a readable HDF5 file|could not be read|no /y"):
            read_predictions(tmp_path / name, M, NZ, N)
    with pytest.raises(MissingDataError, match="does not exist"):
        read_predictions(tmp_path / "absent.h5", M, NZ, N)
    with pytest.raises(SubmissionError, match="not a regular file"):
        read_predictions(tmp_path, M, NZ, N)


def test_links_and_virtual_datasets_are_refused(tmp_path):
    secret = tmp_path / "elsewhere.h5"
    with h5py.File(secret, "w") as f:
        f.create_dataset("y", data=GOOD_Y)
    ext = _raw(tmp_path / "ext.h5", None, GOOD_I)
    with h5py.File(ext, "a") as f:
        f["y"] = h5py.ExternalLink(str(secret), "/y")
    with pytest.raises(SubmissionError, match="external link"):
        read_predictions(ext, M, NZ, N)
    soft = _raw(tmp_path / "soft.h5", None, GOOD_I)
    with h5py.File(soft, "a") as f:
        f.create_dataset("hidden", data=GOOD_Y)
        f["y"] = h5py.SoftLink("/hidden")
    with pytest.raises(SubmissionError, match="soft link"):
        read_predictions(soft, M, NZ, N)
    virtual = _raw(tmp_path / "virtual.h5", None, GOOD_I)
    layout = h5py.VirtualLayout(shape=(N, M), dtype="f8")
    layout[:] = h5py.VirtualSource(str(secret), "y", shape=(N, M))
    with h5py.File(virtual, "a") as f:
        f.create_virtual_dataset("y", layout)
    with pytest.raises(SubmissionError, match="virtual dataset"):
        read_predictions(virtual, M, NZ, N)
    group = _raw(tmp_path / "group.h5", None, GOOD_I)
    with h5py.File(group, "a") as f:
        f.create_group("y")
    with pytest.raises(SubmissionError, match="is a Group"):
        read_predictions(group, M, NZ, N)


def test_nan_inf_and_missing_rows_are_recorded_per_instance(small_set, tmp_path):
    y, _ = labels_of(small_set)
    y = y.copy()
    y[1, 0] = np.nan
    y[2, 1] = np.inf
    keep = np.array([0, 1, 2, 3, 4, 5])  # 6 and 7 missing
    path = write_predictions(tmp_path / "p.h5", y[keep], keep, solver_name="holes")
    record = score_predictions(small_set, path)
    reasons = {f["instance"]: f["reason"] for f in record["failures"]}
    assert reasons == {1: "y contains NaN", 2: "y contains inf", 6: "no prediction for this instance",
                       7: "no prediction for this instance"}
    assert record["status"] == "partial"
    m = record["metrics"]
    assert m["n_scored"] == 4 and m["feasible_rate"] == pytest.approx(4 / 8)
    assert m["gap_max"] < 1e-6
    assert record["per_instance"]["gap"][1] is None and record["per_instance"]["gap"][0] is not None


def test_dataset_checksum_and_split_mismatch(small_set, tmp_path):
    with pytest.raises(SubmissionError, match="sha256"):
        score_predictions(small_set, exact_predictions(small_set, tmp_path / "a.h5", dataset_sha256="0" * 64))
    path = exact_predictions(small_set, tmp_path / "b.h5", split="test")
    with pytest.raises(Exception, match="split"):
        score_predictions(small_set, path, split="valid")


def test_self_reported_latency_is_marked_unverified(small_set, tmp_path):
    record = score_predictions(small_set, exact_predictions(small_set, tmp_path / "p.h5", latency_ms_median=0.5))
    assert record["solver"]["latency_verified"] is False
    assert record["metrics"]["latency_ms_median"] == 0.5
    assert record["status"] == "complete" and record["metrics"]["gap_mean"] < 1e-6
