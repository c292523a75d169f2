"""Bearer-token authentication (``AGENT_API_KEYS``) and per-client rate limits."""

from __future__ import annotations

import hmac
import time

from fastapi import Request
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from service.errors import ProblemError


class Authenticator:
    """Checks ``Authorization: Bearer <token>`` against the configured keys in constant time.
    With no keys configured, every request is let through."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = tuple(k.encode() for k in keys)

    def client(self, request: Request) -> str | None:
        """The token of an authenticated request (None when auth is off); raises 401."""
        if not self._keys:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ProblemError(
                401,
                "missing API key: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        candidate = token.strip().encode()
        # Compare against every key, so timing does not tell which one nearly matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise ProblemError(
                401, "wrong API key", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return token.strip()


class RateLimiter:
    """A moving-window limit per client (its API key, else its address). In-process: with
    several replicas, each enforces its own share."""

    def __init__(self, rate: str) -> None:
        self._item = parse(rate) if rate else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def check(self, client: str) -> None:
        if self._item is None:
            return
        if not await self._limiter.hit(self._item, "ask", client):
            stats = await self._limiter.get_window_stats(self._item, "ask", client)
            retry = max(1, int(stats.reset_time - time.time()))
            raise ProblemError(
                429,
                f"rate limit of {self._item} exceeded; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
