"""Errors as ``application/problem+json`` (RFC 9457) with a clear ``detail``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.schemas import Problem
from service.store import StoreUnavailable

PROBLEM = "application/problem+json"
STORE_RETRY_AFTER_S = 5  # the Retry-After of a 503 when the run store is unavailable

# What each error status means, for the OpenAPI description of the routes that answer with it.
_MEANINGS = {
    400: "The body could not be read (not UTF-8)",
    401: "Missing or wrong API key",
    403: "An action outside the server's allow-list was requested",
    404: "No such resource (or it belongs to another API key)",
    408: "The request body did not arrive within BODY_TIMEOUT_S",
    409: "Conflict: the thread has a run in progress, or the run has already ended",
    413: "The request body is too large",
    415: "The document is not plain text, Markdown, HTML or PDF",
    422: "Invalid request",
    429: "Rate limited, or too many failed API-key attempts from this address",
    502: "The LLM backend failed (after bounded retries)",
    503: "The run store is unavailable (a run that cannot be recorded is not started)",
    504: "The run's deadline passed",
}


class ProblemError(Exception):
    """Raised by routes to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` for the errors it may answer with, each documented as the
    ``application/problem+json`` document it really is (not FastAPI's default JSON 422). A
    route that checks the API key (401) may also answer 429: its address is blocked after too
    many failed attempts (``service.auth.FailedAuthThrottle``)."""
    schema = Problem.model_json_schema()
    documented = sorted({*statuses, 429}) if 401 in statuses else statuses
    return {
        status: {"description": _MEANINGS[status], "content": {PROBLEM: {"schema": schema}}}
        for status in documented
    }


def problem(
    status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


SEND_JSON = "send a JSON object with 'Content-Type: application/json'"
# What pydantic says when the body is not an object at all (a form, text, a JSON list).
_NOT_AN_OBJECT = frozenset({"model_attributes_type", "dict_type", "model_type"})


def _validation_detail(exc: RequestValidationError, content_type: str) -> str:
    """What is wrong, in a few words, and what to send instead when the body is not JSON."""
    parts = []
    for error in exc.errors()[:5]:
        kind, loc = error.get("type"), tuple(error.get("loc", ()))
        if kind == "json_invalid":  # say why, and where: "duplicate key 'question'"
            why = (error.get("ctx") or {}).get("error", "")
            at = loc[1] if len(loc) > 1 and isinstance(loc[1], int) and loc[1] > 0 else None
            where = f" at character {at}" if at is not None else ""
            parts.append(f"body: invalid JSON{where}" + (f" ({why})" if why else ""))
            continue
        if kind in _NOT_AN_OBJECT and loc == ("body",):
            sent = content_type.split(";")[0].strip() or "no Content-Type"
            parts.append(f"body: not a JSON object (sent as {sent}); {SEND_JSON}")
            continue
        where = ".".join(str(p) for p in loc if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return problem(exc.status, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, _validation_detail(exc, request.headers.get("content-type", "")))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names the methods of the first route whose path matched; a path
            # served by several routes (GET and POST /runs) has them all.
            headers = {**(headers or {}), "Allow": ", ".join(_methods(app, request))}
        return problem(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(StoreUnavailable)
    async def _store(_: Request, exc: StoreUnavailable) -> JSONResponse:
        # Handled here, not by the catch-all below: Starlette re-raises what reaches that one,
        # and uvicorn then drops the client's connection after the 500.
        return problem(503, str(exc), {"Retry-After": str(STORE_RETRY_AFTER_S)})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return problem(500, f"internal error: {type(exc).__name__}")


def _methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at the request's path, routers included with
    ``include_router`` too (FastAPI keeps each as one entry whose routes it resolves itself:
    a walk of the top level alone found none, and the ``Allow`` header was empty)."""
    methods: set[str] = set()
    pending: list[Any] = list(app.router.routes)
    for _ in range(10_000):  # routes and included routers, however nested
        if not pending:
            break
        route = pending.pop()
        candidates = getattr(route, "effective_candidates", None)
        if callable(candidates):
            pending.extend(candidates())
            continue
        regex, served = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and served and regex.match(request.url.path):
            methods |= set(served)
    return sorted(methods)
