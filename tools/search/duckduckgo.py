"""Web search through ``ddgs`` (DuckDuckGo and the other engines it falls back on).

``ddgs`` is synchronous, so each call runs in a daemon thread that the event loop waits on for
at most ``timeout_s``; after that the search is reported unavailable and the thread is
abandoned (it ends on ddgs' own network timeout, which is set to the same value). A cap on
such threads keeps a hung network from piling them up. Nothing from ddgs leaks out of this
module: every failure becomes ``ToolUnavailable`` / ``SearchRateLimited``.

(This used langchain-community's ``DuckDuckGoSearchAPIWrapper``, a dozen lines over the same
call that pulled numpy, aiohttp and requests into the image and warned of its own sunset.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from tools.base import ToolError, ToolUnavailable
from tools.search.base import SearchRateLimited, SearchResult

log = logging.getLogger(__name__)

T = TypeVar("T")

# What ddgs says when every engine answered but none had a hit (or none answered 200).
_DDGS_NO_RESULTS = "No results found."
PROBE_ADDRESS = ("duckduckgo.com", 443)
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class DuckDuckGoWrapper(Protocol):
    """One text search: rows of ``title``, ``snippet``, ``link`` (tests inject a fake)."""

    def results(self, query: str, max_results: int) -> list[dict[str, str]]: ...


class DdgsText:
    """``ddgs`` text search, no time limit (a past-year limit would hide most encyclopaedic
    answers), moderate safe search, and ddgs' network timeout set to ours."""

    def __init__(self, *, region: str = "us-en", backend: str = "auto", timeout_s: float = 8.0):
        self.region = region
        self.backend = backend
        self.timeout = max(1, round(timeout_s))

    def results(self, query: str, max_results: int) -> list[dict[str, str]]:
        from ddgs import DDGS

        rows = DDGS(timeout=self.timeout).text(
            query,
            region=self.region,
            safesearch="moderate",
            timelimit=None,
            max_results=max_results,
            backend=self.backend,
        )
        return [
            {
                "title": row.get("title", ""),
                "snippet": row.get("body", ""),
                "link": row.get("href", ""),
            }
            for row in rows or []
            if isinstance(row, dict)
        ]


def default_wrapper(*, timeout_s: float = 8.0) -> DuckDuckGoWrapper:
    return DdgsText(timeout_s=timeout_s)


class DuckDuckGoProvider:
    """DuckDuckGo (and the other ddgs engines when ``backend="auto"``) as a ``SearchProvider``."""

    name = "duckduckgo"
    min_interval_s = 1.0  # it rate-limits after a few rapid queries

    def __init__(
        self,
        *,
        wrapper: DuckDuckGoWrapper | None = None,
        timeout_s: float = 8.0,
        max_threads: int = 4,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self._wrapper = wrapper if wrapper is not None else default_wrapper(timeout_s=timeout_s)
        self._timeout_s = timeout_s
        self._max_threads = max_threads
        self._threads = 0
        self._threads_lock = threading.Lock()

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        if not query.strip():
            raise ToolError("the search query is empty")
        try:
            rows = await self._in_thread(lambda: self._wrapper.results(query, max_results))
        except TimeoutError as exc:
            raise ToolUnavailable(
                f"{self.name} did not answer within {self._timeout_s:g} s"
            ) from exc
        except ToolError:
            raise
        except Exception as exc:
            if _is_no_results(exc):
                return []
            raise _translate(exc) from exc
        return [_to_result(row) for row in rows[:max_results] if isinstance(row, dict)]

    async def reachable(self, timeout_s: float) -> None:
        """Whether the search engines' network can be reached: a TCP connection to
        ``duckduckgo.com:443``, no query spent (queries are what it rate-limits). Behind a
        proxy (``HTTPS_PROXY``/``ALL_PROXY``) a direct connection proves nothing, so it is not
        tried; then only real searches tell."""
        if any(os.environ.get(name) for name in _PROXY_VARIABLES):
            return
        try:
            async with asyncio.timeout(timeout_s):
                _, writer = await asyncio.open_connection(*PROBE_ADDRESS)
        except TimeoutError as exc:
            raise ToolUnavailable(
                f"{PROBE_ADDRESS[0]} did not answer within {timeout_s:g} s"
            ) from exc
        except OSError as exc:  # no DNS, no route, refused: offline
            reason = exc.strerror or type(exc).__name__
            raise ToolUnavailable(f"{PROBE_ADDRESS[0]} cannot be reached ({reason})") from exc
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def aclose(self) -> None:
        """Nothing to release: ddgs opens a client per call."""

    async def _in_thread(self, call: Callable[[], T]) -> T:
        # A daemon thread rather than asyncio.to_thread: an abandoned call must not hold up
        # the event loop's (or the interpreter's) shutdown.
        with self._threads_lock:
            if self._threads >= self._max_threads:
                raise ToolUnavailable(f"too many {self.name} searches are still running")
            self._threads += 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(result: T | None, error: BaseException | None) -> None:
            if future.done():  # the waiter timed out or was cancelled
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]

        def target() -> None:
            try:
                result, error = call(), None
            except BaseException as exc:
                result, error = None, exc
            finally:
                with self._threads_lock:
                    self._threads -= 1
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(settle, result, error)

        try:
            threading.Thread(target=target, name="duckduckgo-search", daemon=True).start()
        except RuntimeError as exc:  # the OS refused a new thread
            with self._threads_lock:
                self._threads -= 1
            raise ToolUnavailable(f"{self.name} search could not start") from exc
        async with asyncio.timeout(self._timeout_s):
            return await future


def _to_result(row: dict[str, Any]) -> SearchResult:
    return SearchResult(
        title=str(row.get("title") or ""),
        snippet=str(row.get("snippet") or ""),
        url=str(row.get("link") or ""),
    )


def _translate(exc: Exception) -> ToolError:
    """Map a ddgs / wrapper exception to ours, by type (ddgs wraps an engine's error as the
    first argument of a ``DDGSException``, so look there too)."""
    from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

    inner = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else None
    if isinstance(exc, RatelimitException) or isinstance(inner, RatelimitException):
        return SearchRateLimited("duckduckgo is rate-limiting this server")
    if isinstance(exc, TimeoutException) or isinstance(inner, TimeoutException):
        return ToolUnavailable("duckduckgo timed out")
    if isinstance(exc, DDGSException):
        log.info("duckduckgo search failed: %r", exc)
        return ToolUnavailable("duckduckgo could not be reached")
    log.warning("duckduckgo wrapper failed unexpectedly", exc_info=exc)
    return ToolUnavailable(f"duckduckgo search failed ({type(exc).__name__})")


def _is_no_results(exc: Exception) -> bool:
    """ddgs raises a bare ``DDGSException("No results found.")`` instead of returning ``[]``
    (also when engines answered non-200 without an error); it has no type of its own."""
    from ddgs.exceptions import DDGSException

    return type(exc) is DDGSException and exc.args == (_DDGS_NO_RESULTS,)
