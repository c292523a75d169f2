"""A scripted ``SearchProvider`` for tests: no network, every failure mode on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from tools.base import ToolUnavailable
from tools.search.base import SearchRateLimited, SearchResult


class FakeSearchProvider:
    """Answers from ``script``: the results of the first key found (case-insensitively) in the
    query, else ``default``.

    Failure modes: ``unavailable=True`` raises ``ToolUnavailable`` on every call;
    ``rate_limited=n`` raises ``SearchRateLimited`` on the first ``n`` calls (``-1``: always);
    ``delay_s`` sleeps before answering. ``calls`` lists the queries received.
    """

    name = "fake"

    def __init__(
        self,
        script: Mapping[str, Sequence[SearchResult]] | None = None,
        *,
        default: Sequence[SearchResult] = (),
        unavailable: bool = False,
        rate_limited: int = 0,
        retry_after_s: float | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.script = {key.lower(): list(results) for key, results in (script or {}).items()}
        self.default = list(default)
        self.unavailable = unavailable
        self.rate_limited = rate_limited
        self.retry_after_s = retry_after_s
        self.delay_s = delay_s
        self.calls: list[str] = []
        self.closed = False

    @property
    def call_count(self) -> int:
        return len(self.calls)

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        self.calls.append(query)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.unavailable:
            raise ToolUnavailable("fake search is offline")
        if self.rate_limited:
            self.rate_limited -= 1 if self.rate_limited > 0 else 0
            raise SearchRateLimited("fake search says slow down", retry_after_s=self.retry_after_s)
        lowered = query.lower()
        for key, results in self.script.items():
            if key in lowered:
                return results[:max_results]
        return self.default[:max_results]

    async def aclose(self) -> None:
        self.closed = True


def result(n: int, *, snippet: str | None = None) -> SearchResult:
    """A plausible result number ``n``."""
    return SearchResult(
        title=f"Result {n}",
        snippet=snippet if snippet is not None else f"Snippet number {n} about the topic.",
        url=f"https://example.org/{n}",
    )
