"""The HTTP API and pages of the scoring service (FastAPI, served by uvicorn: ``bilevelbench serve``).

Endpoints (``docs/service.md``):

- ``POST /api/v1/submissions``: multipart ``dataset`` + ``file``, header ``Authorization: Bearer TOKEN``;
  202 ``{"id": ...}`` once the upload passed every check and is stored and queued;
- ``GET /api/v1/submissions/{id}``: status, public metrics, and after the reveal hidden metrics; 404 to other teams;
- ``GET /api/v1/leaderboard``, ``GET /api/v1/datasets``, ``GET /api/v1/health``;
- ``GET /``: the leaderboard page (the renderer of ``bilevelbench leaderboard``), ``GET /plots/NAME.svg``.

Every refusal is JSON ``{"detail": reason}`` with one reason. Nothing a submitter sends is rendered unescaped:
the page escapes every string and its Content-Security-Policy allows no other script than its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import uuid
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from bilevelbench import __version__
from bilevelbench.leaderboard.html import CONTENT_SECURITY_POLICY
from bilevelbench.serve.board import Board, leaderboard_rows
from bilevelbench.serve.catalog import DatasetEntry, load_catalog
from bilevelbench.serve.config import ServiceConfig, utc_now
from bilevelbench.serve.database import Database, QuotaExceeded, Team, aware_utc
from bilevelbench.serve.middleware import BodySizeLimit, BodyTooLarge, SecurityHeaders
from bilevelbench.serve.uploads import UploadChecker, UploadRules
from bilevelbench.serve.workers import WorkerPool, upload_path

log = logging.getLogger(__name__)

SUBMISSION_ID = re.compile(r"[0-9a-f]{32}")
PLOT_NAME = re.compile(r"[a-z0-9-]{1,120}\.svg")
#: Multipart framing around the file: the request may exceed the file cap by this much.
FORM_OVERHEAD = 64 * 1024
CHUNK = 1 << 20
UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["dataset", "file"],
    "properties": {"dataset": {"type": "string", "description": "a dataset name (GET /api/v1/datasets)"},
                   "file": {"type": "string", "format": "binary",
                            "description": "a predictions file (docs/format.md) answering every instance"}}}}}}}
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "X-Frame-Options": "DENY"}


def _iso(when) -> str | None:
    return None if when is None else when.isoformat()


def _refuse(status: int, reason: str, headers: dict | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=reason, headers=headers)


class Service:
    """The parts of a running service, built from its config (the catalog is read here, so a bad ``--data``
    fails before the server starts)."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.db = Database(config.db_url)
        self.catalog: dict[str, DatasetEntry] = load_catalog(config.data_dir, config.split, self.db.secret(),
                                                             config.public_fraction)
        (Path(config.state_dir) / "uploads").mkdir(parents=True, exist_ok=True)
        self.pool = WorkerPool(config, self.db, self.catalog)
        self.checker: UploadChecker | None = None
        self.board = Board(self.db, config)

    def start(self) -> None:
        """Recover what a killed predecessor left, drop orphaned uploads, start checkers and scorers."""
        requeued, failed = self.db.recover(self.config.max_attempts, utc_now())
        if requeued or failed:
            log.info("recovered %d submission(s) that were being scored (%d failed after too many tries)",
                     requeued, failed)
        known = self.db.ids()
        uploads = Path(self.config.state_dir) / "uploads"
        for path in uploads.iterdir():
            if path.name.startswith(".incoming-") or (path.suffix == ".h5" and path.stem not in known):
                path.unlink(missing_ok=True)
        self.checker = UploadChecker(processes=min(2, os.cpu_count() or 1))
        self.pool.start()

    def stop(self) -> None:
        """Stop scorers (their submissions go back to the queue) and checkers."""
        self.pool.stop()
        if self.checker is not None:
            self.checker.close()
        self.db.close()

    # -- requests -------------------------------------------------------------------------------
    def team(self, request: Request) -> Team:
        """The team of the request's bearer token, or 401."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not token.strip():
            raise _refuse(401, "this endpoint needs 'Authorization: Bearer TOKEN' (a team token from "
                               "'bilevelbench serve add-team')", challenge)
        team = self.db.team_for_token(token.strip())
        if team is None:
            raise _refuse(401, "the bearer token is not a valid team token", challenge)
        return team

    def submission_view(self, row: dict) -> dict:
        """What the owner of a submission sees."""
        def metrics(text: str | None) -> dict | None:
            return None if not text else json.loads(text)["metrics"]

        revealed = self.config.revealed()
        return {"id": row["id"], "dataset": row["dataset"], "split": row["split"], "status": row["status"],
                "reason": row["reason"], "team": row["team"],
                "solver": {"name": row["solver_name"], "version": row["solver_version"]},
                "submitted_at": _iso(aware_utc(row["created_at"])), "started_at": _iso(aware_utc(row["started_at"])),
                "finished_at": _iso(aware_utc(row["finished_at"])),
                "attempts": row["attempts"],
                "metrics": {"public": metrics(row["public_record"]),
                            "hidden": metrics(row["full_record"]) if revealed else None},
                "hidden_revealed": revealed,
                "reveal_at": _iso(self.config.reveal_at)}

    def rules(self, entry: DatasetEntry) -> UploadRules:
        """What an upload for ``entry`` must match."""
        return UploadRules(dataset=entry.name, split=self.config.split, y_dim=entry.y_dim, z_dim=entry.z_dim,
                           n_instances=entry.n_instances, sha256=(entry.sha256, *entry.accepted_sha256))


def _receive_upload(upload: UploadFile, target: Path, cap: int) -> tuple[int, str]:
    """Copy an upload (already spooled by the form parser) to ``target``; its size and sha256. 413 past ``cap``."""
    digest, size = hashlib.sha256(), 0
    upload.file.seek(0)
    with open(target, "wb") as out:
        while chunk := upload.file.read(CHUNK):
            size += len(chunk)
            if size > cap:
                raise _refuse(413, f"the predictions file is over {cap} bytes; this service accepts predictions "
                                   f"files of at most {cap} bytes")
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size, digest.hexdigest()


def create_app(config: ServiceConfig) -> FastAPI:
    """The ASGI application of a service, wrapped in its body-size cap and security headers; its ``service``
    attribute holds the :class:`Service`."""
    service = Service(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="bilevelbench scoring service", version=__version__, lifespan=lifespan,
                  description="Submit predictions for data sets whose test labels only this service holds.")
    app.state.service = service

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/api/v1/health")
    def health() -> dict:
        return {"status": "ok", "version": __version__, "datasets": sorted(service.catalog),
                "submissions": service.db.counts()}

    @app.get("/api/v1/datasets")
    def datasets() -> list[dict]:
        return [{"name": e.name, "family": e.family, "split": config.split, "n_instances": e.n_instances,
                 "public_instances": int(e.public_rows.size), "y_dim": e.y_dim, "z_dim": e.z_dim,
                 "content_digest": e.content_digest} for e in service.catalog.values()]

    @app.post("/api/v1/submissions", status_code=202, openapi_extra=UPLOAD_SCHEMA,
              responses={401: {"description": "no valid team token"}, 413: {"description": "the file is too large"},
                         422: {"description": "the file failed a check (the reason says which)"},
                         429: {"description": "the team's daily quota is spent"}})
    async def submit(request: Request) -> JSONResponse:
        team = await run_in_threadpool(service.team, request)
        cap = config.max_upload_bytes
        try:                                   # before a byte of the body is read
            await run_in_threadpool(service.db.check_quota, team, config.daily_quota, utc_now())
        except QuotaExceeded as exc:
            raise _refuse(429, str(exc)) from None
        try:
            form = await request.form(max_files=1, max_fields=4)
        except BodyTooLarge as exc:
            raise _refuse(413, str(exc)) from None
        except ClientDisconnect:
            raise _refuse(400, "the client went away before the upload was complete") from None
        except (ValueError, KeyError, StarletteHTTPException) as exc:
            detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
            raise _refuse(400, f"expected a multipart/form-data body with fields 'dataset' and 'file' ({detail})"
                          ) from None
        try:
            name, upload = form.get("dataset"), form.get("file")
            if not isinstance(name, str) or not name.strip():
                raise _refuse(400, "the form has no 'dataset' field; expected the name of a data set this service "
                                   f"scores ({', '.join(sorted(service.catalog))})")
            if not isinstance(upload, UploadFile):
                raise _refuse(400, "the form has no 'file' upload; expected a predictions file (docs/format.md)")
            entry = service.catalog.get(name.strip())
            if entry is None:
                raise _refuse(422, f"unknown dataset {name.strip()[:100]!r}; this service scores "
                                   f"{', '.join(sorted(service.catalog))}")
            incoming = Path(config.state_dir) / "uploads" / f".incoming-{uuid.uuid4().hex}.h5"
            try:
                size, sha = await run_in_threadpool(_receive_upload, upload, incoming, cap)
                verdict = await run_in_threadpool(service.checker.check, incoming, service.rules(entry))
                if not verdict["ok"]:
                    raise _refuse(422, verdict["reason"])

                def place(sid: str) -> None:
                    os.replace(incoming, upload_path(config.state_dir, sid))

                try:
                    sid = await run_in_threadpool(
                        service.db.submit, team, entry.name, config.split, verdict["solver_name"],
                        verdict["solver_version"], size, sha, config.daily_quota, utc_now(), place)
                except QuotaExceeded as exc:
                    raise _refuse(429, str(exc)) from None
            finally:
                incoming.unlink(missing_ok=True)
        finally:
            await form.close()
        service.pool.notify()
        log.info("submission %s queued: team %s, %s, %d bytes", sid, team.name, entry.name, size)
        return JSONResponse({"id": sid, "status": "queued", "url": f"/api/v1/submissions/{sid}"}, status_code=202)

    @app.get("/api/v1/submissions/{sid}")
    def submission(sid: str, request: Request) -> dict:
        team = service.team(request)
        row = service.db.get(sid) if SUBMISSION_ID.fullmatch(sid) else None
        if row is None or row["team_id"] != team.id:
            raise _refuse(404, f"team {team.name!r} has no submission {sid[:40]!r}")
        return service.submission_view(row)

    @app.get("/api/v1/leaderboard")
    def leaderboard() -> dict:
        return leaderboard_rows(service.db, config)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        path = service.board.page()
        return FileResponse(path, media_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"})

    @app.get("/plots/{name}", include_in_schema=False)
    def plot(name: str) -> FileResponse:
        path = service.board.plot(name) if PLOT_NAME.fullmatch(name) else None
        if path is None:
            raise _refuse(404, f"no plot named {name[:60]!r}")
        return FileResponse(path, media_type="image/svg+xml",
                            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    outer = BodySizeLimit(SecurityHeaders(app, SECURITY_HEADERS), config.max_upload_bytes + FORM_OVERHEAD,
                          config.max_upload_bytes)
    outer.service = service
    return outer
