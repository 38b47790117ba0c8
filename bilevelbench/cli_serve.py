"""Command-line front end of the scoring service: ``bilevelbench serve``, ``serve add-team``, ``serve teams``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bilevelbench.errors import UsageError

log = logging.getLogger("bilevelbench")

DEFAULT_STATE = Path("service-state")
DEFAULT_DB = "sqlite:///service-state/service.db"

SERVE_DESCRIPTION = """\
Host the scoring service: teams upload predictions files for data sets whose hidden test labels only this
service holds (the files in --data, never served); a bounded pool of scorer processes scores each upload with
the evaluator of 'bilevelbench score'. The leaderboard page (/) and its JSON (/api/v1/leaderboard) show the score
on a fixed public subset at once and the full hidden score after --reveal-at. Accepted submissions are kept in
the database and --state: a killed service finishes them after a restart.

API (docs/service.md):
  POST /api/v1/submissions        multipart: dataset=NAME, file=@PREDICTIONS.h5; Authorization: Bearer TOKEN
  GET  /api/v1/submissions/ID     status (queued, scoring, done, failed), metrics, reason
  GET  /api/v1/leaderboard        ranked rows;   GET /api/v1/datasets   what can be scored
"""

SERVE_EPILOG = """\
examples:
  # host: make the public release for users, keep the full files for the service
  bilevelbench release data/ --public --out releases/
  bilevelbench serve add-team "my lab" --db sqlite:///service-state/service.db     # prints the token once
  bilevelbench serve --data data/ --db sqlite:///service-state/service.db --port 8000 --reveal-at 2027-03-01

  # PostgreSQL instead of SQLite (pip install 'bilevelbench[postgres]')
  bilevelbench serve --data data/ --db postgresql+psycopg://bench@localhost/bench

  # submit (any HTTP client)
  curl -H "Authorization: Bearer $TOKEN" -F dataset=NAME -F file=@preds.h5 http://HOST:8000/api/v1/submissions
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``serve`` and its team commands."""
    p = sub.add_parser("serve", help="host the scoring service (hidden test labels, leaderboard, HTTP API)",
                       description=SERVE_DESCRIPTION, epilog=SERVE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, metavar="DIR",
                   help="folder of the private (full) data set files, *.h5, each known by its dataset name; a "
                        "NAME.public.h5 beside NAME.h5 lets predictions name the public file's sha256")
    p.add_argument("--db", default=DEFAULT_DB, metavar="URL",
                   help=f"SQLAlchemy database URL (default {DEFAULT_DB}; PostgreSQL: postgresql+psycopg://...)")
    p.add_argument("--state", type=Path, default=DEFAULT_STATE, metavar="DIR",
                   help=f"folder for accepted uploads and the rendered page (default {DEFAULT_STATE}/)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=2, metavar="K", help="scorer processes at once (default 2)")
    p.add_argument("--daily-quota", type=int, default=5, metavar="N",
                   help="accepted submissions per team per UTC day (default 5)")
    p.add_argument("--max-upload-mb", type=float, default=64.0, metavar="MB",
                   help="largest predictions file accepted (default 64)")
    p.add_argument("--public-fraction", type=float, default=0.2, metavar="F",
                   help="share of the hidden split shown on the public leaderboard (default 0.2, as ML4CO)")
    p.add_argument("--reveal-at", default=None, metavar="DATE",
                   help="ISO date or time from which full hidden scores are shown (default: never)")
    p.add_argument("--split", default="test", help="the hidden split the service scores (default test)")
    p.add_argument("--job-timeout", type=float, default=900.0, metavar="S",
                   help="a scoring run longer than this fails (default 900 s)")
    p.set_defaults(run=_run_serve)
    teams = p.add_subparsers(dest="serve_command", metavar="{add-team,teams}", required=False)
    add = teams.add_parser("add-team", help="register a team and print its token (shown once)",
                           description="Register a team and print its bearer token. Only the token's hash is "
                                       "stored: keep the token, it cannot be shown again.")
    add.add_argument("name", help="team name (1 to 64 printable characters, unique)")
    add.add_argument("--db", default=DEFAULT_DB, metavar="URL", help=f"database URL (default {DEFAULT_DB})")
    add.set_defaults(run=_run_add_team)
    listing = teams.add_parser("teams", help="list the registered teams")
    listing.add_argument("--db", default=DEFAULT_DB, metavar="URL", help=f"database URL (default {DEFAULT_DB})")
    listing.set_defaults(run=_run_teams)


def _needs_extra():
    try:
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"the scoring service needs the 'serve' extra ({exc.name} is missing): "
                         "pip install 'bilevelbench[serve]'") from None


def _run_add_team(args: argparse.Namespace) -> int:
    _needs_extra()
    from bilevelbench.serve.config import utc_now
    from bilevelbench.serve.database import Database

    db = Database(args.db)
    try:
        token = db.add_team(args.name, utc_now())
    finally:
        db.close()
    print(token)
    print(f"team {args.name.strip()!r} registered; keep this token, it is not stored and cannot be shown again",
          file=sys.stderr)
    return 0


def _run_teams(args: argparse.Namespace) -> int:
    _needs_extra()
    from bilevelbench.serve.database import Database

    db = Database(args.db)
    try:
        rows = db.list_teams()
    finally:
        db.close()
    if not rows:
        print("no teams yet: bilevelbench serve add-team NAME --db URL", file=sys.stderr)
    for name, created, count in rows:
        print(f"{name}\t{created.isoformat(timespec='seconds')}\t{count} submission(s)")
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    _needs_extra()
    import uvicorn

    from bilevelbench.serve.app import create_app
    from bilevelbench.serve.config import ServiceConfig, parse_reveal

    if args.data is None:
        raise UsageError("serve needs --data DIR, the folder of the private (full) data set files")
    config = ServiceConfig(data_dir=args.data, db_url=args.db, state_dir=args.state, workers=args.workers,
                           daily_quota=args.daily_quota, max_upload_bytes=int(args.max_upload_mb * 2**20),
                           public_fraction=args.public_fraction, reveal_at=parse_reveal(args.reveal_at),
                           split=args.split, job_timeout_s=args.job_timeout)
    app = create_app(config)
    log.info("serving %s on http://%s:%d/", ", ".join(sorted(app.service.catalog)), args.host,
             args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info",
                timeout_graceful_shutdown=10)
    return 0
