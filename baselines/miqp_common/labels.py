"""Canonical integer labels: the same continuous optimum, one deterministic choice of the big-M indicators.

A certified label of ``mimpc-robot`` fixes the trajectory but not its binaries: a side of an obstacle that
the optimal trajectory satisfies may be relaxed (``b = 1``) or enforced (``b = 0``) at no cost, and the MIQP
solver picks either (about one satisfied side in six is left relaxed in the labels). A network fitted to such
labels learns the solver's arbitrary choices. The canonical label enforces every side the label's trajectory
satisfies, a function of the geometry only; with the label's continuous part the fixed-integer QP has the same
optimum (the trajectory satisfies every enforced row and is optimal for fewer rows).

Generic rule: a binary that appears in exactly one row with continuous variables, with a negative coefficient
(an indicator ``G_C x - M b <= r``), is set to 0 when that row holds at ``b = 0`` and to 1 otherwise. Instances
where the result would break an integer-only row keep their label. Other integers (the tank's pump levels)
are left as they are.
"""

from __future__ import annotations

import numpy as np

from bilevelbench.families.mimpc.miqp import MIQPStructure, row_residual, row_scale

TOL = 1e-7


def indicator_rows(s: MIQPStructure) -> tuple[np.ndarray, np.ndarray]:
    """``(columns, rows)``: the integer columns that are big-M indicators of one mixed row, and that row."""
    mixed = np.any(s.G[:, ~s.integer] != 0, axis=1)
    cols, rows = [], []
    for j in np.flatnonzero(s.integer):
        if s.lb[j] != 0 or s.ub[j] != 1:
            continue
        where = np.flatnonzero(mixed & (s.G[:, j] != 0))
        if where.size == 1 and s.G[where[0], j] < 0:
            cols.append(j)
            rows.append(where[0])
    return np.array(cols, dtype=np.int64), np.array(rows, dtype=np.int64)


def canonical_labels(s: MIQPStructure, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Labels ``X`` (B, n) with every indicator set by whether its row holds at the label (module docstring)."""
    X = np.array(X, dtype=float, copy=True)
    cols, rows = indicator_rows(s)
    if cols.size == 0:
        return X
    ok = np.isfinite(X).all(1)
    Z = X.copy()
    Z[:, cols] = 0.0
    holds = row_residual(s, np.where(ok[:, None], Z, 0.0), theta)[:, rows] <= TOL * row_scale(s)[rows]
    Z[:, cols] = np.where(holds, 0.0, 1.0)
    int_only = ~np.any(s.G[:, ~s.integer] != 0, axis=1)
    scale = row_scale(s)
    res = row_residual(s, np.where(ok[:, None], Z, 0.0), theta)
    keep = ok & np.all(res[:, int_only] <= TOL * scale[int_only], axis=1)
    X[keep] = Z[keep]
    return X
