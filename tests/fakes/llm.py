"""A scripted OpenAI-compatible server for tests, behind the real ``openai`` client.

``FakeOpenAI`` answers ``POST /v1/chat/completions`` and ``GET /v1/models`` through an
``httpx2.MockTransport``, so the production code path (``OpenAILLM`` -> ``openai`` SDK ->
``httpx2``) runs offline. It records every request, returns realistic ``usage``, honours
``stop`` and ``n`` like a real server, and injects faults on demand.

What it answers, first match wins:

0. unless a fault is queued, a capability probe (``OpenAILLM.probe``), answered as a server
   with ``enforces`` (the JSON schema dialect it enforces: ``"openai"``, ``"llama_cpp"`` or
   None) and ``tool_calls`` would; a ``llama_cpp`` server fails on OpenAI's dialect with a
   500, as llama-cpp-python's does; probes do not consume the script;
1. a queued fault (``fake.fail("429", times=2)``): the next calls fail, then the script resumes;
2. ``script`` as a function of the request: ``lambda req: "Thought: ...\\nAction: ..."``;
3. a ``Scenario`` whose ``match`` is a substring of the conversation (case and whitespace
   ignored): its ``steps[i]``, where ``i`` is how far the conversation has got after the
   match (the larger of the number of tool messages, assistant messages and ``Observation``
   lines after it, as in ``../shared/tools/scripted_llm.py``); the last step repeats;
4. ``script`` as a list: the k-th chat request gets ``script[k]``;
5. ``default``.

A reply is a ``str`` (the assistant's text), a ``ToolCallReply`` (a native tool call), a
``Fault``, or a ``list`` of str / ``ToolCallReply`` giving one choice each (for ``n > 1``; it
is cycled to ``n``; a single str with ``n > 1`` is repeated).

Example::

    from tests.fakes import FakeOpenAI, Scenario, ToolCallReply, make_llm

    fake = FakeOpenAI(scenarios=[Scenario("capital of France", steps=[
        "Thought: look it up\\nAction: search[capital of France]",
        "Thought: done\\nAction: finish[Paris]",
    ])])
    fake.fail("429", times=1, retry_after=0)   # the first call is rate limited
    llm = make_llm(fake)                       # a real OpenAILLM, ~0 backoff
    completion = await llm.complete([ChatMessage("user", "What is the capital of France?")],
                                    stop=["Observation"])
    assert fake.calls == 2 and fake.last.stop == ["Observation"]
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import httpx2

from agents.llm.capabilities import PROBE_ANSWER, PROBE_TOOL, SchemaDialect
from agents.llm.openai_backend import OpenAILLM

FaultKind = Literal[
    "429",  # rate limited (with Retry-After when ``retry_after`` is set)
    "500",  # server error
    "503",  # unavailable (with Retry-After when ``retry_after`` is set)
    "400",  # bad request: not retried
    "401",  # wrong key: not retried
    "timeout",  # the transport times out (httpx2.ReadTimeout)
    "hang",  # never answers: only the client's own deadline ends the call
    "disconnect",  # the server closes the connection without answering
    "connect",  # connection refused
    "garbage",  # 200 with an HTML body
    "bad_json",  # 200, JSON content type, body not JSON
    "empty_choices",  # 200 with "choices": []
    "no_content",  # 200, a message with neither content nor tool calls
]


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    retry_after: float | None = None  # seconds, sent as Retry-After on 429/503
    message: str = "injected fault"
    headers: Mapping[str, str] = field(default_factory=dict)  # more headers on a status fault


@dataclass(frozen=True, slots=True)
class ToolCallReply:
    """A native tool call; ``arguments`` as a mapping is JSON-encoded for the wire."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    thought: str | None = None  # sent as the message's content alongside the call
    id: str | None = None

    def as_text(self) -> str:
        """The same step in the text protocol, for requests that sent no ``tools``."""
        args = self.arguments
        if isinstance(args, Mapping):
            args = str(next(iter(args.values()))) if len(args) == 1 else json.dumps(args)
        return f"Thought: {self.thought or 'I will use a tool.'}\nAction: {self.name}[{args}]"


Reply: TypeAlias = str | ToolCallReply | Fault | list[str | ToolCallReply]


@dataclass(frozen=True, slots=True)
class Scenario:
    match: str  # a substring of the question (case and whitespace ignored)
    steps: Sequence[Reply]
    fault: Fault | FaultKind | None = None  # applied to every call of this scenario
    delay_s: float = 0.0  # before each answer


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """One request as the server saw it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def stop(self) -> list[str]:
        stop = self.body.get("stop")
        return [stop] if isinstance(stop, str) else list(stop or [])

    @property
    def n(self) -> int:
        return int(self.body.get("n") or 1)

    @property
    def temperature(self) -> float | None:
        return self.body.get("temperature")

    @property
    def max_tokens(self) -> int | None:
        return self.body.get("max_tokens")

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("tools") or [])

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def text(self) -> str:
        """Every message's text, joined: handy for ``assert "Observation: 42" in req.text``."""
        return "\n".join(_text(m.get("content")) for m in self.messages)


Script: TypeAlias = Sequence[Reply] | Callable[[FakeRequest], Reply] | None


class FakeOpenAI:
    """A scripted OpenAI-compatible endpoint; see the module docstring."""

    base_url = "http://fake-llm.test/v1"

    def __init__(
        self,
        script: Script = None,
        *,
        scenarios: Sequence[Scenario] = (),
        default: Reply = "Thought: no script\nAction: finish[unscripted]",
        models: Sequence[str] = ("fake-model",),
        honour_stop: bool = True,
        honour_n: bool = True,
        delay_s: float = 0.0,
        enforces: SchemaDialect | None = None,
        tool_calls: bool = False,
    ) -> None:
        self.script = script
        self.enforces = enforces
        self.tool_calls = tool_calls
        self.scenarios = list(scenarios)
        self.default = default
        self.models = list(models)
        self.honour_stop = honour_stop  # False: behave like a server that ignores ``stop``
        self.honour_n = honour_n  # False: one choice whatever ``n`` (llama.cpp, Ollama)
        self.delay_s = delay_s
        self.requests: list[FakeRequest] = []
        self.misses = 0  # chat requests answered with ``default``
        self._faults: list[Fault] = []
        self._scripted = 0  # list-script entries consumed
        self.transport = httpx2.MockTransport(self._handle)

    # -- configuring ----------------------------------------------------------------------

    def fail(
        self,
        kind: FaultKind,
        *,
        times: int = 1,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> FakeOpenAI:
        """Make the next ``times`` chat requests fail with ``kind``, then answer normally."""
        self._faults.extend([Fault(kind, retry_after, headers=dict(headers or {}))] * times)
        return self

    def client(self) -> httpx2.AsyncClient:
        """A fresh ``httpx2.AsyncClient`` wired to this fake (for ``OpenAILLM(http_client=)``)."""
        return httpx2.AsyncClient(transport=self.transport)

    # -- inspecting -----------------------------------------------------------------------

    @property
    def chat_requests(self) -> list[FakeRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def calls(self) -> int:
        """How many chat completion requests arrived (retries included)."""
        return len(self.chat_requests)

    @property
    def last(self) -> FakeRequest:
        return self.chat_requests[-1]

    # -- serving --------------------------------------------------------------------------

    async def _handle(self, request: httpx2.Request) -> httpx2.Response:
        body: Any = json.loads(request.content) if request.content else {}
        seen = FakeRequest(
            method=request.method,
            path=request.url.path,
            headers=dict(request.headers),
            body=body if isinstance(body, dict) else {},
        )
        self.requests.append(seen)
        if request.method == "GET" and seen.path.endswith("/models"):
            data = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]
            return httpx2.Response(200, json={"object": "list", "data": data})
        if request.method == "POST" and seen.path.endswith("/chat/completions"):
            return await self._chat(seen, request)
        return httpx2.Response(404, json={"error": {"message": f"no route {seen.path}"}})

    async def _chat(self, seen: FakeRequest, request: httpx2.Request) -> httpx2.Response:
        probe = None if self._faults else self._probe_reply(seen)
        if probe is not None:
            return probe
        scenario = self._scenario(seen)
        delay = scenario.delay_s if scenario else self.delay_s
        if delay:
            await asyncio.sleep(delay)
        reply: Reply
        if self._faults:
            reply = self._faults.pop(0)
        elif scenario is not None and scenario.fault is not None:
            fault = scenario.fault
            reply = fault if isinstance(fault, Fault) else Fault(fault)
        else:
            reply = self._reply(seen, scenario)
        if isinstance(reply, Fault):
            return await _fault_response(reply, request)
        return self._completion(seen, reply)

    def _probe_reply(self, seen: FakeRequest) -> httpx2.Response | None:
        fmt = seen.body.get("response_format")
        if isinstance(fmt, dict):
            dialect = "openai" if fmt.get("type") == "json_schema" else "llama_cpp"
            if dialect == "openai" and self.enforces == "llama_cpp":
                message = "response_format type json_schema is not supported"
                return httpx2.Response(500, json={"error": {"message": message}})
            schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}
            enum = schema.get("properties", {}).get("answer", {}).get("enum")
            if enum == [PROBE_ANSWER]:
                answer = json.dumps({"answer": PROBE_ANSWER}) if dialect == self.enforces else "4"
                return self._completion(seen, answer)
        if any(t.get("function", {}).get("name") == PROBE_TOOL.name for t in seen.tools):
            call = ToolCallReply(PROBE_TOOL.name, {"answer": "4"})
            return self._completion(seen, call if self.tool_calls else "4")
        return None

    def _scenario(self, seen: FakeRequest) -> Scenario | None:
        whole = _norm(seen.text)
        return next((s for s in self.scenarios if _norm(s.match) in whole), None)

    def _reply(self, seen: FakeRequest, scenario: Scenario | None) -> Reply:
        if callable(self.script):
            return self.script(seen)
        if scenario is not None:
            index = _step_index(seen.messages, scenario.match)
            return scenario.steps[min(index, len(scenario.steps) - 1)]
        if self.script is not None and self._scripted < len(self.script):
            self._scripted += 1
            return self.script[self._scripted - 1]
        self.misses += 1
        return self.default

    def _completion(
        self, seen: FakeRequest, reply: str | ToolCallReply | list[str | ToolCallReply]
    ) -> httpx2.Response:
        n = seen.n if self.honour_n else 1
        parts = reply if isinstance(reply, list) else [reply]
        if not parts:
            raise AssertionError("a list of choices needs at least one reply")
        choices = [
            self._choice(i, part, seen)
            for i, part in zip(range(n), itertools.cycle(parts), strict=False)
        ]
        completion_words = sum(len((c["message"].get("content") or "").split()) for c in choices)
        prompt_tokens = sum(len(_text(m.get("content")).split()) for m in seen.messages) + 1
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_words + len(choices),
            "total_tokens": prompt_tokens + completion_words + len(choices),
        }
        body = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:16],
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": seen.model or "fake-model",
            "choices": choices,
            "usage": usage,
        }
        # ASCII JSON, as many servers send it: a lone surrogate in a reply travels as "\ud800"
        return httpx2.Response(
            200, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )

    def _choice(self, index: int, part: str | ToolCallReply, seen: FakeRequest) -> dict[str, Any]:
        if isinstance(part, ToolCallReply) and seen.tools:
            args = part.arguments
            call = {
                "id": part.id or "call_" + uuid.uuid4().hex[:12],
                "type": "function",
                "function": {
                    "name": part.name,
                    "arguments": args if isinstance(args, str) else json.dumps(dict(args)),
                },
            }
            message = {"role": "assistant", "content": part.thought, "tool_calls": [call]}
            return {"index": index, "message": message, "finish_reason": "tool_calls"}
        text = part.as_text() if isinstance(part, ToolCallReply) else part
        finish = "stop"
        if self.honour_stop:
            cut = min((i for i in (text.find(s) for s in seen.stop if s) if i >= 0), default=-1)
            text = text if cut < 0 else text[:cut]
        message = {"role": "assistant", "content": text}
        return {"index": index, "message": message, "finish_reason": finish}


def make_llm(fake: FakeOpenAI, **overrides: Any) -> OpenAILLM:
    """A real ``OpenAILLM`` talking to ``fake``: model "fake-model", 2 retries, no backoff,
    Retry-After capped at 0 s (pass ``retry_after_max_s`` to test it), 5 s per call."""
    options: dict[str, Any] = {
        "base_url": fake.base_url,
        "api_key": "test-key",
        "model": "fake-model",
        "timeout_s": 5.0,
        "max_retries": 2,
        "backoff_initial_s": 0.0,
        "backoff_max_s": 0.0,
        "retry_after_max_s": 0.0,
        "http_client": fake.client(),
    }
    options.update(overrides)
    return OpenAILLM(**options)


# -- faults ---------------------------------------------------------------------------------


async def _fault_response(fault: Fault, request: httpx2.Request) -> httpx2.Response:
    kind = fault.kind
    if kind in ("429", "500", "503", "400", "401"):
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        kinds = {"429": "rate_limit_exceeded", "401": "invalid_api_key", "400": "invalid_request"}
        error = {"message": fault.message, "type": kinds.get(kind, "server_error")}
        return httpx2.Response(int(kind), json={"error": error}, headers=headers)
    if kind == "timeout":
        raise httpx2.ReadTimeout("fake read timeout", request=request)
    if kind == "hang":
        await asyncio.Event().wait()  # until the client gives up and cancels
    if kind == "disconnect":
        raise httpx2.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )
    if kind == "connect":
        raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)
    if kind == "garbage":
        return httpx2.Response(
            200, text="<html>502 Bad Gateway</html>", headers={"content-type": "text/html"}
        )
    if kind == "bad_json":
        return httpx2.Response(
            200, content=b'{"choices": [', headers={"content-type": "application/json"}
        )
    if kind == "empty_choices":
        return httpx2.Response(
            200,
            json={
                "id": "chatcmpl-empty",
                "object": "chat.completion",
                "created": 0,
                "model": "fake-model",
                "choices": [],
            },
        )
    # no_content
    message = {"role": "assistant", "content": None}
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-none",
            "object": "chat.completion",
            "created": 0,
            "model": "fake-model",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        },
    )


# -- conversation matching (the same rule as ../shared/tools/scripted_llm.py) ---------------

_OBSERVATION = re.compile(r"(?:^| )observation(?: \d+)?:")  # applied to _norm()ed text


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _norm(text: str) -> str:
    """Matching ignores case, runs of whitespace and escaping backslashes."""
    return re.sub(r"\s+", " ", text.replace("\\", "")).lower()


def _step_index(messages: Sequence[Mapping[str, Any]], match: str) -> int:
    match = _norm(match)
    seen = False
    tools = assistants = observations = 0
    for message in messages:
        text = _norm(_text(message.get("content")))
        if not seen:
            pos = text.find(match)
            if pos >= 0:
                seen = True
                observations += len(_OBSERVATION.findall(text[pos + len(match) :]))
            continue
        role = message.get("role")
        tools += role == "tool"
        assistants += role == "assistant"
        observations += len(_OBSERVATION.findall(text))
    return max(tools, assistants, observations)
