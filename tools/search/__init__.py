"""Web search: the ``search`` action (``SearchTool``) over one provider, DuckDuckGo or SearxNG.

Build it from settings with ``build_search_tool``; the service owns it for its lifetime and
calls ``aclose()`` at shutdown.
"""

from __future__ import annotations

from typing import Literal

from tools.search.base import SearchProvider, SearchRateLimited, SearchResult
from tools.search.tool import SearchTool, SearchUnavailable, format_results

__all__ = [
    "SearchProvider",
    "SearchRateLimited",
    "SearchResult",
    "SearchTool",
    "SearchUnavailable",
    "build_search_tool",
    "format_results",
]


def build_search_tool(
    provider: Literal["duckduckgo", "searxng"] | str,
    *,
    searxng_url: str | None = None,
    timeout_s: float = 8.0,
) -> SearchTool:
    """The ``search`` action for ``SEARCH_PROVIDER`` / ``SEARXNG_URL``. Raises ``ValueError``
    on a bad combination, so start-up fails with a clear message. Providers are imported here,
    not at package import, so the unused one costs nothing."""
    name = provider.strip().lower()
    if name == "duckduckgo":
        from tools.search.duckduckgo import DuckDuckGoProvider

        return SearchTool(DuckDuckGoProvider(timeout_s=timeout_s))
    if name == "searxng":
        if not searxng_url:
            raise ValueError("SEARCH_PROVIDER=searxng needs SEARXNG_URL (the instance's base URL)")
        from tools.search.searxng import SearxngProvider

        return SearchTool(SearxngProvider(searxng_url, timeout_s=timeout_s))
    raise ValueError(f"SEARCH_PROVIDER must be duckduckgo or searxng, got {provider!r}")
