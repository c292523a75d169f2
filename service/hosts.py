"""``ALLOWED_HOSTS``: requests naming another host in their Host header get a 400 problem."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import problem

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
        return any(
            host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
            for pattern in self.allowed_hosts
        )
