"""Threads: conversations whose runs see the earlier turns (``thread_id`` on ``/ask`` and
``/runs``; what they see is the memory strategy's choice, ``agents.memory``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response

from service.deps import Owner, State, Writes
from service.errors import ProblemError, problem_responses
from service.schemas import Thread, ThreadList, ThreadRequest, ThreadWithTurns, Turn
from service.store import BadCursor, ThreadActive, TooManyThreads
from service.strict_json import StrictJSONRoute

router = APIRouter(tags=["threads"], route_class=StrictJSONRoute)
ThreadId = Annotated[str, Path(max_length=40, pattern=r"^[0-9a-f]+$")]


@router.post(
    "/threads",
    status_code=201,
    response_model=Thread,
    summary="Start a conversation",
    responses=problem_responses(400, 401, 409, 413, 422, 429, 503),
    dependencies=[Writes],
)
async def create_thread(state: State, owner: Owner, body: ThreadRequest | None = None) -> Response:
    thread_id = uuid.uuid4().hex
    meta = body.metadata if body is not None else {}
    try:
        created = await state.store.create_thread(thread_id, owner, dict(meta))
    except TooManyThreads as exc:
        raise ProblemError(409, str(exc)) from exc
    return JSONResponse(
        Thread.model_validate(created).model_dump(),
        status_code=201,
        headers={"Location": f"/threads/{thread_id}"},
    )


@router.get(
    "/threads",
    response_model=ThreadList,
    summary="Your threads, newest first",
    responses=problem_responses(401, 422, 503),
)
async def list_threads(
    state: State,
    owner: Owner,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ThreadList:
    try:
        threads, following = await state.store.list_threads(owner, limit=limit, cursor=cursor)
    except BadCursor as exc:
        raise ProblemError(422, str(exc)) from exc
    return ThreadList(threads=[Thread.model_validate(t) for t in threads], next_cursor=following)


@router.get(
    "/threads/{thread_id}",
    response_model=ThreadWithTurns,
    summary="A thread and its turns, oldest first",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_thread(state: State, owner: Owner, thread_id: ThreadId) -> ThreadWithTurns:
    thread = await state.store.get_thread(thread_id, owner)
    if thread is None:
        raise ProblemError(404, f"no thread with id {thread_id}")
    turns = [Turn.model_validate(run) for run in await state.store.thread_runs(thread_id)]
    return ThreadWithTurns(
        thread_id=thread["thread_id"],
        created_at=thread["created_at"],
        metadata=thread["metadata"],
        turns=turns,
    )


@router.delete(
    "/threads/{thread_id}",
    status_code=204,
    summary="Delete a thread and its runs",
    responses=problem_responses(401, 404, 409, 422, 429, 503),
    dependencies=[Writes],
)
async def delete_thread(state: State, owner: Owner, thread_id: ThreadId) -> Response:
    if await state.store.get_thread(thread_id, owner) is None:
        raise ProblemError(404, f"no thread with id {thread_id}")
    if (active := await state.store.active_run(thread_id)) is not None:
        raise ProblemError(409, f"thread {thread_id} has a run in progress ({active}): cancel it")
    try:
        await state.store.delete_thread(thread_id, owner)
    except ThreadActive as exc:  # one started since the check above
        raise ProblemError(409, str(exc)) from exc
    return Response(status_code=204)
