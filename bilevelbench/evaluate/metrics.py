"""Scoring metrics: pure functions on arrays, one definition used everywhere.

Formulas and their rationale are in ``docs/metrics.md``. Every function takes
arrays with the instance axis first and returns one value per instance; ``NaN``
marks a value that does not exist (an unanswered instance, a missing reference).
"""

from __future__ import annotations

import numpy as np

#: Denominator floor of the relative gap: ``|L - L*| / max(|L*|, GAP_FLOOR)``.
GAP_FLOOR = 1e-6
#: A prediction is feasible when every constraint-violation class is at most
#: ``FEASIBILITY_TOL * max(1, ||rhs||_inf)`` of the rows it comes from.
FEASIBILITY_TOL = 1e-6
#: Percentile reported as ``p95``.
TAIL_PERCENTILE = 95.0


def relative_gap(objective: np.ndarray, reference: np.ndarray, floor: float = GAP_FLOOR) -> np.ndarray:
    """``|L - L*| / max(|L*|, floor)`` per instance (Kotary et al.'s gap with a guard for tiny ``|L*|``)."""
    objective, reference = np.asarray(objective, float), np.asarray(reference, float)
    return np.abs(objective - reference) / np.maximum(np.abs(reference), floor)


def signed_relative_gap(objective: np.ndarray, reference: np.ndarray, floor: float = GAP_FLOOR) -> np.ndarray:
    """``(L - L*) / max(|L*|, floor)``: positive when worse than the reference (minimisation)."""
    objective, reference = np.asarray(objective, float), np.asarray(reference, float)
    return (objective - reference) / np.maximum(np.abs(reference), floor)


def offset_relative_gap(objective: np.ndarray, reference: np.ndarray, offset: float,
                        floor: float = GAP_FLOOR) -> np.ndarray:
    """A paper's convention ``|L - L*| / max(|L* + offset|, floor)`` (Kotary et al.'s code: offset 100).

    Adding the offset to both objectives leaves the numerator unchanged and
    divides by ``|L* + offset|`` instead of ``|L*|``; it shrinks gaps by about
    ``|L*| / |L* + offset|``. Reported only beside :func:`relative_gap`.
    """
    objective, reference = np.asarray(objective, float), np.asarray(reference, float)
    return np.abs(objective - reference) / np.maximum(np.abs(reference + offset), floor)


def relu_l2(residual: np.ndarray) -> np.ndarray:
    """``||max(r, 0)||_2`` over the constraint axis: the coupling-violation measure of the paper."""
    r = np.atleast_2d(np.asarray(residual, float))
    if r.shape[1] == 0:
        return np.zeros(r.shape[0])
    return np.linalg.norm(np.maximum(r, 0.0), axis=1)


def relu_max(residual: np.ndarray) -> np.ndarray:
    """``max(0, max_i r_i)`` over the constraint axis (0 when there are no rows)."""
    r = np.atleast_2d(np.asarray(residual, float))
    if r.shape[1] == 0:
        return np.zeros(r.shape[0])
    return np.maximum(np.max(r, axis=1), 0.0)


def integrality_violation(values: np.ndarray) -> np.ndarray:
    """``max_i |v_i - round(v_i)|`` over the integer variables of each instance (0 when there are none)."""
    v = np.atleast_2d(np.asarray(values, float))
    if v.shape[1] == 0:
        return np.zeros(v.shape[0])
    return np.max(np.abs(v - np.round(v)), axis=1)


def euclidean_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a - b||_2`` per instance."""
    return np.linalg.norm(np.atleast_2d(np.asarray(a, float)) - np.atleast_2d(np.asarray(b, float)), axis=1)


def aggregate(values: np.ndarray) -> dict[str, float | int | None]:
    """``mean``, ``median``, ``p95``, ``max``, ``std`` and ``n`` over the finite entries.

    Infinite entries count in ``n`` and make ``mean``/``max`` infinite (nothing is
    silently dropped); NaN entries (values that do not exist) are left out. All
    statistics are ``None`` when nothing is left.
    """
    v = np.asarray(values, float).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {"mean": None, "median": None, "p95": None, "max": None, "std": None, "n": 0}
    with np.errstate(invalid="ignore"):  # inf entries: statistics become inf or NaN, on purpose
        return {"mean": float(np.mean(v)), "median": float(np.median(v)),
                "p95": float(np.percentile(v, TAIL_PERCENTILE)), "max": float(np.max(v)),
                "std": float(np.std(v)), "n": int(v.size)}
