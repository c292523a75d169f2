"""Which hosts the service answers for: ``ALLOWED_HOSTS`` (requests naming another host in
their Host header get a 400 problem), and, on a server without API keys, what a browser may
make it do (:class:`LocalBrowserGuard`)."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import problem
from service.settings import Settings, is_loopback

# A Host header: a name or IPv4, or a bracketed IPv6, then an optional port; nothing else.
_HOST_HEADER = re.compile(r"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class TrustedHost(TrustedHostMiddleware):
    """``ALLOWED_HOSTS``, with Starlette's patterns (``*.domain`` included), answering a
    foreign or malformed Host with a 400 problem document like every other error: Starlette's
    own answers in plain text and, for a ``www.`` pattern, redirects to a URL built from that
    very header. (Its Host parser is private, hence ``_HOST_HEADER``.) ``open_paths`` answer
    any Host: container and kubelet probes send their own (127.0.0.1, the pod's IP), and the
    probes build nothing from it."""

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: Sequence[str] = (),
        open_paths: Collection[str] = ("/healthz", "/readyz"),
    ) -> None:
        super().__init__(app, list(allowed_hosts) or ["*"], www_redirect=False)
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        checked = scope["type"] == "http" and scope["path"] not in self.open_paths
        if checked and not self._trusted(Headers(scope=scope).get("host", "")):
            # The Host is not echoed: it is the client's text.
            response = problem(400, "the Host header names no host this server answers for")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _trusted(self, host_header: str) -> bool:
        if self.allow_any:
            return True
        match = _HOST_HEADER.fullmatch(host_header)
        host = match.group(1).lower() if match else ""
        return known(host, self.allowed_hosts)


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def served_hosts(settings: Settings) -> tuple[str, ...]:
    """The host names a request may name: ``ALLOWED_HOSTS``, else this machine's."""
    hosts = [h.lower() for h in settings.allowed_hosts]
    if not hosts:
        hosts = list(LOOPBACK_NAMES)
        if not is_loopback(settings.host) and settings.host not in ("0.0.0.0", "::"):
            hosts.append(settings.host.lower())
    return tuple(hosts)


def hostname(netloc: str) -> str:
    """The host of a ``Host`` header or an origin's netloc, without its port, lower-case."""
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1].lower()
    return netloc.rsplit(":", 1)[0].lower() if netloc.count(":") == 1 else netloc.lower()


def port(parts: Any) -> int | None:
    try:
        return parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return -1


def known(host: str, hosts: Sequence[str]) -> bool:
    """``host`` is one of ``hosts`` (``*.domain`` patterns, and ``*`` for any, included)."""
    return "*" in hosts or any(
        host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
        for pattern in hosts
    )


class LocalBrowserGuard:
    """A server without API keys (the quick start's) trusts whoever reaches it, so a web page
    must not be able to reach it: a request's ``Host`` must name this machine (or one of
    ``ALLOWED_HOSTS``), against DNS rebinding, and a request that changes anything must not
    come from another site (a foreign ``Origin``, or ``Sec-Fetch-Site: cross-site``), against
    cross-site forms, which need no preflight. Red-team pass CV: a page on any site read
    every run and ran programs through a rebound name, and planted a document with a form.
    With keys, which a page cannot send for itself, this is the keys' job. ``/mcp`` has its
    own guard (``service.mcp_door``), and the probes answer any ``Host``."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        skipped: Collection[str] = ("/healthz", "/readyz"),
        skipped_prefixes: tuple[str, ...] = ("/mcp",),
    ) -> None:
        self.app = app
        self.active = not settings.agent_api_keys
        self.hosts = served_hosts(settings)
        self.skipped = frozenset(skipped)
        self.skipped_prefixes = skipped_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.active
            and scope["type"] == "http"
            and scope["path"] not in self.skipped
            and not scope["path"].startswith(self.skipped_prefixes)
        ):
            refusal = self._refusal(scope)
            if refusal is not None:
                await problem(403, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        if not known(hostname(headers.get("host", "")), self.hosts):
            return (
                "without API keys, requests must name this machine in their Host header "
                "(against DNS rebinding); list the names clients use in ALLOWED_HOSTS"
            )
        if scope["method"] in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        foreign = origin is not None and not known(hostname(urlsplit(origin).netloc), self.hosts)
        if foreign or headers.get("sec-fetch-site") == "cross-site":
            return (
                "without API keys, requests from another site's pages that change anything "
                "are refused (set AGENT_API_KEYS to serve browsers on other sites)"
            )
        return None
