"""Each independent check must catch the defect it is named after."""

import numpy as np
import pytest

from bilevelbench.families.bqp.certifier import Certifier
from bilevelbench.families.bqp.checks import Tolerances, check_label
from bilevelbench.families.bqp.problem import upper_objective
from tests.conftest import random_instances


@pytest.fixture(scope="module")
def solved():
    s, params = random_instances(6, 4, count=1, seed=7)
    c, d = params["c"][0], params["d"][0]
    label = Certifier(s).certify(c, d)
    assert label.status == "certified_optimal"
    return s, c, d, label


def _check(s, c, d, y, z, lam, dual, objective=None):
    obj = float(upper_objective(s, c, d, y, z)[0]) if objective is None else objective
    return check_label(s, c, d, y, z, lam, obj, dual, Tolerances())


def test_a_certified_label_passes(solved):
    s, c, d, label = solved
    report = _check(s, c, d, label.y, label.z, label.lam, label.dual_bound)
    assert report.passed, report.failures


def test_wrong_follower_response_is_caught(solved):
    s, c, d, label = solved
    z = label.z - 1e-2  # still lower-feasible (F >= 0) but not the follower's optimum
    report = _check(s, c, d, label.y, z, label.lam, label.dual_bound)
    assert any(f.startswith("follower_z_diff") for f in report.failures)
    assert not report.feasible


def test_upper_violation_is_caught(solved):
    s, c, d, label = solved
    residual = s.A @ label.y - s.b - s.E @ label.z
    i = int(np.argmax(residual))
    y = label.y + (0.1 - residual[i]) * s.A[i] / (s.A[i] @ s.A[i])  # row i now violated by 0.1
    report = _check(s, c, d, y, label.z, label.lam, -np.inf)
    assert any(f.startswith("upper_violation") for f in report.failures)


def test_bad_multipliers_and_gap_are_caught(solved):
    s, c, d, label = solved
    report = _check(s, c, d, label.y, label.z, label.lam + 0.5, label.dual_bound - 1.0)
    names = {f.split(" ")[0] for f in report.failures}
    assert {"stationarity", "complementarity", "rel_gap"} <= names
    assert report.feasible  # the point itself is still bilevel feasible


def test_misreported_objective_and_nan_are_caught(solved):
    s, c, d, label = solved
    report = _check(s, c, d, label.y, label.z, label.lam, label.dual_bound, objective=label.objective - 1)
    assert any("does not match the recomputed" in f for f in report.failures)
    y = label.y.copy()
    y[0] = np.nan
    report = _check(s, c, d, y, label.z, label.lam, label.dual_bound, objective=1.0)
    assert not report.passed and not report.feasible

