"""The ``search`` action: a ``SearchProvider`` behind input checks, a TTL cache, pacing, bounded
backoff on rate limits, a cooldown, and a size-capped, sanitised observation.

Why each piece: DuckDuckGo rate-limits after a few rapid queries, so the service spaces its
calls (``min_interval_s``; by default what the provider advises in its own ``min_interval_s``
attribute, else no spacing), retries a rate limit only a couple of times within a time bound,
and after that stops calling for ``cooldown_s``, failing fast with "search is unavailable" so the
agent goes on without it. Identical queries within ``cache_ttl_s`` are answered from memory;
failures are never cached. One ``SearchTool`` is shared by all requests.

Whether search can be used at all is known before a run starts: ``availability()`` answers
from the last probe of the provider (``reachable``: can it be reached at all, without
spending a query) and refreshes a stale answer in the background, so a run never waits for
it. A failed search triggers a probe at once; a successful one proves the provider up. While
search is down or paused, runs are built without it (``agents.factory``) instead of sending
the model to an action that can only fail. ``check()`` probes now (``/readyz``).

Result text is untrusted web content: each field is reduced to one clean line and a line that
starts like a protocol step (``Observation:``) is quoted, so it cannot pose as the model's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class _Seen:
    """What was last learnt about the provider: ``down`` is why it cannot be used, or None."""

    down: str | None
    at: float


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
        recheck_s: float = 30.0,
        recheck_down_s: float = 5.0,
        probe_timeout_s: float = 3.0,
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
        self._recheck_s = recheck_s
        self._recheck_down_s = recheck_down_s
        self._probe_timeout_s = probe_timeout_s
        self._seen: _Seen | None = None
        self._probe: asyncio.Task[str | None] | None = None

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

    def availability(self) -> str | None:
        """Why search cannot be used right now, or None when it can (or nothing says it
        cannot yet). Never waits: a stale answer is refreshed in the background."""
        now = self._clock()
        if self._cooldown_until > now:
            return f"{self._name} rate-limited this server; paused for another " + (
                f"{self._cooldown_until - now:.0f} s"
            )
        seen = self._seen
        if seen is None or now - seen.at >= (
            self._recheck_down_s if seen.down else self._recheck_s
        ):
            self._probe_soon()
        return seen.down if seen is not None else None

    async def check(self) -> str | None:
        """Probe the provider now (one probe at a time, shared by concurrent callers) and
        return why it cannot be used, or None."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._run_probe())
        return await asyncio.shield(self._probe)

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self._provider.aclose()

    def _recheck(self) -> None:
        """A search failed: probe now, and let the probe say whether the provider is down
        (unreachable) or only failed this query (an error page: it can be reached)."""
        if self._seen is not None:
            self._seen = _Seen(self._seen.down, float("-inf"))  # stale
        self._probe_soon()

    def _probe_soon(self) -> None:
        if self._probe is not None and not self._probe.done():
            return
        try:
            self._probe = asyncio.get_running_loop().create_task(self._run_probe())
        except RuntimeError:  # no event loop (a synchronous caller): the next run will do it
            return

    async def _run_probe(self) -> str | None:
        probe = getattr(self._provider, "reachable", None)
        if probe is None:  # nothing to ask: the provider is taken to be there
            self._seen = _Seen(None, self._clock())
            return None
        try:
            async with asyncio.timeout(self._probe_timeout_s + 1):
                await probe(self._probe_timeout_s)
        except ToolError as exc:
            self._note(str(exc))
        except TimeoutError:
            self._note(f"no answer within {self._probe_timeout_s:g} s")
        except Exception as exc:  # a provider bug: unknown, not down
            log.warning("search provider %s probe failed: %r", self._name, exc)
            self._seen = _Seen(None, self._clock())
        else:
            self._note(None)
        return self._seen.down if self._seen is not None else None

    def _note(self, down: str | None) -> None:
        was = self._seen.down if self._seen is not None else None
        self._seen = _Seen(down, self._clock())
        if down is not None and was is None:
            log.warning("search provider %s is unavailable: %s", self._name, down)
        elif down is None and was is not None:
            log.info("search provider %s is reachable again", self._name)

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
        except SearchUnavailable:
            raise  # our own refusal (paused, queue full): says nothing new about the provider
        except SearchRateLimited as exc:
            pause = max(self._cooldown_s, exc.retry_after_s or 0.0)
            self._cooldown_until = max(self._cooldown_until, self._clock() + pause)
            log.warning("search provider %s rate-limited us; pausing %.0f s", self._name, pause)
            raise unavailable(f"{exc}; paused for {pause:.0f} s") from exc
        except TimeoutError as exc:
            self._recheck()
            raise unavailable(f"no answer within {self._total_timeout_s:g} s") from exc
        except ToolUnavailable as exc:
            self._recheck()
            raise unavailable(str(exc)) from exc
        except ToolError:
            raise
        except Exception as exc:  # a provider bug must not end the run
            log.exception("search provider %s failed", self._name)
            raise unavailable(f"{self._name} failed: {type(exc).__name__}") from exc
        self._note(None)
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
        lines = [defuse_line(f"[{i}] {head}")]  # a title posing as a step is quoted too
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
