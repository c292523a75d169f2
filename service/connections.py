"""uvicorn's HTTP/1.1 protocol with two bounds it lacks: time for a request's headers, and
connections open at once from one address.

uvicorn (h11) keeps a connection whose headers never finish open for good, and accepts as
many as the process has descriptors. Red-team pass CV held 21,000 such connections from one
host, with no key: the process ran out of descriptors, ``/healthz`` and ``/ask`` stopped
answering for everyone, and asyncio logged the failed ``accept`` 141,311 times in 46 s. A
reverse proxy with header timeouts prevents this; this does it for a server run without one
(``HOST=0.0.0.0``, Docker):

* a request's headers must arrive within ``HEADER_TIMEOUT_S`` of the connection's start or of
  the previous response's end (uvicorn's keep-alive timeout stops at the first byte);
* one address holds at most ``MAX_CONNECTIONS_PER_ADDRESS`` connections at once; past them a
  new one is closed at once. A proxy named in ``FORWARDED_ALLOW_IPS`` is exempt (every client
  behind it shares its address).

Both come from the settings through uvicorn's ``Config`` (``service.__main__``), so each worker
process counts its own connections.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from service.auth import address_group

# Set by ``configure`` before uvicorn starts (and again in each worker: ``worker_app``).
HEADER_TIMEOUT_S = 10.0
MAX_CONNECTIONS_PER_ADDRESS = 64
_TRUSTED: tuple[str, ...] = ()
_OPEN: collections.Counter[str] = collections.Counter()  # connections per address, this process


def configure(header_timeout_s: float, per_address: int, trusted: tuple[str, ...]) -> None:
    global HEADER_TIMEOUT_S, MAX_CONNECTIONS_PER_ADDRESS, _TRUSTED
    HEADER_TIMEOUT_S, MAX_CONNECTIONS_PER_ADDRESS, _TRUSTED = header_timeout_s, per_address, trusted


def _trusted(address: str) -> bool:
    for allowed in _TRUSTED:
        if allowed == "*" or allowed == address:
            return True
        try:
            if ipaddress.ip_address(address) in ipaddress.ip_network(allowed, strict=False):
                return True
        except ValueError:
            continue
    return False


class BoundedH11Protocol(H11Protocol):
    """``H11Protocol`` with a deadline for each request's headers and a cap per address."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.client[0] if self.client else None
        self._address: str | None = None  # whom this connection counts with, if anyone
        self._deadline: asyncio.TimerHandle | None = None
        self._awaited: Any = None
        if peer is not None and not _trusted(peer):
            address = address_group(peer)  # an IPv6 client by its /64
            if _OPEN[address] >= MAX_CONNECTIONS_PER_ADDRESS:
                transport.abort()  # not counted: closed before it is served
                return
            _OPEN[address] += 1
            self._address = address
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        if self._address is not None:
            _OPEN[self._address] -= 1
            if _OPEN[self._address] <= 0:
                del _OPEN[self._address]
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._deadline is not None and self.scope is not self._awaited:
            self._stop_waiting()  # a request's headers have arrived: the app reads the rest

    def on_response_complete(self) -> None:
        super().on_response_complete()
        idle = self.cycle is None or self.cycle.response_complete  # no pipelined one began
        if idle and not self.transport.is_closing():
            self._await_headers()  # the next request on this connection

    def _await_headers(self) -> None:
        self._stop_waiting()
        self._awaited = self.scope
        self._deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_late)

    def _stop_waiting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self.scope is self._awaited and not self.transport.is_closing():
            self.transport.close()
