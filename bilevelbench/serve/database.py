"""Teams and submissions in a SQL database (SQLAlchemy Core): SQLite by default, PostgreSQL supported.

Every write goes through :meth:`Database.write`, one transaction at a time within a service process, so SQLite
never reports a busy database and a team's quota is counted and spent atomically. One service process owns a
database: at start it puts back in the queue what a killed predecessor was scoring (:meth:`Database.recover`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError

from bilevelbench.errors import UsageError
from bilevelbench.serve.tokens import new_token, token_hash

STATUSES = ("queued", "scoring", "done", "failed")

metadata = MetaData()

teams = Table(
    "teams", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

submissions = Table(
    "submissions", metadata,
    Column("id", String(32), primary_key=True),
    Column("team_id", Integer, ForeignKey("teams.id"), nullable=False),
    Column("dataset", String(200), nullable=False),
    Column("split", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("solver_name", String(200), nullable=False),
    Column("solver_version", String(200), nullable=False),
    Column("upload_bytes", Integer, nullable=False),
    Column("upload_sha256", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("public_record", Text),
    Column("full_record", Text),
    Index("ix_submissions_status_created", "status", "created_at"),
    Index("ix_submissions_team_created", "team_id", "created_at"),
)

settings = Table(
    "settings", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


def _with_team():
    """``SELECT`` of submissions with their team's name as ``team``."""
    return select(submissions, teams.c.name.label("team")).join(teams, teams.c.id == submissions.c.team_id)


class QuotaExceeded(Exception):
    """A team has spent its submissions for the day."""


@dataclass(frozen=True)
class Team:
    """A team: its id and name."""

    id: int
    name: str


def naive_utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC without a zone (the form stored: SQLite keeps no zones)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def aware_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A stored time as an aware UTC datetime."""
    return None if value is None else value.replace(tzinfo=dt.UTC)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created. Raises UsageError for a bad or unusable URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(f"--db expects a SQLAlchemy URL such as sqlite:///service.db or "
                         f"postgresql+psycopg://user@host/db; received {url!r}") from None
    kwargs: dict = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise UsageError(f"no database driver for {parsed.drivername!r} ({exc}); for PostgreSQL install "
                         "'bilevelbench[postgres]' and use postgresql+psycopg://...") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    """The service's tables in one database (created when missing).

    Parameters
    ----------
    url : str
        SQLAlchemy URL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = open_engine(url)
        self._lock = threading.Lock()
        try:
            metadata.create_all(self.engine)
        except OperationalError as exc:
            raise UsageError(f"cannot open the database {make_url(url).render_as_string(hide_password=True)!r}: "
                             f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}") from None

    def close(self) -> None:
        """Release every connection."""
        self.engine.dispose()

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction at a time (committed on success, rolled back on error)."""
        with self._lock, self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads."""
        with self.engine.connect() as conn:
            yield conn

    # -- settings -----------------------------------------------------------------------------
    def secret(self) -> str:
        """The service's random secret (drawn once, kept in the database): it seeds the public subsets."""
        with self.write() as conn:
            value = conn.execute(select(settings.c.value).where(settings.c.key == "secret")).scalar()
            if value is None:
                value = secrets.token_hex(32)
                conn.execute(settings.insert().values(key="secret", value=value))
        return value

    # -- teams --------------------------------------------------------------------------------
    def add_team(self, name: str, now: dt.datetime) -> str:
        """Register a team; return its token (shown once, only its hash is stored).

        Raises
        ------
        UsageError
            If the name is empty, too long, not printable, or taken.
        """
        name = name.strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise UsageError(f"a team name is 1 to 64 printable characters; received {name!r}")
        token = new_token()
        try:
            with self.write() as conn:
                conn.execute(teams.insert().values(name=name, token_hash=token_hash(token),
                                                   created_at=naive_utc(now)))
        except IntegrityError:
            raise UsageError(f"a team named {name!r} exists; choose another name") from None
        return token

    def list_teams(self) -> list[tuple[str, dt.datetime, int]]:
        """``(name, created, submissions)`` of every team."""
        count = (select(func.count()).select_from(submissions).where(submissions.c.team_id == teams.c.id)
                 .scalar_subquery())
        with self.read() as conn:
            rows = conn.execute(select(teams.c.name, teams.c.created_at, count).order_by(teams.c.name)).all()
        return [(r[0], aware_utc(r[1]), int(r[2])) for r in rows]

    def team_for_token(self, token: str) -> Team | None:
        """The team holding ``token``, or None."""
        with self.read() as conn:
            row = conn.execute(select(teams.c.id, teams.c.name).where(teams.c.token_hash == token_hash(token))
                               ).first()
        return None if row is None else Team(id=int(row[0]), name=str(row[1]))

    # -- submissions --------------------------------------------------------------------------
    def submit(self, team: Team, dataset: str, split: str, solver_name: str, solver_version: str,
               upload_bytes: int, upload_sha256: str, quota: int, now: dt.datetime,
               place: Callable[[str], None]) -> str:
        """Queue a submission; return its id.

        ``place(id)`` puts the uploaded file where the scorer finds it; it runs inside the transaction, so a
        submission is committed only with its file in place, and one whose file could not be placed is not.

        Raises
        ------
        QuotaExceeded
            If the team has ``quota`` submissions since the start of the UTC day.
        """
        with self.write() as conn:
            conn.execute(select(teams.c.id).where(teams.c.id == team.id).with_for_update()).first()
            self._check_quota(conn, team, quota, now)
            sid = uuid.uuid4().hex
            conn.execute(submissions.insert().values(
                id=sid, team_id=team.id, dataset=dataset, split=split, status="queued", solver_name=solver_name,
                solver_version=solver_version, upload_bytes=upload_bytes, upload_sha256=upload_sha256,
                created_at=naive_utc(now), attempts=0))
            place(sid)
        return sid

    def check_quota(self, team: Team, quota: int, now: dt.datetime) -> None:
        """Raise :class:`QuotaExceeded` if the team has spent its ``quota`` for the UTC day of ``now`` (a cheap
        early answer; :meth:`submit` counts again in its transaction)."""
        with self.read() as conn:
            self._check_quota(conn, team, quota, now)

    @staticmethod
    def _check_quota(conn: Connection, team: Team, quota: int, now: dt.datetime) -> None:
        day = naive_utc(now).replace(hour=0, minute=0, second=0, microsecond=0)
        used = conn.execute(select(func.count()).select_from(submissions).where(
            submissions.c.team_id == team.id, submissions.c.created_at >= day)).scalar_one()
        if used >= quota:
            raise QuotaExceeded(f"team {team.name!r} has used its {quota} submissions for {day.date().isoformat()} "
                                "(UTC); the quota resets at midnight UTC")

    def claim(self, now: dt.datetime) -> dict | None:
        """Take the oldest queued submission for scoring (``status = scoring``, one more attempt); None if none."""
        with self.write() as conn:
            row = conn.execute(select(submissions.c.id).where(submissions.c.status == "queued")
                               .order_by(submissions.c.created_at, submissions.c.id).limit(1)).first()
            if row is None:
                return None
            conn.execute(update(submissions).where(submissions.c.id == row[0], submissions.c.status == "queued")
                         .values(status="scoring", started_at=naive_utc(now),
                                 attempts=submissions.c.attempts + 1))
            claimed = conn.execute(_with_team().where(submissions.c.id == row[0])).mappings().first()
        return dict(claimed)

    def finish(self, sid: str, attempt: int, public_record: dict, full_record: dict, now: dt.datetime) -> bool:
        """Store the scores of a claimed submission; False (nothing written) unless it is still that attempt."""
        with self.write() as conn:
            result = conn.execute(update(submissions).where(
                submissions.c.id == sid, submissions.c.status == "scoring", submissions.c.attempts == attempt)
                .values(status="done", reason=None, finished_at=naive_utc(now),
                        public_record=json.dumps(public_record, allow_nan=False),
                        full_record=json.dumps(full_record, allow_nan=False)))
        return result.rowcount == 1

    def fail(self, sid: str, attempt: int, reason: str, now: dt.datetime) -> bool:
        """Mark a claimed submission failed with ``reason``; False unless it is still that attempt."""
        with self.write() as conn:
            result = conn.execute(update(submissions).where(
                submissions.c.id == sid, submissions.c.status == "scoring", submissions.c.attempts == attempt)
                .values(status="failed", reason=reason[:1000], finished_at=naive_utc(now)))
        return result.rowcount == 1

    def requeue(self, sid: str, attempt: int) -> bool:
        """Put a claimed submission back in the queue (the service is stopping)."""
        with self.write() as conn:
            result = conn.execute(update(submissions).where(
                submissions.c.id == sid, submissions.c.status == "scoring", submissions.c.attempts == attempt)
                .values(status="queued", started_at=None))
        return result.rowcount == 1

    def recover(self, max_attempts: int, now: dt.datetime) -> tuple[int, int]:
        """After a restart: what was being scored goes back to the queue, or fails once it has had
        ``max_attempts`` tries. Returns ``(requeued, failed)``."""
        with self.write() as conn:
            failed = conn.execute(update(submissions).where(
                submissions.c.status == "scoring", submissions.c.attempts >= max_attempts)
                .values(status="failed", finished_at=naive_utc(now),
                        reason=f"the scorer stopped {max_attempts} times without finishing (the service was "
                               "killed or crashed while scoring it)")).rowcount
            requeued = conn.execute(update(submissions).where(submissions.c.status == "scoring")
                                    .values(status="queued", started_at=None)).rowcount
        return int(requeued), int(failed)

    def get(self, sid: str) -> dict | None:
        """One submission with its team's name, or None."""
        with self.read() as conn:
            row = conn.execute(_with_team().where(submissions.c.id == sid)).mappings().first()
        return None if row is None else dict(row)

    def done(self) -> list[dict]:
        """Every scored submission with its team's name, oldest first."""
        with self.read() as conn:
            rows = conn.execute(_with_team().where(submissions.c.status == "done")
                                .order_by(submissions.c.finished_at, submissions.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def ids(self) -> set[str]:
        """Every submission id (to tell kept uploads from orphans)."""
        with self.read() as conn:
            return {r[0] for r in conn.execute(select(submissions.c.id)).all()}

    def counts(self) -> dict[str, int]:
        """Submissions per status."""
        with self.read() as conn:
            rows = conn.execute(select(submissions.c.status, func.count()).group_by(submissions.c.status)).all()
        out = dict.fromkeys(STATUSES, 0)
        out.update({str(k): int(v) for k, v in rows})
        return out

    def version(self) -> tuple[int, dt.datetime | None]:
        """``(done submissions, latest finish)``: changes whenever the leaderboard does."""
        with self.read() as conn:
            row = conn.execute(select(func.count(), func.max(submissions.c.finished_at))
                               .where(submissions.c.status == "done")).first()
        return int(row[0]), row[1]
