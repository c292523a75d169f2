"""The app factory. ``create_app(settings)`` builds a FastAPI app whose lifespan creates the
shared components (LLM client, sandbox workers, run store) once; tests inject their own fakes
by passing them in."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI

from agents.errors import LLMError
from agents.factory import AgentFactory
from agents.llm.base import LLM
from agents.protocol import ProtocolChoice
from service import docs, errors, mcp_door
from service.admission import Admission
from service.auth import Authenticator
from service.collections import Collections
from service.components import build_embedder, build_llm, build_search_provider, build_tools
from service.embeddings import Embedder
from service.hosts import LocalBrowserGuard, TrustedHost
from service.limits import BodySizeLimit
from service.metrics import Metrics
from service.request_id import RequestId
from service.routes import (
    actions,
    ask,
    collections,
    feedback,
    health,
    openai_compat,
    runs,
    threads,
    ui,
)
from service.routes.collections import document_body_limit
from service.runs import RunManager
from service.settings import Settings
from service.state import AppState
from service.store import RunStore, StoreUnavailable
from service.warm import warm_up_conversations
from tools.base import availability
from tools.mcp_tool import McpServers, parse_servers
from tools.sandbox import Sandbox
from tools.search.base import SearchProvider

log = structlog.get_logger(__name__)
MAX_BODY_BYTES = 1024 * 1024
VERSION = "0.1.0"
ORPHAN_MARGIN_S = 10.0


def create_app(
    settings: Settings | None = None,
    *,
    llm: LLM | None = None,
    sandbox: Sandbox | None = None,
    search_provider: SearchProvider | None = None,
    embedder: Embedder | None = None,
) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            box = sandbox or Sandbox(settings.sandbox_config())
            stack.push_async_callback(box.aclose)
            # Its templates (child processes) start while the rest is set up, and the
            # embedded model's warm states are restored: awaited before serving.
            starting = asyncio.create_task(box.start())
            stack.push_async_callback(_cancel, starting)
            model = llm or build_llm(settings)
            stack.push_async_callback(model.aclose)
            loading: asyncio.Task[None] | None = None
            if model.supports_warm_up:
                # Load the embedded model (assembling the packaged one if needed) on its own
                # thread while the rest starts (python -m service began it earlier still:
                # LocalLLM.start_loading), and before the first request, so a bad model file
                # stops the start with a clear error.
                loading = asyncio.create_task(model.check())
                stack.push_async_callback(_cancel, loading)
            store = RunStore(settings.database_url)
            await store.start()
            stack.push_async_callback(store.aclose)
            # Runs a dead process left going: all of them on SQLite (one process owns the
            # file); on a shared Postgres, only those older than any run may last.
            # So too with several workers on one SQLite file (WORKERS).
            alone = store.sqlite and settings.worker_count() == 1
            # A run writes as it goes and ends by its deadline: one silent for longer than
            # that (and a margin for its last write) has no process left.
            cutoff = None if alone else _ago(settings.request_timeout_s + ORPHAN_MARGIN_S)
            if interrupted := await store.mark_interrupted(older_than=cutoff):
                log.warning("runs left in progress by a stopped process", interrupted=interrupted)
            if settings.run_retention_days is not None:
                retention = asyncio.create_task(_keep_retention(store, settings.run_retention_days))
                stack.push_async_callback(_cancel, retention)
            provider = search_provider or build_search_provider(settings)
            stack.push_async_callback(provider.aclose)
            remote = McpServers(
                parse_servers(settings.mcp_servers), timeout_s=settings.mcp_timeout_s
            )
            await remote.discover()  # pins their tools' descriptions (tools.mcp_tool)
            if remote.unreachable():
                retry = asyncio.create_task(remote.keep_discovering())
                stack.push_async_callback(_cancel, retry)
            vectors = embedder
            if vectors is None and (vectors := build_embedder(settings)) is not None:
                stack.push_async_callback(vectors.aclose)
            library = Collections(store, vectors)
            if alone and (dropped := await library.drop_unfinished()):
                log.warning(
                    "passages of documents a stopped process left unfinished", dropped=dropped
                )
            tidy = asyncio.create_task(library.keep_tidy())  # and those of other processes
            stack.push_async_callback(_cancel, tidy)
            if vectors is not None:
                # New passages (and all of them after a model change) get their vectors in
                # the background: an ingest never waits for the embeddings server.
                sweep = asyncio.create_task(library.keep_embedding())
                stack.push_async_callback(_cancel, sweep)
            tools = build_tools(
                settings, box, provider, remote.tools(settings.allowed_actions), library
            )
            for tool in tools:
                availability(tool)  # starts the probes (search) before the first run needs them
            metrics = Metrics(actions=tools.names())  # the only action labels
            admission = Admission(
                storage_url=settings.rate_limit_storage_url,
                max_runs=settings.max_concurrent_runs,
                max_runs_per_client=settings.max_concurrent_runs_per_client,
                rate_limit=settings.rate_limit,
                read_rate_limit=settings.read_rate_limit,
                token_budget=settings.token_budget_per_key,
                lease_s=settings.request_timeout_s,
                metrics=metrics,
            )
            stack.push_async_callback(admission.aclose)
            # Its requests end after the runs drain (LIFO), so a run an MCP call waits for
            # is answered, not cut short with its request.
            await stack.enter_async_context(mcp.running())
            manager = RunManager(
                store,
                admission,
                max_follow_s=settings.request_timeout_s + 60,
            )
            # Drained before the store closes (LIFO), so the runs' ends are stored.
            stack.push_async_callback(manager.aclose, settings.shutdown_grace_s)
            app.state.reactpal = AppState(
                settings=settings,
                llm=model,
                sandbox=box,
                tools=tools,
                store=store,
                collections=library,
                metrics=metrics,
                auth=Authenticator(
                    tuple(k.get_secret_value() for k in settings.agent_api_keys),
                    failure_limit=settings.auth_failure_limit,
                    metrics=metrics,
                ),
                admission=admission,
                agents=AgentFactory(model, box, tools),
                runs=manager,
                protocol=ProtocolChoice(model, settings.agent_protocol),
                metrics_auth=Authenticator(
                    tuple(k.get_secret_value() for k in settings.metrics_keys),
                    failure_limit=settings.auth_failure_limit,
                    metrics=metrics,
                )
                if settings.metrics_keys
                else None,
            )
            # Ask the server what it enforces now, in the background, so the first run does
            # not wait for it (one that comes meanwhile waits for this same probe).
            probe = asyncio.create_task(_probe_protocol(app.state.reactpal.protocol))
            stack.push_async_callback(_cancel, probe)
            if loading is not None:
                # Then restore (or prefill) the prompts in the background so the first answer
                # is not a cold one.
                await loading
                warm = asyncio.create_task(_warm_up(app.state.reactpal))
                stack.push_async_callback(_cancel, warm)
            await starting
            log.info(
                "reactpal ready",
                llm=model.model,
                sandbox_layers=box.layers,
                actions=settings.allowed_actions,
                embeddings=vectors.model if vectors else None,
                auth=bool(settings.agent_api_keys),
            )
            yield

    app = FastAPI(
        title="reactpal",
        version=VERSION,
        summary="A ReAct/PAL agent: an LLM that calculates in a sandbox and looks things up.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # "/runs/x/" would be a redirect to a URL built from the Host header: a 404 instead.
        redirect_slashes=False,
    )
    uploads = document_body_limit(settings.retrieve_max_document_bytes)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=MAX_BODY_BYTES,
        larger=[(r"/collections/[^/]+/documents", uploads)],
        timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(LocalBrowserGuard, settings=settings)  # without keys: no web page
    app.add_middleware(TrustedHost, allowed_hosts=settings.allowed_hosts)  # before it
    app.add_middleware(RequestId)  # outermost: even the Host check's 400 has a request id
    errors.install(app)
    app.include_router(health.router)
    app.include_router(ask.router)
    app.include_router(actions.router)
    app.include_router(runs.router)
    app.include_router(threads.router)
    app.include_router(collections.router)
    app.include_router(feedback.router)
    app.include_router(openai_compat.router)
    app.include_router(ui.router)
    mcp = mcp_door.mount(app, settings)
    docs.install(app, version=VERSION)
    _describe_deployment(app, settings)
    return app


def _describe_deployment(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI description states this server's question-length and samples limits, not
    the widest ones a setting allows, so a client (and the schema fuzzing) sees the limits it
    will meet (``samples`` was published as 64 and refused past 8: red-team pass EY); and it
    declares the bearer key only when ``AGENT_API_KEYS`` is set, since without keys none is
    needed."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            fields = schema["components"]["schemas"]["AskRequest"]["properties"]
            fields["question"]["maxLength"] = settings.max_question_chars
            fields["samples"]["maximum"] = settings.max_samples
            if not settings.agent_api_keys:
                schema["components"].pop("securitySchemes", None)
                for operations in schema["paths"].values():
                    for operation in operations.values():
                        operation.pop("security", None)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


async def _warm_up(state: AppState) -> None:
    """Prefill the PAL and ReAct few-shot prompts so llama.cpp's prompt cache holds them: on
    2 cores a cold PAL prompt costs ~28 s of prefill, a warm answer ~3 s. A prompt whose state
    was saved (``python -m service warm``, or this warm-up at an earlier start) is restored
    from it first, in milliseconds; the others are prefilled in short chunks that yield to
    requests, so one arriving meanwhile waits ~2 s at most, and then saved."""
    started = time.monotonic()
    try:
        warmed = await state.llm.warm_up(warm_up_conversations(state.settings, state.agents))
    except LLMError as exc:
        log.warning("model warm-up failed", error=str(exc))
        return
    log.info("model warm", prompts=warmed, seconds=round(time.monotonic() - started, 1))


async def _probe_protocol(choice: ProtocolChoice) -> None:
    await choice.resolve()  # logs what it found; a failure is retried by a later run


def _ago(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)


RETENTION_SWEEP_S = 3600.0  # how often old runs are looked for
RETENTION_PAUSE_S = 0.05  # between two batches of deletes: other writes go in between


async def _keep_retention(store: RunStore, days: float) -> None:
    """``RUN_RETENTION_DAYS``: now and every hour, delete what is older, a batch at a time
    (a store that one key filled at 5 GB an hour otherwise only grew: red-team pass DB). A
    store that fails is tried again at the next sweep; the service goes on."""
    while True:
        deleted = 0
        try:
            cutoff = _ago(days * 86_400)
            while found := await store.delete_older_than(cutoff):
                deleted += found
                await asyncio.sleep(RETENTION_PAUSE_S)
        except StoreUnavailable as exc:
            log.warning("retention sweep failed; trying again later", error=str(exc))
        if deleted:
            log.info("retention sweep", deleted=deleted, days=days)
        await asyncio.sleep(RETENTION_SWEEP_S)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def openapi_schema(settings: Settings | None = None) -> dict[str, Any]:
    return create_app(settings).openapi()
