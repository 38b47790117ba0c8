"""The real service on 127.0.0.1, driven over HTTP: a data folder, databases (SQLite; PostgreSQL where its server
programs are installed) and a factory that starts ``bilevelbench serve`` as its own process."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import requests

from bilevelbench.evaluate.predictions import write_predictions

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")

DATASET = "bqp-3x2"
N_TEST = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def service_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one private 3x2 set (30 labelled test instances) and its public release."""
    from bilevelbench.data.redact import public_release
    from bilevelbench.families.bqp.certifier import CertifierSettings
    from bilevelbench.families.bqp.generate import BQPRequest, generate_bqp

    folder = tmp_path_factory.mktemp("service-data")
    path = generate_bqp(BQPRequest(m=3, n=2, n_train=0, n_valid=0, n_test=N_TEST, seed=5), folder / f"{DATASET}.h5",
                        CertifierSettings(backend="scip", time_limit=60))
    public_release(path, folder / f"{DATASET}.public.h5")
    return folder


def labels(data: Path) -> np.ndarray:
    from bilevelbench import InstanceSet

    return np.asarray(InstanceSet.open(data / f"{DATASET}.h5").split("test").labels["y"], float)


def predictions(data: Path, out: Path, shift: float = 0.0, **kw) -> Path:
    """A complete predictions file: the labels, shifted by ``shift``."""
    y = labels(data) + shift
    return write_predictions(out, y, np.arange(len(y)), **{"solver_name": f"shift-{shift}", **kw})


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 (initdb + pg_ctl, as the 'postgres' user when run as root)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'bilevelbench[postgres]')")
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        message = ("PostgreSQL's server programs (initdb, pg_ctl) are not installed; the README's test command "
                   "installs them (Debian package postgresql)")
        if os.environ.get("CI"):
            pytest.fail(message)           # CI installs them: their absence there is a broken setup, not a skip
        pytest.skip(message)
    # a folder of its own under the system temp dir: pytest's is private to this user, and PostgreSQL refuses
    # to run as root, so as root the server runs as the 'postgres' user and owns this folder
    base = Path(tempfile.mkdtemp(prefix="bilevelbench-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"], check=True,
                   capture_output=True)
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                    f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start"], check=True,
                   capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], check=False,
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    """A fresh database: SQLite, or a fresh PostgreSQL database on the session's server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    base = request.getfixturevalue("postgres_url")
    import psycopg

    name = f"svc_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + f"/{name}"


def add_team(db: str, name: str) -> str:
    """Register a team through the command line; its token."""
    result = subprocess.run([sys.executable, "-m", "bilevelbench", "-q", "serve", "add-team", name, "--db", db],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


@dataclass
class Service:
    """One ``bilevelbench serve`` process."""

    url: str
    process: subprocess.Popen
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, team: str) -> dict:
        return {"Authorization": f"Bearer {self.tokens[team]}"}

    def submit(self, team: str, file: Path, dataset: str = DATASET, filename: str | None = None):
        with open(file, "rb") as handle:
            return requests.post(f"{self.url}/api/v1/submissions", headers=self.headers(team),
                                 data={"dataset": dataset}, files={"file": (filename or file.name, handle)},
                                 timeout=60)

    def status(self, team: str, sid: str) -> dict:
        response = requests.get(f"{self.url}/api/v1/submissions/{sid}", headers=self.headers(team), timeout=30)
        response.raise_for_status()
        return response.json()

    def wait_done(self, team: str, sids: list[str], timeout: float = 120.0) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        out: dict[str, dict] = {}
        while time.monotonic() < deadline:
            for sid in sids:
                if sid not in out:
                    view = self.status(team, sid)
                    if view["status"] in ("done", "failed"):
                        out[sid] = view
            if len(out) == len(sids):
                return out
            time.sleep(0.3)
        raise AssertionError(f"{len(sids) - len(out)} submission(s) not finished in {timeout} s; log:\n"
                             + self.log.read_text()[-3000:])

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_service(tmp_path: Path, service_data: Path):
    """``start(db, *extra_args, state=...)``: a running service (stopped at the end of the test)."""
    started: list[Service] = []

    def start(db: str, *extra: str, state: Path | None = None, data: Path | None = None) -> Service:
        port = free_port()
        state = state or tmp_path / "state"
        log = tmp_path / f"serve-{len(started)}.log"
        with open(log, "wb") as handle:
            process = subprocess.Popen(
                [sys.executable, "-m", "bilevelbench", "serve", "--data", str(data or service_data), "--db", db,
                 "--state", str(state), "--port", str(port), *extra],
                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        service = Service(url=f"http://127.0.0.1:{port}", process=process, log=log)
        started.append(service)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"the service exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{service.url}/api/v1/health", timeout=2).ok:
                    return service
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the service did not answer in 60 s:\n{log.read_text()[-3000:]}")

    yield start
    for service in started:
        service.stop()
