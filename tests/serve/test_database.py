"""The service's tables on SQLite and PostgreSQL: tokens stored only as hashes, the daily quota, a result stored
once per claimed attempt, recovery after a kill."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from bilevelbench.errors import UsageError
from bilevelbench.serve.database import Database, QuotaExceeded, teams
from bilevelbench.serve.tokens import token_hash

NOW = dt.datetime(2026, 12, 5, 21, 0, tzinfo=dt.UTC)


def _submit(db: Database, team, quota: int = 5, now: dt.datetime = NOW, placed: list | None = None) -> str:
    return db.submit(team, "set", "test", "solver", "1", 10, "0" * 64, quota, now,
                     placed.append if placed is not None else (lambda sid: None))


def test_tokens_are_stored_only_as_hashes(db_url: str) -> None:
    db = Database(db_url)
    token = db.add_team("alpha", NOW)
    with db.read() as conn:
        stored = conn.execute(select(teams.c.token_hash)).scalars().all()
    assert stored == [token_hash(token)] and token not in stored
    assert db.team_for_token(token).name == "alpha"
    assert db.team_for_token(token + "x") is None
    with pytest.raises(UsageError, match="exists"):
        db.add_team("alpha", NOW)
    with pytest.raises(UsageError, match="printable"):
        db.add_team("bad\x00name", NOW)
    db.close()


def test_daily_quota_counts_the_utc_day(db_url: str) -> None:
    db = Database(db_url)
    db.add_team("alpha", NOW)
    team = db.team_for_token(db.add_team("beta", NOW))
    for _ in range(2):
        _submit(db, team, quota=2)
    with pytest.raises(QuotaExceeded, match="resets at midnight UTC"):
        _submit(db, team, quota=2)
    _submit(db, team, quota=2, now=NOW + dt.timedelta(hours=4))          # the next UTC day
    assert db.counts()["queued"] == 3
    db.close()


def test_a_result_is_stored_once_per_attempt(db_url: str) -> None:
    db = Database(db_url)
    team = db.team_for_token(db.add_team("alpha", NOW))
    placed: list[str] = []
    sid = _submit(db, team, placed=placed)
    assert placed == [sid]
    row = db.claim(NOW)
    assert row["id"] == sid and row["attempts"] == 1 and row["team"] == "alpha" and db.claim(NOW) is None
    assert db.recover(max_attempts=3, now=NOW) == (1, 0)               # a restart: back in the queue
    assert not db.finish(sid, 1, {"a": 1}, {"b": 2}, NOW)             # the first attempt's result is stale
    again = db.claim(NOW)
    assert again["attempts"] == 2
    assert db.finish(sid, 2, {"a": 1}, {"b": 2}, NOW)
    assert not db.finish(sid, 2, {"a": 1}, {"b": 2}, NOW)             # never twice
    assert db.get(sid)["status"] == "done" and db.version()[0] == 1
    db.close()


def test_a_submission_fails_after_too_many_tries(db_url: str) -> None:
    db = Database(db_url)
    team = db.team_for_token(db.add_team("alpha", NOW))
    sid = _submit(db, team)
    for _ in range(2):
        db.claim(NOW)
        db.recover(max_attempts=2, now=NOW)
    assert db.get(sid)["status"] == "failed" and "2 times" in db.get(sid)["reason"]
    db.close()


def test_a_submission_is_not_kept_when_its_file_cannot_be_placed(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    team = db.team_for_token(db.add_team("alpha", NOW))

    def fail(_sid: str) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        db.submit(team, "set", "test", "s", "1", 1, "0" * 64, 5, NOW, fail)
    assert db.ids() == set()
    db.close()


def test_bad_database_urls_get_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="SQLAlchemy URL"):
        Database("not a url")
    with pytest.raises(UsageError, match="no database driver"):
        Database("nosuchdb://x/y")
    with pytest.raises(UsageError, match="cannot open the database"):
        Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
