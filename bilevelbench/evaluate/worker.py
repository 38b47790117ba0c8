"""Child-process side of an evaluation run: load the solver, run the timing protocol, journal everything.

Started by :mod:`bilevelbench.evaluate.sandbox` as
``python -m bilevelbench.evaluate.worker CONFIG.json``. Every event is one JSON
line appended to the journal file and flushed at once, so the parent keeps
whatever was answered before a crash, a hang or a kill. Only the ``solve`` call
is inside the timed region; converting and journaling its output is not.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bilevelbench.lifeline import exit_with_parent


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


class Journal:
    """Append-only JSON-lines event log."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "a", encoding="utf-8")

    def emit(self, event: str, **fields) -> None:
        self._f.write(json.dumps({"event": event, **fields}) + "\n")
        self._f.flush()


def _rows(a: np.ndarray | None):
    return None if a is None else a.tolist()


def run(config: dict) -> int:
    """Run the protocol described by ``config`` (see ``sandbox.WorkerConfig``)."""
    journal = Journal(config["journal"])
    from bilevelbench.data.instance_set import InstanceSet
    from bilevelbench.errors import BilevelBenchError
    from bilevelbench.solvers import TaskSpec, coerce_prediction, load_solver, solver_identity

    try:
        solver = load_solver(config["solver"])
    except BilevelBenchError as exc:
        journal.emit("fatal", phase="load", error=str(exc)[:500])
        return 3
    journal.emit("loaded", **solver_identity(solver))
    ds = InstanceSet.open(config["dataset"])
    split = ds.split(config["split"])
    n = len(split) if config.get("limit") is None else min(len(split), int(config["limit"]))
    s = ds.structure
    y_dim, z_dim = ds.decision_dims
    spec = TaskSpec(family=ds.family, dataset=config["dataset_name"], split=config["split"], n_instances=n,
                    structure=s, param_names=tuple(split.params), y_dim=y_dim, z_dim=z_dim,
                    paper_convention=ds.meta.get("paper_convention"))
    skip = getattr(solver, "skip", None)
    if callable(skip):
        try:
            answer = skip(spec)
            declined, reason = (answer if isinstance(answer, tuple) else (bool(answer), None))
        except Exception as exc:
            journal.emit("fatal", phase="skip", error=_one_line(exc))
            return 3
        if declined:
            journal.emit("skip", reason=str(reason or "no reason given")[:300])
            return 0
    train = ds.split("train") if "train" in ds.split_names and config.get("give_train", True) else None
    start = time.perf_counter()
    try:
        if callable(getattr(solver, "setup", None)):
            solver.setup(spec, train)
    except Exception as exc:
        journal.emit("fatal", phase="setup", error=_one_line(exc))
        return 3
    journal.emit("setup", seconds=time.perf_counter() - start)
    journal.emit("identity", **solver_identity(solver))  # setup may refine the version (e.g. the backend used)
    threads = int(config.get("threads", 1))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)

    if config.get("closed_loop"):
        return _closed_loop(journal, solver, ds, config["closed_loop"], y_dim, z_dim)
    params = {key: np.ascontiguousarray(value[:n]) for key, value in split.params.items()}

    def batch(lo: int, hi: int) -> dict[str, np.ndarray]:
        out = {key: value[lo:hi].copy() for key, value in params.items()}
        for value in out.values():
            value.setflags(write=False)
        return out

    warm = min(int(config.get("warmup", 3)), n)
    start = time.perf_counter()
    errors = 0
    for i in range(warm):
        try:
            solver.solve(batch(i, i + 1))
        except Exception:
            errors += 1
    journal.emit("warmup", count=warm, errors=errors, seconds=time.perf_counter() - start)

    loop_start = time.perf_counter()
    solve_total = 0.0
    timed = n if config.get("latency_instances") is None else min(n, int(config["latency_instances"]))
    for i in range(timed):
        b = batch(i, i + 1)
        t0 = time.perf_counter()
        try:
            out = solver.solve(b)
        except Exception as exc:
            solve_total += time.perf_counter() - t0
            journal.emit("instance", i=i, error=f"solve raised {_one_line(exc)}")
            continue
        elapsed = time.perf_counter() - t0
        solve_total += elapsed
        try:
            y, z = coerce_prediction(out, 1, y_dim, z_dim)
        except BilevelBenchError as exc:
            journal.emit("instance", i=i, latency_s=elapsed, error=str(exc)[:300])
            continue
        journal.emit("instance", i=i, latency_s=elapsed, y=y[0].tolist(), z=None if z is None else z[0].tolist())
    journal.emit("latency_done", loop_s=time.perf_counter() - loop_start, solve_s=solve_total)

    size = int(config.get("batch_size", 0))
    if size > 0:
        for lo in range(0, n, size):
            hi = min(n, lo + size)
            b = batch(lo, hi)
            t0 = time.perf_counter()
            try:
                out = solver.solve(b)
            except Exception as exc:
                journal.emit("batch", start=lo, size=hi - lo, seconds=time.perf_counter() - t0,
                             error=f"solve raised {_one_line(exc)}")
                continue
            elapsed = time.perf_counter() - t0
            try:
                y, z = coerce_prediction(out, hi - lo, y_dim, z_dim)
            except BilevelBenchError as exc:
                journal.emit("batch", start=lo, size=hi - lo, seconds=elapsed, error=str(exc)[:300])
                continue
            journal.emit("batch", start=lo, size=hi - lo, seconds=elapsed, y=_rows(y), z=_rows(z))
    journal.emit("done")
    return 0


def _closed_loop(journal: Journal, solver, ds, plan: dict, y_dim: int, z_dim: int) -> int:
    """Run the policy in receding horizon from each planned start; journal every step's decision and time."""
    from bilevelbench.errors import BilevelBenchError
    from bilevelbench.solvers import coerce_prediction

    family = ds.family_descriptor
    param = family.param_fields[0]
    steps = int(plan["steps"])
    for e, episode in enumerate(plan["episodes"]):
        theta0 = np.asarray(episode["theta0"], float)
        dist = np.asarray(episode["disturbances"], float).reshape(-1, 2)
        step = {"t": 0}

        def policy(theta: np.ndarray, e=e, step=step):
            t = step["t"]
            step["t"] += 1
            params = {param: np.ascontiguousarray(theta.reshape(1, -1))}
            params[param].setflags(write=False)
            t0 = time.perf_counter()
            try:
                out = solver.solve(params)
            except Exception as exc:
                journal.emit("cl_step", episode=e, t=t, latency_s=time.perf_counter() - t0,
                             error=f"solve raised {_one_line(exc)}")
                return None
            elapsed = time.perf_counter() - t0
            try:
                x, _ = coerce_prediction(out, 1, y_dim, z_dim)
            except BilevelBenchError as exc:
                journal.emit("cl_step", episode=e, t=t, latency_s=elapsed, error=str(exc)[:300])
                return None
            journal.emit("cl_step", episode=e, t=t, latency_s=elapsed, x=x[0].tolist())
            return x[0]

        result = family.run_episode(ds, theta0, steps, policy, dist)
        journal.emit("cl_episode", episode=e, completed=result.completed, reason=result.reason)
    journal.emit("done")
    return 0


def main(argv: list[str] | None = None) -> int:
    exit_with_parent("BILEVELBENCH_EVALUATOR_PID")
    argv = sys.argv[1:] if argv is None else argv
    config = json.loads(Path(argv[0]).read_text())
    memory_mb = int(config.get("memory_mb") or 0)
    if memory_mb > 0:
        import resource

        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(config.get("threads", 1)))
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
