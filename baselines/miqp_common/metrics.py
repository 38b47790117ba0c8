"""The paper's metrics for predicted MIQP decisions (Le, Xie and Mangharam, L4DC 2026), in numpy.

Per instance, a decision ``x`` is

* *integer-violating* when an integer-only row (robot ``disjunction``, tank ``ramp``) is violated, or an
  integer variable is not integral or leaves its bounds;
* *continuous-violating* when any other row is violated, or a continuous variable leaves its bounds;

a row is violated when its residual exceeds ``tol * max(1, ||G_i||_inf)``. Over the instances that violate
nothing and have a certified optimum ``f*``, the relative gap is ``|f - f*| / max(|f*|, 1e-6)``.
"""

from __future__ import annotations

import numpy as np

from bilevelbench.families.mimpc.miqp import MIQPStructure, bound_residual, objective, row_residual, row_scale

TOL = 1e-6


def miqp_metrics(s: MIQPStructure, theta: np.ndarray, X: np.ndarray, f_star: np.ndarray | None = None,
                 tol: float = TOL) -> dict:
    """Violation rates and gaps of decisions ``X`` (B, n) at ``theta`` (B, p); ``f_star`` (B,) may hold NaN."""
    X = np.atleast_2d(np.asarray(X, float))
    theta = np.atleast_2d(np.asarray(theta, float))
    finite = np.isfinite(X).all(1)
    Xf = np.where(np.isfinite(X), X, 0.0)
    res = row_residual(s, Xf, theta)
    bad_row = res > tol * row_scale(s)
    int_only = ~np.any(s.G[:, ~s.integer] != 0, axis=1)
    bnd = bound_residual(s, Xf) > tol
    xi = Xf[:, s.integer]
    frac = np.abs(xi - np.round(xi)) > tol
    int_bad = bad_row[:, int_only].any(1) | bnd[:, s.integer].any(1) | frac.any(1) | ~finite
    cont_bad = bad_row[:, ~int_only].any(1) | bnd[:, ~s.integer].any(1) | ~finite
    feasible = ~int_bad & ~cont_bad
    f = objective(s, Xf, theta)
    out = {"n": int(X.shape[0]), "integer_violation_rate": float(int_bad.mean()),
           "continuous_violation_rate": float(cont_bad.mean()), "violation_rate": float((~feasible).mean()),
           "mean_objective": float(np.mean(f[finite])) if finite.any() else float("nan")}
    if f_star is not None:
        f_star = np.asarray(f_star, float)
        use = feasible & np.isfinite(f_star)
        gap = np.abs(f - f_star) / np.maximum(np.abs(f_star), 1e-6)
        out["gap_count"] = int(use.sum())
        out["mean_gap"] = float(gap[use].mean()) if use.any() else float("nan")
        out["median_gap"] = float(np.median(gap[use])) if use.any() else float("nan")
        out["max_gap"] = float(gap[use].max()) if use.any() else float("nan")
        # the authors' convention: 100 (f - f*) / (100 + |f*|), signed, in per cent
        out["paper_gap_percent"] = float(np.mean(100 * (f - f_star)[use] / (100 + np.abs(f_star[use])))) \
            if use.any() else float("nan")
    return out
