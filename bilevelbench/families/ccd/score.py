"""Score a split's designs for the control co-design families (``ccd-twotank``, ``ccd-hvac``).

A submission returns the design only. The evaluator computes the follower's response itself
(:func:`bilevelbench.families.ccd_twotank.solve_follower`: best of fixed starts; ``ccd-hvac``: the exact QP) and
from it, per instance:

* ``cost``: the upper objective (``c1 + c2``; ``sum(Y)``);
* ``violation``: the coupling violation (``||x_T - p||``; ``||slacks||``), soft: it is priced in the objective;
* ``objective``: ``cost + kappa violation^2`` (kappa 100; 5), the score;
* ``reference_objective``: the best-known label (never a certificate), ``gap = |f - f_ref| / max(|f_ref|, floor)``
  and ``signed_gap`` (negative: better than the best known), with ``floor`` 1e-6 for the two-tank (whose
  objectives are above 0.06) and 0.1 for HVAC, where 1.4% of the best-known objectives are 0 (the comfort band
  holds with the heater off) and a relative gap would divide by zero;
* ``design_violation``: the distance outside the design box (``[0.01, 0.32]^2``; ``Y >= 0``), a hard constraint:
  an instance is feasible when it is at most ``FEASIBILITY_TOL``;
* ``follower_stationarity``: the follower's projected-gradient residual at the response (diagnostic).

The headline of a run is the **objective gap** ``(mean f - mean f_ref) / mean f_ref`` over the scored instances
with a reference (``objective_gap`` in the record; the issue's "within 1% of best-known" target), which no
single near-zero reference can dominate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bilevelbench.evaluate import metrics
from bilevelbench.evaluate.scoring import SplitScore, score_rows

#: Denominator floor of the per-instance gaps (module docstring).
GAP_FLOORS = {"ccd-twotank": metrics.GAP_FLOOR, "ccd-hvac": 0.1}
FLOAT_FIELDS = ("objective", "reference_objective", "gap", "signed_gap", "cost", "violation", "design_violation",
                "follower_stationarity", "design_violated")


def score_ccd(family: str, structure, params: dict[str, np.ndarray], labels: dict[str, np.ndarray],
              design: np.ndarray, answered: np.ndarray, reasons: dict[int, str],
              progress: Callable[[int], object] | None = None, chunk: int = 100) -> SplitScore:
    """Score one split of a control co-design family (see the module docstring)."""
    from bilevelbench.families.ccd.generate import design_violation, evaluate

    def measure(rows: np.ndarray, reference: np.ndarray) -> tuple[dict, np.ndarray]:
        part = {key: np.asarray(value)[rows] for key, value in params.items()}
        measured = evaluate(family, structure, design[rows], part)
        box = design_violation(family, structure, design[rows])
        out = {key: measured[key] for key in ("objective", "cost", "violation", "follower_stationarity")}
        out["design_violation"] = box
        out["design_violated"] = (box > metrics.FEASIBILITY_TOL).astype(float)
        return out, box <= metrics.FEASIBILITY_TOL

    return score_rows(design, answered, reasons, labels, FLOAT_FIELDS, measure, name="design", chunk=chunk,
                      gap_floor=GAP_FLOORS[family], progress=progress)


def headline_metrics(score: SplitScore, agg: dict[str, dict]) -> dict:
    """Headline metrics of the control co-design families (``docs/families/ccd.md``): cost and coupling violation
    reported separately, the penalised objective, and its gap to the best-known labels (``objective_gap``:
    ``(mean f - mean f_ref) / mean f_ref`` over the scored instances that have a reference)."""
    f, ref = score.values["objective"], score.values["reference_objective"]
    both = np.isfinite(f) & np.isfinite(ref)
    gap = float((f[both].mean() - ref[both].mean()) / ref[both].mean()) if both.any() and ref[both].mean() else None
    return {
        "objective_gap": gap,
        "reference_objective_mean": float(ref[both].mean()) if both.any() else None,
        "cost_mean": agg["cost"]["mean"],
        "violation_mean": agg["violation"]["mean"],
        "violation_max": agg["violation"]["max"],
        "objective_mean": agg["objective"]["mean"],
        "design_violation_rate": agg["design_violated"]["mean"],
        "follower_stationarity_max": agg["follower_stationarity"]["max"],
        "coupling_violation_mean": agg["violation"]["mean"], "upper_violation_mean": agg["design_violation"]["mean"],
        "lower_violation_mean": None,
    }


def summary_lines(m: dict) -> list[str]:
    """The evaluator's summary lines of a control co-design record."""
    from bilevelbench.evaluate.summary import fmt

    if m.get("cost_mean") is None:
        return []
    return [
        (f"  objective  penalised mean {fmt(m.get('objective_mean'))} against the best-known "
         f"{fmt(m.get('reference_objective_mean'))}: objective gap {fmt(m.get('objective_gap'))} (negative: "
         "better than the best known)"),
        (f"  cost       mean {fmt(m['cost_mean'])}; coupling violation mean {fmt(m.get('violation_mean'))}, "
         f"max {fmt(m.get('violation_max'))}"),
    ]
