"""Score a split's dispatches for ``dcopf``.

A submission returns the generator dispatch ``pg`` (MW, one column per in-service generator in file order);
the evaluator computes everything else itself from the grid, with no solver: the flows (sparse PTDF solves),
the thermal violation ``xi = max(0, |f| - rate)`` and hence the objective ``cost(pg) + M sum xi``. Per instance:

* ``objective``, ``gap = |f - f*| / max(|f*|, 1e-6)`` and ``signed_gap`` against the certified optimum;
* ``balance_violation``: ``|sum pg - sum (pd + gs)|``, MW (hard constraint);
* ``generator_violation``: the largest ``max(0, pmin - pg, pg - pmax)``, MW (hard constraint);
* ``thermal_violation_mw``: ``sum xi``, MW, and ``thermal_violation_cost``: ``M sum xi``, $ (soft: part of the
  objective, reported so proxies that buy feasibility with overloads are visible);
* ``thermal_violation_max``: the largest single ``xi``, MW.

An instance is feasible when balance and generator limits hold within
``FEASIBILITY_TOL * (1 + total demand)`` and ``FEASIBILITY_TOL * max(1, |pmax|)`` MW respectively.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bilevelbench.evaluate import metrics
from bilevelbench.evaluate.scoring import SplitScore, score_rows
from bilevelbench.families.dcopf.problem import DCOPFStructure

FLOAT_FIELDS = ("objective", "reference_objective", "gap", "signed_gap", "balance_violation", "generator_violation",
                "thermal_violation_mw", "thermal_violation_cost", "thermal_violation_max", "balance_violated",
                "generator_violated")


def violations(s: DCOPFStructure, pg: np.ndarray, pd: np.ndarray) -> dict[str, np.ndarray]:
    """The violation measures of dispatches ``pg`` (B, ng) at loads ``pd`` (B, nb)."""
    flow = s.flows(pg, pd)
    xi = s.thermal_violation(flow)
    demand = np.abs(pd).sum(1) + np.abs(s.gs).sum()
    balance = np.abs(s.balance_residual(pg, pd))
    gen = s.bound_violation(pg)
    tol = metrics.FEASIBILITY_TOL
    return {
        "balance_violation": balance,
        "generator_violation": gen,
        "thermal_violation_mw": xi.sum(1),
        "thermal_violation_cost": s.penalty * xi.sum(1),
        "thermal_violation_max": xi.max(1, initial=0.0),
        "balance_violated": (balance > tol * (1.0 + demand)).astype(float),
        "generator_violated": (gen > tol * max(1.0, float(np.abs(s.pmax).max(initial=1.0)))).astype(float),
        "objective": s.generation_cost(pg) + s.penalty * xi.sum(1),
    }


def score_dcopf(structure: DCOPFStructure, params: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                pg: np.ndarray, answered: np.ndarray, reasons: dict[int, str],
                progress: Callable[[int], object] | None = None, chunk: int = 256) -> SplitScore:
    """Score one split of ``dcopf`` (see the module docstring).

    Parameters
    ----------
    structure : DCOPFStructure
    params : dict
        ``pd`` (n, nb) of the split's instances.
    labels : dict
        The split's label arrays (``objective``, ``status``).
    pg : (n, ng) array
        Submitted dispatches (rows of unanswered instances are ignored).
    answered : (n,) bool array
    reasons : dict
        Why an unanswered instance has no row.
    progress : callable, optional
        Called with the number of instances scored in each chunk.
    """
    s = structure
    pd = np.asarray(params["pd"], float)

    def measure(rows: np.ndarray, reference: np.ndarray) -> tuple[dict, np.ndarray]:
        out = violations(s, pg[rows], pd[rows])
        return out, (out["balance_violated"] == 0) & (out["generator_violated"] == 0)

    return score_rows(pg, answered, reasons, labels, FLOAT_FIELDS, measure, name="pg", chunk=chunk,
                      progress=progress)


def headline_metrics(score: SplitScore, agg: dict[str, dict]) -> dict:
    """Headline metrics of ``dcopf`` (``docs/metrics.md``): hard-constraint violation rates and sizes, and the
    thermal (soft) violation in MW and in $."""
    return {
        "balance_violation_rate": agg["balance_violated"]["mean"],
        "balance_violation_mean": agg["balance_violation"]["mean"],
        "balance_violation_max": agg["balance_violation"]["max"],
        "generator_violation_rate": agg["generator_violated"]["mean"],
        "generator_violation_mean": agg["generator_violation"]["mean"],
        "generator_violation_max": agg["generator_violation"]["max"],
        "thermal_violation_mw_mean": agg["thermal_violation_mw"]["mean"],
        "thermal_violation_mw_max": agg["thermal_violation_max"]["max"],
        "thermal_violation_cost_mean": agg["thermal_violation_cost"]["mean"],
        "coupling_violation_mean": None, "upper_violation_mean": None, "lower_violation_mean": None,
    }


def summary_lines(m: dict) -> list[str]:
    """The evaluator's summary lines of a dcopf record: hard-constraint violations, then the soft overloads."""
    from bilevelbench.evaluate.summary import fmt

    if m.get("balance_violation_rate") is None:
        return []
    return [
        (f"  balance    violated {100 * m['balance_violation_rate']:.1f}%, mean "
         f"{fmt(m.get('balance_violation_mean'))} MW, max {fmt(m.get('balance_violation_max'))} MW"),
        (f"  gen limits violated {100 * m['generator_violation_rate']:.1f}%, mean "
         f"{fmt(m.get('generator_violation_mean'))} MW, max {fmt(m.get('generator_violation_max'))} MW"),
        (f"  thermal    overload mean {fmt(m.get('thermal_violation_mw_mean'))} MW per instance "
         f"({fmt(m.get('thermal_violation_cost_mean'))} $ at the penalty), largest single overload "
         f"{fmt(m.get('thermal_violation_mw_max'))} MW"),
    ]
