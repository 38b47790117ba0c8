"""The metric formulas, on hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.evaluate import metrics


def test_relative_gap_and_signed_gap():
    obj = np.array([11.0, 9.0, -9.0])
    ref = np.array([10.0, 10.0, -10.0])
    np.testing.assert_allclose(metrics.relative_gap(obj, ref), [0.1, 0.1, 0.1])
    np.testing.assert_allclose(metrics.signed_relative_gap(obj, ref), [0.1, -0.1, 0.1])


def test_gap_floor_guards_tiny_references():
    gap = metrics.relative_gap(np.array([1e-7]), np.array([0.0]))
    assert gap[0] == pytest.approx(1e-7 / metrics.GAP_FLOOR)
    assert np.isfinite(metrics.relative_gap(np.array([1.0]), np.array([0.0]))).all()


def test_paper_offset_gap_shrinks_by_the_offset_ratio():
    obj, ref = np.array([-9.0]), np.array([-10.0])
    true_gap = metrics.relative_gap(obj, ref)[0]
    paper = metrics.offset_relative_gap(obj, ref, 100.0)[0]
    assert true_gap == pytest.approx(0.1)
    assert paper == pytest.approx(1.0 / 90.0)
    assert true_gap / paper == pytest.approx(90.0 / 10.0)


def test_relu_norms():
    r = np.array([[-1.0, 3.0, 4.0], [-1.0, -2.0, 0.0]])
    np.testing.assert_allclose(metrics.relu_l2(r), [5.0, 0.0])
    np.testing.assert_allclose(metrics.relu_max(r), [4.0, 0.0])
    assert metrics.relu_l2(np.zeros((2, 0))).tolist() == [0.0, 0.0]


def test_integrality_violation():
    np.testing.assert_allclose(metrics.integrality_violation(np.array([[0.0, 1.2, 2.9], [1.0, 2.0, 3.0]])),
                               [0.2, 0.0], atol=1e-12)


def test_aggregate_drops_nan_but_keeps_inf():
    agg = metrics.aggregate(np.array([1.0, 2.0, 3.0, np.nan]))
    assert agg == {"mean": 2.0, "median": 2.0, "p95": pytest.approx(2.9), "max": 3.0,
                   "std": pytest.approx(np.std([1, 2, 3])), "n": 3}
    assert metrics.aggregate(np.array([1.0, np.inf]))["max"] == np.inf
    assert metrics.aggregate(np.array([np.nan]))["mean"] is None
