"""The real ASGI app with a scripted LLM, a fake search provider and a real sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from service.app import create_app
from service.embeddings import Embedder
from service.settings import Settings
from tests.fakes import FakeOpenAI, make_llm
from tests.fakes.search import FakeSearchProvider
from tools.sandbox import Sandbox, SandboxConfig

AppFactory = Callable[..., AbstractAsyncContextManager[httpx2.AsyncClient]]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(workers=2, timeout_s=3.0)) as box:
        yield box


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": f"sqlite+aiosqlite:///{tmp_path}/runs.db",
            "llm_base_url": FakeOpenAI.base_url,
            "rate_limit": "",
            "shutdown_grace_s": 0,  # a test's hung runs are cancelled at once when it ends
            # Scripted replies are text steps; the protocol choice has its own tests.
            "agent_protocol": "text",
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def app_client(sandbox: Sandbox, settings_for: Callable[..., Settings]) -> AppFactory:
    """``async with app_client(fake, search=..., **settings) as client:`` runs the app's
    lifespan and talks to it through ``httpx2.ASGITransport``."""

    @asynccontextmanager
    async def run(
        fake: FakeOpenAI,
        *,
        search: FakeSearchProvider | None = None,
        llm_options: dict[str, Any] | None = None,
        embedder: Embedder | None = None,
        **overrides: Any,
    ) -> AsyncIterator[httpx2.AsyncClient]:
        app = create_app(
            settings_for(**overrides),
            llm=make_llm(fake, **(llm_options or {})),
            sandbox=sandbox,
            search_provider=search or FakeSearchProvider(),
            embedder=embedder,
        )
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(
                transport=transport, base_url="http://localhost"
            ) as client:
                yield client

    return run


from tests.service.postgres import postgres_server, postgres_url  # noqa: E402, F401  (fixtures)
from tests.service.redis_server import redis_server, redis_url  # noqa: E402, F401  (fixtures)
