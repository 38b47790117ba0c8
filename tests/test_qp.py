"""HiGHS wrappers (bilevelbench.qp): answers, dual signs, and time limits on the reused instance."""

from __future__ import annotations

import numpy as np
import pytest

from bilevelbench.qp import INF, _highs, solve_convex_qp, solve_milp


def _random_qp(rng: np.random.Generator, n: int = 30, m: int = 80):
    A = rng.normal(size=(n, n))
    return A @ A.T + np.eye(n), rng.normal(size=(m, n))


def test_qp_answer_satisfies_kkt_with_upper_row_duals_nonnegative():
    rng = np.random.default_rng(0)
    H, F = _random_qp(rng)
    q = 10 * rng.normal(size=H.shape[0])
    res = solve_convex_qp(H, q, F, np.full(F.shape[0], -INF), np.ones(F.shape[0]))
    assert res.optimal
    assert np.all(F @ res.x <= 1 + 1e-9)
    assert np.all(res.row_dual >= -1e-9)
    assert np.any(res.row_dual > 1e-6)                     # some row binds, so the sign convention is exercised
    np.testing.assert_allclose(H @ res.x + q + F.T @ res.row_dual, 0.0, atol=1e-7)


def test_time_limit_is_per_solve_not_per_instance():
    """HiGHS counts ``time_limit`` against the instance's cumulative clock (ERGO-Code/HiGHS#1477); the reused
    instance must still give every solve its own limit once earlier solves together took longer than it."""
    rng = np.random.default_rng(1)
    H, F = _random_qp(rng, n=60, m=200)
    lower, upper = np.full(F.shape[0], -INF), np.ones(F.shape[0])
    limit = 0.05
    start = _highs().getRunTime()
    for _ in range(20000):
        if _highs().getRunTime() - start > 3 * limit:
            break
        assert solve_convex_qp(H, rng.normal(size=60), F, lower, upper, time_limit=limit).optimal
    assert _highs().getRunTime() - start > 3 * limit          # the clock really ran past the limit
    assert solve_convex_qp(H, rng.normal(size=60), F, lower, upper, time_limit=limit).optimal
    c = rng.normal(size=60)
    milp = solve_milp(c, F, lower, upper, np.full(60, -1.0), np.full(60, 1.0), np.arange(60) < 5,
                      time_limit=limit + 5.0)
    assert milp.status == "optimal"


def test_active_set_second_opinion_agrees_with_highs_and_checks_kkt():
    """solve_strictly_convex_qp (quadprog + KKT check), the fallback where HiGHS fails on a follower QP."""
    from bilevelbench.qp import solve_strictly_convex_qp

    rng = np.random.default_rng(0)
    for _ in range(20):
        n, k = 5, 8
        S = rng.normal(size=(n, n))
        P = S @ S.T + 0.1 * np.eye(n)
        c, A = rng.normal(size=n), rng.normal(size=(k, n))
        u = A @ rng.normal(size=n) + rng.uniform(0, 1, size=k)
        ours = solve_strictly_convex_qp(P, c, A, u, offset=1.5)
        ref = solve_convex_qp(P, c, A, np.full(k, -INF), u, offset=1.5)
        assert ours.optimal and ref.optimal
        np.testing.assert_allclose(ours.x, ref.x, atol=1e-7)
        assert ours.objective == pytest.approx(ref.objective, rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(ours.row_dual, np.maximum(ref.row_dual, 0), atol=1e-6)
    # a degenerate vertex: the optimum of min ||x||^2 + (1, 1)'x under x1 <= -0.5 and x1 + x2 <= -1, where the
    # second row is active with a zero multiplier
    P, c = 2 * np.eye(2), np.array([1.0, 1.0])
    A, u = np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([-0.5, -1.0])
    res = solve_strictly_convex_qp(P, c, A, u)
    assert res.optimal
    np.testing.assert_allclose(res.x, [-0.5, -0.5], atol=1e-12)
    assert solve_strictly_convex_qp(np.eye(1), np.zeros(1), np.array([[1.0], [-1.0]]),
                                    np.array([-1.0, -1.0])).status == "infeasible"
