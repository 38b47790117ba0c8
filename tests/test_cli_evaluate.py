"""The evaluator's commands as a user runs them: evaluate, score, check-solver, leaderboard."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np

from bilevelbench.evaluate.predictions import write_predictions
from tests.evaluate.helpers import exact_predictions, labels_of
from tests.test_cli import assert_one_line_error, run

ROOT = Path(__file__).resolve().parent.parent
EXACT = str(ROOT / "baselines" / "exact")


def test_help_teaches(tmp_path):
    top = run("--help", cwd=tmp_path)
    for cmd in ("evaluate", "score", "check-solver", "leaderboard"):
        assert cmd in top.stdout
    ev = run("evaluate", "--help", cwd=tmp_path)
    for flag in ("--solver", "--dataset", "--split", "--threads", "--batch-size", "--solve-timeout", "--memory-mb",
                 "baselines/exact", "path/to/file.py:MySolver"):
        assert flag in ev.stdout


def test_done_when_evaluate_exact_then_leaderboard(small_set, tmp_path):
    """evaluate --solver baselines/exact: gap_mean < 1e-6 and feasible_rate 1.0; the leaderboard renders it."""
    (tmp_path / "lb").mkdir()
    proc = run("evaluate", "--dataset", str(small_set), "--solver", EXACT, "--out", "lb/exact.json",
               "--exact-instances", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "lb" / "exact.json").read_text())
    m = record["metrics"]
    assert record["status"] == "complete" and record["solver"]["name"] == "exact"
    assert m["gap_mean"] < 1e-6 and m["feasible_rate"] == 1.0
    for key in ("gap_max", "coupling_violation_mean", "latency_ms_median", "latency_ms_p95", "throughput_per_s",
                "speedup_vs_exact"):
        assert isinstance(m[key], float), key
    prov = record["provenance"]
    assert record["dataset"]["sha256"] and prov["machine"]["cpu_count"] and prov["bilevelbench_version"]
    assert record["protocol"]["threads"] == 1
    assert "gap" in proc.stdout and "latency" in proc.stdout
    lb = run("leaderboard", "lb", "--out", "lb", cwd=tmp_path)
    assert lb.returncode == 0, lb.stderr
    md = (tmp_path / "lb" / "LEADERBOARD.md").read_text()
    assert "exact" in md and "bqp-3x2" in md
    assert "exact" in (tmp_path / "lb" / "index.html").read_text()


def test_existing_out_is_refused_before_any_work(small_set, tmp_path):
    (tmp_path / "r.json").write_text("keep me")
    proc = run("evaluate", "--dataset", str(small_set), "--solver", EXACT, "--out", "r.json", cwd=tmp_path)
    assert_one_line_error(proc, "pass --overwrite")
    assert (tmp_path / "r.json").read_text() == "keep me"


def test_bad_arguments(small_set, tmp_path):
    assert_one_line_error(run("evaluate", "--dataset", "nope.h5", "--solver", EXACT, cwd=tmp_path),
                          "no such instance-set file")
    assert_one_line_error(run("evaluate", "--dataset", str(small_set), "--solver", "not a spec", cwd=tmp_path),
                          "solver spec")
    assert_one_line_error(run("evaluate", "--dataset", str(small_set), "--solver", EXACT, "--threads", "0",
                              cwd=tmp_path), "--threads must be > 0")
    assert_one_line_error(run("evaluate", "--dataset", str(small_set), "--solver", EXACT, "--out",
                              "missing/r.json", cwd=tmp_path), "does not exist")
    assert_one_line_error(run("leaderboard", "nowhere", cwd=tmp_path), "not a folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("leaderboard", "empty", cwd=tmp_path), "")


def test_score_good_and_bad_predictions(small_set, tmp_path):
    exact_predictions(small_set, tmp_path / "good.h5", latency_ms_median=2.0)
    proc = run("score", "--dataset", str(small_set), "--predictions", "good.h5", "--out", "r.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "unverified" in proc.stdout
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["gap_max"] < 1e-6

    (tmp_path / "text.h5").write_text("not hdf5")
    assert_one_line_error(run("score", "--dataset", str(small_set), "--predictions", "text.h5", cwd=tmp_path),
                          "not a readable HDF5 file")
    y, _ = labels_of(small_set)
    write_predictions(tmp_path / "dup.h5", y[:2], np.array([1, 1]))
    assert_one_line_error(run("score", "--dataset", str(small_set), "--predictions", "dup.h5", cwd=tmp_path),
                          "more than once")
    write_predictions(tmp_path / "holes.h5", y[:3], np.arange(3))
    proc = run("score", "--dataset", str(small_set), "--predictions", "holes.h5", "--out", "h.json", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "FAIL instance 3: no prediction for this instance" in proc.stderr
    assert json.loads((tmp_path / "h.json").read_text())["status"] == "partial"


def test_check_solver(small_set, tmp_path):
    ok = run("check-solver", EXACT, "--dataset", str(small_set), "--instances", "3", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "meets the contract" in ok.stdout and "FAIL" not in ok.stdout
    bad = tmp_path / "bad.py"
    bad.write_text(textwrap.dedent("""
        import numpy as np
        class Wrong:
            def solve(self, params):
                return np.zeros((len(params["c"]), 7))
    """))
    proc = run("check-solver", f"{bad}:Wrong", "--dataset", str(small_set), "--instances", "3", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "FAIL  solve(batch of 1)" in proc.stdout and "expected (1, 3)" in proc.stdout


def test_folder_spec_copied_elsewhere_still_loads(small_set, tmp_path):
    """A submission folder may import modules that sit beside solver.py."""
    sub = tmp_path / "mysub"
    shutil.copytree(ROOT / "baselines" / "exact", sub)
    (sub / "helper.py").write_text("SCALE = 1.0\n")
    (sub / "solver.py").write_text(textwrap.dedent("""
        import helper
        from bilevelbench.exact_solver import ExactSolver

        class Solver(ExactSolver):
            name = "exact-copy"
    """))
    proc = run("check-solver", str(sub), "--dataset", str(small_set), "--instances", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
