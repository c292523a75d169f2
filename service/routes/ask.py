"""POST /ask: one question, one agent, one stored run; JSON or server-sent events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from agents.errors import ActionNotAllowed
from agents.events import ActionEvent, FinalEvent, ObservationEvent, StepEvent, ThoughtEvent
from agents.factory import RunSpec
from agents.pal import PalOptions
from agents.policy import RunPolicy, bounded, resolve_actions
from service.deps import Client, State
from service.errors import ProblemError, problem_responses
from service.runner import FAILURE_STATUS, RunSession
from service.schemas import AskRequest, AskResponse
from service.state import AppState
from service.strict_json import StrictJSONRoute

router = APIRouter(tags=["ask"], route_class=StrictJSONRoute)


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
        **problem_responses(400, 401, 403, 413, 422, 429, 502, 503, 504),
    },
)
async def ask(body: AskRequest, request: Request, state: State, client: Client) -> Any:
    address = request.client.host if request.client else "unknown"
    await state.rate_limiter.check(client or address)
    session = RunSession(
        mode=body.mode,
        question=body.question,
        agent_events=_agent_events(body, state),
        timeout_s=bounded(
            body.timeout_s, state.settings.request_timeout_s, state.settings.request_timeout_s
        ),
        store=state.store,
        metrics=state.metrics,
    )
    await session.start()
    if body.stream or "text/event-stream" in request.headers.get("accept", ""):
        return EventSourceResponse(_sse(session), ping=15)
    async for _ in session.events():
        pass
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


def _agent_events(body: AskRequest, state: AppState) -> AsyncIterator[StepEvent]:
    """Validate the request against the server's limits; the factory builds its agent."""
    settings = state.settings
    if len(body.question) > settings.max_question_chars:
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
    if body.mode == "pal":
        if "python" not in actions:
            if "python" in resolve_actions(settings.allowed_actions, None):  # the request's own
                raise ProblemError(
                    422, "pal mode runs a program: include 'python' in actions, or leave it out"
                )
            raise ProblemError(403, "pal mode runs a program, but 'python' is not allowed")
        if body.samples > settings.max_samples:
            raise ProblemError(
                422, f"samples is above the server's limit of {settings.max_samples}"
            )
    policy = RunPolicy(
        allowed=actions,
        max_steps=int(
            bounded(body.max_steps, settings.default_max_steps, settings.max_steps_limit)
        ),
        max_tokens=settings.max_tokens,
        protocol=settings.agent_protocol,
    )
    pal = PalOptions(
        task=body.task,
        samples=body.samples,
        verbalize=body.verbalize,
        max_tokens=settings.max_tokens,
    )
    return state.agents.run(body.question, RunSpec(mode=body.mode, policy=policy, pal=pal))


async def _sse(session: RunSession) -> AsyncIterator[ServerSentEvent]:
    yield _event("run", {"run_id": session.run_id, "mode": session.mode})
    async for event in session.events():
        if isinstance(event, FinalEvent):
            yield _event("final", session.response.model_dump(mode="json"))
        else:
            yield _event(_event_name(event), _event_data(event))


def _event(name: str, data: dict[str, Any]) -> ServerSentEvent:
    """Every event's data is ASCII JSON: no U+2028, U+0085 or other line break that a client
    splitting lines its own way (``str.splitlines``) could read as a forged ``event:`` line."""
    return ServerSentEvent(json.dumps(data, ensure_ascii=True), event=name)


def _event_name(event: StepEvent) -> str:
    return {ThoughtEvent: "thought", ActionEvent: "action", ObservationEvent: "observation"}[
        type(event)
    ]


def _event_data(event: StepEvent) -> dict[str, Any]:
    if isinstance(event, ThoughtEvent):
        return {"step": event.step, "thought": event.text}
    if isinstance(event, ActionEvent):
        return {"step": event.step, "action": event.action, "action_input": event.action_input}
    if isinstance(event, ObservationEvent):
        return {"step": event.step, "observation": event.text, "refused": event.refused}
    return {}
