"""Pure ASGI middleware of the service: a cap on request bodies, enforced while they arrive (a chunked upload
cannot get past it), and security headers on every response."""

from __future__ import annotations

import json


class BodyTooLarge(Exception):
    """The request body passed the cap."""


class BodySizeLimit:
    """ASGI middleware: bodies over ``max_bytes`` get 413, announced or not (``file_bytes``, the file cap the
    body's limit allows for, is what the refusal names).

    A ``Content-Length`` over the cap is answered at once, before a byte is read; a body without one is counted
    as it arrives and :class:`BodyTooLarge` raised from ``receive`` when it passes the cap (the upload handler
    turns that into the same 413).
    """

    def __init__(self, app, max_bytes: int, file_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.file_bytes = max_bytes if file_bytes is None else file_bytes

    def _reason(self, received: str) -> str:
        return f"the request is {received}; this service accepts predictions files of at most {self.file_bytes} bytes"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                announced = int(length)
            except ValueError:
                announced = -1
            if announced < 0:
                await _reply(send, 400, "Content-Length is not a number of bytes")
                return
            if announced > self.max_bytes:
                await _reply(send, 413, self._reason(f"{announced} bytes"))
                return
        seen = 0
        limit = self.max_bytes

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(self._reason(f"over {limit} bytes (and still arriving)"))
            return message

        started = False

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked_send)
        except BodyTooLarge as exc:                # raised where the handler did not turn it into a 413 itself
            if not started:
                await _reply(send, 413, str(exc))


async def _reply(send, status: int, reason: str) -> None:
    body = json.dumps({"detail": reason}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """ASGI middleware: ``headers`` added to every HTTP response that does not set them itself."""

    def __init__(self, app, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *((k, v) for k, v in self.headers if k not in present)]}
            await send(message)

        await self.app(scope, receive, with_headers)
