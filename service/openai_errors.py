"""Errors of the OpenAI-compatible door (``service.routes.openai_compat``) as both what this
service answers everywhere, a problem document (``application/problem+json``), and what
OpenAI's clients read: an ``error`` member holding OpenAI's ``{"message", "type", "param",
"code"}``. The SDKs raise their typed exceptions from the status (``AuthenticationError``,
``NotFoundError``, ``BadRequestError``, ``RateLimitError``, ...) and fill ``code`` and
``param`` from that object.

``OpenAIRoute`` translates, for its own routes only, everything a request can fail with: the
key check (401, and 429 for a blocked address, ``Retry-After`` kept), an invalid body (a 400
that names the field, where ``/ask`` answers 422), the run store (503), and every
``ProblemError`` the run machinery raises (403, 404, 409, 429, 503, ...). Other routes keep
``service.errors``' handlers unchanged. What is answered before any route is reached stays a
plain problem document: an unknown ``/v1`` path or method (404, 405), a body over the size
limit (413), a Host the server does not serve (400).

    ProblemError (service.errors)
    └── OpenAIError   names OpenAI's ``param`` and ``code`` too (``model_not_found``, ...)
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import ErrorDetails
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import PROBLEM, STORE_RETRY_AFTER_S, ProblemError, problem
from service.openai_schemas import OpenAIErrorBody, OpenAIProblem
from service.schemas import Problem
from service.store import StoreUnavailable
from service.strict_json import StrictJSONRoute

# OpenAI's error type for each status (5xx: server_error), and a code where the status says it.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded", 503: "service_unavailable"}
_MEANINGS = {
    400: "Invalid request: a body OpenAI would refuse, or what the agent cannot honour "
    "(`tools`, `n` > 1, ...); `error.param` names the field",
    401: "Missing or wrong API key (`invalid_api_key`)",
    403: "The model's mode needs an action outside the server's allow-list",
    404: "No such model (`model_not_found`)",
    409: "The run was cancelled (`run_cancelled`)",
    413: "The request body is too large (a plain problem document, sent before the route)",
    422: "Not sent: an invalid request is a 400 here, as OpenAI answers",
    429: "Rate limited (`rate_limit_exceeded`), with `Retry-After`",
    502: "The LLM backend failed (after bounded retries), or the model wrote nothing the agent "
    "could use (`no_answer`); `error.code` says which",
    503: "The service is full or stopping, or the run store is unavailable; `Retry-After`",
    504: "The run's deadline passed (`timeout`)",
}


class OpenAIError(ProblemError):
    """A ``ProblemError`` that names OpenAI's ``param`` and ``code``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, message, headers=headers, **extra)
        self.param = param
        self.code = code


def error_response(exc: ProblemError) -> JSONResponse:
    """``exc`` as a problem document that carries OpenAI's error object (422 becomes 400)."""
    status, error = openai_error(exc)
    return problem(status, exc.detail, exc.headers, **exc.extra, error=error.model_dump())


def openai_error(exc: ProblemError) -> tuple[int, OpenAIErrorBody]:
    status = 400 if exc.status == 422 else exc.status
    param, code = (exc.param, exc.code) if isinstance(exc, OpenAIError) else (None, None)
    error = OpenAIErrorBody(
        message=exc.detail,
        type=_TYPES.get(status, "server_error"),
        param=param,
        code=code or exc.extra.get("reason") or _CODES.get(status),
    )
    return status, error


class OpenAIRoute(StrictJSONRoute):
    """A route whose errors, the key check's and the body's included, are OpenAI's too."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def openai_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except ProblemError as exc:
                return error_response(exc)
            except RequestValidationError as exc:
                return error_response(invalid_request(exc.errors(), request))
            except StoreUnavailable as exc:
                retry = {"Retry-After": str(STORE_RETRY_AFTER_S)}
                return error_response(ProblemError(503, str(exc), headers=retry))
            except StarletteHTTPException as exc:
                headers = getattr(exc, "headers", None)
                status, detail = exc.status_code, str(exc.detail)
                return error_response(ProblemError(status, detail, headers=headers))

        return openai_errors


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a /v1 route: each error as the document it is. 413 (a body over
    the limit, refused before any route) is a plain problem document; 422, given for a route
    with parameters, only says that it is not sent, where FastAPI would document its own."""
    schema = _inline(OpenAIProblem.model_json_schema())
    plain = Problem.model_json_schema()
    return {
        status: {
            "description": _MEANINGS[status],
            "content": {PROBLEM: {"schema": plain if status in (413, 422) else schema}},
        }
        for status in statuses
    }


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` written in place: a response's schema is embedded in the
    OpenAPI document, where ``#/$defs/...`` would point nowhere."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


# -- invalid requests -----------------------------------------------------------------------------

_MESSAGE_FIELDS = {"role", "content", "name", "tool_calls", "function_call", "refusal"}
_OBJECT_FIELDS = {"stream_options": {"include_usage"}, "response_format": {"type"}}


def invalid_request(
    errors: Sequence[ErrorDetails], request: Request, *, param: str | None = None
) -> OpenAIError:
    """A validation failure as a 400 that says what is wrong, and where (``param``)."""
    found: dict[str, str] = {}
    # Our own refusals (value errors) say more than a union member's type mismatch, and so
    # does the member that was meant: a list of parts of the wrong kind, or none (an image
    # part was "Input should be a valid string", the text member's complaint: pass EY).
    for error in sorted(errors, key=_telling):
        whole_body = error.get("type") == "json_invalid" or tuple(error["loc"]) == ("body",)
        where = param or ("" if whole_body else _param(tuple(error["loc"])))
        found.setdefault(where, _why(error, request))
    first = next(iter(found), "")
    shown = list(found.items())[:3]
    detail = "; ".join(f"{where}: {why}" if where else why for where, why in shown)
    return OpenAIError(400, detail or "invalid request", param=first or None)


def _telling(error: ErrorDetails) -> int:
    """How much an error says of what the client meant: lower first."""
    return {"value_error": 0, "literal_error": 1, "too_short": 1}.get(error.get("type", ""), 2)


def _why(error: ErrorDetails, request: Request) -> str:
    kind = error.get("type")
    context = error.get("ctx") or {}
    if kind == "literal_error" and error["loc"][-1:] == ("type",) and "content" in error["loc"]:
        return f"only text content parts are supported, not {error.get('input')!r}"
    if kind == "json_invalid":  # where, and why: "at character 12 (duplicate key 'model')"
        at = error["loc"][1] if len(error["loc"]) > 1 else None
        where = f" at character {at}" if isinstance(at, int) and at > 0 else ""
        why = context.get("error", "")
        return f"the body is not valid JSON{where}" + (f" ({why})" if why else "")
    if kind in ("model_attributes_type", "dict_type", "model_type") and error["loc"] == ("body",):
        sent = request.headers.get("content-type", "").split(";")[0].strip() or "no Content-Type"
        return f"the body is not a JSON object (sent as {sent})"
    if kind == "value_error" and "error" in context:
        return str(context["error"])
    return str(error.get("msg", "invalid"))


def _param(loc: tuple[Any, ...]) -> str:
    """OpenAI's spelling of a field's place: ``messages.[1].content``; the body's parts that
    only pydantic knows of (the union member tried, the role's model) are left out."""
    path = [part for part in loc if part != "body"]
    if not path:
        return ""
    parts = [str(path[0])]
    if path[0] == "messages" and len(path) > 1 and isinstance(path[1], int):
        parts.append(f"[{path[1]}]")
        field = next((p for p in path[2:] if p in _MESSAGE_FIELDS), None)
        if field is not None:
            parts.append(field)
    elif len(path) > 1 and path[0] in _OBJECT_FIELDS and path[1] in _OBJECT_FIELDS[path[0]]:
        parts.append(path[1])
    return ".".join(parts)
