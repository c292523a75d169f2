"""Web search: the ``search`` action (``SearchTool``) over one provider, DuckDuckGo or SearxNG.

The service builds the provider from its settings (``service/components.py``), owns it for
its lifetime and calls ``aclose()`` at shutdown.
"""

from __future__ import annotations

from tools.search.base import SearchProvider, SearchRateLimited, SearchResult
from tools.search.tool import SearchTool, SearchUnavailable, format_results

__all__ = [
    "SearchProvider",
    "SearchRateLimited",
    "SearchResult",
    "SearchTool",
    "SearchUnavailable",
    "format_results",
]
