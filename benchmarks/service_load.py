"""Load and fault check of the scoring service, on 127.0.0.1 (numbers for docs/service.md).

    python benchmarks/service_load.py                       # 50 uploads from 10 teams, SQLite
    python benchmarks/service_load.py --kill-after 10       # the same, with kill -9 once 10 are done
    python benchmarks/service_load.py --db postgresql+psycopg://postgres@127.0.0.1:5432/bench

Starts ``bilevelbench serve`` as its own process on a generated bqp 3x2 set (``--n-test`` instances), registers
``--teams`` teams, sends ``--uploads`` valid predictions files at once (one thread each), polls every submission
until it is done, and checks that every accepted upload was scored exactly once (one ``done`` row per upload in
the database, and the attempts each took). With ``--kill-after K`` the service is killed with SIGKILL once K
submissions are done (the others queued or being scored) and started again on the same database and state.
Prints the upload latency, the upload-to-done time (p50, p95, max) and the check, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data: Path, db: str, state: Path, port: int, workers: int, log: Path) -> subprocess.Popen:
    handle = open(log, "ab")
    process = subprocess.Popen([sys.executable, "-m", "bilevelbench", "serve", "--data", str(data), "--db", db,
                                "--state", str(state), "--port", str(port), "--workers", str(workers),
                                "--daily-quota", "1000"], stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).ok:
                return process
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit(f"the service did not start; see {log}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="the service's scorer processes")
    parser.add_argument("--n-test", type=int, default=100, help="test instances of the generated set")
    parser.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--kill-after", type=int, default=None, metavar="K",
                        help="kill -9 the service once K submissions are done, then restart it")
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = parser.parse_args()

    from bilevelbench import InstanceSet
    from bilevelbench.evaluate.predictions import write_predictions
    from bilevelbench.families.bqp.certifier import CertifierSettings
    from bilevelbench.families.bqp.generate import BQPRequest, generate_bqp
    from bilevelbench.serve.config import utc_now
    from bilevelbench.serve.database import Database

    work = Path(tempfile.mkdtemp(prefix="service-load-"))
    data = work / "data"
    data.mkdir()
    path = generate_bqp(BQPRequest(m=3, n=2, n_train=0, n_valid=0, n_test=args.n_test, seed=9),
                        data / "bqp-3x2.h5", CertifierSettings(backend="scip", time_limit=60))
    y = np.asarray(InstanceSet.open(path).split("test").labels["y"], float)
    db_url = args.db or f"sqlite:///{work / 'service.db'}"
    db = Database(db_url)
    tokens = [db.add_team(f"team-{k}", utc_now()) for k in range(args.teams)]
    files = []
    for k in range(args.uploads):
        noise = np.random.default_rng(k).normal(scale=0.05 * (k % 5), size=y.shape)
        files.append(write_predictions(work / f"p{k}.h5", y + noise, np.arange(len(y)), solver_name=f"s{k}"))
    state, log, port = work / "state", work / "serve.log", free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(data, db_url, state, port, args.workers, log)

    def upload(k: int) -> tuple[int, str, float, float]:
        t0 = time.monotonic()
        with open(files[k], "rb") as handle:
            response = requests.post(f"{url}/api/v1/submissions", headers={"Authorization":
                                     f"Bearer {tokens[k % args.teams]}"}, data={"dataset": "bqp-3x2"},
                                     files={"file": handle}, timeout=120)
        if response.status_code != 202:
            raise SystemExit(f"upload {k} refused: {response.status_code} {response.text}")
        return k, response.json()["id"], t0, time.monotonic() - t0

    start_all = time.monotonic()
    with cf.ThreadPoolExecutor(max_workers=args.uploads) as pool:
        accepted = list(pool.map(upload, range(args.uploads)))
    done_at: dict[str, float] = {}
    killed = False
    at_kill: dict | None = None
    while len(done_at) < len(accepted):
        for k, sid, _, _ in accepted:
            if sid in done_at:
                continue
            try:
                view = requests.get(f"{url}/api/v1/submissions/{sid}", timeout=30,
                                    headers={"Authorization": f"Bearer {tokens[k % args.teams]}"}).json()
            except requests.ConnectionError:
                continue
            if view["status"] in ("done", "failed"):
                if view["status"] == "failed":
                    raise SystemExit(f"submission {sid} failed: {view['reason']}")
                done_at[sid] = time.monotonic()
        if args.kill_after is not None and not killed and len(done_at) >= args.kill_after:
            counts = at_kill = db.counts()
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            killed = True
            print(f"killed with -9 at {counts}", file=sys.stderr)
            process = start(data, db_url, state, port, args.workers, log)
        time.sleep(0.1)
    total = time.monotonic() - start_all
    process.send_signal(signal.SIGINT)
    process.wait(30)
    rows = {row["id"]: row for row in db.done()}
    ids = [sid for _, sid, _, _ in accepted]
    exactly_once = len(set(ids)) == len(ids) == len(rows) and set(rows) == set(ids)
    attempts = sorted(int(rows[sid]["attempts"]) for sid in ids)
    to_done = np.array([done_at[sid] - t0 for _, sid, t0, _ in accepted])
    upload_s = np.array([dt for *_, dt in accepted])
    result = {"uploads": args.uploads, "teams": args.teams, "workers": args.workers, "n_test": args.n_test,
              "database": db_url.split(":", 1)[0], "killed": killed, "statuses_at_kill": at_kill, "total_s": round(total, 2),
              "upload_s": {"p50": float(np.percentile(upload_s, 50)), "p95": float(np.percentile(upload_s, 95)),
                           "max": float(upload_s.max())},
              "upload_to_done_s": {"p50": float(np.percentile(to_done, 50)),
                                   "p95": float(np.percentile(to_done, 95)), "max": float(to_done.max())},
              "scored_exactly_once": bool(exactly_once), "done_rows": len(rows),
              "attempts": {str(a): attempts.count(a) for a in sorted(set(attempts))},
              "throughput_per_s": args.uploads / total}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
