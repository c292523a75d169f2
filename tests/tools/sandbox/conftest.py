"""Shared sandboxes for the sandbox tests: started once per module, all layers on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tools.sandbox import Sandbox, SandboxConfig

# Short limits keep the suite fast; the defaults are exercised by test_config_defaults.
FAST = SandboxConfig(workers=2, timeout_s=2.0, queue_size=64)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(FAST) as sb:
        yield sb
