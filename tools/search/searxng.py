"""Web search through a SearxNG instance's JSON API: ``GET {base_url}/search?q=...&format=json``.

SearxNG answers 403 when the ``json`` output format is not enabled in its ``settings.yml``
(``search.formats``) and 429 when its limiter refuses us; both are reported in words an operator
can act on. Nothing from httpx2 leaks out of this module.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx2

from tools.base import ToolError, ToolUnavailable
from tools.search.base import SearchRateLimited, SearchResult

log = logging.getLogger(__name__)

# A SearxNG results page is tens of kilobytes; refuse to parse anything absurd.
_MAX_BODY_BYTES = 4_000_000
_MAX_RETRY_AFTER_S = 3600.0


class SearxngProvider:
    """A SearxNG instance as a ``SearchProvider``. Owns one ``httpx2.AsyncClient``."""

    name = "searxng"
    # A private instance (its limiter off, as in docker-compose.yml) takes bursts; a 429 from
    # one whose limiter is on is backed off from (SearchTool). SEARCH_MIN_INTERVAL_S spaces calls.
    min_interval_s = 0.0

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 8.0,
        transport: httpx2.AsyncBaseTransport | None = None,
        language: str | None = None,
    ) -> None:
        url = httpx2.URL(base_url.strip())
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"SEARXNG_URL must be an http(s) URL, got {base_url!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._base_url = str(url).rstrip("/") + "/"
        self._search_url = self._base_url + "search"
        self._timeout_s = timeout_s
        self._language = language
        self._client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout_s),
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        if not query.strip():
            raise ToolError("the search query is empty")
        params = {"q": query, "format": "json"}
        if self._language:
            params["language"] = self._language
        try:
            response = await self._client.get(self._search_url, params=params)
        except httpx2.TimeoutException as exc:
            raise ToolUnavailable(f"SearxNG did not answer within {self._timeout_s:g} s") from exc
        except httpx2.HTTPError as exc:
            log.info("searxng request failed: %r", exc)
            raise ToolUnavailable(f"SearxNG could not be reached ({type(exc).__name__})") from exc
        payload = self._payload(response)
        return _parse_results(payload, max_results)

    async def reachable(self, timeout_s: float) -> None:
        """Whether the instance answers at all (any HTTP status will do): no query is spent,
        so no engine behind it is asked and its limiter is not woken."""
        try:
            await self._client.get(self._base_url, timeout=timeout_s)
        except httpx2.TimeoutException as exc:
            raise ToolUnavailable(f"SearxNG did not answer within {timeout_s:g} s") from exc
        except httpx2.HTTPError as exc:
            raise ToolUnavailable(f"SearxNG could not be reached ({type(exc).__name__})") from exc

    async def aclose(self) -> None:
        await self._client.aclose()

    def _payload(self, response: httpx2.Response) -> Any:
        status = response.status_code
        if status == 403:
            raise ToolUnavailable(
                "SearxNG refused the JSON API (HTTP 403): enable the json format "
                "(search.formats: [html, json]) in the instance's settings.yml"
            )
        if status == 429:
            raise SearchRateLimited(
                "SearxNG is rate-limiting this server (HTTP 429)",
                retry_after_s=_retry_after(response),
            )
        if status >= 500:
            raise ToolUnavailable(f"SearxNG failed (HTTP {status})")
        if status != 200:
            raise ToolUnavailable(f"SearxNG answered HTTP {status}; is SEARXNG_URL its base URL?")
        if len(response.content) > _MAX_BODY_BYTES:
            raise ToolUnavailable("SearxNG sent an oversized answer")
        try:
            return json.loads(response.content)
        except ValueError as exc:
            content_type = response.headers.get("content-type", "unknown")
            raise ToolUnavailable(
                f"SearxNG did not answer JSON (content-type {content_type}); is SEARXNG_URL "
                "the instance's base URL, with the json format enabled?"
            ) from exc


def _parse_results(payload: Any, max_results: int) -> list[SearchResult]:
    rows = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise ToolUnavailable("SearxNG answered JSON without a results list")
    results: list[SearchResult] = []
    for row in rows:
        if len(results) >= max_results:
            break
        if not isinstance(row, dict):
            continue
        result = SearchResult(
            title=_text(row.get("title")),
            snippet=_text(row.get("content")),
            url=_text(row.get("url")),
        )
        if result.title or result.snippet:
            results.append(result)
    return results


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _retry_after(response: httpx2.Response) -> float | None:
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:  # absent, or an HTTP date: use the tool's own cooldown
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)
