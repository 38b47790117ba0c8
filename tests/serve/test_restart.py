"""``kill -9`` of the service with submissions queued and scoring loses none: after a restart every one is scored,
exactly once, and the killed service's scorer does not outlive it."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
from sqlalchemy import create_engine, text

from tests.serve.conftest import add_team, predictions


def _statuses(db_url: str) -> dict[str, tuple[str, int]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT id, status, attempts FROM submissions"))}
    finally:
        engine.dispose()


def _scorers(state: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if "bilevelbench.serve.job" in cmdline and any(str(state) in part for part in cmdline):
            found.append(process)
    return found


def test_kill_9_loses_no_accepted_submission(db_url: str, tmp_path: Path, service_data: Path,
                                             start_service) -> None:
    tokens = {team: add_team(db_url, team) for team in ("alpha", "beta")}
    state = tmp_path / "state"
    service = start_service(db_url, "--workers", "1", "--daily-quota", "10", state=state)
    service.tokens = tokens
    ids = []
    for k in range(8):
        team = ("alpha", "beta")[k % 2]
        response = service.submit(team, predictions(service_data, tmp_path / f"p{k}.h5", shift=0.01 * k))
        assert response.status_code == 202, response.text
        ids.append((team, response.json()["id"]))
    deadline = time.monotonic() + 60
    while not _scorers(state) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _scorers(state), "no scorer started"
    service.kill()
    at_kill = _statuses(db_url)
    kinds = sorted(status for status, _ in at_kill.values())
    assert "scoring" in kinds and "queued" in kinds, f"expected work queued and scoring at the kill; {kinds}"
    assert len(at_kill) == 8
    deadline = time.monotonic() + 10
    while _scorers(state) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _scorers(state), "the killed service's scorer outlived it"

    service = start_service(db_url, "--workers", "2", "--daily-quota", "10", state=state)
    service.tokens = tokens
    for team, sid in ids:
        assert service.wait_done(team, [sid])[sid]["status"] == "done"
    after = _statuses(db_url)
    assert set(after) == set(at_kill) and all(status == "done" for status, _ in after.values())
    for sid, (status, attempts) in at_kill.items():
        expected = attempts + 1 if status == "scoring" else (attempts if status == "done" else 1)
        assert after[sid][1] == expected, (sid, status, attempts, after[sid])
    board = service.status("alpha", ids[0][1])
    assert board["metrics"]["public"]["n_instances"] > 0
