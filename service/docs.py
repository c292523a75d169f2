"""The API's documentation, served offline: ``/openapi.json``, Swagger UI at ``/docs`` and ReDoc
at ``/redoc``, with their scripts and styles from the ``fastapi-offline`` package rather than a
CDN, so the pages work on a machine with no internet.

The pages and the schema are public, like a published API reference: a browser cannot send a
bearer token to load a page, and nothing in them is secret (the schema shows this server's
limits, not its keys or backends). Every operation they describe still needs the key when
``AGENT_API_KEYS`` is set; Swagger UI's "Authorize" button takes it (the bearer scheme is
declared by ``service.deps.authenticate``).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"
# The pages may load nothing from elsewhere, whatever the bundles ask for (ReDoc's sidebar
# fetches its maker's logo from a CDN): the browser refuses it before any request is made.
# Inline script and style are FastAPI's page templates and the bundles' own.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    )
)
_ASSETS = files("fastapi_offline") / "static"  # swagger-ui-bundle.js, swagger-ui.css, ...


def install(app: FastAPI, *, version: str) -> None:
    app.mount(ASSETS_URL, StaticFiles(directory=str(_ASSETS)), name="docs-assets")
    favicon = f"{ASSETS_URL}/favicon.png"

    @app.get("/", include_in_schema=False)
    async def index() -> dict[str, Any]:
        """Where a newcomer starts: the docs, and a first request to copy."""
        return {
            "service": "reactpal",
            "version": version,
            "docs": "/docs",
            "redoc": "/redoc",
            "openapi": "/openapi.json",
            "health": "/healthz",
            "try": {
                "method": "POST",
                "path": "/ask",
                "headers": {"Content-Type": "application/json"},
                "body": {"question": "What is 1234 * 5678?", "mode": "pal"},
            },
        }

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _confined(
            get_swagger_ui_html(
                openapi_url="/openapi.json",
                title="reactpal API",
                swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=favicon,
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _confined(
            get_redoc_html(
                openapi_url="/openapi.json",
                title="reactpal API",
                redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=favicon,
                with_google_fonts=False,
            )
        )


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page
