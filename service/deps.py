"""Request dependencies: the shared state and the API-key check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.state import AppState, get_state

State = Annotated[AppState, Depends(get_state)]


def authenticate(request: Request, state: State) -> str | None:
    """The caller's API key (None when keys are not configured); 401 without a valid one, 429
    from an address blocked after too many failed attempts (``service.auth``)."""
    return state.auth.client(request)


Client = Annotated[str | None, Depends(authenticate)]
