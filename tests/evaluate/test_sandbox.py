"""Misbehaving solvers: every failure becomes a recorded reason; the evaluator never dies and keeps what it scored."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bilevelbench.evaluate.evaluator import Protocol, evaluate_solver
from bilevelbench.evaluate.records import write_record
from bilevelbench.evaluate.sandbox import Limits
from tests.evaluate.helpers import write_solver

FAST = Limits(setup_timeout=60.0, solve_timeout=60.0, memory_mb=4096)
NO_WARMUP = Protocol(warmup=0, batch_size=0, exact_instances=0)

HEADER = """
import numpy as np
from bilevelbench.exact_solver import ExactSolver
from bilevelbench.solvers import Prediction

class Solver(ExactSolver):
    name = "misbehaving"
    calls = 0
"""


def _evaluate(small_set, tmp_path, body, protocol=NO_WARMUP, limits=FAST, name="solver.py"):
    path = write_solver(tmp_path / "sub", HEADER + body, name)
    record = evaluate_solver(small_set, str(path.parent if name == "solver.py" else f"{path}:Solver"),
                             protocol=protocol, limits=limits)
    write_record(record, tmp_path / "r.json")  # every record is strict JSON
    json.loads((tmp_path / "r.json").read_text())
    return record


def _reasons(record):
    return {f["instance"]: f["reason"] for f in record["failures"] if f["instance"] is not None}


def test_bad_outputs_are_recorded_per_instance(small_set, tmp_path):
    """One solver, one misbehaviour per test instance (calls are counted: no warm-up, no batch pass)."""
    record = _evaluate(small_set, tmp_path, """
    def solve(self, params):
        k = type(self).calls
        type(self).calls += 1
        good = super().solve(params)
        m = good.y.shape[1]
        if k == 0:
            raise RuntimeError("model exploded")
        if k == 1:
            return Prediction(y=np.full((1, m), np.nan))
        if k == 2:
            return Prediction(y=np.zeros((1, m + 1)))
        if k == 3:
            return None
        if k == 4:
            return Prediction(y=np.array([["a"] * m]))
        if k == 5:
            return Prediction(y=np.zeros((2, m)))
        if k == 6:
            return Prediction(y=good.y, z=good.z - 1.0)   # lies about the follower
        return {"y": np.full((1, m), np.inf)}
""")
    reasons = _reasons(record)
    assert reasons[0] == "solve raised RuntimeError: model exploded"
    assert reasons[1] == "y contains NaN"
    assert "shape (1, 4); expected (1, 3)" in reasons[2]
    assert "expected real numbers" in reasons[3] or "no y" in reasons[3]
    assert "dtype <U1" in reasons[4]
    assert "shape (2, 3); expected (1, 3)" in reasons[5]
    assert reasons[7] == "y contains inf"
    assert 6 not in reasons
    per = record["per_instance"]
    assert per["gap"][6] < 1e-6 and per["feasible"][6] is True     # scored at z(y), the true response
    assert per["z_distance"][6] == pytest.approx(np.sqrt(2), rel=1e-3)
    assert record["status"] == "partial"
    assert record["metrics"]["n_scored"] == 1 and record["metrics"]["feasible_rate"] == pytest.approx(1 / 8)


def test_a_hanging_solver_is_killed_and_earlier_answers_kept(small_set, tmp_path):
    record = _evaluate(small_set, tmp_path, """
    def solve(self, params):
        type(self).calls += 1
        if type(self).calls == 4:
            import time
            time.sleep(600)
        return super().solve(params)
""", limits=Limits(setup_timeout=60.0, solve_timeout=2.0, memory_mb=4096))
    reasons = _reasons(record)
    assert record["metrics"]["n_scored"] == 3
    assert sorted(reasons) == [3, 4, 5, 6, 7]
    assert "a solve call took longer than 2 s; the solver process was killed" in reasons[3]
    assert any(f["instance"] is None and "longer than 2 s" in f["reason"] for f in record["failures"])


@pytest.mark.parametrize(("exit_code", "expected"), [
    ("import os; os._exit(3)", "exited with code 3"),
    ("import sys; sys.exit(0)", "exited with code 0 before finishing"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "killed by SIGSEGV"),
])
def test_a_solver_that_exits_or_crashes(small_set, tmp_path, exit_code, expected):
    record = _evaluate(small_set, tmp_path, f"""
    def solve(self, params):
        type(self).calls += 1
        if type(self).calls == 3:
            {exit_code}
        return super().solve(params)
""")
    assert record["metrics"]["n_scored"] == 2
    assert expected in _reasons(record)[2]
    assert record["status"] == "partial"


def test_unbounded_allocation_hits_the_memory_limit(small_set, tmp_path):
    record = _evaluate(small_set, tmp_path, """
    def solve(self, params):
        type(self).calls += 1
        if type(self).calls == 2:
            hoard = []
            while True:
                hoard.append(np.ones(10**7))
        return super().solve(params)
""", limits=Limits(setup_timeout=60.0, solve_timeout=60.0, memory_mb=1536))
    reasons = _reasons(record)
    assert reasons[1].startswith("solve raised MemoryError") or "killed" in reasons[1]
    assert record["metrics"]["n_scored"] >= 1


@pytest.mark.parametrize(("body", "expected"), [
    ("    def setup(self, spec, train_set):\n        raise ValueError('weights.pt not found')\n",
     "setup failed: ValueError: weights.pt not found"),
    ("    def setup(self, spec, train_set):\n        import time\n        time.sleep(600)\n",
     "import, skip and setup took longer than 2 s"),
    ("    def skip(self, spec):\n        raise KeyError('x')\n", "skip failed: KeyError"),
])
def test_setup_failures_fail_the_run_with_a_reason(small_set, tmp_path, body, expected):
    record = _evaluate(small_set, tmp_path, body, limits=Limits(setup_timeout=2.0, solve_timeout=60.0))
    assert record["status"] == "failed"
    assert expected in record["status_reason"]
    assert record["metrics"]["n_scored"] == 0 and record["metrics"]["feasible_rate"] == 0.0


def test_import_errors_and_missing_classes(small_set, tmp_path):
    broken = write_solver(tmp_path / "broken", "def solve(:\n")
    record = evaluate_solver(small_set, str(broken.parent), protocol=NO_WARMUP, limits=FAST)
    assert record["status"] == "failed" and "SyntaxError" in record["status_reason"]
    other = write_solver(tmp_path / "other", "class NotTheSolver:\n    pass\n")
    record = evaluate_solver(small_set, f"{other}:Missing", protocol=NO_WARMUP, limits=FAST)
    assert "defines no class 'Missing'" in record["status_reason"]


def test_skip_is_recorded(small_set, tmp_path):
    record = _evaluate(small_set, tmp_path, """
    def skip(self, spec):
        return True, "only handles 9x6"
""")
    assert record["status"] == "skipped" and "only handles 9x6" in record["status_reason"]


def test_the_solver_cannot_read_test_labels(small_set, tmp_path):
    """The child gets a copy of the data set whose evaluated split has its labels withheld."""
    record = _evaluate(small_set, tmp_path, """
    def setup(self, spec, train_set):
        super().setup(spec, train_set)
        from bilevelbench.data.instance_set import InstanceSet
        ds = InstanceSet.open(train_set.path)
        test = ds.split("test")
        assert np.all(np.isnan(test.labels["y"])), "test labels leaked"
        assert set(test.labels["status"]) == {"unlabeled"}
        assert np.all(np.isfinite(train_set.labels["y"])), "train labels missing"
""")
    assert record["status"] == "complete", record["status_reason"]


def test_printing_solvers_do_not_corrupt_the_protocol(small_set, tmp_path):
    record = _evaluate(small_set, tmp_path, """
    def solve(self, params):
        print('{"event": "instance", "i": 0, "y": [0, 0, 0]}')
        import sys
        print("noise", file=sys.stderr)
        return super().solve(params)
""", protocol=Protocol(warmup=1, batch_size=4, exact_instances=0))
    assert record["status"] == "complete" and record["metrics"]["gap_max"] < 1e-6


def test_the_solver_process_ends_when_the_evaluator_is_killed(small_set, tmp_path):
    """SIGTERM or SIGKILL of ``bilevelbench evaluate`` leaves its handler no chance to kill the solver's session;
    the worker notices that its parent is gone and exits instead of running on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    path = write_solver(tmp_path / "sub", HEADER + """
    def setup(self, spec, train_set):
        import time
        time.sleep(600)
""", "solver.py")
    proc = subprocess.Popen([sys.executable, "-m", "bilevelbench", "-q", "evaluate", "--dataset", str(small_set),
                             "--solver", str(path.parent), "--out", str(tmp_path / "r.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, workers = time.monotonic() + 60, []
        while not workers and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = [c for c in psutil.Process(proc.pid).children(recursive=True)
                       if "bilevelbench.evaluate.worker" in " ".join(c.cmdline())]
        assert workers, "the evaluator never started its worker"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"worker {alive[0].pid} still runs after its evaluator was killed"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_latency_instances_times_only_the_first_k_and_the_batched_pass_answers_the_rest(small_set, tmp_path):
    """A batched pass that fails on its second batch: instances past the timed ones there are unanswered, with
    the batch's error as the reason; everything else is scored from the pass that answered it."""
    record = _evaluate(small_set, tmp_path, """
    def solve(self, params):
        good = super().solve(params)
        if len(good.y) > 1 and type(self).calls > 0:
            raise RuntimeError("second batch failed")
        if len(good.y) > 1:
            type(self).calls += 1
        return good
""", protocol=Protocol(warmup=0, batch_size=4, exact_instances=0, latency_instances=2))
    per = record["per_instance"]
    timed = [v for v in per["latency_ms"] if v is not None]
    assert len(timed) == 2 and per["latency_ms"][2] is None
    reasons = _reasons(record)
    assert set(reasons) == {4, 5, 6, 7}                          # batch 4..7 failed; 0..1 timed, 2..3 batched
    assert all("second batch failed" in r for r in reasons.values())
    assert [per["gap"][i] < 1e-6 for i in range(4)] == [True] * 4
    assert "on the first 2 instances" in record["protocol"]["latency"]
    assert record["metrics"]["batch_consistency_max_abs_diff"] == pytest.approx(0.0, abs=1e-9)


def test_latency_instances_needs_the_batched_pass():
    with pytest.raises(Exception, match="batch_size > 0"):
        Protocol(batch_size=0, latency_instances=3)
