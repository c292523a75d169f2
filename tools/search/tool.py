"""The ``search`` action: a ``SearchProvider`` behind input checks, a TTL cache, pacing, bounded
backoff on rate limits, a cooldown, and a size-capped, sanitised observation.

Why each piece: DuckDuckGo rate-limits after a few rapid queries, so the service spaces its
calls (``min_interval_s``; by default what the provider advises in its own ``min_interval_s``
attribute, else no spacing), retries a rate limit only a couple of times within a time bound,
and after that stops calling for ``cooldown_s``, failing fast with "search is unavailable" so the
agent goes on without it. Identical queries within ``cache_ttl_s`` are answered from memory;
failures are never cached. One ``SearchTool`` is shared by all requests.

Result text is untrusted web content: each field is reduced to one clean line and a line that
starts like a protocol step (``Observation:``) is quoted, so it cannot pose as the model's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from cachetools import TTLCache
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from tools.base import ToolError, ToolUnavailable
from tools.search.base import (
    SearchProvider,
    SearchRateLimited,
    SearchResult,
    clean_line,
    defuse_line,
    truncate,
)

log = logging.getLogger(__name__)

_TITLE_CHARS = 120
_URL_CHARS = 300
_MIN_SNIPPET_CHARS = 60
_NEXT_STEP = "try again later or answer from what you know"


class SearchUnavailable(ToolUnavailable):
    """Search cannot be used right now; the message is the final observation text."""


def unavailable(reason: str) -> SearchUnavailable:
    """The observation the agent sees whenever search cannot be used right now."""
    return SearchUnavailable(f"search is unavailable right now ({reason}); {_NEXT_STEP}")


class SearchTool:
    """The ``search`` action over one provider. See the module docstring for the policy."""

    name = "search"
    description = "Search the web; returns the top results as title, snippet and URL."
    input_hint = "query"

    def __init__(
        self,
        provider: SearchProvider,
        *,
        max_results: int = 5,
        max_chars: int = 2000,
        max_query_chars: int = 300,
        cache_ttl_s: float = 600.0,
        cache_size: int = 256,
        retries: int = 2,
        backoff_s: float = 1.0,
        max_backoff_s: float = 4.0,
        total_timeout_s: float = 20.0,
        min_interval_s: float | None = None,
        max_queue_s: float = 5.0,
        cooldown_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_results < 1 or max_chars < 200 or max_query_chars < 1:
            raise ValueError("max_results >= 1, max_chars >= 200 and max_query_chars >= 1")
        if min_interval_s is None:
            min_interval_s = float(getattr(provider, "min_interval_s", 0.0))
        if retries < 0 or total_timeout_s <= 0 or min(min_interval_s, cooldown_s) < 0:
            raise ValueError("retries, intervals and timeouts must not be negative")
        self._provider = provider
        self._max_results = max_results
        self._max_chars = max_chars
        self._max_query_chars = max_query_chars
        self._cache: TTLCache[str, tuple[SearchResult, ...]] = TTLCache(
            maxsize=cache_size, ttl=cache_ttl_s, timer=clock
        )
        self._retries = retries
        self._backoff = wait_exponential_jitter(
            initial=backoff_s, max=max_backoff_s, jitter=backoff_s / 2
        )
        self._max_backoff_s = max_backoff_s
        self._total_timeout_s = total_timeout_s
        self._min_interval_s = min_interval_s
        self._max_queue_s = max_queue_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._sleep = sleep
        self._next_call_at = 0.0
        self._cooldown_until = 0.0

    @property
    def provider(self) -> SearchProvider:
        return self._provider

    async def run(self, tool_input: str) -> str:
        query = self._check_query(tool_input)
        key = query.casefold()
        cached = self._cache.get(key)
        if cached is None:
            results = await self._search(query)
            if results:  # ddgs cannot tell "nothing found" from "blocked": do not keep []
                self._cache[key] = results
        else:
            results = cached
        return format_results(query, results, max_chars=self._max_chars)

    async def aclose(self) -> None:
        await self._provider.aclose()

    def _check_query(self, tool_input: str) -> str:
        query = clean_line(tool_input)
        if not query:
            raise ToolError("search needs a query: write the words to look up, e.g. search[...]")
        if len(query) > self._max_query_chars:
            raise ToolError(
                f"the search query is too long ({len(query)} characters; at most "
                f"{self._max_query_chars}): search for a few key words"
            )
        return query

    async def _search(self, query: str) -> tuple[SearchResult, ...]:
        retrying = AsyncRetrying(
            retry=retry_if_exception(self._should_retry),
            stop=stop_after_attempt(self._retries + 1) | stop_before_delay(self._total_timeout_s),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async with asyncio.timeout(self._total_timeout_s):
                results: list[SearchResult] = await retrying(self._attempt, query)
        except SearchRateLimited as exc:
            pause = max(self._cooldown_s, exc.retry_after_s or 0.0)
            self._cooldown_until = max(self._cooldown_until, self._clock() + pause)
            log.warning("search provider %s rate-limited us; pausing %.0f s", self._name, pause)
            raise unavailable(f"{exc}; paused for {pause:.0f} s") from exc
        except TimeoutError as exc:
            raise unavailable(f"no answer within {self._total_timeout_s:g} s") from exc
        except SearchUnavailable:
            raise
        except ToolUnavailable as exc:
            raise unavailable(str(exc)) from exc
        except ToolError:
            raise
        except Exception as exc:  # a provider bug must not end the run
            log.exception("search provider %s failed", self._name)
            raise unavailable(f"{self._name} failed: {type(exc).__name__}") from exc
        return tuple(results[: self._max_results])

    async def _attempt(self, query: str) -> list[SearchResult]:
        remaining = self._cooldown_until - self._clock()
        if remaining > 0:
            raise unavailable(
                f"{self._name} rate-limited this server; paused for another {remaining:.0f} s"
            )
        await self._pace()
        return await self._provider.search(query, self._max_results)

    async def _pace(self) -> None:
        """Space provider calls ``min_interval_s`` apart across all requests; refuse rather than
        queue for longer than ``max_queue_s``."""
        now = self._clock()
        slot = max(now, self._next_call_at)
        if slot - now > self._max_queue_s:
            raise unavailable("too many searches at once")
        self._next_call_at = slot + self._min_interval_s
        if slot > now:
            await self._sleep(slot - now)

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, SearchRateLimited):
            return False
        # A server asking for a longer pause than we would back off goes straight to cooldown.
        return exc.retry_after_s is None or exc.retry_after_s <= self._max_backoff_s

    def _wait(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, SearchRateLimited) and exc.retry_after_s is not None:
            return max(backoff, exc.retry_after_s)
        return backoff

    @property
    def _name(self) -> str:
        return str(getattr(self._provider, "name", type(self._provider).__name__))


def format_results(query: str, results: Sequence[SearchResult], *, max_chars: int) -> str:
    """Top results as ``[n] title`` / snippet / URL blocks, within ``max_chars``.

    Titles and URLs are capped; the space left is shared among the snippets (short ones keep
    all their text); results are dropped from the end while a snippet would get too little.
    """
    if not results:
        return truncate(f'No results for "{query}". Try other or fewer words.', max_chars)
    entries = [_clean(result, max_chars) for result in results]
    for count in range(len(entries), 0, -1):
        shown = entries[:count]
        fixed = 2 * (count - 1) + sum(
            len(f"[{i}] {head}") + (len(url) + 1 if url else 0)
            for i, (head, _, url) in enumerate(shown, 1)
        )
        needs = [len(snippet) + 1 if snippet else 0 for _, snippet, _ in shown]
        budgets = _share(max_chars - fixed, needs)
        enough = (min(need, _MIN_SNIPPET_CHARS) for need in needs)
        if all(budget >= want for budget, want in zip(budgets, enough, strict=True)):
            break
    blocks = []
    for i, ((head, snippet, url), budget) in enumerate(zip(shown, budgets, strict=True), 1):
        lines = [f"[{i}] {head}"]
        if snippet and budget > 1:
            lines.append(truncate(snippet, budget - 1))
        if url:
            lines.append(url)
        blocks.append("\n".join(lines))
    text = "\n\n".join(blocks)
    return text if len(text) <= max_chars else truncate(text, max_chars)


def _clean(result: SearchResult, max_chars: int) -> tuple[str, str, str]:
    title = truncate(clean_line(result.title, _TITLE_CHARS), _TITLE_CHARS) or "(untitled)"
    snippet = defuse_line(clean_line(result.snippet, max_chars))
    url = clean_line(result.url, _URL_CHARS).replace(" ", "%20")
    if not url.lower().startswith(("http://", "https://")):
        url = ""
    return title, snippet, truncate(url, _URL_CHARS)


def _share(total: int, needs: list[int]) -> list[int]:
    """Split ``total`` characters fairly: each gets at most what it needs, the rest is shared
    equally among the ones that need more."""
    budgets = [0] * len(needs)
    left = max(total, 0)
    pending = sorted(range(len(needs)), key=lambda i: needs[i])
    while pending:
        fair = left // len(pending)
        i = pending.pop(0)
        budgets[i] = min(needs[i], fair)
        left -= budgets[i]
    return budgets
