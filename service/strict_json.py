"""Request bodies parsed as strict JSON: a key given twice, or ``NaN``/``Infinity`` (not JSON,
though Python's parser takes them), is a 422, not silently the last value or a float nobody
can compare.

FastAPI parses a body with ``Request.json()`` and turns a ``JSONDecodeError`` into its 422
(``json_invalid``); the route class below hands each endpoint a request whose ``json()`` is
stricter, the pattern FastAPI documents for custom request classes. The same route class
checks a request's key on its headers before anything reads the body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class _Refused(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def loads(body: bytes) -> Any:
    """``json.loads`` that refuses duplicate keys and ``NaN``/``Infinity``; raises
    ``JSONDecodeError`` (whose message says why) for everything it refuses."""
    try:
        return json.loads(body, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise
    except (_Refused, ValueError, RecursionError) as exc:
        # and what Python's parser raises otherwise, a 400 that said nothing (red-team pass
        # EF): a body that is not UTF-8, an int past 4,300 digits, nesting past the stack
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        if isinstance(exc, UnicodeDecodeError):
            reason = "the body is not UTF-8"
        raise json.JSONDecodeError(reason, body.decode("utf-8", "replace"), 0) from exc


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


# The methods whose requests carry a body; every route that reads one needs the key.
_WITH_A_BODY = frozenset({"POST", "PUT", "PATCH"})


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is parsed by :func:`loads`, and whose key (``Authenticator``:
    401, or 429 from a blocked address) is checked before its body is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            if request.method in _WITH_A_BODY:
                # FastAPI reads and parses the body before it runs the route's key
                # dependency: without this, a client with no key could trickle a body for
                # BODY_TIMEOUT_S, or have MAX_BODY_BYTES of JSON parsed, before its 401. The
                # dependency checks again and finds nothing wrong: no failure counted twice.
                request.app.state.reactpal.auth.client(request)
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
