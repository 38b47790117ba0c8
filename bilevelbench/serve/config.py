"""Settings of the scoring service (``bilevelbench serve --help`` lists them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from bilevelbench.errors import UsageError


@dataclass(frozen=True)
class ServiceConfig:
    """What one running service needs.

    Attributes
    ----------
    data_dir : Path
        The private (full) data set files, ``*.h5``; never served.
    db_url : str
        SQLAlchemy URL of the database (``sqlite:///FILE``, ``postgresql+psycopg://...``).
    state_dir : Path
        Accepted uploads (``uploads/``) and the rendered leaderboard (``site/``).
    workers : int
        Scorer processes running at once.
    daily_quota : int
        Accepted submissions per team per UTC day.
    max_upload_bytes : int
        Largest accepted predictions file.
    public_fraction : float
        Share of the scored split shown on the public leaderboard before the reveal.
    reveal_at : datetime or None
        When full hidden scores are shown (never when None).
    split : str
        The hidden split scored by the service.
    job_timeout_s : float
        A scoring run that takes longer fails with that reason.
    max_attempts : int
        A submission whose scorer died this many times (a service killed while scoring counts) fails.
    """

    data_dir: Path
    db_url: str
    state_dir: Path
    workers: int = 2
    daily_quota: int = 5
    max_upload_bytes: int = 64 * 2**20
    public_fraction: float = 0.2
    reveal_at: dt.datetime | None = None
    split: str = "test"
    job_timeout_s: float = 900.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1; received {self.workers}")
        if self.daily_quota < 1:
            raise UsageError(f"--daily-quota must be at least 1; received {self.daily_quota}")
        if self.max_upload_bytes < 1024:
            raise UsageError(f"the upload limit must be at least 1 KiB; received {self.max_upload_bytes} bytes")
        if not 0.0 < self.public_fraction <= 1.0:
            raise UsageError(f"--public-fraction must be in (0, 1]; received {self.public_fraction}")
        if self.job_timeout_s <= 0:
            raise UsageError(f"--job-timeout must be positive; received {self.job_timeout_s}")

    def revealed(self, now: dt.datetime | None = None) -> bool:
        """Whether full hidden scores are shown now."""
        now = now or dt.datetime.now(dt.UTC)
        return self.reveal_at is not None and now >= self.reveal_at


def parse_reveal(text: str | None) -> dt.datetime | None:
    """An ISO 8601 date or time (UTC when no zone is given) as an aware datetime; None for ``never``/None."""
    if text is None or text.strip().lower() in ("", "never"):
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--reveal-at expects an ISO 8601 date or time such as 2027-03-01 or "
                         f"2027-03-01T12:00+00:00, or 'never'; received {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)
