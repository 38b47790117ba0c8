"""Synthetic results records that follow docs/results.md, for the leaderboard tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHA_A = "9f2c" + "0" * 60
SHA_B = "ab12" + "1" * 60

#: Strings a hostile submitter might choose.
SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
HOSTILE = [SCRIPT, IMG, "a|b", "**bold**", "\"double\" 'single' `tick`", "line\nbreak # [x](y) _u_ \\ $x$"]


def make_record(
    *,
    solver: str = "exact",
    version: str = "0.1.0",
    description: str = "",
    spec: str = "baselines/exact",
    mode: str = "evaluate",
    status: str = "complete",
    status_reason: str | None = None,
    dataset: str = "bqp-9x6",
    sha256: str = SHA_A,
    split: str = "test",
    n: int = 6,
    gap_mean: float | None = 1e-9,
    gap_max: float | None = 1e-8,
    feasible_rate: float | None = 1.0,
    violation_mean: float | None = 0.0,
    latency: float | None = 10.0,
    gaps: list[float | None] | None = None,
    violations: list[float | None] | None = None,
    failures: list[dict[str, Any]] | None = None,
    date: str = "2025-03-01T12:00:00Z",
    git_commit: str | None = "0123456789abcdef0123",
) -> dict[str, Any]:
    """A valid record dict; keyword arguments set the fields the leaderboard uses."""
    gaps = [gap_mean if gap_mean is not None else None] * n if gaps is None else gaps
    violations = [0.0] * n if violations is None else violations
    verified = mode == "evaluate"
    metrics: dict[str, Any] = {
        "gap_mean": gap_mean, "gap_median": gap_mean, "gap_p95": gap_max, "gap_max": gap_max,
        "signed_gap_mean": gap_mean, "paper_gap_mean": None, "paper_gap_max": None,
        "feasible_rate": feasible_rate, "coupling_violation_mean": violation_mean,
        "coupling_violation_max": violation_mean, "upper_violation_mean": 0.0, "lower_violation_mean": 0.0,
        "integrality_violation_mean": 0.0, "scored_rate": 1.0, "n_instances": n, "n_scored": n, "n_failed": 0,
        "latency_ms_median": latency,
    }
    if verified:
        metrics.update({
            "latency_ms_p95": None if latency is None else latency * 1.5,
            "throughput_per_s": None if latency is None else 1000.0 / latency,
            "speedup_vs_exact": None if latency is None else 10.0 / latency,
        })
    return {
        "schema": "bilevelbench-result",
        "schema_version": 1,
        "mode": mode,
        "status": status,
        "status_reason": status_reason,
        "dataset": {"name": dataset, "file": f"{dataset}.h5", "sha256": sha256, "family": "bqp", "size": "9x6",
                    "split": split, "n_instances": n, "structure_hash": "cd34", "generator_version": "2"},
        "solver": {"name": solver, "version": version, "spec": spec, "description": description,
                   "latency_verified": verified},
        "metrics": metrics,
        "aggregates": {"gap": {"mean": gap_mean, "median": gap_mean, "p95": gap_max, "max": gap_max, "std": 0.0,
                               "n": n}},
        "per_instance": {
            "instance": list(range(n)), "gap": gaps, "signed_gap": gaps, "paper_gap": [None] * n,
            "objective": [1.0] * n, "reference_objective": [1.0] * n, "coupling_violation_l2": violations,
            "coupling_violation_max": violations, "upper_violation_max": [0.0] * n,
            "lower_violation_max": [0.0] * n, "feasible": [True] * n,
            **({"latency_ms": [latency] * n} if verified else {}),
        },
        "failures": failures or [],
        "protocol": {"tolerance": 1e-6, "threads": 1, "warmup": 1, "batch_size": 64},
        "timing": {"setup_s": 0.1} if verified else None,
        "provenance": {
            "bilevelbench_version": "0.1.0", "git_commit": git_commit, "git_dirty": False, "date": date,
            "machine": {"platform": "Linux", "processor": "x86_64", "cpu_count": 8, "memory_gib": 16.0,
                        "python": "3.11.7", "numpy": "2.0"},
            "command": "bilevelbench evaluate",
        },
    }


def write_record(directory: Path, name: str, record: dict[str, Any]) -> Path:
    """Write ``record`` as strict JSON to ``directory/name`` (parents created)."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, allow_nan=False, indent=1), encoding="utf-8")
    return path


def sample_records() -> dict[str, dict[str, Any]]:
    """A small leaderboard: two datasets, every status and mode, hostile strings, nulls and zero gaps."""
    n = 6
    return {
        "a/exact.json": make_record(solver="exact", gap_mean=0.0, gap_max=0.0, latency=50.0, gaps=[0.0] * n,
                                    description="Exact MIQP solve with SCIP."),
        "a/fast.json": make_record(solver="fastnet", version="1.2", gap_mean=1e-3, gap_max=5e-3, latency=0.5,
                                   gaps=[1e-3, 2e-3, 5e-3, None, 0.0, 1e-4],
                                   violations=[0.0, 1e-7, 3e-6, None, 0.0, 0.0]),
        "a/mid.json": make_record(solver="midnet", version="0.3", gap_mean=5e-2, gap_max=0.2, latency=5.0,
                                  gaps=[0.01, 0.2, 0.05, 0.02, 0.01, 0.01]),
        "a/hostile.json": make_record(solver=SCRIPT + "|pipe", version=IMG, description=" ".join(HOSTILE),
                                      spec="evil.py:" + SCRIPT, gap_mean=2e-4, gap_max=1e-3, latency=2.0,
                                      date=SCRIPT, git_commit=IMG),
        "a/scored.json": make_record(solver="**bold** a|b", version="\"q\" 'q'", mode="score", gap_mean=1e-5,
                                     gap_max=1e-4, latency=0.1),
        "a/partial.json": make_record(solver="partialnet", status="partial", feasible_rate=0.5, gap_mean=1e-6,
                                      latency=1.0, gaps=[1e-6, None, 1e-6, None, 1e-6, None],
                                      failures=[{"instance": 1, "reason": SCRIPT},
                                                {"instance": None, "reason": "timeout | " + IMG}]),
        "a/failed.json": make_record(solver="crashy", status="failed", status_reason="import error: " + IMG,
                                     gap_mean=None, gap_max=None, feasible_rate=0.0, violation_mean=None,
                                     latency=None, gaps=[None] * n, violations=[None] * n),
        "a/skipped.json": make_record(solver="picky", status="skipped", status_reason="declined " + SCRIPT,
                                      gap_mean=None, gap_max=None, feasible_rate=None, violation_mean=None,
                                      latency=None, gaps=[None] * n, violations=[None] * n),
        "b/exact.json": make_record(dataset=SCRIPT + " | ds", sha256=SHA_B, solver="exact", n=3, gap_mean=1e-10,
                                    latency=30.0),
        "b/fast.json": make_record(dataset=SCRIPT + " | ds", sha256=SHA_B, solver="fastnet", version="1.2", n=3,
                                   gap_mean=2e-2, latency=0.3),
    }
