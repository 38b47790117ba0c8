"""Results records: build the versioned JSON described in ``docs/results.md`` and write it safely."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from bilevelbench.atomic import atomic_target
from bilevelbench.core.family import Family
from bilevelbench.errors import OutputExistsError
from bilevelbench.evaluate import metrics
from bilevelbench.evaluate.scoring import SplitScore

SCHEMA = "bilevelbench-result"
SCHEMA_VERSION = 1
STATUSES = ("complete", "partial", "failed", "skipped")


def json_safe(value):
    """Recursively replace NaN/inf with None and numpy scalars/arrays with Python values (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_block(score: SplitScore, aggregates: dict[str, dict], family: Family | None = None) -> dict:
    """Headline metrics of a scored split (see ``docs/results.md``): the common ones, then the family's own
    (``Family.headline_metrics``, which may also set common ones it defines differently)."""
    n = score.n
    agg = aggregates
    none = {"mean": None, "max": None}
    out = {
        "gap_mean": agg["gap"]["mean"], "gap_median": agg["gap"]["median"], "gap_p95": agg["gap"]["p95"],
        "gap_max": agg["gap"]["max"], "signed_gap_mean": agg["signed_gap"]["mean"],
        "paper_gap_mean": agg.get("paper_gap", none)["mean"], "paper_gap_max": agg.get("paper_gap", none)["max"],
        "feasible_rate": float(np.mean(score.feasible)) if n else None,
        "coupling_violation_mean": agg.get("coupling_violation_l2", none)["mean"],
        "coupling_violation_max": agg.get("coupling_violation_max", none)["max"],
        "upper_violation_mean": agg.get("upper_violation_max", none)["mean"],
        "lower_violation_mean": agg.get("lower_violation_max", none)["mean"],
        "integrality_violation_mean": None,
        "scored_rate": float(np.mean(score.scored)) if n else None,
        "n_instances": n, "n_scored": int(np.sum(score.scored)), "n_failed": len(score.failures),
        "n_feasible": int(np.sum(score.feasible)), "n_without_reference": score.references_missing,
        "feasibility_tolerance": metrics.FEASIBILITY_TOL,
    }
    if score.z_submitted:
        out["z_distance_mean"] = agg["z_distance"]["mean"]
        out["follower_regret_mean"] = agg["follower_regret"]["mean"]
    if family is not None:
        out.update(family.headline_metrics(score, agg))
    return out


def run_status(score: SplitScore) -> tuple[str, str | None]:
    """``complete`` / ``partial`` / ``failed`` from which instances were scored."""
    if score.n and np.all(score.scored):
        return "complete", None
    if not np.any(score.scored):
        first = score.failures[0]["reason"] if score.failures else "no instances"
        return "failed", f"no instance could be scored (first reason: {first})"
    return "partial", f"{int(np.sum(~score.scored))} of {score.n} instances could not be scored"


def build_record(*, mode: str, dataset: dict, solver: dict, score: SplitScore | None, protocol: dict,
                 provenance: dict, timing: dict | None = None, extra_metrics: dict | None = None,
                 per_instance_extra: dict | None = None, run_failures: list[dict] | None = None,
                 status: tuple[str, str | None] | None = None, family: Family | None = None) -> dict:
    """Assemble a results record (strict-JSON-safe); ``family`` adds its headline metrics."""
    failures = list(run_failures or [])
    if score is not None:
        aggregates = {key: metrics.aggregate(v) for key, v in score.values.items()}
        block = metrics_block(score, aggregates, family)
        per_instance = {"instance": list(range(score.n)), **score.values,
                        "feasible": score.feasible.tolist()}
        failures += score.failures
        st = status or run_status(score)
    else:
        aggregates, block, per_instance = {}, {}, {}
        st = status or ("failed", "nothing was scored")
    if per_instance_extra:
        per_instance.update(per_instance_extra)
        for key, value in per_instance_extra.items():
            if key != "instance":
                aggregates[key] = metrics.aggregate(np.asarray(value, float))
    block.update(extra_metrics or {})
    record = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "mode": mode, "status": st[0],
              "status_reason": st[1], "dataset": dataset, "solver": solver, "metrics": block,
              "aggregates": aggregates, "per_instance": per_instance, "failures": failures,
              "protocol": protocol, "timing": timing, "provenance": provenance}
    return json_safe(record)


def write_record(record: dict, path: Path | str, overwrite: bool = True) -> Path:
    """Write a record as strict JSON, atomically (temp file + rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} exists; pass --overwrite to replace it")
    text = json.dumps(record, indent=1, allow_nan=False)
    with atomic_target(path) as tmp:
        tmp.write_text(text + "\n")
    return path
