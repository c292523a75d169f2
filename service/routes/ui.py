"""The web playground: a page at ``/ui`` that asks a question, shows the run unfold from the
event stream of ``POST /ask``, keeps threads and takes feedback. Plain files from
``service/playground/`` (package data, no build step), served as they are.

The page and its files are public, like ``/docs``: a browser cannot send a key to load a page,
and nothing in them is secret (``/ui/config.json`` holds the limits the OpenAPI schema also
publishes). Every API call the page makes sends the key the user typed (kept in the tab's
``sessionStorage``, never in a URL), so the API stays as closed as ever.

The Content-Security-Policy confines the page to this service: it loads and calls nothing
from elsewhere, runs no inline script, and (Trusted Types) cannot turn a string into HTML, so
text from the model can only ever be shown as text. ``GET /`` sends a browser (a request that
accepts HTML) on to ``/ui``; scripts asking for ``/`` still get the JSON index of
``service.docs``.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import Scope

from service.deps import State
from service.errors import ProblemError

PAGE_URL = "/ui"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",  # the forms are handled by the script, never sent by the browser
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",  # no innerHTML and the like, whatever the script
        "trusted-types 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # a new release's script is fetched, not an old cached one
}
_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
    "thumb.svg": "image/svg+xml",
}
# Read once: a package installed without its playground files fails at start-up, not later.
_FILES = {name: (files("service") / "playground" / name).read_bytes() for name in _TYPES}


class _BrowserOnly(APIRoute):
    """A route that matches only requests accepting HTML, so that the next route for the same
    path (the JSON index) answers everyone else."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if "text/html" not in Headers(scope=scope).get("accept", ""):
            return Match.NONE, {}
        return match, child


router = APIRouter(include_in_schema=False)


async def to_playground() -> RedirectResponse:
    return RedirectResponse(PAGE_URL, status_code=307, headers=HEADERS)


router.add_api_route("/", to_playground, methods=["GET"], route_class_override=_BrowserOnly)


@router.get(PAGE_URL)
async def page() -> Response:
    return _file("index.html")


@router.get(f"{PAGE_URL}/config.json")
async def config(state: State) -> dict[str, Any]:
    """The limits the page's inputs take."""
    settings = state.settings
    return {
        "max_samples": settings.max_samples,
        "max_question_chars": settings.max_question_chars,
    }


@router.get(f"{PAGE_URL}/{{name}}")
async def asset(name: str) -> Response:
    if name not in _FILES or name == "index.html":
        raise ProblemError(404, "no such playground file")
    return _file(name)


def _file(name: str) -> Response:
    return Response(_FILES[name], media_type=_TYPES[name], headers=HEADERS)
