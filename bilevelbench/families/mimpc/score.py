"""Score a split's decisions for a mixed-integer family (``mimpc-robot``, ``mimpc-tank``).

A submission returns the whole decision ``x`` (continuous and integer parts);
nothing is repaired or re-solved before scoring. Per instance:

* ``integrality``: ``max |x_i - round(x_i)|`` over the integer variables;
* ``integer_violation_max``: the largest violation among the *integer-only*
  constraints (rows made of integer variables only, e.g. the robot's
  ``b1+b2+b3+b4 <= 3`` and the tank's ramp limit), the integers' bounds and
  integrality; ``integer_violated`` is 1 when it exceeds the tolerance;
* ``continuous_violation_max``: the largest scaled violation among all other
  rows and the continuous bounds; ``continuous_violated`` likewise;
* ``violation_<class>``: the largest scaled violation within each row class;
* ``objective``, ``gap = |f - f*| / max(|f*|, 1e-6)``, ``signed_gap`` and
  ``paper_gap = |f - f*| / (100 + |f*|)`` (the authors' code's convention,
  reported beside the plain gap, never instead of it).

Rows are scaled by ``max(1, ||G_i||_inf)``; the tolerance is
:data:`bilevelbench.evaluate.metrics.FEASIBILITY_TOL`. An instance is
feasible when neither class is violated. The paper's "integer / continuous
constraint violation rate" are the means of ``integer_violated`` and
``continuous_violated``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bilevelbench.evaluate import metrics
from bilevelbench.evaluate.scoring import SplitScore, score_rows
from bilevelbench.families.mimpc.miqp import MIQPStructure, bound_residual, objective, row_residual, row_scale

BASE_FIELDS = ("objective", "reference_objective", "gap", "signed_gap", "paper_gap", "integrality",
               "integer_violation_max", "continuous_violation_max", "integer_violated", "continuous_violated",
               "bounds_violation")


def float_fields(s: MIQPStructure) -> tuple[str, ...]:
    """Per-instance fields reported for structure ``s`` (one ``violation_<class>`` per row class)."""
    return BASE_FIELDS + tuple(f"violation_{name}" for name in s.class_names)


def paper_gap(obj: np.ndarray, reference: np.ndarray, offset: float) -> np.ndarray:
    """The authors' ``|f - f*| / (offset + |f*|)`` (as a fraction; their code multiplies by 100)."""
    obj, reference = np.asarray(obj, float), np.asarray(reference, float)
    return np.abs(obj - reference) / (offset + np.abs(reference))


def violations(s: MIQPStructure, x: np.ndarray, theta: np.ndarray) -> dict[str, np.ndarray]:
    """Violation measures of decisions ``x`` (B, n) at ``theta`` (B, p) (see the module docstring)."""
    x, theta = np.atleast_2d(x), np.atleast_2d(theta)
    scaled = np.maximum(row_residual(s, x, theta) / row_scale(s), 0.0)
    bounds = np.maximum(bound_residual(s, x), 0.0)
    xi = x[:, s.integer]
    integrality = np.max(np.abs(xi - np.round(xi)), axis=1, initial=0.0)
    integer_classes = set(s.integer_only_classes)
    int_rows = np.isin(s.row_class, [k for k, name in enumerate(s.class_names) if name in integer_classes])
    out = {"integrality": integrality,
           "bounds_violation": np.max(bounds, axis=1, initial=0.0)}
    for k, name in enumerate(s.class_names):
        out[f"violation_{name}"] = np.max(scaled[:, s.row_class == k], axis=1, initial=0.0)
    out["integer_violation_max"] = np.maximum.reduce([
        np.max(scaled[:, int_rows], axis=1, initial=0.0), np.max(bounds[:, s.integer], axis=1, initial=0.0),
        integrality])
    out["continuous_violation_max"] = np.maximum(np.max(scaled[:, ~int_rows], axis=1, initial=0.0),
                                                 np.max(bounds[:, ~s.integer], axis=1, initial=0.0))
    tol = metrics.FEASIBILITY_TOL
    out["integer_violated"] = (out["integer_violation_max"] > tol).astype(float)
    out["continuous_violated"] = (out["continuous_violation_max"] > tol).astype(float)
    return out


def score_miqp(structure: MIQPStructure, params: dict[str, np.ndarray], labels: dict[str, np.ndarray],
               x: np.ndarray, answered: np.ndarray, reasons: dict[int, str], paper_offset: float | None = None,
               progress: Callable[[int], object] | None = None) -> SplitScore:
    """Score one split of a mixed-integer family.

    Parameters
    ----------
    structure : MIQPStructure
    params : dict
        ``theta`` (n, p) of the split's instances.
    labels : dict
        The split's label arrays (``objective``, ``status``).
    x : (n, d) array
        Submitted decisions (rows of unanswered instances are ignored).
    answered : (n,) bool array
    reasons : dict
        Why an unanswered instance has no row.
    paper_offset : float, optional
        Offset of the paper's gap convention (100 for the MI-MPC paper).
    progress : callable, optional
        Called with the number of instances scored so far in each step.
    """
    s = structure
    theta = np.asarray(params["theta"], float)

    def measure(rows: np.ndarray, reference: np.ndarray) -> tuple[dict, np.ndarray]:
        out = violations(s, x[rows], theta[rows])
        out["objective"] = objective(s, x[rows], theta[rows])
        if paper_offset is not None:
            out["paper_gap"] = paper_gap(out["objective"], reference, paper_offset)
        return out, (out["integer_violated"] == 0) & (out["continuous_violated"] == 0)

    return score_rows(x, answered, reasons, labels, float_fields(s), measure, name="x", progress=progress)


def headline_metrics(score: SplitScore, agg: dict[str, dict]) -> dict:
    """Headline metrics of a mixed-integer family (``docs/metrics.md``): the paper's violation rates and
    gaps over all scored instances and over the feasible ones."""
    gap = score.values["gap"]
    feasible_gap = gap[score.feasible & np.isfinite(gap)]
    return {
        "integer_violation_rate": agg["integer_violated"]["mean"],
        "continuous_violation_rate": agg["continuous_violated"]["mean"],
        "integrality_violation_mean": agg["integrality"]["mean"],
        "integer_violation_mean": agg["integer_violation_max"]["mean"],
        "continuous_violation_mean": agg["continuous_violation_max"]["mean"],
        "coupling_violation_mean": None,
        "upper_violation_mean": None, "lower_violation_mean": None,
        "gap_mean_feasible": float(np.mean(feasible_gap)) if feasible_gap.size else None,
        "gap_median_feasible": float(np.median(feasible_gap)) if feasible_gap.size else None,
    }


def summary_lines(m: dict) -> list[str]:
    """The evaluator's summary lines of a one-shot mixed-integer record (the paper's violation rates)."""
    from bilevelbench.evaluate.summary import fmt

    if m.get("integer_violation_rate") is None:
        return []
    return [
        f"  gap (feasible only) mean {fmt(m.get('gap_mean_feasible'))}",
        (f"  violated   integer-only constraints {100 * m['integer_violation_rate']:.1f}%, continuous "
         f"constraints {100 * m['continuous_violation_rate']:.1f}%"),
    ]
