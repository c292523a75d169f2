"""The MCP door: ``/mcp``, a Model Context Protocol server over streamable HTTP (the tools
are in :mod:`service.mcp_server`).

Before the SDK sees a request, :class:`McpGuard` checks what the specification asks of a
server reachable from a browser: the key (401 as anywhere else), and the ``Host``/``Origin``
pair against DNS rebinding. A page on another site must not drive a local agent: without keys
the ``Host`` must be this machine's (or one of ``ALLOWED_HOSTS``), and an ``Origin``, when a
browser sends one, must name one of those hosts; with keys (which a page cannot send for
itself), an ``Origin`` must be the server's own.

The SDK (``mcp``) takes about a second of CPU to import, a fifth of the embedded model's
cold-start budget (issue 12), so :class:`McpDoor` loads it and starts its session manager on
the first request to ``/mcp``, not at start-up: a server nobody asks over MCP never pays it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog
from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ProblemError, problem
from service.hosts import hostname, known, port, served_hosts
from service.settings import Settings
from service.state import AppState

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

log = structlog.get_logger(__name__)
PATH = "/mcp"
CLIENT = "reactpal.client"  # the scope key where McpGuard leaves the caller's key
START_TIMEOUT_S = 30.0  # importing the SDK and starting its session manager


def mount(app: FastAPI, settings: Settings) -> McpDoor:
    """Add ``/mcp`` to ``app``; the returned door's ``running()`` is entered in the app's
    lifespan (until then, and after, ``/mcp`` answers 503)."""
    door = McpDoor(lambda: _build_server(app, settings))
    guard = McpGuard(door, settings, state=lambda: app.state.reactpal)
    # No GET: the server is stateless, so its stream from server to client could never
    # carry anything, yet the SDK held it open with a ping every 15 s, which no proxy's idle
    # timeout ends: 3,000 of them from one key held 3,000 descriptors (red-team pass CV).
    # The specification lets a server answer 405 to it.
    app.router.routes.append(Route(PATH, endpoint=guard, methods=["POST", "DELETE"]))
    return door


def _build_server(app: FastAPI, settings: Settings) -> MCPServer:
    from service.mcp_server import build_server  # the SDK: imported here, on first use

    return build_server(app, settings)


class McpDoor:
    """The SDK's endpoint, started on the first request of each lifespan (the SDK's session
    manager runs only once, and an app's lifespan may run more than once: tests, the schema
    fuzzing). Its session manager runs in a task of its own, which the lifespan's end stops."""

    def __init__(self, build: Callable[[], MCPServer]) -> None:
        self.build = build
        self.endpoint: ASGIApp | None = None
        self._starting: asyncio.Lock | None = None  # while the lifespan runs
        self._stop: asyncio.Event | None = None
        self._serving: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self._starting = asyncio.Lock()
        try:
            yield
        finally:
            self._starting = self.endpoint = None
            if self._serving is not None and self._stop is not None:
                self._stop.set()
                with contextlib.suppress(Exception):
                    await self._serving
            self._serving = self._stop = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoint or await self._start()
        if endpoint is None:
            await problem(503, "the MCP endpoint is not running")(scope, receive, send)
            return
        await endpoint(scope, receive, send)

    async def _start(self) -> ASGIApp | None:
        starting = self._starting
        if starting is None:
            return None
        async with starting:
            if self.endpoint is not None or self._starting is not starting:
                return self.endpoint
            try:
                async with asyncio.timeout(START_TIMEOUT_S):
                    # Imported on a thread: the event loop goes on serving meanwhile.
                    server = await asyncio.to_thread(self.build)
                    self.endpoint = await self._serve(server)
            except Exception:
                log.exception("the MCP endpoint could not start")
                return None
            return self.endpoint

    async def _serve(self, server: MCPServer) -> ASGIApp:
        inner = server.streamable_http_app(
            streamable_http_path=PATH, stateless_http=True, json_response=True
        )
        endpoint = next(r.endpoint for r in inner.routes if isinstance(r, Route) and r.path == PATH)
        ready, stop = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with server.session_manager.run():
                ready.set()
                await stop.wait()

        task = asyncio.create_task(serve(), name="mcp-session-manager")
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiting.cancel()
            await task  # raises what stopped it
            raise RuntimeError("the MCP session manager stopped as it started")
        self._serving, self._stop = task, stop
        return endpoint


class McpGuard:
    """Key, ``Host`` and ``Origin`` checks in front of the SDK's endpoint (see the module
    docstring); the caller's key is left in the scope for the tools."""

    def __init__(self, app: ASGIApp, settings: Settings, *, state: Callable[[], AppState]) -> None:
        self.app = app
        self.state = state
        self.keys = bool(settings.agent_api_keys)
        self.hosts = served_hosts(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        refusal = self._refusal(request)
        if refusal is not None:
            await problem(403, refusal)(scope, receive, send)
            return
        try:
            client = self.state().auth.client(request)
        except ProblemError as exc:
            await problem(exc.status, exc.detail, headers=exc.headers)(scope, receive, send)
            return
        scope[CLIENT] = client
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> str | None:
        host = hostname(request.headers.get("host", ""))
        origin = request.headers.get("origin")
        if not self.keys and not known(host, self.hosts):
            return (
                "without API keys, MCP requests must name this machine in their Host header "
                "(against DNS rebinding); list the names clients use in ALLOWED_HOSTS"
            )
        if origin is None:
            return None  # not a browser, or a same-origin request that omits it
        origin_host = hostname(urlsplit(origin).netloc)
        same = origin_host == host and port(urlsplit(origin)) == _port_of(request)
        if self.keys and same:
            return None
        if not self.keys and known(origin_host, self.hosts):
            return None
        return "cross-origin MCP requests are refused"


def _port_of(request: Request) -> int | None:
    return port(urlsplit(f"{request.url.scheme}://{request.headers.get('host', '')}"))
