"""The service's leaderboard: the same records, ranking and renderer as ``bilevelbench leaderboard``.

Two views per data set: the score on the fixed public subset, shown as soon as a submission is scored, and the
full hidden score, shown only after the reveal date. Records are rebuilt from the database; the HTML page and its
plots are rendered again only when a submission finished since the last rendering.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from pathlib import Path

from bilevelbench.leaderboard import build_leaderboard
from bilevelbench.leaderboard.html import CONTENT_SECURITY_POLICY, escape_html
from bilevelbench.leaderboard.ranking import group_records, rank_metric
from bilevelbench.leaderboard.records import parse_record
from bilevelbench.serve.config import ServiceConfig
from bilevelbench.serve.database import Database, aware_utc

log = logging.getLogger(__name__)

SHOWN_METRICS = ("feasible_rate", "gap_mean", "gap_median", "gap_max", "signed_gap_mean", "n_instances",
                 "n_feasible")


def views(config: ServiceConfig) -> tuple[str, ...]:
    """The views shown now: ``public`` always, ``hidden`` after the reveal."""
    return ("public", "hidden") if config.revealed() else ("public",)


def _records(db: Database, config: ServiceConfig) -> list[tuple[str, dict, dict]]:
    """``(view, submission row, record)`` of every scored submission in every view shown now."""
    out = []
    for row in db.done():
        for view in views(config):
            text = row["public_record"] if view == "public" else row["full_record"]
            if text:
                out.append((view, row, json.loads(text)))
    return out


def intro(config: ServiceConfig) -> tuple[str, ...]:
    """What the page says about its views."""
    share = f"{100 * config.public_fraction:.0f}%"
    first = (f"Scores of submissions to this service. Each data set's hidden split ({config.split!r}) is scored "
             f"in full, but until the reveal only a fixed {share} of its instances (the same for everyone, not "
             "disclosed) is shown: the sections headed 'public'.")
    if config.reveal_at is None:
        second = "Full hidden scores are not revealed on this service."
    elif config.revealed():
        second = f"Revealed on {config.reveal_at.isoformat()}: the sections headed 'hidden' rank the full split."
    else:
        second = f"Full hidden scores are revealed on {config.reveal_at.isoformat()}."
    return first, second


def leaderboard_rows(db: Database, config: ServiceConfig) -> dict:
    """The JSON leaderboard (``GET /api/v1/leaderboard``): ranked rows per data set and view."""
    parsed = []
    meta = {}
    for view, row, record in _records(db, config):
        path = Path(f"{row['id']}-{view}.json")
        parsed.append(parse_record(record, path))
        meta[path] = (view, row)
    groups = []
    for group in group_records(parsed):
        first_view = meta[group.entries[0].record.path][0]
        entries = []
        for entry in group.entries:
            view, row = meta[entry.record.path]
            metric = rank_metric(entry.record.dataset.family)
            shown = {key: entry.record.metrics.get(key) for key in (*SHOWN_METRICS, metric)}
            entries.append({"rank": entry.rank, "team": row["team"], "solver": row["solver_name"],
                            "solver_version": entry.record.solver.version, "status": entry.record.status,
                            "metrics": shown, "rank_metric": metric,
                            "submitted_at": aware_utc(row["created_at"]).isoformat()})
        groups.append({"dataset": group.dataset.name, "family": group.dataset.family, "view": first_view,
                       "split": group.dataset.split, "n_instances": group.dataset.n_instances, "rows": entries})
    return {"revealed": config.revealed(),
            "reveal_at": None if config.reveal_at is None else config.reveal_at.isoformat(),
            "public_fraction": config.public_fraction, "groups": groups}


EMPTY_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>bilevelbench leaderboard</title>
</head>
<body>
<main>
<h1>bilevelbench leaderboard</h1>
{paragraphs}
<p>No submission has been scored yet.</p>
</main>
</body>
</html>
"""


class Board:
    """The rendered page and plots in ``state_dir/site``, rebuilt when the scored submissions change."""

    def __init__(self, db: Database, config: ServiceConfig) -> None:
        self.db = db
        self.config = config
        self.site = Path(config.state_dir) / "site"
        self._lock = threading.Lock()
        self._version: tuple | None = None

    def page(self) -> Path:
        """The path of the current ``index.html`` (rendered first if out of date)."""
        version = (self.db.version(), self.config.revealed())
        with self._lock:
            if version != self._version or not (self.site / "index.html").is_file():
                self._render()
                self._version = version
        return self.site / "index.html"

    def plot(self, name: str) -> Path | None:
        """A rendered plot by file name, or None."""
        self.page()
        path = self.site / "plots" / name
        return path if path.is_file() else None

    def _render(self) -> None:
        records = _records(self.db, self.config)
        staging = Path(tempfile.mkdtemp(prefix="board-", dir=self.site.parent))
        try:
            if records:
                source = staging / "records"
                source.mkdir()
                for view, row, record in records:
                    (source / f"{row['id']}-{view}.json").write_text(json.dumps(record, allow_nan=False))
                build_leaderboard(source, staging / "site", intro(self.config))
            else:
                (staging / "site").mkdir()
                paragraphs = "\n".join(f"<p>{escape_html(text)}</p>" for text in intro(self.config))
                (staging / "site" / "index.html").write_text(
                    EMPTY_PAGE.format(csp=escape_html(CONTENT_SECURITY_POLICY), paragraphs=paragraphs))
            old = self.site.with_name("site.old")
            shutil.rmtree(old, ignore_errors=True)
            if self.site.exists():
                self.site.rename(old)
            (staging / "site").rename(self.site)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("leaderboard rendered from %d record(s)", len(records))
