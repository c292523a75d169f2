"""Runs as resources: start one in the background, read it in any status, list them, follow
or replay its events, cancel it, give feedback on it; and the Prometheus metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from service.auth import client_address
from service.deps import SSE_SEND_TIMEOUT_S, Client, MetricsReader, Owner, State, Writes
from service.errors import ProblemError, problem_responses
from service.metrics import CONTENT_TYPE
from service.routes.ask import accepted, sse_event, submit
from service.runs import RunNotActive
from service.schemas import (
    AskRequest,
    Feedback,
    FeedbackRequest,
    RunAccepted,
    RunList,
    StoredRun,
    StoredStatus,
)
from service.state import AppState
from service.store import ACTIVE, BadCursor, RunGone
from service.strict_json import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute)
MAX_EVENT_ID = 1_000_000  # the last event a replay may start after (`after`, `Last-Event-ID`)
RunId = Annotated[str, Path(max_length=64, pattern=r"^[0-9a-f]+$")]


@router.post(
    "/runs",
    tags=["runs"],
    status_code=202,
    response_model=RunAccepted,
    summary="Start a run in the background",
    description="The `/ask` body; answers at once with the run's id and a `Location` to poll "
    "(`GET /runs/{run_id}`) or follow (`GET /runs/{run_id}/events`).",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
)
async def start_run(
    body: AskRequest, request: Request, state: State, client: Client, owner: Owner
) -> JSONResponse:
    address = client_address(request)
    await state.admission.check_rate(client or address)
    return accepted(await submit(body, state, owner, client or address))


@router.get(
    "/runs",
    tags=["runs"],
    response_model=RunList,
    summary="Your runs, newest first",
    responses=problem_responses(401, 422, 503),
)
async def list_runs(
    state: State,
    owner: Owner,
    thread_id: Annotated[str | None, Query(max_length=40, pattern=r"^[0-9a-f]+$")] = None,
    status: StoredStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> RunList:
    try:
        runs, following = await state.store.list_runs(
            owner, thread_id=thread_id, status=status, limit=limit, cursor=cursor
        )
    except BadCursor as exc:
        raise ProblemError(422, str(exc)) from exc
    return RunList(runs=[StoredRun.model_validate(run) for run in runs], next_cursor=following)


@router.get(
    "/runs/{run_id}",
    tags=["runs"],
    response_model=StoredRun,
    summary="A run, in any status",
    description="While it runs: its steps and usage so far (`queued`, `running`). After: "
    "the `/ask` response plus `question`, `created_at`, `thread_id` and your `feedback`.",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_run(state: State, owner: Owner, run_id: RunId) -> StoredRun:
    record = await _run(state, owner, run_id)
    feedback = await state.store.feedback(run_id, owner)
    return StoredRun.model_validate({**record, "feedback": feedback})


@router.post(
    "/runs/{run_id}/cancel",
    tags=["runs"],
    response_model=StoredRun,
    summary="Cancel a queued or running run",
    description="The in-flight LLM request is aborted, a sandbox job killed, a search "
    "abandoned; the run is stored as `cancelled` with what it had. A run that another "
    "worker or replica runs is cancelled by it (asked through the run store, within a "
    "second); the answer is the run once stored. 409 once it has ended.",
    responses=problem_responses(401, 404, 409, 422, 429, 503),
    dependencies=[Writes],
)
async def cancel_run(state: State, owner: Owner, run_id: RunId) -> StoredRun:
    record = await _run(state, owner, run_id)
    if record["status"] not in ACTIVE:
        raise ProblemError(409, f"run {run_id} has already ended ({record['status']})")
    try:
        await state.runs.cancel(run_id)
    except RunNotActive:
        raise ProblemError(409, f"run {run_id} has already ended") from None
    return StoredRun.model_validate(await _run(state, owner, run_id))


@router.get(
    "/runs/{run_id}/events",
    tags=["runs"],
    summary="A run's events: replayed, then followed live",
    description="Server-sent events with `id:` = the event's sequence number in the run: "
    "`run`, `thought`, `action`, `observation`, then `final` (the run's body). An ended run "
    "replays; a running one replays, then follows. `Last-Event-ID` (or `after=N`; with both, "
    "the later) resumes after event N, with nothing lost or repeated.",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The events."},
        **problem_responses(401, 404, 422, 503),
    },
)
async def run_events(
    state: State,
    owner: Owner,
    run_id: RunId,
    after: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID)] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> EventSourceResponse:
    await _run(state, owner, run_id)
    # Both given: a browser's EventSource reconnects to the URL it was opened on (?after=1)
    # with the last id it saw, and was sent again what it had (pass FA): the later one.
    start = max(after or 0, _last_event_id(last_event_id))
    return EventSourceResponse(
        _replay(state, run_id, start), ping=15, send_timeout=SSE_SEND_TIMEOUT_S
    )


@router.post(
    "/runs/{run_id}/feedback",
    tags=["feedback"],
    response_model=Feedback,
    summary="Say whether a run's answer was right",
    description="At least one of `score`, `rating`, `comment`, `correction`. One record per "
    "run and API key: a second call updates the fields it names. Feeds "
    "`GET /feedback/export`.",
    responses=problem_responses(400, 401, 404, 409, 413, 422, 429, 503),
    dependencies=[Writes],
)
async def give_feedback(
    body: FeedbackRequest, state: State, owner: Owner, run_id: RunId
) -> Feedback:
    record = await _run(state, owner, run_id)
    if record["status"] in ACTIVE:
        raise ProblemError(409, f"run {run_id} is still in progress; give feedback when it ends")
    fields = body.model_dump(exclude_unset=True)
    if not fields:
        raise ProblemError(422, "give at least one of score, rating, comment, correction")
    try:
        stored = await state.store.put_feedback(run_id, owner, fields)
    except RunGone as exc:
        raise ProblemError(404, f"run {run_id} was deleted") from exc
    return Feedback.model_validate(stored)


@router.get(
    "/metrics",
    tags=["metrics"],
    summary="Prometheus metrics",
    response_class=PlainTextResponse,  # documents the text exposition format, not JSON
    responses=problem_responses(401),
)
async def metrics(state: State, _: MetricsReader) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


async def _run(state: AppState, owner: str, run_id: str) -> dict[str, Any]:
    record = await state.store.get(run_id, owner)
    if record is None:
        raise ProblemError(404, f"no run with id {run_id}")
    return record


def _last_event_id(value: str | None) -> int:
    """The header as ``after``: ASCII digits within ``after``'s bound (``str.isdigit`` passed
    "²", which ``int`` refuses, and 20 digits overflowed the store's integer: pass EY)."""
    if value is None or not value.strip():
        return 0
    digits = value.strip()
    if not (digits.isascii() and digits.isdigit()) or int(digits) > MAX_EVENT_ID:
        raise ProblemError(
            422, f"Last-Event-ID must be an event's sequence number (0 to {MAX_EVENT_ID:,})"
        )
    return int(digits)


async def _replay(state: AppState, run_id: str, after: int) -> AsyncIterator[ServerSentEvent]:
    async for seq, name, data in state.runs.follow(run_id, after):
        yield sse_event(name, data, seq)
