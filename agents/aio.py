"""Small asyncio helpers shared by the agents."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def gather_or_cancel(*awaitables: Awaitable[T]) -> list[T]:
    """``asyncio.gather`` that cancels the siblings when one fails or the caller is cancelled.

    The first exception (an ``LLMError``, a ``CancelledError``) propagates unchanged, not
    wrapped in an ``ExceptionGroup`` as ``TaskGroup`` would, and no sibling is left running."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
