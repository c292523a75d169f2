"""The OpenAI-compatible door (``/v1/chat/completions``, ``/v1/models``) as OpenAI's own clients
use it: the ``openai`` SDK in-process (through ``httpx2.ASGITransport``, in front of the
scripted fake LLM), and the sync SDK and LangChain's ``ChatOpenAI`` against a real uvicorn."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import openai
import pytest
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionUserMessageParam

from tests.fakes import FakeOpenAI, Scenario
from tests.service.conftest import AppFactory
from tests.service.live import ANSWER, FakeLLM, Service, serve

KEY = "openai-door-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROBLEM = "application/problem+json"
QUESTION = "What is 1234 * 5678?"
REACT_STEPS = [
    "Thought: multiply exactly\nAction: python[print(1234 * 5678)]",
    "Thought: done\nAction: finish[7006652]",
]


def _user(content: str) -> ChatCompletionUserMessageParam:
    return {"role": "user", "content": content}


@asynccontextmanager
async def sdk(
    app_client: AppFactory, fake: FakeOpenAI, *, api_key: str = KEY, **settings: Any
) -> AsyncIterator[tuple[openai.AsyncOpenAI, httpx2.AsyncClient]]:
    """The app with ``AGENT_API_KEYS`` set, and an ``openai.AsyncOpenAI`` client of it (no
    retries, so that an error is seen as the server sent it)."""
    async with app_client(fake, agent_api_keys=KEY, **settings) as http:
        http.headers["Authorization"] = f"Bearer {KEY}"  # for the plain requests
        client = openai.AsyncOpenAI(
            api_key=api_key, base_url="http://localhost/v1", http_client=http, max_retries=0
        )
        yield client, http


def _react() -> FakeOpenAI:
    return FakeOpenAI(scenarios=[Scenario("1234 * 5678", steps=REACT_STEPS)])


def _total(usage: dict[str, int]) -> int:
    return usage["prompt_tokens"] + usage["completion_tokens"]


# -- in-process, with the async SDK ----------------------------------------------------------


async def test_a_completion_is_a_stored_run_with_its_answer_steps_and_usage(
    app_client: AppFactory,
) -> None:
    async with sdk(app_client, _react()) as (client, http):
        raw = await client.chat.completions.with_raw_response.create(
            model="reactpal-react", messages=[_user(QUESTION)]
        )
        completion = raw.parse()
        run_id = raw.headers["x-run-id"]
        assert completion.id == f"chatcmpl-{run_id}"
        assert completion.model_extra and completion.model_extra["run_id"] == run_id
        assert completion.object == "chat.completion" and completion.model == "reactpal-react"
        [choice] = completion.choices
        assert choice.message.role == "assistant" and choice.message.content == ANSWER
        assert choice.finish_reason == "stop"
        reasoning = choice.message.model_extra["reasoning_content"]  # type: ignore[index]
        assert "Action: python[print(1234 * 5678)]\nObservation: 7006652" in reasoning

        stored = (await http.get(f"/runs/{run_id}")).json()
        assert stored["status"] == "finished" and stored["answer"] == ANSWER
        assert stored["question"] == QUESTION and stored["mode"] == "react"
        assert stored["details"]["openai"] == {"model": "reactpal-react"}
        usage = completion.usage
        assert usage is not None and usage.prompt_tokens > 0
        assert usage.prompt_tokens == stored["usage"]["prompt_tokens"]
        assert usage.completion_tokens == stored["usage"]["completion_tokens"]
        assert usage.total_tokens == _total(stored["usage"])


async def test_streaming_sends_the_steps_as_reasoning_then_the_answer_then_usage(
    app_client: AppFactory,
) -> None:
    async with sdk(app_client, _react()) as (client, http):
        stream = await client.chat.completions.create(
            model="reactpal-react",
            messages=[_user(QUESTION)],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        run_id = chunks[0].model_extra["run_id"]  # type: ignore[index]
        assert {c.id for c in chunks} == {f"chatcmpl-{run_id}"}
        assert chunks[0].choices[0].delta.role == "assistant"

        kinds: list[str] = []  # what each chunk carries, in order
        reasoning, content = "", ""
        for chunk in chunks[1:-2]:
            delta = chunk.choices[0].delta
            if text := (delta.model_extra or {}).get("reasoning_content"):
                kinds.append("reasoning")
                reasoning += text
            if delta.content:
                kinds.append("content")
                content += delta.content
        # thought, action, observation; thought, finish: then the answer
        assert kinds == ["reasoning"] * 5 + ["content"]
        assert reasoning.startswith("Thought: multiply exactly\n")
        assert "Observation: 7006652" in reasoning and content == ANSWER
        assert chunks[-2].choices[0].finish_reason == "stop"
        assert all(c.choices[0].finish_reason is None for c in chunks[:-2])

        last = chunks[-1]  # the usage chunk: no choices, as OpenAI sends it
        assert last.choices == [] and last.usage is not None
        stored = (await http.get(f"/runs/{run_id}")).json()
        assert stored["status"] == "finished"
        assert last.usage.prompt_tokens == stored["usage"]["prompt_tokens"] > 0
        assert last.usage.completion_tokens == stored["usage"]["completion_tokens"]
        assert last.usage.total_tokens == _total(stored["usage"])
        assert all(c.usage is None for c in chunks[:-1])


async def test_a_stream_without_include_usage_has_no_usage_and_ends_with_done(
    app_client: AppFactory,
) -> None:
    async with sdk(app_client, _react()) as (_, http):
        body = {"model": "reactpal-react", "messages": [_user(QUESTION)], "stream": True}
        response = await http.post("/v1/chat/completions", json=body)
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        assert all("usage" not in chunk and len(chunk["choices"]) == 1 for chunk in chunks)
        assert chunks[-1]["choices"][0] == {
            "index": 0,
            "delta": {},
            "finish_reason": "stop",
            "logprobs": None,
        }
        assert response.headers["x-run-id"] == chunks[0]["run_id"]


async def test_earlier_messages_are_the_runs_memory(app_client: AppFactory) -> None:
    fake = FakeOpenAI(lambda _: "Thought: one year on\nAction: finish[365]")
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Talk like a pirate."},
        _user("How many days are in 2024?"),
        {"role": "assistant", "content": "366"},
        _user("And in 2023?"),
    ]
    async with sdk(app_client, fake) as (client, http):
        completion = await client.chat.completions.create(
            model="reactpal-react",
            messages=messages,
            temperature=0.7,  # accepted and ignored, like the system message
            max_tokens=5,
            user="someone",
        )
        assert completion.choices[0].message.content == "365"
        prompt = fake.chat_requests[0].messages
        texts = [(m["role"], m["content"]) for m in prompt if m["role"] != "system"]
        earlier = texts.index(("user", "Question: How many days are in 2024?"))
        assert "finish[366]" in texts[earlier + 1][1] and texts[earlier + 1][0] == "assistant"
        assert texts[-1] == ("user", "Question: And in 2023?")
        assert "pirate" not in fake.chat_requests[0].text

        run_id = completion.model_extra["run_id"]  # type: ignore[index]
        stored = (await http.get(f"/runs/{run_id}")).json()
        assert stored["question"] == "And in 2023?"
        turns = stored["details"]["memory"]["turns"]
        assert [(t["question"], t["answer"]) for t in turns] == [
            ("How many days are in 2024?", "366")
        ]
        assert stored["details"]["openai"]["system_messages_ignored"] == 1


async def test_pal_model_and_the_models_list(app_client: AppFactory) -> None:
    program = "def solution():\n    return 1234 * 5678\n"
    async with sdk(app_client, FakeOpenAI(default=f"```python\n{program}```")) as (client, _):
        models = await client.models.list()
        assert [m.id for m in models.data] == ["reactpal-react", "reactpal-pal"]
        assert {(m.object, m.owned_by) for m in models.data} == {("model", "reactpal")}
        assert (await client.models.retrieve("reactpal-pal")).id == "reactpal-pal"
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("gpt-4o")
        assert missing.value.code == "model_not_found"

        completion = await client.chat.completions.create(
            model="reactpal-pal", messages=[_user(QUESTION)]
        )
        assert completion.choices[0].message.content == ANSWER
        reasoning = completion.choices[0].message.model_extra["reasoning_content"]  # type: ignore[index]
        assert "return 1234 * 5678" in reasoning


async def test_errors_are_the_sdks_typed_exceptions(app_client: AppFactory) -> None:
    async with sdk(app_client, _react()) as (client, http):
        ask: dict[str, Any] = {"model": "reactpal-react", "messages": [_user(QUESTION)]}
        wrong = client.with_options(api_key="x" * 24)
        with pytest.raises(openai.AuthenticationError) as denied:
            await wrong.chat.completions.create(**ask)
        assert denied.value.code == "invalid_api_key"
        assert denied.value.type == "authentication_error"
        with pytest.raises(openai.AuthenticationError):
            await wrong.models.list()

        with pytest.raises(openai.NotFoundError) as unknown:
            await client.chat.completions.create(**{**ask, "model": "gpt-4o"})
        assert (unknown.value.code, unknown.value.param) == ("model_not_found", "model")
        assert "reactpal-react" in unknown.value.message

        refused: dict[str, tuple[dict[str, Any], str]] = {
            "n": ({"n": 2}, "must be 1"),
            "tools": (
                {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
                "chooses its own actions",
            ),
            "tool_choice": ({"tool_choice": "required"}, "'none' or 'auto'"),
            "logprobs": ({"logprobs": True}, "not supported"),
            "response_format.type": ({"response_format": {"type": "json_object"}}, "'text'"),
            "stream_options.include_usage": ({"stream_options": {"include_usage": 1}}, "bool"),
            "messages": (
                {"messages": [{"role": "system", "content": "only this"}]},
                "no user message",
            ),
            "messages.[0].content": ({"messages": [_user("   ")]}, "must not be blank"),
        }
        image = {"type": "image_url", "image_url": {"url": "data:,"}}
        parts: dict[str, tuple[dict[str, Any], str]] = {  # pass EY: "a valid string"
            "image": (
                {"messages": [{"role": "user", "content": [image]}]},
                "only text content parts are supported, not 'image_url'",
            ),
            "none": ({"messages": [{"role": "user", "content": []}]}, "at least 1 item"),
        }
        for kind, (change, says) in parts.items():
            with pytest.raises(openai.BadRequestError) as bad:
                await client.chat.completions.create(**{**ask, **change})
            assert bad.value.param == "messages.[0].content", (kind, bad.value.body)
            assert says in bad.value.message, (kind, bad.value.message)
        for param, (change, says) in refused.items():
            with pytest.raises(openai.BadRequestError) as bad:
                await client.chat.completions.create(**{**ask, **change})
            error = bad.value
            assert (error.param, error.type) == (param, "invalid_request_error"), error.body
            assert says in error.message, error.message

        tool_message = {"role": "tool", "tool_call_id": "1", "content": "42"}
        with pytest.raises(openai.BadRequestError) as tool:
            await client.chat.completions.create(
                **{**ask, "messages": [_user(QUESTION), tool_message]}
            )
        assert "the agent runs its own actions" in tool.value.message

        # What any client sees: a problem document that is also OpenAI's error object.
        not_json = await http.post(
            "/v1/chat/completions", content=b"model=x", headers={"content-type": "text/plain"}
        )
        assert not_json.status_code == 400
        assert not_json.json()["error"]["message"] == (
            "the body is not a JSON object (sent as text/plain)"
        )
        unparsable = await http.post(
            "/v1/chat/completions",
            content=b'{"model": ',
            headers={"content-type": "application/json"},
        )
        assert unparsable.status_code == 400
        assert unparsable.headers["content-type"] == PROBLEM
        body = unparsable.json()
        assert body["status"] == 400 and "not valid JSON" in body["detail"]
        assert body["error"] == {
            "message": body["detail"],
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        # /ask keeps its own errors: a 422 problem document without OpenAI's object.
        other = await http.post("/ask", json={"question": "q", "n": 2})
        assert other.status_code == 422 and "error" not in other.json()


async def test_rate_limit_is_a_429_with_retry_after(app_client: AppFactory) -> None:
    async with sdk(app_client, _react(), rate_limit="1/minute") as (client, _):
        await client.chat.completions.create(model="reactpal-react", messages=[_user(QUESTION)])
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="reactpal-react", messages=[_user(QUESTION)])
        assert limited.value.code == "rate_limit_exceeded"
        assert int(limited.value.response.headers["retry-after"]) >= 1


async def test_a_mode_outside_the_allow_list_is_a_403(app_client: AppFactory) -> None:
    async with sdk(app_client, _react(), allowed_actions="search,finish") as (client, _):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model="reactpal-pal", messages=[_user("q")])
        assert "'python' is not allowed" in refused.value.message


async def test_a_failed_run_is_an_error_not_an_empty_answer(app_client: AppFactory) -> None:
    fake = _react()
    fake.fail("500", times=20)
    async with sdk(app_client, fake) as (client, http):
        with pytest.raises(openai.InternalServerError) as failed:
            await client.chat.completions.create(model="reactpal-react", messages=[_user(QUESTION)])
        error = failed.value
        assert error.status_code == 502
        assert (error.type, error.code) == ("server_error", "llm_unavailable")
        run_id = error.response.json()["run_id"]
        assert error.response.headers["x-run-id"] == run_id
        assert (await http.get(f"/runs/{run_id}")).json()["status"] == "error"

        stream = await client.chat.completions.create(
            model="reactpal-react", messages=[_user(QUESTION)], stream=True
        )
        received = []
        with pytest.raises(openai.APIError) as broken:
            async for chunk in stream:
                received.append(chunk)
        assert broken.value.code == "llm_unavailable"
        assert all(not c.choices[0].delta.content for c in received)  # no answer was made up

    # The model answers, but never with an action: the agent gives up, and says so.
    async with sdk(app_client, FakeOpenAI(default="I would rather not say.")) as (client, _):
        with pytest.raises(openai.InternalServerError) as unanswered:
            await client.chat.completions.create(model="reactpal-react", messages=[_user(QUESTION)])
        assert (unanswered.value.status_code, unanswered.value.code) == (502, "no_answer")
        assert "no usable action" in unanswered.value.message


async def test_a_run_at_its_step_limit_finishes_with_length(app_client: AppFactory) -> None:
    fake = FakeOpenAI(
        lambda req: (
            "Thought: best guess\nAction: finish[about 7 million]"
            if "no more actions can run" in req.text
            else "Thought: more\nAction: python[print(1)]"
        )
    )
    async with sdk(app_client, fake, default_max_steps=1) as (client, _):
        completion = await client.chat.completions.create(
            model="reactpal-react", messages=[_user(QUESTION)]
        )
        assert completion.choices[0].finish_reason == "length"
        assert completion.choices[0].message.content == "about 7 million"


async def test_the_door_is_documented(app_client: AppFactory) -> None:
    async with sdk(app_client, _react()) as (_, http):
        paths = (await http.get("/openapi.json")).json()["paths"]
        post = paths["/v1/chat/completions"]["post"]
        assert post["tags"] == ["openai"] and post["summary"]
        assert "text/event-stream" in post["responses"]["200"]["content"]
        assert post["responses"]["422"]["description"].startswith("Not sent")  # a 400 here
        error = post["responses"]["400"]["content"][PROBLEM]["schema"]
        assert {"error", "detail"} <= set(error["required"])
        assert paths["/v1/models"]["get"]["tags"] == ["openai"]


# -- a real server: the sync SDK and LangChain -----------------------------------------------

PROGRAM = "```python\ndef solution():\n    return 1234 * 5678\n```"
GATED = "What is 1234 * 5678? [fault:gated]"


class _AgentLLM(FakeLLM):
    """``FakeLLM``, which answers ReAct's prompts, and PAL's too: a program (PAL's exemplars
    are ``Q:`` turns)."""

    def _answer(self, handler: Any, body: dict[str, Any]) -> None:
        messages = body.get("messages", [])
        if any(str(m.get("content", "")).startswith("Q: ") for m in messages):
            message = {"role": "assistant", "content": PROGRAM}
            handler._json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "fake",
                    "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                },
            )
            return
        super()._answer(handler, body)


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with _AgentLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def service(llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serve(tmp_path_factory.mktemp("openai"), llm_url=llm.url, AGENT_API_KEYS=KEY) as svc:
        svc.client.headers["Authorization"] = f"Bearer {KEY}"
        yield svc


def test_the_sync_sdk_against_a_real_server_streams_as_the_run_goes(
    service: Service, llm: FakeLLM
) -> None:
    # A stream that only starts at the run's end times out rather than hanging the test.
    client = openai.OpenAI(
        api_key=KEY, base_url=f"{service.base_url}/v1", max_retries=0, timeout=10
    )
    completion = client.chat.completions.create(model="reactpal-react", messages=[_user(QUESTION)])
    assert completion.choices[0].message.content == ANSWER

    llm.arm()
    try:
        stream = client.chat.completions.create(
            model="reactpal-react", messages=[_user(GATED)], stream=True
        )
        chunks = iter(stream)
        first = next(chunks)  # while the model is still held: the run is under way
        assert llm.gated.wait(10)
        run_id = first.model_extra["run_id"]  # type: ignore[index]
        assert service.client.get(f"/runs/{run_id}").json()["status"] == "running"
    finally:
        llm.release()
    rest = list(chunks)
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in rest
    )
    assert "Observation: 7006652" in reasoning
    assert "".join(c.choices[0].delta.content or "" for c in rest) == ANSWER
    assert rest[-1].choices[0].finish_reason == "stop"

    with pytest.raises(openai.AuthenticationError):
        client.with_options(api_key="y" * 24).models.list()


def test_a_client_that_hangs_up_cancels_the_run(service: Service, llm: FakeLLM) -> None:
    llm.arm()
    body = {"model": "reactpal-react", "messages": [_user(GATED)], "stream": True}
    try:
        with (
            service.new_client() as client,
            client.stream(
                "POST",
                "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {KEY}"},
            ) as response,
        ):
            run_id = response.headers["x-run-id"]
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")  # the role chunk
            assert llm.gated.wait(10)  # the run waits on the model: now hang up
        deadline = time.monotonic() + 10
        while (status := service.client.get(f"/runs/{run_id}").json()["status"]) == "running":
            assert time.monotonic() < deadline, "the run outlived its client"
            time.sleep(0.1)
        assert status == "cancelled"
    finally:
        llm.release()


def test_langchain_chat_openai_invokes_and_streams(service: Service) -> None:
    chat = ChatOpenAI(
        base_url=f"{service.base_url}/v1", api_key=KEY, model="reactpal-pal", max_retries=0
    )
    assert chat.invoke(QUESTION).content == ANSWER
    streamed = list(chat.stream(QUESTION))
    assert "".join(str(chunk.content) for chunk in streamed) == ANSWER
    react = chat.model_copy(update={"model_name": "reactpal-react"})
    assert react.invoke([("system", "Be brief."), ("human", QUESTION)]).content == ANSWER


async def test_a_completion_reads_the_collections_it_names(app_client: AppFactory) -> None:
    """``collections`` through OpenAI's SDK (``extra_body``): the run retrieves first and
    answers from the passage; a collection the key does not have is an OpenAI-shaped 404."""
    from tests.service.test_collections_api import RETRIEVE, _retrieving_model, upload
    from tests.tools.test_retrieve_ingest import MARKDOWN

    fake = _retrieving_model("capital of Freedonia", "Fredville [1]")
    async with sdk(app_client, fake, **RETRIEVE) as (client, http):
        await http.post("/collections", json={"name": "handbook"})
        await upload(http, "handbook", "freedonia.md", MARKDOWN.encode())
        completion = await client.chat.completions.create(
            model="reactpal-react",
            messages=[_user("What is the capital of Freedonia?")],
            extra_body={"collections": ["handbook"]},
        )
        assert completion.choices[0].message.content == "Fredville [1]"
        run_id = (completion.model_extra or {})["run_id"]
        stored = (await http.get(f"/runs/{run_id}")).json()
        assert stored["steps"][0]["action"] == "retrieve"
        assert stored["details"]["sources"][0]["source"] == "freedonia.md"
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(
                model="reactpal-react",
                messages=[_user("What is the capital of Freedonia?")],
                extra_body={"collections": ["nowhere"]},
            )
        assert "nowhere" in str(caught.value)
