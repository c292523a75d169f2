"""Readiness of the service's backends, computed at most once per ``TTL_S``.

``/readyz`` is public and load balancers poll it, so a call must not cost the LLM backend a
request or the database a query: the backend checks run at most once every few seconds, one
at a time (callers arriving meanwhile wait for that same check rather than start their own),
and every caller in between gets the stored result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class BackendChecks:
    ok: bool
    checks: dict[str, Any]  # per backend: {"ok": bool, ...details for authenticated callers}
    at: float  # time.monotonic() when they ran


class ReadinessCache:
    def __init__(self, ttl_s: float = TTL_S) -> None:
        self._ttl_s = ttl_s
        self._last: BackendChecks | None = None
        self._lock = asyncio.Lock()

    async def get(self, run: Callable[[], Awaitable[BackendChecks]]) -> BackendChecks:
        """The last result while it is fresh; else ``run()`` once, whoever else is waiting."""
        last = self._last
        if last is None or not self._fresh(last):
            async with self._lock:
                last = self._last  # another caller may have refreshed it meanwhile
                if last is None or not self._fresh(last):
                    last = self._last = await run()
        return last

    def _fresh(self, result: BackendChecks) -> bool:
        return time.monotonic() - result.at < self._ttl_s
