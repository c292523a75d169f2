"""The OpenAI-compatible door: ``POST /v1/chat/completions`` and ``GET /v1/models``, so that an
OpenAI client (the SDKs, LangChain's ``ChatOpenAI``, LiteLLM, Open WebUI) uses the agent as a
model: ``reactpal-react`` runs ReAct, ``reactpal-pal`` runs PAL.

A completion is a run like any other: the same API keys (OpenAI clients send ``Authorization:
Bearer <key>``), rate limit, admission and allow-list, stored and readable at
``GET /runs/{run_id}`` (the id is the completion's ``run_id`` and its ``X-Run-Id`` header).
The last user message is the question; the user and assistant messages before it become the
run's memory, as a thread's earlier turns do (``service.routes.ask.submit``).

How a run's end reads to an OpenAI client:

    finished          200, finish_reason "stop", the answer as the content
    max_steps         200, finish_reason "length" (the answer, or "" when there is none)
    error (LLM)       502 server_error, code: the backend's failure (``llm_unavailable``, ...)
    timeout           504 server_error, code "timeout"
    error (internal)  500 server_error
    error (no answer) 502 server_error, code "no_answer" (no usable action, no working program)
    cancelled         409 conflict_error, code "run_cancelled" (cancelled through /runs)
    interrupted       503 server_error, code "run_interrupted" (the service stopped)

Streamed, the run's steps arrive as ``delta.reasoning_content`` as they happen, then the answer
as ``delta.content``; a run that ends in any other way sends ``data: {"error": {...}}`` (what
OpenAI's SDKs raise as ``APIError``) instead of the answer. A client that goes away cancels the
run, as on ``/ask``.

Errors are problem documents that carry OpenAI's error object too (``service.openai_errors``,
whose route class translates them for these routes only).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from agents.memory import Memory, MemoryConfig, Turn, prepare
from service.auth import client_address
from service.deps import SSE_SEND_TIMEOUT_S, Client, Owner, State
from service.openai_errors import (
    OpenAIError,
    OpenAIRoute,
    documented,
    invalid_request,
    openai_error,
)
from service.openai_schemas import (
    MODELS,
    AssistantReply,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    CompletionUsage,
    Delta,
    ModelCard,
    ModelList,
)
from service.routes.ask import (
    MemorySource,
    ended_before_disconnect,  # the /ask wait for a run's end that notices a hang-up
    submit,
)
from service.runner import FAILURE_STATUS, MeteredLLM, RunSession
from service.runs import CLIENT_GONE
from service.schemas import AskRequest, Step
from service.state import AppState

MODELS_CREATED = 1_795_996_800  # 2026-11-30T00:00:00Z: the release that brought these ids
FINISH_REASONS = {"finished": "stop", "max_steps": "length"}  # an answered run's status
_FAILURE_CODES = {"timeout": "timeout", "internal": "internal_error", "llm": "llm_failed"}
router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)


@router.get(
    "/models",
    response_model=ModelList,
    summary="The agent's modes, as OpenAI models",
    description="`reactpal-react` (reason and act with the allowed actions) and `reactpal-pal` "
    "(answer with one program run in the sandbox).",
    responses=documented(401, 429),
)
async def list_models(_: Client) -> ModelList:
    return ModelList(data=[_card(model) for model in MODELS])


@router.get(
    "/models/{model_id}",
    response_model=ModelCard,
    summary="One of the agent's modes, as an OpenAI model",
    responses=documented(401, 404, 422, 429),
)
async def get_model(model_id: str, _: Client) -> ModelCard:
    _mode(model_id, param=None)
    return _card(model_id)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    summary="Answer the last user message with the agent (OpenAI chat completions)",
    description="One run per completion: `reactpal-react` runs ReAct, `reactpal-pal` runs "
    "PAL; earlier messages are the run's memory. The run is stored: its id is `run_id` "
    "(and the `X-Run-Id` header), for `GET /runs/{run_id}`.",
    responses={
        200: {
            "description": "A `chat.completion`; with `stream`, server-sent `data:` lines, "
            "each a `chat.completion.chunk` (the role; the run's steps as "
            "`delta.reasoning_content`; the answer as `delta.content`; the `finish_reason`; "
            "with `stream_options.include_usage`, a last chunk with `usage` and no choices), "
            'then `data: [DONE]`. A run that fails sends `data: {"error": {...}}` instead of '
            "the answer.",
            "headers": {
                "X-Run-Id": {"description": "The stored run.", "schema": {"type": "string"}}
            },
            "content": {"text/event-stream": {}},
        },
        **documented(400, 401, 403, 404, 409, 413, 422, 429, 502, 503, 504),
    },
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, state: State, client: Client, owner: Owner
) -> Response:
    mode = _mode(body.model, param="model")
    try:
        ask = AskRequest.model_validate(
            {"question": body.question, "mode": mode, "collections": body.collections}
        )
    except ValidationError as exc:  # the question as /ask checks it
        raise invalid_request(exc.errors(), request, param="messages") from exc
    address = client_address(request)
    await state.admission.check_rate(client or address)
    turns = body.earlier_turns
    memory = _memory(state, turns) if turns else None
    session = await submit(ask, state, owner, client or address, conversation=memory)
    details: dict[str, Any] = {"model": body.model}
    if body.system_messages:
        details["system_messages_ignored"] = body.system_messages
    session.extra_details["openai"] = details
    completion = _Completion(session, body.model, include_usage=body.include_usage)
    headers = {"X-Run-Id": session.run_id}
    if body.stream:
        return EventSourceResponse(
            _chunks(state, completion),
            ping=15,
            sep="\n",
            headers=headers,
            send_timeout=SSE_SEND_TIMEOUT_S,
        )
    if not await ended_before_disconnect(request, session):
        await state.runs.cancel(session.run_id, CLIENT_GONE)
        return Response(status_code=499)  # never seen: the client is gone
    response = session.response
    ended = response.model_dump(mode="json")
    if (failure := _run_error(ended)) is not None:
        failure.headers = {**(failure.headers or {}), **headers}
        raise failure
    reply = AssistantReply(
        content=response.answer or "", reasoning_content=_trace(response.steps, session.mode)
    )
    answered = ChatCompletion(
        id=completion.id,
        created=completion.created,
        model=body.model,
        choices=[Choice(message=reply, finish_reason=FINISH_REASONS[response.status])],
        usage=_usage(ended),
        run_id=session.run_id,
    )
    return JSONResponse(answered.model_dump(mode="json"), headers=headers)


def _mode(model: str, *, param: str | None) -> str:
    mode = MODELS.get(model)
    if mode is None:
        raise OpenAIError(
            404,
            f"the model {model!r} does not exist; this server's models are " + ", ".join(MODELS),
            param=param,
            code="model_not_found",
        )
    return mode


def _card(model: str) -> ModelCard:
    return ModelCard(id=model, created=MODELS_CREATED)


def _memory(state: AppState, turns: Sequence[Turn]) -> MemorySource:
    """The conversation as the run's memory, chosen as a thread's is (MEMORY_STRATEGY; a
    summary is written afresh each time, since nothing of the conversation is stored)."""
    settings = state.settings
    config = MemoryConfig(
        strategy=settings.memory_strategy,
        window=settings.memory_window,
        max_tokens=settings.memory_max_tokens,
    )

    async def prepared(llm: MeteredLLM) -> Memory:
        return (await prepare(turns, config, llm=llm)).memory

    return prepared


# -- the answer ---------------------------------------------------------------------------------


class _Completion:
    """What every chunk of one completion shares."""

    def __init__(self, session: RunSession, model: str, *, include_usage: bool) -> None:
        self.session = session
        self.id = f"chatcmpl-{session.run_id}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def chunk(
        self, delta: Delta | None = None, finish: str | None = None, **fields: Any
    ) -> ServerSentEvent:
        choices = [] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish)]
        chunk = ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            run_id=self.session.run_id,
            **fields,
        )
        return _data(chunk.wire(with_usage=self.include_usage))


async def _chunks(state: AppState, completion: _Completion) -> AsyncIterator[ServerSentEvent]:
    """The run as ``chat.completion.chunk`` events, as it happens; a client that goes away
    cancels the run."""
    run_id, mode = completion.session.run_id, completion.session.mode
    ended = False
    try:
        yield completion.chunk(Delta(role="assistant", content=""))
        async for _, name, data in state.runs.follow(run_id):
            if name != "final":
                if text := _event_text(name, data, mode):
                    yield completion.chunk(Delta(reasoning_content=text))
                continue
            ended = True
            if (failure := _run_error(data)) is not None:
                yield _data({"error": openai_error(failure)[1].model_dump()})
            else:
                if data.get("answer"):
                    yield completion.chunk(Delta(content=data["answer"]))
                yield completion.chunk(Delta(), finish=FINISH_REASONS[data["status"]])
                if completion.include_usage:
                    yield completion.chunk(usage=_usage(data))
            yield ServerSentEvent(data="[DONE]")
    finally:
        if not ended:
            state.runs.request_cancel(run_id, CLIENT_GONE)  # no await: this code is being cancelled


def _data(payload: dict[str, Any]) -> ServerSentEvent:
    # ASCII JSON, as /ask's events: no line separator a client might split on (sse_event).
    return ServerSentEvent(json.dumps(payload, ensure_ascii=True))


def _usage(ended: dict[str, Any]) -> CompletionUsage:
    usage = ended.get("usage") or {}
    prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _run_error(ended: dict[str, Any]) -> OpenAIError | None:
    """A run that ended without an answer to give (its final ``AskResponse``, as JSON), as
    the error an OpenAI client gets; None for a run that answered."""
    status = ended["status"]
    if status in FINISH_REASONS:
        return None
    details = ended.get("details") or {}
    failure = details.get("failure")
    extra = {
        "run_id": ended["run_id"],
        "run_status": status,
        "reason": details.get("reason"),
        "store_error": ended.get("store_error"),
    }
    message = ended.get("error") or f"the run ended as {status}"
    if failure in FAILURE_STATUS:
        code = details.get("reason") or _FAILURE_CODES[failure]
        return OpenAIError(FAILURE_STATUS[failure], message, code=code, **extra)
    if status == "error":  # the agent's own end: the model wrote nothing it could use
        return OpenAIError(502, message, code="no_answer", **extra)
    if status == "cancelled":
        return OpenAIError(409, message, code="run_cancelled", **extra)
    headers = {"Retry-After": "1"}  # interrupted: the service is stopping; another may answer
    return OpenAIError(503, message, code="run_interrupted", headers=headers, **extra)


# -- the steps as reasoning ---------------------------------------------------------------------


def _event_text(name: str, data: dict[str, Any], mode: str) -> str:
    """One step event as the reasoning text a chat UI shows."""
    if name == "thought":
        return f"Thought: {data['thought']}\n"
    if name == "action":
        return _action_text(data.get("action"), str(data.get("action_input") or ""), mode)
    if name == "observation":
        return f"Observation: {data['observation']}\n\n"
    return ""


def _action_text(action: str | None, action_input: str, mode: str) -> str:
    if action is None:
        return "Action: none could be read from the completion\n"
    if mode == "pal":
        return f"Program:\n```python\n{action_input.rstrip()}\n```\n"
    return f"Action: {action}[{action_input}]\n"


def _trace(steps: Sequence[Step], mode: str) -> str | None:
    """The steps of a run that has ended, as the stream sent them."""
    parts: list[str] = []
    for step in steps:
        if step.thought is not None:
            parts.append(_event_text("thought", {"thought": step.thought}, mode))
        if step.action is not None or step.action_input is not None:
            parts.append(_action_text(step.action, step.action_input or "", mode))
        if step.observation is not None:
            parts.append(_event_text("observation", {"observation": step.observation}, mode))
    return "".join(parts) or None
