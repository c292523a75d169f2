"""Request dependencies: the shared state and the API-key check."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth import client_address
from service.state import AppState, get_state

State = Annotated[AppState, Depends(get_state)]


# A stream whose client has not taken an event for this long is ended: a reader that never
# reads held its connection and its run's events for good (1,000 such followers: +120 MB).
SSE_SEND_TIMEOUT_S = 30.0


# Declares the scheme in OpenAPI (so Swagger UI offers "Authorize"); the check is ``Authenticator``.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="One of the server's AGENT_API_KEYS, needed when that setting is set.",
)


_READS = frozenset({"GET", "HEAD"})


async def authenticate(
    request: Request,
    state: State,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> str | None:
    """The caller's API key (None when keys are not configured); 401 without a valid one, 429
    from an address blocked after too many failed attempts (``service.auth``), and a read
    counted against ``READ_RATE_LIMIT`` (red-team pass FB: one key reading its own 156 KB
    run 35 times a second made every other key's ``/ask`` 11 times slower)."""
    client = state.auth.client(request)
    if request.method in _READS:
        await state.admission.check_rate(client or client_address(request), "read")
    return client


def authenticate_metrics(
    request: Request,
    state: State,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> None:
    """``/metrics``: one of ``METRICS_KEYS`` when set (the counters are every tenant's
    activity, which one tenant's key should not read), else any API key."""
    (state.metrics_auth or state.auth).client(request)


MetricsReader = Annotated[None, Depends(authenticate_metrics)]


Client = Annotated[str | None, Depends(authenticate)]


def owner_of(client: str | None) -> str:
    """Who runs, threads and feedback belong to: a hash of the caller's API key (the key
    itself is never stored), or ``""``, the one owner of a server without keys."""
    return hashlib.sha256(client.encode()).hexdigest()[:32] if client else ""


def owner(client: Client) -> str:
    return owner_of(client)


Owner = Annotated[str, Depends(owner)]


async def count_write(request: Request, state: State, client: Client) -> None:
    """A request that writes to the store (a thread, feedback, a collection, a delete, a
    cancel) counts against the client's ``RATE_LIMIT``, in a window apart from its runs'."""
    await state.admission.check_rate(client or client_address(request), "write")


# ``dependencies=[Writes]`` on every route that writes and does not start work itself
Writes = Depends(count_write)
