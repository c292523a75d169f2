"""Bearer-token authentication (``AGENT_API_KEYS``), throttled per client address after failed
attempts (``AUTH_FAILURE_LIMIT``). The per-client limits are ``service.admission``'s.

    ProblemError
    └── AuthenticationFailed   401, a missing or wrong key; ``reason`` says which
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import time
from typing import TYPE_CHECKING, Literal

from fastapi import Request
from limits import parse, storage, strategies

from service.errors import ProblemError

if TYPE_CHECKING:
    from service.metrics import Metrics

AuthFailure = Literal["missing", "wrong"]  # why a key was refused: a metric label
_FAILURES = "auth-failure"  # the failed attempts' namespace in the limiter's storage


def client_address(request: Request) -> str:
    """Whom the limits count without a key: the client's address (the peer's, or, from a
    proxy that ``FORWARDED_ALLOW_IPS`` trusts, the one its ``X-Forwarded-For`` names: uvicorn's
    proxy-headers middleware reads it; from anybody else that header is text the client wrote,
    and trusting it would let a guesser pick a fresh address for every attempt), an IPv6 one
    by its /64 (``address_group``)."""
    return address_group(request.client.host) if request.client else "unknown"


class AuthenticationFailed(ProblemError):
    """401: the key is missing (or not a Bearer token) or wrong."""

    def __init__(self, reason: AuthFailure, detail: str, challenge: str) -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": challenge})
        self.reason: AuthFailure = reason


class FailedAuthThrottle:
    """At most ``rate`` failed attempts (e.g. ``20/minute``, in a moving window) per client
    address; past it the address is blocked until its oldest failure leaves the window.

    Refused attempts do not count as failures, so a block lasts one window at most and a
    guesser gets ``rate`` guesses per window. An IPv6 client is counted by its /64, which is
    what one subscriber usually holds: counted per address, it could take a fresh one for
    every attempt. In-process (each worker counts alone); its storage is
    the synchronous in-memory one (a dict and a lock, no I/O), so that ``Authenticator.client``
    stays a plain function every caller can use. ``""`` disables it."""

    def __init__(self, rate: str) -> None:
        self.limit = parse(rate) if rate else None
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def blocked_for(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it is not blocked."""
        if self.limit is None or self._limiter.test(self.limit, _FAILURES, address_group(address)):
            return None
        stats = self._limiter.get_window_stats(self.limit, _FAILURES, address_group(address))
        return max(1, math.ceil(stats.reset_time - time.time()))  # never a second too early

    def failed(self, address: str) -> None:
        if self.limit is not None:
            self._limiter.hit(self.limit, _FAILURES, address_group(address))


def address_group(address: str) -> str:
    """Whom an address counts with: itself, or its /64 for IPv6, which is what one
    subscriber usually holds (counted per address, eight addresses of one /64 took every run
    slot of the service: red-team pass DB). Given a group, the same group."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # not an IP (e.g. "unknown"): counted as it is
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is that IPv4 client
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Authenticator:
    """Checks ``Authorization: Bearer <token>`` against the configured keys in constant time,
    unless the client's address is blocked after too many failed attempts
    (``FailedAuthThrottle``); ``metrics`` counts the failures and the refused attempts. With no
    keys configured, every request is let through (nothing can fail, nothing is throttled).

    A blocked address gets 429 whatever key it sends, the right one included, and the key is
    not even compared: were it still checked, a right guess would get a 200 and a wrong one a
    429, which tells a guesser as much as a 401 does and slows it down not at all. Only the
    address is blocked, never the key, so a guesser cannot lock the key's owner out from
    elsewhere (clients behind one NAT share a block: the price of counting per address). A
    missing key counts as a failure like a wrong one: both are requests the key check turned
    away, and neither is how a client that holds a key talks to the service."""

    def __init__(self, keys: tuple[str, ...], *, failure_limit: str, metrics: Metrics) -> None:
        self._keys = tuple(k.encode() for k in keys)
        self._throttle = FailedAuthThrottle(failure_limit)
        self._metrics = metrics

    def client(self, request: Request) -> str | None:
        """The token of an authenticated request (None when auth is off); raises 429 while
        the address is blocked, else ``AuthenticationFailed`` (401) without a valid key."""
        if not self._keys:
            return None
        address = client_address(request)
        retry = self._throttle.blocked_for(address)
        if retry is not None:
            self._metrics.auth_throttled.inc()
            raise ProblemError(
                429,
                f"too many failed API-key attempts from this address (limit "
                f"{self._throttle.limit}); retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        try:
            return self._token(request)
        except AuthenticationFailed as exc:
            self._metrics.auth_failures.labels(exc.reason).inc()
            self._throttle.failed(address)
            raise

    def _token(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed(
                "missing", "missing API key: send 'Authorization: Bearer <key>'", "Bearer"
            )
        candidate = token.strip().encode()
        # Compare against every key, so timing does not tell which one nearly matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise AuthenticationFailed("wrong", "wrong API key", 'Bearer error="invalid_token"')
        return token.strip()
