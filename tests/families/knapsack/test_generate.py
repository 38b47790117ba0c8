"""knapsack generation and verification end to end: SCIP labels equal brute force and the dynamic programme,
generation is reproducible whatever the worker count, and verify / verify --oracle catch edited labels."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bilevelbench.cli import main
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.families.knapsack.generate import CHUNK, KnapsackRequest, generate_knapsack
from bilevelbench.families.knapsack.verify import check_label, dp_applies, solve_highs
from bilevelbench.testing.contract import one_line_error, run_cli
from bilevelbench.verify import verify_instance_set
from tests.families.knapsack.test_problem import brute_force


@pytest.fixture(scope="module")
def two_row(tmp_path_factory) -> InstanceSet:
    """10 items, 2 constraints: 6 train, 2 valid, 8 test, every label certified."""
    out = tmp_path_factory.mktemp("knapsack") / "ks-10x2.h5"
    generate_knapsack(KnapsackRequest(items=10, constraints=2, n_train=6, n_valid=2, n_test=8, seed=4), out)
    return InstanceSet.open(out)


@pytest.fixture(scope="module")
def one_row(tmp_path_factory) -> InstanceSet:
    """12 items, 1 constraint: the dynamic-programming check applies to every label."""
    out = tmp_path_factory.mktemp("knapsack") / "ks-12x1.h5"
    generate_knapsack(KnapsackRequest(items=12, constraints=1, n_test=10, seed=2), out)
    return InstanceSet.open(out)


def test_labels_are_certified_and_equal_brute_force(two_row):
    s = two_row.structure
    assert two_row.status_counts() == {"certified_optimal": 16}
    assert [len(two_row.split(k)) for k in ("train", "valid", "test")] == [6, 2, 8]
    for pos in range(len(two_row)):
        c, y = two_row.params["capacity"][pos], two_row.labels["y"][pos]
        assert np.all(s.weight @ y <= c) and set(np.unique(y)) <= {0.0, 1.0}
        assert two_row.labels["objective"][pos] == pytest.approx(brute_force(s.weight, s.value, c), abs=1e-9)
        assert two_row.labels["objective"][pos] == pytest.approx(solve_highs(s, c)[0], abs=1e-9)
    assert two_row.meta["certifier_settings"]["gap"] == 0.0 and two_row.meta["certifier_settings"]["threads"] == 1
    assert two_row.meta["sampling"]["capacity_ratio"] == [0.2, 0.6]


def test_verify_and_the_oracle_pass_every_label(two_row, one_row):
    for ds in (two_row, one_row):
        report = verify_instance_set(ds, oracle=True)
        assert report.ok, report.failures
        assert report.oracle_checked == len(ds) and report.oracle_method == "HiGHS MILP"


def test_the_dynamic_programme_checks_single_constraint_sets_only(two_row, one_row):
    assert all(dp_applies(one_row.structure, c) for c in one_row.params["capacity"])
    assert not any(dp_applies(two_row.structure, c) for c in two_row.params["capacity"])


def test_the_same_request_gives_the_same_set_with_any_worker_count(tmp_path):
    request = KnapsackRequest(items=8, constraints=3, n_train=CHUNK + 5, n_valid=0, n_test=3, seed=7)
    a = InstanceSet.open(generate_knapsack(request, tmp_path / "a.h5"))
    b = InstanceSet.open(generate_knapsack(request, tmp_path / "b.h5", workers=2))
    assert not (tmp_path / "b.h5.partial").exists()
    np.testing.assert_array_equal(a.params["capacity"], b.params["capacity"])
    np.testing.assert_array_equal(a.labels["y"], b.labels["y"])
    assert a.structure.digest() == b.structure.digest()
    other = InstanceSet.open(generate_knapsack(KnapsackRequest(items=8, constraints=3, n_test=3, seed=8),
                                               tmp_path / "c.h5"))
    assert other.structure.digest() != a.structure.digest()                 # the structure follows the seed


def _edit(ds: InstanceSet, tmp_path, name: str, edit) -> InstanceSet:
    """A copy of ``ds``'s file with ``edit(file)`` applied."""
    path = tmp_path / name
    path.write_bytes(ds.path.read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    return InstanceSet.open(path)


def _second_best(s, capacity: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A feasible point worse than the optimum ``y``: drop its last chosen item."""
    worse = y.copy()
    worse[np.flatnonzero(worse)[-1]] = 0.0
    assert np.all(s.weight @ worse <= capacity)
    return worse


def test_verify_catches_infeasible_non_binary_and_mislabelled_points(two_row, tmp_path):
    s = two_row.structure

    def edit(f):
        y, obj = f["labels/y"][()], f["labels/objective"][()]
        y[0] = 1.0                                           # every item: over capacity
        obj[0] = y[0] @ s.value
        y[1, np.flatnonzero(y[1] == 0)[0]] = 0.5             # not binary
        obj[2] += 0.01                                       # objective differs from v . y
        f["labels/y"][...], f["labels/objective"][...] = y, obj
        status = f["labels/status"][()]
        status[3] = b"failed"                                # a failed label must not publish its point
        f["labels/status"][...] = status

    report = verify_instance_set(_edit(two_row, tmp_path, "bad.h5", edit))
    reasons = {index: reason for index, _, reason in report.failures}
    assert set(reasons) == {0, 1, 2, 3}
    assert "exceeds capacity" in reasons[0] and "not exactly binary" in reasons[1]
    assert "differs from v . y" in reasons[2] and "must not be published" in reasons[3]


def test_a_consistent_suboptimal_label_is_caught_by_the_oracle(two_row, tmp_path):
    s = two_row.structure

    def edit(f):
        y, obj = f["labels/y"][()], f["labels/objective"][()]
        y[5] = _second_best(s, f["params/capacity"][5], y[5])
        obj[5] = y[5] @ s.value
        f["labels/y"][...], f["labels/objective"][...] = y, obj

    ds = _edit(two_row, tmp_path, "worse.h5", edit)
    assert verify_instance_set(ds).ok                       # feasible and consistent: only a re-solve can tell
    report = verify_instance_set(ds, oracle=True)
    assert [index for index, _, _ in report.failures] == [5]
    assert "HiGHS's MILP optimum" in report.failures[0][2]
    assert main(["-q", "verify", "--oracle", str(ds.path)]) == 1


def test_the_dynamic_programme_catches_a_suboptimal_label_without_any_solver(one_row, tmp_path):
    s = one_row.structure

    def edit(f):
        y, obj = f["labels/y"][()], f["labels/objective"][()]
        y[4] = _second_best(s, f["params/capacity"][4], y[4])
        obj[4] = y[4] @ s.value
        f["labels/y"][...], f["labels/objective"][...] = y, obj

    report = verify_instance_set(_edit(one_row, tmp_path, "worse.h5", edit))
    assert [index for index, _, _ in report.failures] == [4]
    assert "the dynamic programme finds" in report.failures[0][2]


def test_check_label_accepts_best_known_points_without_the_optimality_check(one_row):
    s, c = one_row.structure, one_row.params["capacity"][0]
    worse = _second_best(s, c, one_row.labels["y"][0])
    assert check_label(s, c, worse, float(worse @ s.value), "best_known") == []
    assert "dynamic programme" in check_label(s, c, worse, float(worse @ s.value), "certified_optimal")[0]


@pytest.mark.parametrize(("args", "fragment"), [
    (("--capacity-ratio", "0.6,0.2"), "0 <= LO <= HI <= 1"),
    (("--capacity-ratio", "0.2"), "expected 2 numbers"),
    (("--items", "0"), "must be >= 1"),
    (("--weight-max", "0"), "must be >= 1"),
    (("--time-limit", "0"), "--time-limit must be a positive"),
])
def test_bad_options_get_one_line(tmp_path, args, fragment):
    result = run_cli("generate", "knapsack", *args, "--n-test", "2", "--out", str(tmp_path / "x.h5"))
    one_line_error(result, 2, fragment)
    assert not (tmp_path / "x.h5").exists()


def test_a_bad_spec_gets_one_line(tmp_path):
    spec = tmp_path / "ks.toml"
    spec.write_text('name = "ks"\nfamily = "knapsack"\nseed = 1\nn_train = 0\nn_valid = 0\nn_test = 2\n'
                    'items = 5\ncapacity_ratio = [0.2, "0.6"]\n')
    one_line_error(run_cli("generate", str(spec), "--out", str(tmp_path / "x.h5")), 2, "capacity_ratio")
