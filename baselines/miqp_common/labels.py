"""Canonical integer labels: the same continuous optimum, one deterministic choice of the big-M indicators.

A certified label of ``mimpc-robot`` fixes the trajectory but not its binaries: a side of an obstacle that
the optimal trajectory satisfies may be relaxed (``b = 1``) or enforced (``b = 0``) at no cost, and the MIQP
solver picks either (about one satisfied side in six is left relaxed in the labels). A network fitted to such
labels learns the solver's arbitrary choices. The canonical label is a function of the label's trajectory
only; with the label's continuous part the fixed-integer QP has the same optimum (the trajectory satisfies
every enforced row and is optimal for fewer rows).

Two generic rules, one per kind of binary:

* **Indicators.** A binary that appears in exactly one row with continuous variables, with a negative
  coefficient (``G_C x - M b <= r``), is set to 0 when that row holds at ``b = 0`` and to 1 otherwise: every
  satisfied side is enforced (``mimpc-robot``'s four binaries per obstacle and step).
* **Coded groups.** Binaries that share their rows with continuous variables (the authors' two-bit code of
  ``mimpc-robot-authors``: two bits select the one enforced side of an obstacle at a step) form a group; of
  the group's ``2^k`` values (``k <= MAX_GROUP``), the label takes the one under which the group's rows hold
  with the largest smallest slack (scaled by :func:`row_scale`), the first in binary order on ties. For the
  two-bit code this enforces the side the trajectory clears by the widest margin. At the optimum half of the
  robot's obstacle steps clear two sides, and the exact solver's choice between them is arbitrary.

Instances where the result would break an integer-only row keep their label. Other integers (the tank's pump
levels) are left as they are.
"""

from __future__ import annotations

import itertools

import numpy as np

from bilevelbench.families.mimpc.miqp import MIQPStructure, row_residual, row_scale

TOL = 1e-7
#: Largest group of coded binaries whose values are enumerated.
MAX_GROUP = 4


def _mixed_rows(s: MIQPStructure) -> np.ndarray:
    return np.any(s.G[:, ~s.integer] != 0, axis=1)


def _binary(s: MIQPStructure) -> np.ndarray:
    return s.integer & (s.lb == 0) & (s.ub == 1)


def indicator_rows(s: MIQPStructure) -> tuple[np.ndarray, np.ndarray]:
    """``(columns, rows)``: the integer columns that are big-M indicators of one mixed row, and that row."""
    mixed = _mixed_rows(s)
    cols, rows = [], []
    for j in np.flatnonzero(_binary(s)):
        where = np.flatnonzero(mixed & (s.G[:, j] != 0))
        if where.size == 1 and s.G[where[0], j] < 0:
            cols.append(j)
            rows.append(where[0])
    return np.array(cols, dtype=np.int64), np.array(rows, dtype=np.int64)


def coded_groups(s: MIQPStructure) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(columns, rows)]``: binaries that are not indicators, grouped by the mixed rows they share.

    Two such binaries are in one group when a mixed row holds both (connected components of the binaries'
    row-sharing graph); a group's rows are the mixed rows of its binaries. Groups of more than
    :data:`MAX_GROUP` binaries are left out.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    mixed = np.flatnonzero(_mixed_rows(s))
    touches = s.G[mixed] != 0                                  # (mixed rows, n)
    free = np.setdiff1d(np.flatnonzero(_binary(s) & touches.any(axis=0)), indicator_rows(s)[0])
    if free.size == 0:
        return []
    incidence = csr_matrix(touches[:, free].astype(np.int8))
    count, component = connected_components(incidence.T @ incidence, directed=False)
    out = []
    for c in range(count):
        cols = free[component == c]
        if cols.size <= MAX_GROUP:
            out.append((cols, mixed[touches[:, cols].any(axis=1)]))
    return out


def canonical_labels(s: MIQPStructure, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Labels ``X`` (B, n) with their big-M binaries chosen by the label's trajectory (module docstring)."""
    X = np.array(X, dtype=float, copy=True)
    cols, rows = indicator_rows(s)
    groups = coded_groups(s)
    if cols.size == 0 and not groups:
        return X
    ok = np.isfinite(X).all(1)
    scale = row_scale(s)
    Z = np.where(ok[:, None], X, 0.0)
    Z[:, cols] = 0.0
    for g_cols, _ in groups:
        Z[:, g_cols] = 0.0
    base = row_residual(s, Z, theta)                      # every indicator and coded binary at 0
    if cols.size:
        Z[:, cols] = np.where(base[:, rows] <= TOL * scale[rows], 0.0, 1.0)
        if groups:
            base = row_residual(s, Z, theta)              # the indicators set, every coded binary at 0
    for g_cols, g_rows in groups:
        values = np.array(list(itertools.product((0.0, 1.0), repeat=g_cols.size)))      # (V, k), binary order
        res = base[:, None, g_rows] + (values @ s.G[np.ix_(g_rows, g_cols)].T)[None]     # (B, V, rows)
        slack = -res / scale[g_rows]
        holds = np.all(res <= TOL * scale[g_rows], axis=2)
        score = np.where(holds, slack.min(axis=2), -np.inf)
        Z[:, g_cols] = values[np.argmax(score, axis=1)]
        ok &= holds.any(axis=1)             # no value clears the rows: the instance keeps its label
    int_only = ~_mixed_rows(s)
    res = row_residual(s, Z, theta)
    keep = ok & np.all(res[:, int_only] <= TOL * scale[int_only], axis=1)
    X[keep] = Z[keep]
    return X
