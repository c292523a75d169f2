"""A request-body size cap and deadline, applied before anything reads the body."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import problem


class BodySizeLimit:
    """Refuses bodies above ``max_bytes`` with 413, whether or not Content-Length is sent,
    and bodies not whole within ``timeout_s`` of the first read with 408 (``BODY_TIMEOUT_S``:
    240 trickled ``/ask`` bodies held their connections, and 234 MB, for as long as their
    clients liked, red-team pass EJ). ``larger``: paths (full matches) allowed a bigger
    body, e.g. document uploads."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        larger: Sequence[tuple[str, int]] = (),
        timeout_s: float | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._larger = [(re.compile(pattern), limit) for pattern, limit in larger]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        max_bytes = next(
            (limit for pattern, limit in self._larger if pattern.fullmatch(path)), self.max_bytes
        )
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await _refuse(max_bytes, scope, receive, send)
            return
        received = 0
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        whole = False

        async def limited() -> Message:
            nonlocal received, deadline, whole
            if whole or self.timeout_s is None:  # (waiting for a disconnect: no deadline)
                message = await receive()
            else:
                if deadline is None:
                    deadline = loop.time() + self.timeout_s
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    raise _TooSlow from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                whole = not message.get("more_body", False)
                if received > max_bytes:
                    raise _TooLarge
            return message

        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except (_TooLarge, _TooSlow) as exc:
            if started:  # a stream read the body late (a GET's, for a disconnect): too late
                # for a 413 or 408; the response ends here (ASGI refused a second start, pass
                # EY), and the client resumes it as after any cut
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            elif isinstance(exc, _TooLarge):
                await _refuse(max_bytes, scope, receive, send)
            else:
                detail = f"the request body did not arrive within {self.timeout_s:g} s"
                await problem(408, detail, headers={"Connection": "close"})(scope, receive, send)


async def _refuse(max_bytes: int, scope: Scope, receive: Receive, send: Send) -> None:
    detail = f"request body is larger than {max_bytes} bytes"
    await problem(413, detail)(scope, receive, send)


class _TooSlow(BaseException):
    """As ``_TooLarge``: must reach the middleware, never FastAPI's 400."""


class _TooLarge(BaseException):
    """Not an ``Exception``: FastAPI turns any ``Exception`` raised while it reads the body
    into a 400 "There was an error parsing the body"; this one must reach the middleware."""
