"""The bounded pool that scores queued submissions, one scorer process each (:mod:`.job`).

``workers`` threads each take the oldest queued submission (:meth:`Database.claim`), run its scorer with a time
limit, and store the result only if the submission is still theirs (:meth:`Database.finish`), so a submission is
scored into the database exactly once. A scorer that dies is retried up to ``max_attempts`` times; one that runs
past the limit fails with that reason. On a clean stop the running scorers are ended and their submissions put
back in the queue; after a ``kill -9`` the next start does that (:meth:`Database.recover`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from bilevelbench.serve.catalog import DatasetEntry
from bilevelbench.serve.config import ServiceConfig, utc_now
from bilevelbench.serve.database import Database
from bilevelbench.serve.job import PARENT_ENV

log = logging.getLogger(__name__)


def upload_path(state_dir: Path, sid: str) -> Path:
    """Where an accepted upload is kept."""
    return Path(state_dir) / "uploads" / f"{sid}.h5"


class WorkerPool:
    """Threads that run scorer processes for queued submissions.

    Parameters
    ----------
    config : ServiceConfig
    db : Database
    catalog : dict of str to DatasetEntry
    """

    def __init__(self, config: ServiceConfig, db: Database, catalog: dict[str, DatasetEntry]) -> None:
        self.config = config
        self.db = db
        self.catalog = catalog
        self.jobs_dir = Path(config.state_dir) / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, subprocess.Popen] = {}
        self._running_lock = threading.Lock()

    def start(self) -> None:
        """Start the worker threads."""
        for k in range(self.config.workers):
            thread = threading.Thread(target=self._loop, name=f"scorer-{k}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def notify(self) -> None:
        """Wake a waiting worker (a submission was queued)."""
        with self._wake:
            self._wake.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        """End the running scorers, put their submissions back in the queue, and stop the threads."""
        self._stopping.set()
        with self._running_lock:
            for process in self._running.values():
                process.kill()
        self.notify()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                row = self.db.claim(utc_now())
            except Exception:                              # the database is briefly unreachable: retry
                log.exception("could not claim a submission")
                row = None
            if row is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            try:
                self._score(row)
            except Exception as exc:                       # never let one submission stop the worker
                log.exception("scoring submission %s failed", row["id"])
                self.db.fail(row["id"], row["attempts"], f"internal error while scoring ({type(exc).__name__})",
                             utc_now())

    def _score(self, row: dict) -> None:
        sid, attempt = row["id"], int(row["attempts"])
        entry = self.catalog.get(row["dataset"])
        upload = upload_path(self.config.state_dir, sid)
        if entry is None:
            self.db.fail(sid, attempt, f"dataset {row['dataset']!r} is no longer served", utc_now())
            return
        if not upload.is_file():
            self.db.fail(sid, attempt, "the uploaded file is missing from the service's store", utc_now())
            return
        out = self.jobs_dir / f"{sid}-{attempt}.out.json"
        config_path = self.jobs_dir / f"{sid}-{attempt}.json"
        config_path.write_text(json.dumps({
            "id": sid, "team": row["team"], "dataset": str(entry.path), "predictions": str(upload),
            "split": row["split"], "public_rows": entry.public_rows.tolist(),
            "accepted_sha256": list(entry.accepted_sha256), "out": str(out)}))
        log_path = self.jobs_dir / f"{sid}-{attempt}.log"
        env = {**os.environ, PARENT_ENV: str(os.getpid()), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen([sys.executable, "-m", "bilevelbench.serve.job", str(config_path)],
                                       stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
            with self._running_lock:
                self._running[sid] = process
            try:
                code = process.wait(timeout=self.config.job_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = None
            finally:
                with self._running_lock:
                    self._running.pop(sid, None)
        if self._stopping.is_set() and not out.is_file():
            self.db.requeue(sid, attempt)
            return
        if code is None:
            self.db.fail(sid, attempt, f"scoring took more than {self.config.job_timeout_s:.0f} s", utc_now())
            return
        if out.is_file():
            result = json.loads(out.read_text())
            if "error" in result:
                self.db.fail(sid, attempt, str(result["error"]), utc_now())
            elif self.db.finish(sid, attempt, result["public"], result["full"], utc_now()):
                log.info("submission %s scored (attempt %d)", sid, attempt)
            for path in (config_path, out, log_path):
                path.unlink(missing_ok=True)
            return
        if attempt < self.config.max_attempts:
            log.warning("scorer of %s exited with status %s (attempt %d); queued again", sid, code, attempt)
            self.db.requeue(sid, attempt)
            self.notify()
        else:
            self.db.fail(sid, attempt, f"the scorer stopped without a result {attempt} times (last exit status "
                                       f"{code})", utc_now())
