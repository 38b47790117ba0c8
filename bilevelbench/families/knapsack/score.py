"""Score a split's answers for ``knapsack``.

A submission returns ``y`` (B, n) in the file's item order. Entries within :data:`BINARY_TOL` (1e-6) of 0 or 1
are rounded to exactly 0 or 1; an answer with any other entry is **infeasible** (``non_binary`` counts those
entries). Then, per instance:

* ``capacity_excess = sum_i max(0, W_i y - c_i)``: exact for a rounded answer (``W y`` is an integer), so a
  binary answer is feasible when the excess is exactly 0 (no tolerance is needed or given);
* ``objective = v . y``;
* ``gap = (f* - v . y) / max(1, |f*|)`` against the certified optimum, for **feasible** answers only (NaN for an
  infeasible one: its value means nothing); ``signed_gap`` is the same quantity for every scored answer
  (positive: worse than the label; an infeasible answer may show a negative one).

Headline metrics: the common ``gap_mean``, ``gap_max`` (feasible answers) and ``feasible_rate``, plus
``capacity_violated_rate``, ``non_binary_rate`` and ``capacity_excess_mean``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bilevelbench.evaluate.scoring import SplitScore, score_rows
from bilevelbench.families.knapsack.problem import BINARY_TOL, KnapsackStructure, capacity_excess, objective

FLOAT_FIELDS = ("objective", "reference_objective", "gap", "signed_gap", "capacity_excess", "non_binary",
                "capacity_violated", "non_binary_answer")


def measures(s: KnapsackStructure, y: np.ndarray, capacity: np.ndarray) -> dict[str, np.ndarray]:
    """Per-instance measures of answers ``y`` (B, n) at capacities (B, m); see the module docstring."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    rounded = np.round(y)
    near = (np.abs(y - rounded) <= BINARY_TOL) & ((rounded == 0) | (rounded == 1))
    non_binary = np.sum(~near, axis=1)
    point = np.where(non_binary[:, None] == 0, rounded, y)     # a non-binary answer is measured as submitted
    excess = capacity_excess(s, point, capacity)
    return {"objective": objective(s, point), "capacity_excess": excess, "non_binary": non_binary.astype(float),
            "capacity_violated": (excess > 0).astype(float), "non_binary_answer": (non_binary > 0).astype(float)}


def score_knapsack(structure: KnapsackStructure, params: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                   y: np.ndarray, answered: np.ndarray, reasons: dict[int, str],
                   progress: Callable[[int], object] | None = None, chunk: int = 4096) -> SplitScore:
    """Score one split of ``knapsack`` (see the module docstring).

    Parameters
    ----------
    structure : KnapsackStructure
    params : dict
        ``capacity`` (n, m) of the split's instances.
    labels : dict
        The split's label arrays (``objective``, ``status``).
    y : (n, items) array
        Submitted answers (rows of unanswered instances are ignored).
    answered : (n,) bool array
    reasons : dict
        Why an unanswered instance has no row.
    progress : callable, optional
        Called with the number of instances scored in each chunk.
    """
    capacity = np.asarray(params["capacity"], dtype=np.float64)

    def measure(rows: np.ndarray, reference: np.ndarray) -> tuple[dict, np.ndarray]:
        out = measures(structure, y[rows], capacity[rows])
        return out, (out["non_binary"] == 0) & (out["capacity_excess"] == 0)

    # a maximisation with denominator max(1, |f*|): the family's own gap, over feasible answers only
    score = score_rows(y, answered, reasons, labels, FLOAT_FIELDS, measure, name="y", chunk=chunk,
                       progress=progress, gap_floor=1.0, sense="max")
    v = score.values
    v["gap"] = np.where(score.scored & score.feasible, v["signed_gap"], np.nan)
    return score


def headline_metrics(score: SplitScore, agg: dict[str, dict]) -> dict:
    """Headline metrics of ``knapsack``: violation rates and the mean capacity excess (the gap and feasible rate
    are the common ones)."""
    return {
        "capacity_violated_rate": agg["capacity_violated"]["mean"],
        "non_binary_rate": agg["non_binary_answer"]["mean"],
        "capacity_excess_mean": agg["capacity_excess"]["mean"],
        "coupling_violation_mean": None, "upper_violation_mean": None, "lower_violation_mean": None,
    }


def summary_lines(m: dict) -> list[str]:
    """The evaluator's summary lines of a knapsack record."""
    from bilevelbench.evaluate.summary import fmt

    if m.get("capacity_violated_rate") is None:
        return []
    return [(f"  answers    non-binary {100 * m['non_binary_rate']:.1f}% (entries > 1e-6 from 0/1: infeasible), "
            f"over capacity {100 * m['capacity_violated_rate']:.1f}%, capacity excess mean "
            f"{fmt(m.get('capacity_excess_mean'))}")]
