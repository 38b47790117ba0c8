"""Run a solver in a child process with wall-time and memory limits, and read back its journal.

The child (:mod:`bilevelbench.evaluate.worker`) runs in its own session, sets
``RLIMIT_AS`` on itself before importing the solver and fixed BLAS/torch thread counts.
The parent watches the journal: a phase that produces no event within its time
limit gets the whole process group killed. Whatever the child journaled before
it crashed, hung, ran out of memory or exited stays usable.

This is isolation against accidents (a crash, a hang, a leak), not a security
boundary against deliberately malicious code.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)

POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Limits:
    """Limits of one sandboxed run.

    Attributes
    ----------
    setup_timeout : float
        Seconds allowed for importing the solver, ``skip`` and ``setup`` together.
    solve_timeout : float
        Seconds allowed for any single ``solve`` call (warm-up included).
    memory_mb : int
        Address-space limit of the child process (``RLIMIT_AS``), in MiB; 0 for none.
    """

    setup_timeout: float = 1800.0
    solve_timeout: float = 120.0
    memory_mb: int = 8192


@dataclass(frozen=True)
class WorkerConfig:
    """What the child runs (serialised to JSON for it; ``journal`` is set by :func:`run_in_sandbox`)."""

    solver: str
    dataset: str
    dataset_name: str
    split: str
    journal: str = ""
    warmup: int = 3
    batch_size: int = 64
    threads: int = 1
    limit: int | None = None
    #: Batch-size-1 solves on the first K instances only (None: all); the batched pass answers the rest.
    latency_instances: int | None = None
    give_train: bool = True
    memory_mb: int = 0
    #: Closed-loop mode (mixed-integer families): ``{"steps": T, "episodes": [{"theta0", "disturbances"}]}``.
    closed_loop: dict | None = None


@dataclass
class SandboxRun:
    """What came back from the child."""

    events: list[dict] = field(default_factory=list)
    returncode: int | None = None
    killed: str | None = None
    stderr_tail: str = ""
    wall_seconds: float = 0.0

    def first(self, kind: str) -> dict | None:
        return next((e for e in self.events if e.get("event") == kind), None)

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == kind]

    @property
    def finished(self) -> bool:
        return self.first("done") is not None

    def exit_reason(self) -> str | None:
        """One line saying why the child stopped early, or None if it finished or skipped."""
        if self.finished or self.first("skip") is not None:
            return None
        fatal = self.first("fatal")
        if fatal is not None:
            return f"{fatal.get('phase', '?')} failed: {fatal.get('error', '')}"
        if self.killed:
            return self.killed
        code = self.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"solver process was killed by {name}{hint}"
        last = self.stderr_tail.strip().splitlines()[-1:] or [""]
        detail = f": {last[0][:300]}" if last[0] else ""
        return f"solver process exited with code {code} before finishing{detail}"


def _read_new_lines(f, buffer: str) -> tuple[list[dict], str]:
    chunk = f.read()
    if not chunk:
        return [], buffer
    buffer += chunk
    *lines, buffer = buffer.split("\n")
    events = []
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            log.warning("ignoring a malformed journal line from the solver process")
            continue
        if isinstance(event, dict):
            events.append(event)
    return events, buffer


def run_in_sandbox(config: WorkerConfig, limits: Limits,
                   on_event: Callable[[dict], None] | None = None) -> SandboxRun:
    """Run the worker for ``config`` under ``limits`` and return its events.

    Never raises for anything the solver does; raises only for the evaluator's own
    problems (e.g. it cannot create a temporary directory). Ctrl-C kills the child
    and propagates ``KeyboardInterrupt``.
    """
    run = SandboxRun()
    with tempfile.TemporaryDirectory(prefix="bilevelbench-run-") as tmp:
        config = replace(config, journal=str(Path(tmp) / "journal.jsonl"), memory_mb=limits.memory_mb)
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_text(json.dumps(asdict(config)))
        Path(config.journal).touch()
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(config.threads)
        env["PYTHONUNBUFFERED"] = "1"
        env["BILEVELBENCH_EVALUATOR_PID"] = str(os.getpid())    # the worker exits when this process is gone
        stderr_path = Path(tmp) / "stderr.log"
        start = time.monotonic()
        with open(stderr_path, "w+b") as err, open(config.journal, encoding="utf-8") as journal:
            proc = subprocess.Popen([sys.executable, "-m", "bilevelbench.evaluate.worker", str(cfg_path)],
                                    stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                                    start_new_session=True)
            buffer, last_event, phase = "", time.monotonic(), "setup"
            try:
                while True:
                    code = proc.poll()
                    events, buffer = _read_new_lines(journal, buffer)
                    for event in events:
                        run.events.append(event)
                        last_event = time.monotonic()
                        if event.get("event") == "setup":
                            phase = "solve"
                        if on_event is not None:
                            on_event(event)
                    if code is not None:
                        events, buffer = _read_new_lines(journal, buffer + "\n")
                        run.events.extend(events)
                        break
                    timeout = limits.setup_timeout if phase == "setup" else limits.solve_timeout
                    if time.monotonic() - last_event > timeout:
                        what = ("import, skip and setup" if phase == "setup" else "a solve call")
                        run.killed = f"{what} took longer than {timeout:g} s; the solver process was killed"
                        _kill(proc)
                        events, buffer = _read_new_lines(journal, buffer + "\n")
                        run.events.extend(events)
                        break
                    time.sleep(POLL_SECONDS)
            except BaseException:
                _kill(proc)
                raise
            run.returncode = proc.wait()
            err.seek(0)
            run.stderr_tail = err.read()[-4000:].decode("utf-8", errors="replace")
        run.wall_seconds = time.monotonic() - start
    return run


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
