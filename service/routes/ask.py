"""POST /ask: one question, one agent, one stored run; JSON or server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from agents.errors import ActionNotAllowed
from agents.events import StepEvent
from agents.factory import AgentFactory, RunSpec
from agents.memory import Memory, MemoryConfig, Turn, prepare
from agents.pal import PalOptions
from agents.policy import RunPolicy, bounded, resolve_actions
from service.auth import client_address
from service.deps import SSE_SEND_TIMEOUT_S, Client, Owner, State
from service.errors import ProblemError, problem_responses
from service.export import answering_program, memory_record
from service.runner import FAILURE_STATUS, MeteredLLM, RunSession
from service.runs import CLIENT_GONE
from service.schemas import AskRequest, AskResponse, RunAccepted
from service.state import AppState
from service.store import ThreadBusy
from service.strict_json import StrictJSONRoute
from tools.retrieve.tool import RetrieveAction, Scope

router = APIRouter(tags=["ask"], route_class=StrictJSONRoute)
ANSWERED = ("finished", "max_steps")  # a thread's runs whose answer the next turn sees
# Prepares a run's memory from what its caller holds, with the run's metered LLM (``submit``).
MemorySource = Callable[[MeteredLLM], Awaitable[Memory]]


@router.post(
    "/ask",
    response_model=AskResponse,
    summary="Answer a question with ReAct or PAL",
    responses={
        200: {
            "description": "The run's answer and trace; with `stream` (or `Accept: "
            "text/event-stream`), server-sent events `run`, `thought`, `action`, "
            "`observation` and `final` (whose data is this same body).",
            "content": {"text/event-stream": {}},
        },
        202: {
            "description": "With `background` (and no stream): the run was accepted.",
            "model": RunAccepted,
        },
        **problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 502, 503, 504),
    },
)
async def ask(
    body: AskRequest, request: Request, state: State, client: Client, owner: Owner
) -> Any:
    address = client_address(request)
    await state.admission.check_rate(client or address)
    session = await submit(body, state, owner, client or address)
    if body.stream or "text/event-stream" in request.headers.get("accept", ""):
        return EventSourceResponse(
            _sse(state, session.run_id, background=body.background),
            ping=15,
            send_timeout=SSE_SEND_TIMEOUT_S,
        )
    if body.background:
        return accepted(session)
    if not await ended_before_disconnect(request, session):
        # Nobody will read the answer: stop spending on it (it is stored as cancelled).
        await state.runs.cancel(session.run_id, CLIENT_GONE)
        return Response(status_code=499)  # never seen: the client is gone
    response = session.response
    if session.failure is not None:
        raise ProblemError(
            FAILURE_STATUS[session.failure],
            response.error or "the run failed",
            run_id=response.run_id,
            run_status=response.status,
            reason=response.details.get("reason"),  # a stable code, e.g. llm_unavailable
            store_error=response.store_error,  # set only when the run could not be stored
        )
    return response


async def submit(
    body: AskRequest,
    state: AppState,
    owner: str,
    client: str,
    *,
    conversation: MemorySource | None = None,
) -> RunSession:
    """Validate the request, admit ``client``'s run, record it and start it: 403/404/409/422/
    429/503 before it runs. ``conversation`` (outside a thread) prepares, with the run's own
    metered LLM, what the model sees of a conversation the caller holds itself (the OpenAI
    door's earlier messages); it is kept with the run as a thread's memory is."""
    if conversation is not None and body.thread_id is not None:
        raise ValueError("a run's memory comes from its thread or from the caller, not both")
    spec = await _with_collections(body, state, owner, _run_spec(body, state))
    if body.thread_id is not None and await state.store.get_thread(body.thread_id, owner) is None:
        raise ProblemError(404, f"no thread with id {body.thread_id}")
    settings = state.settings

    async def start(llm: MeteredLLM) -> AsyncIterator[StepEvent]:
        run_spec = spec
        if body.thread_id is not None:
            memory = await _thread_memory(state, body, body.thread_id, session.run_id, llm)
            run_spec = replace(spec, memory=memory)
            # What the model saw of the thread, kept with the run: the export rebuilds its
            # prompt from it (service.export).
            session.extra_details["memory"] = memory_record(memory)
        elif conversation is not None:
            given = await conversation(llm)
            run_spec = replace(spec, memory=given)
            session.extra_details["memory"] = memory_record(given)
        if body.mode == "react":
            chosen = await state.protocol.resolve()
            policy = replace(
                run_spec.policy, protocol=chosen.protocol, tools_ignored=chosen.tools_ignored
            )
            run_spec = replace(run_spec, policy=policy)
        agents = AgentFactory(llm, state.sandbox, state.tools)  # this run's usage, metered
        return agents.run(body.question, run_spec)

    session = RunSession(
        mode=body.mode,
        question=body.question,
        start_agent=start,
        llm=state.llm,
        timeout_s=bounded(body.timeout_s, settings.request_timeout_s, settings.request_timeout_s),
        store=state.store,
        metrics=state.metrics,
        owner=owner,
        thread_id=body.thread_id,
    )
    # On every log line of this request (uvicorn's access line too) and, copied into the
    # run's task when it starts, of the run.
    structlog.contextvars.bind_contextvars(run_id=session.run_id)
    try:
        return await state.runs.submit(session, client)
    except ThreadBusy as exc:
        raise ProblemError(409, f"{exc}; wait for it or cancel it", run_id=exc.run_id) from exc


async def _thread_memory(
    state: AppState, body: AskRequest, thread_id: str, run_id: str, llm: MeteredLLM
) -> Memory:
    """What this run sees of its thread: the earlier runs as turns, chosen by the memory
    strategy; a summary that moved on is stored for the next run."""
    settings = state.settings
    runs = [run for run in await state.store.thread_runs(thread_id) if run["run_id"] != run_id]
    turns = [
        Turn(
            run["question"],
            run["answer"] if run["status"] in ANSWERED else None,
            answering_program(run),  # a PAL run's own form of its answer
        )
        for run in runs
    ]
    thread = await state.store.get_thread_memory(thread_id)
    config = MemoryConfig(
        strategy=body.memory or settings.memory_strategy,
        window=settings.memory_window,
        max_tokens=settings.memory_max_tokens,
    )
    prepared = await prepare(
        turns, config, llm=llm, summary=thread.summary, summarized=thread.summarized
    )
    if prepared.update is not None:
        await state.store.save_summary(
            thread_id, prepared.update.summary, prepared.update.summarized
        )
    return prepared.memory


def accepted(session: RunSession) -> JSONResponse:
    body = RunAccepted(run_id=session.run_id, status="queued")
    return JSONResponse(
        body.model_dump(), status_code=202, headers={"Location": f"/runs/{session.run_id}"}
    )


async def ended_before_disconnect(request: Request, session: RunSession) -> bool:
    """Wait for the run's end; False when the client hung up first. (The body has been
    read, so the next ASGI message is the disconnect.)"""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    ended = asyncio.create_task(session.done.wait())
    watcher = asyncio.create_task(gone())
    try:
        await asyncio.wait((ended, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (ended, watcher):
            task.cancel()
        await asyncio.gather(ended, watcher, return_exceptions=True)
    return session.done.is_set()


def _run_spec(body: AskRequest, state: AppState) -> RunSpec:
    """Validate the request against the server's limits: what the factory builds from."""
    settings = state.settings
    if body.sent_chars > settings.max_question_chars:
        state.metrics.rejected.labels("too_long").inc()
        raise ProblemError(
            422, f"question is longer than the limit of {settings.max_question_chars} characters"
        )
    try:
        actions = resolve_actions(settings.allowed_actions, body.actions)
    except ActionNotAllowed as exc:
        state.metrics.rejected.labels("action_not_allowed").inc()
        raise ProblemError(
            403, f"{exc}; a request can narrow the allow-list, not widen it"
        ) from exc
    if body.mode == "pal" and "python" not in actions:
        if "python" in resolve_actions(settings.allowed_actions, None):  # the request's own
            raise ProblemError(
                422, "pal mode runs a program: include 'python' in actions, or leave it out"
            )
        raise ProblemError(403, "pal mode runs a program, but 'python' is not allowed")
    if body.samples > settings.max_samples:  # in any mode: the schema publishes the limit
        raise ProblemError(422, f"samples is above the server's limit of {settings.max_samples}")
    policy = RunPolicy(
        allowed=actions,
        max_steps=int(
            bounded(body.max_steps, settings.default_max_steps, settings.max_steps_limit)
        ),
        max_tokens=settings.max_tokens,
    )
    pal = PalOptions(
        task=body.task,
        samples=body.samples,
        verbalize=body.verbalize,
        max_tokens=settings.max_tokens,
    )
    return RunSpec(mode=body.mode, policy=policy, pal=pal)


async def _with_collections(
    body: AskRequest, state: AppState, owner: str, spec: RunSpec
) -> RunSpec:
    """The run's document collections: the request's (each must be the caller's: 404), else,
    in react mode, the caller's among RETRIEVE_COLLECTIONS (a pal run retrieves before its
    program, so only when asked to). Naming collections for a run that cannot read them
    (``retrieve`` not allowed) is an error, not silently ignored."""
    settings = state.settings
    explicit = body.collections is not None
    if explicit:
        wanted = tuple(dict.fromkeys(body.collections or ()))
    elif body.mode == "react":
        wanted = settings.retrieve_collections
    else:
        return spec
    if not wanted:
        return spec
    if explicit and not spec.policy.allows(RetrieveAction.name):
        if RetrieveAction.name in settings.allowed_actions:
            raise ProblemError(
                422,
                "collections need the retrieve action: include it in actions, or leave actions out",
            )
        raise ProblemError(
            403,
            "collections are read by the retrieve action, which this server does not "
            "allow (ALLOWED_ACTIONS)",
        )
    if not spec.policy.allows(RetrieveAction.name):
        return spec  # the server's defaults, in a run without retrieve
    found = {item["name"]: item for item in await state.collections.find(owner, names=wanted)}
    missing = [name for name in wanted if name not in found]
    if explicit and missing:
        raise ProblemError(404, f"no collection named {missing[0]!r}")
    chosen = tuple((found[name]["collection_id"], name) for name in wanted if name in found)
    # Named by the request: read them before the model's first step (agents.react.loop).
    return replace(spec, collections=Scope(chosen, first=explicit)) if chosen else spec


async def _sse(state: AppState, run_id: str, *, background: bool) -> AsyncIterator[ServerSentEvent]:
    """The run's events as they happen, each with its sequence number as ``id``. A client
    that goes away cancels the run, unless it was started in the background."""
    ended = False
    try:
        async for seq, name, data in state.runs.follow(run_id):
            yield sse_event(name, data, seq)
            ended = name == "final"
    finally:
        if not ended and not background:
            state.runs.request_cancel(run_id, CLIENT_GONE)  # no await: this code is being cancelled


def sse_event(name: str, data: dict[str, Any], seq: int) -> ServerSentEvent:
    """Every event's data is ASCII JSON: no U+2028, U+0085 or other line break that a client
    splitting lines its own way (``str.splitlines``) could read as a forged ``event:`` line."""
    return ServerSentEvent(json.dumps(data, ensure_ascii=True), event=name, id=str(seq))
