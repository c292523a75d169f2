"""The MCP tools behind ``/mcp`` (the door, its checks and its lazy start are in
:mod:`service.mcp_door`), each a stored run like ``POST /ask`` (same keys, allow-list, limits
and run store):

- ``ask``: ReAct over the allowed actions (question, actions, max_steps, thread_id);
- ``pal``: one program per sample, voted (question, samples, task); offered only when
  ``python`` is allowed;
- ``python``: one program run in the sandbox, no model involved; offered only when
  ``python`` is allowed. Its run is stored in ``pal`` mode with that one step.

Built on the protocol's own SDK (``mcp``), stateless (every request stands alone, so any
worker or replica can answer it) with JSON responses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import Field, ValidationError
from starlette.requests import Request

from agents.events import ActionEvent, FinalEvent, ObservationEvent, StepEvent
from service.auth import client_address
from service.deps import owner_of
from service.errors import ProblemError
from service.mcp_door import CLIENT
from service.runner import MeteredLLM, RunSession
from service.runs import CLIENT_GONE
from service.schemas import AskRequest, AskResponse
from service.settings import Settings
from service.state import AppState
from tools.base import ToolError as ActionError
from tools.base import ToolOutput

FAILED = ("error", "timeout", "cancelled", "interrupted")


def build_server(app: FastAPI, settings: Settings) -> MCPServer:
    server = MCPServer(
        "reactpal",
        instructions="An agent that calculates exactly (a sandboxed Python) and looks things "
        "up. `ask` reasons step by step with the allowed actions; `pal` writes one program "
        "and runs it; `python` runs your program.",
        warn_on_duplicate_tools=False,
    )

    def state() -> AppState:
        return app.state.reactpal  # type: ignore[no-any-return]

    @server.tool(
        name="ask",
        description="Answer a question with a ReAct agent: it reasons in steps and uses the "
        f"allowed actions ({', '.join(settings.allowed_actions)}). Returns the answer; the "
        "run (every step) is stored under the returned run_id.",
    )
    async def ask(
        question: Annotated[str, Field(description="The question.")],
        ctx: Context,
        actions: Annotated[
            list[str] | None, Field(description="Narrow the allowed actions for this run.")
        ] = None,
        max_steps: Annotated[int | None, Field(ge=1, le=100)] = None,
        thread_id: Annotated[
            str | None, Field(description="Continue this thread (POST /threads makes one).")
        ] = None,
    ) -> CallToolResult:
        body: dict[str, Any] = {"question": question, "mode": "react", "actions": actions}
        body.update(max_steps=max_steps, thread_id=thread_id)
        return await _run(state(), ctx, body)

    if "python" not in settings.allowed_actions:
        return server

    async def pal(
        question: Annotated[str, Field(description="The question.")],
        ctx: Context,
        samples: Annotated[int, Field(ge=1, description="Programs to vote over.")] = 1,
        task: Annotated[
            Literal["math", "date", "objects"], Field(description="The prompt family.")
        ] = "math",
    ) -> CallToolResult:
        body = {"question": question, "mode": "pal", "samples": samples, "task": task}
        return await _run(state(), ctx, body)

    # The server's own limit, which it enforces (pass FA: 64 was published, 8 enforced);
    # set here, as annotations are read in the module's namespace, where settings is not.
    pal.__annotations__["samples"] = Annotated[
        int, Field(ge=1, le=settings.max_samples, description="Programs to vote over.")
    ]
    server.tool(
        name="pal",
        description="Answer a question with PAL: the model writes a Python program, the "
        "sandbox runs it, and the program's result is the answer (with samples > 1, the "
        "answer most programs agree on).",
    )(pal)

    @server.tool(
        name="python",
        description="Run a Python program in the sandbox (no files, no network; math, "
        "fractions, decimal, statistics, datetime, itertools, collections, re ...). "
        "Returns what it prints and its result: solution()'s return value, else `result`.",
    )
    async def python(
        code: Annotated[str, Field(description="The program.")], ctx: Context
    ) -> CallToolResult:
        # A form feed is Python's whitespace, and no question's (pass FA: refused as a
        # control character): the run's question shows it as a space; the program runs as is.
        question = code.replace("\f", " ")
        return await _run(state(), ctx, {"question": question, "mode": "pal"}, program=code)

    return server


async def _run(
    state: AppState, ctx: Context, fields: dict[str, Any], *, program: str | None = None
) -> CallToolResult:
    """Validate like ``/ask``, submit, wait for the end; the answer as the tool's result.
    A client that goes away cancels the run, as ``/ask``'s does."""
    from service.routes.ask import submit  # the HTTP route's own admission and validation

    request = ctx.request_context.request
    if not isinstance(request, Request):  # McpGuard let it in, so it came over HTTP
        raise ToolError("the reactpal MCP tools are served over HTTP only")
    client = _client_of(request)
    try:
        body = AskRequest.model_validate({k: v for k, v in fields.items() if v is not None})
        await state.admission.check_rate(client)
        if program is None:
            session = await submit(body, state, _owner(request), client)
        else:
            session = await _submit_program(body, program, state, _owner(request), client)
    except ValidationError as exc:
        raise ToolError(_as_asked(_validation_message(exc), program)) from None
    except ProblemError as exc:
        raise ToolError(_as_asked(str(exc.detail), program)) from None
    try:
        await session.done.wait()
    except asyncio.CancelledError:
        await asyncio.shield(state.runs.cancel(session.run_id, CLIENT_GONE))
        raise
    return _result(session.response)


def _client_of(request: Request) -> str:
    """The caller's key (left by ``McpGuard``), else its address: whom the limits count."""
    return request.scope.get(CLIENT) or client_address(request)


def _owner(request: Request) -> str:
    return owner_of(request.scope.get(CLIENT))


def _as_asked(message: str, program: str | None) -> str:
    """An error in the words of the tool that was called: ``python``'s program is checked as
    a question is, and its errors spoke of a "question" (red-team pass EY)."""
    return message if program is None else message.replace("question", "code")


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"invalid {where or 'arguments'}: {first.get('msg', 'invalid value')}"


def _result(response: AskResponse) -> CallToolResult:
    summary = {
        "run_id": response.run_id,
        "status": response.status,
        "answer": response.answer,
        "steps": len(response.steps),
        "usage": response.usage.model_dump(),
    }
    if response.status in FAILED or response.answer is None:
        why = response.error or "no answer"
        text = f"the run ended with status {response.status}: {why} (run {response.run_id})"
        return CallToolResult(
            content=[TextContent(text=text)], structured_content=summary, is_error=True
        )
    return CallToolResult(content=[TextContent(text=response.answer)], structured_content=summary)


async def _submit_program(
    body: AskRequest, program: str, state: AppState, owner: str, client: str
) -> RunSession:
    """A run of one given program: a stored ``pal``-mode run with that one step."""
    python = state.tools.get("python")
    if python is None:
        raise ProblemError(403, "'python' is not allowed on this server")
    settings = state.settings
    # Refused before the run is stored (it is the run's question and its one step): a
    # 600,000-character program was stored twice per call, 60 calls a minute (pass CV).
    most = settings.sandbox_config().max_code_bytes
    if len(program.encode("utf-8", "surrogatepass")) > most:
        raise ProblemError(413, f"the program is longer than the sandbox takes ({most} bytes)")

    async def start(_llm: MeteredLLM) -> AsyncIterator[StepEvent]:
        return _one_program(python.run, program)

    session = RunSession(
        mode="pal",
        question=body.question,
        start_agent=start,
        llm=state.llm,  # never called: metered for the run's (zero) usage
        timeout_s=settings.request_timeout_s,
        store=state.store,
        metrics=state.metrics,
        owner=owner,
    )
    return await state.runs.submit(session, client)


async def _one_program(
    run: Callable[[str], Awaitable[str]], program: str
) -> AsyncIterator[StepEvent]:
    yield ActionEvent(1, "python", program)
    try:
        output = await run(program)
    except ActionError as exc:
        yield ObservationEvent(1, str(exc))
        yield FinalEvent("error", None, error=str(exc))
        return
    yield ObservationEvent(1, str(output))
    if isinstance(output, ToolOutput) and output.failed:
        yield FinalEvent("error", None, error=str(output))
        return
    result = output.result if isinstance(output, ToolOutput) else str(output)
    yield FinalEvent("finished", result)
