"""OpenAILLM through the real ``openai`` client, against the scripted fake over MockTransport."""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time

import httpx2
import openai
import pytest
from openai._constants import MAX_RETRY_AFTER_DELAY

from agents.errors import (
    LLMBadResponse,
    LLMConfigError,
    LLMConnectionError,
    LLMError,
    LLMRateLimited,
    LLMTimeout,
)
from agents.llm.base import LLM, ChatMessage, ToolCall, ToolSpec
from agents.llm.openai_backend import PLACEHOLDER_API_KEY, OpenAILLM, should_retry
from tests.fakes import FakeOpenAI, Fault, FaultKind, Scenario, ToolCallReply, make_llm

QUESTION = [ChatMessage("system", "Answer."), ChatMessage("user", "What is 6 * 7?")]
CALC = ToolSpec(
    name="python",
    description="Run Python code.",
    parameters={"type": "object", "properties": {"code": {"type": "string"}}},
)


class Sleeps:
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def test_plain_completion_with_usage_and_request_shape() -> None:
    fake = FakeOpenAI(["Thought: easy\nAction: finish[42]"])
    llm = make_llm(fake)
    assert isinstance(llm, LLM)

    completion = await llm.complete(QUESTION, temperature=0.3, max_tokens=64)

    assert completion.text == "Thought: easy\nAction: finish[42]"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    sent = fake.last
    assert sent.model == "fake-model"
    assert sent.messages == [
        {"role": "system", "content": "Answer."},
        {"role": "user", "content": "What is 6 * 7?"},
    ]
    assert (sent.temperature, sent.max_tokens, sent.n) == (0.3, 64, 1)
    assert "n" not in sent.body and "tools" not in sent.body
    assert sent.headers["authorization"] == "Bearer test-key"


async def test_missing_api_key_sends_a_placeholder() -> None:
    fake = FakeOpenAI(["ok"])
    await make_llm(fake, api_key=None).complete(QUESTION)
    assert fake.last.headers["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"


async def test_stop_is_sent_capped_at_four_and_enforced_client_side() -> None:
    fake = FakeOpenAI(
        ["Thought: t\nAction: search[x]\nObservation: invented\nEND"], honour_stop=False
    )
    stops = ["Observation", "Observation", "S2", "S3", "S4", "END", ""]

    completion = await make_llm(fake).complete(QUESTION, stop=stops)

    assert fake.last.stop == ["Observation", "S2", "S3", "S4"]
    assert completion.text == "Thought: t\nAction: search[x]\n"
    assert "invented" not in completion.text


async def test_stop_beyond_the_api_limit_still_cuts_the_text() -> None:
    fake = FakeOpenAI(["alpha END omega"])
    completion = await make_llm(fake).complete(QUESTION, stop=["a1", "a2", "a3", "a4", "END"])
    assert completion.text == "alpha "


async def test_n_choices_from_one_request() -> None:
    fake = FakeOpenAI([["print(1)", "print(2)", "print(3)"]])

    completion = await make_llm(fake).complete(QUESTION, n=3, temperature=0.7)

    assert [c.text for c in completion.choices] == ["print(1)", "print(2)", "print(3)"]
    assert fake.calls == 1 and fake.last.n == 3
    assert completion.requests == 1


async def test_server_ignoring_n_is_topped_up_with_single_calls() -> None:
    fake = FakeOpenAI(["a", "b", "c"], honour_n=False)
    llm = make_llm(fake)
    assert llm.supports_n

    completion = await llm.complete(QUESTION, n=3, temperature=0.7)

    assert sorted(c.text for c in completion.choices) == ["a", "b", "c"]
    assert fake.calls == 3 == completion.requests  # each counts (pass EZ: llm_calls said 1)
    assert [r.n for r in fake.chat_requests] == [3, 1, 1]
    one = completion.usage.prompt_tokens // 3
    assert completion.usage.prompt_tokens == 3 * one > 0
    # Seen once: callers draw each sample themselves from now on (a PAL vote decided early
    # cancels the draws it no longer needs, which one call topping them up could not).
    assert not llm.supports_n


async def test_native_tool_call_round_trip() -> None:
    fake = FakeOpenAI(
        [
            ToolCallReply("python", {"code": "print(6 * 7)"}, thought="compute", id="call_1"),
            "The answer is 42.",
        ]
    )
    llm = make_llm(fake)

    first = await llm.complete(QUESTION, tools=[CALC])

    choice = first.choices[0]
    assert choice.tool_calls == (
        ToolCall(id="call_1", name="python", arguments='{"code": "print(6 * 7)"}'),
    )
    assert choice.text == "compute" and choice.finish_reason == "tool_calls"
    assert fake.last.tools == [
        {
            "type": "function",
            "function": {
                "name": "python",
                "description": "Run Python code.",
                "parameters": {"type": "object", "properties": {"code": {"type": "string"}}},
            },
        }
    ]

    history = [
        *QUESTION,
        ChatMessage("assistant", "", tool_calls=choice.tool_calls),
        ChatMessage("tool", "42\n", tool_call_id="call_1"),
    ]
    second = await llm.complete(history, tools=[CALC])

    assert second.text == "The answer is 42."
    assert fake.last.messages[2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "python", "arguments": '{"code": "print(6 * 7)"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42\n"},
    ]


async def test_tool_message_without_call_id_is_refused_before_sending() -> None:
    fake = FakeOpenAI(["x"])
    with pytest.raises(LLMError, match="tool_call_id"):
        await make_llm(fake).complete([ChatMessage("tool", "42")])
    assert fake.calls == 0


async def test_scenarios_follow_the_conversation() -> None:
    fake = FakeOpenAI(
        scenarios=[Scenario("6 * 7", ["Action: python[print(6*7)]", "Action: finish[42]"])]
    )
    llm = make_llm(fake)
    first = await llm.complete(QUESTION, stop=["Observation"])
    second = await llm.complete(
        [*QUESTION, ChatMessage("assistant", first.text), ChatMessage("user", "Observation: 42")]
    )
    assert (first.text, second.text) == ("Action: python[print(6*7)]", "Action: finish[42]")
    assert fake.misses == 0


async def test_429_is_retried_then_succeeds() -> None:
    fake = FakeOpenAI(["ok"]).fail("429", times=2)
    sleeps = Sleeps()

    completion = await make_llm(
        fake, backoff_initial_s=0.25, backoff_max_s=8.0, sleep=sleeps
    ).complete(QUESTION)

    assert completion.text == "ok"
    assert fake.calls == 3
    assert len(sleeps.delays) == 2
    assert 0.25 <= sleeps.delays[0] <= 0.5 and 0.5 <= sleeps.delays[1] <= 0.75  # exp + jitter


async def test_retry_after_is_the_wait() -> None:
    fake = FakeOpenAI(["ok"])
    fake.fail("429", retry_after=0.5)
    fake.fail("503", retry_after=1.5)
    fake.fail("503", retry_after=0)  # not a wait: the backoff's
    sleeps = Sleeps()

    llm = make_llm(
        fake,
        retry_after_max_s=2.0,
        max_retries=3,
        backoff_initial_s=0.25,
        backoff_max_s=8.0,
        sleep=sleeps,
    )
    completion = await llm.complete(QUESTION)

    assert completion.text == "ok"
    assert sleeps.delays[:2] == [0.5, 1.5] and 0.25 <= sleeps.delays[2] <= 2.0


async def test_a_retry_after_beyond_the_cap_is_not_retried() -> None:
    # The SDK's rule: a server asking for a longer wait than the client takes gets an answer
    # now, not a retry the server said would fail.
    fake = FakeOpenAI(["ok"]).fail("429", retry_after=3600)
    sleeps = Sleeps()
    with pytest.raises(LLMRateLimited, match="retry after 3600 s, longer than this client waits"):
        await make_llm(fake, retry_after_max_s=2.0, sleep=sleeps).complete(QUESTION)
    assert (fake.calls, sleeps.delays) == (1, [])


async def test_the_server_says_whether_to_retry() -> None:
    fake = FakeOpenAI(["ok"]).fail("400", headers={"x-should-retry": "true"})
    assert (await make_llm(fake).complete(QUESTION)).text == "ok"
    assert fake.calls == 2

    fake = FakeOpenAI(["ok"]).fail("503", headers={"x-should-retry": "false"})
    with pytest.raises(LLMBadResponse, match="503"):
        await make_llm(fake).complete(QUESTION)
    assert fake.calls == 1


def _response(status: int, headers: dict[str, str]) -> httpx2.Response:
    request = httpx2.Request("POST", "http://llm.test/v1/chat/completions")
    return httpx2.Response(status, headers=headers, request=request)


_SOON = email.utils.formatdate(time.time() + 30, usegmt=True)
_LATE = email.utils.formatdate(time.time() + 3600, usegmt=True)
RETRY_HEADERS: list[dict[str, str]] = [
    {},
    {"x-should-retry": "true"},
    {"x-should-retry": "false"},
    {"x-should-retry": "maybe"},
    {"retry-after": "1"},
    {"retry-after": "121"},
    {"retry-after": "121", "x-should-retry": "true"},
    {"retry-after-ms": "500"},
    {"retry-after-ms": "500000", "retry-after": "1"},
    {"retry-after": "1e999"},
    {"retry-after": "inf"},
    {"retry-after": "nan"},
    {"retry-after": "-5"},
    {"retry-after": _SOON},
    {"retry-after": _LATE},
    {"retry-after": "soon"},
]


@pytest.mark.parametrize("status", [400, 401, 404, 408, 409, 422, 429, 500, 502, 503])
@pytest.mark.parametrize("headers", RETRY_HEADERS, ids=lambda h: repr(h)[:40])
def test_retry_decisions_match_the_openai_sdk(status: int, headers: dict[str, str]) -> None:
    """The SDK's own rule (its private ``_should_retry``, pinned with the SDK's version) and
    ours agree, with the SDK's limit of 120 s for a server-directed wait."""
    sdk = openai.AsyncOpenAI(base_url="http://llm.test/v1", api_key="k")
    response = _response(status, headers)
    ours = should_retry(response, retry_after_max_s=MAX_RETRY_AFTER_DELAY)
    assert ours == sdk._should_retry(response)


async def test_retry_after_really_waits() -> None:
    fake = FakeOpenAI(["ok"]).fail("429", retry_after=0.05)
    start = time.monotonic()
    await make_llm(fake, retry_after_max_s=1.0).complete(QUESTION)
    assert 0.05 <= time.monotonic() - start < 1.0


async def test_persistent_429_raises_rate_limited_after_bounded_attempts() -> None:
    fake = FakeOpenAI(["ok"]).fail("429", times=10)
    with pytest.raises(LLMRateLimited, match=r"429.*after 3 attempts") as info:
        await make_llm(fake, max_retries=2).complete(QUESTION)
    assert fake.calls == 3
    assert info.value.__cause__ is not None


async def test_500_is_retried_then_fails_with_the_status() -> None:
    fake = FakeOpenAI(scenarios=[Scenario("6 * 7", ["ok"], fault="500")])
    with pytest.raises(LLMBadResponse, match=r"HTTP 500.*injected fault.*after 4 attempts"):
        await make_llm(fake, max_retries=3).complete(QUESTION)
    assert fake.calls == 4


@pytest.mark.parametrize(("kind", "error"), [("400", LLMBadResponse), ("401", LLMConfigError)])
async def test_client_errors_are_not_retried(kind: FaultKind, error: type[LLMError]) -> None:
    fake = FakeOpenAI(scenarios=[Scenario("6 * 7", ["ok"], fault=Fault(kind))])
    with pytest.raises(error, match=f"HTTP {kind}"):
        await make_llm(fake).complete(QUESTION)
    assert fake.calls == 1


async def test_transport_timeout_becomes_llm_timeout_after_retries() -> None:
    fake = FakeOpenAI(["ok"]).fail("timeout", times=5)
    with pytest.raises(LLMTimeout):
        await make_llm(fake, max_retries=1).complete(QUESTION)
    assert fake.calls == 2


async def test_hanging_server_times_out_within_the_per_call_bound() -> None:
    fake = FakeOpenAI(scenarios=[Scenario("6 * 7", ["ok"], fault="hang")])
    start = time.monotonic()
    with pytest.raises(LLMTimeout, match=re.escape("within 0.05 s")):
        await make_llm(fake, timeout_s=0.05, max_retries=1).complete(QUESTION)
    assert time.monotonic() - start < 1.0
    assert fake.calls == 2


async def test_timeout_then_success() -> None:
    fake = FakeOpenAI(["ok"]).fail("hang")
    completion = await make_llm(fake, timeout_s=0.05).complete(QUESTION)
    assert completion.text == "ok" and fake.calls == 2


@pytest.mark.parametrize("kind", ["disconnect", "connect"])
async def test_connection_errors_are_retried_then_translated(kind: FaultKind) -> None:
    fake = FakeOpenAI(["ok"]).fail(kind, times=5)
    with pytest.raises(LLMConnectionError, match=re.escape("cannot reach http://fake-llm.test/v1")):
        await make_llm(fake, max_retries=2).complete(QUESTION)
    assert fake.calls == 3


async def test_one_disconnect_is_survived() -> None:
    fake = FakeOpenAI(["ok"]).fail("disconnect")
    assert (await make_llm(fake).complete(QUESTION)).text == "ok"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("garbage", "not JSON"),
        ("bad_json", "malformed"),
        ("empty_choices", "no choices"),
        ("no_content", "empty message"),
    ],
)
async def test_unusable_bodies_are_bad_responses_and_not_retried(
    kind: FaultKind, message: str
) -> None:
    fake = FakeOpenAI(["ok"]).fail(kind)
    with pytest.raises(LLMBadResponse, match=message) as info:
        await make_llm(fake).complete(QUESTION)
    assert fake.calls == 1
    assert not isinstance(info.value, LLMTimeout | LLMConnectionError)


async def test_nothing_from_the_sdk_leaks() -> None:
    kinds: list[FaultKind] = ["429", "500", "timeout", "disconnect", "garbage", "bad_json", "401"]
    for kind in kinds:
        fake = FakeOpenAI(["ok"]).fail(kind, times=5)
        with pytest.raises(LLMError) as info:
            await make_llm(fake, max_retries=1).complete(QUESTION)
        assert type(info.value).__module__ == "agents.errors", kind


async def test_outer_deadline_cancels_cleanly_without_retrying() -> None:
    fake = FakeOpenAI(scenarios=[Scenario("6 * 7", ["ok"], fault="hang")])
    llm = make_llm(fake, timeout_s=30.0, max_retries=5)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await llm.complete(QUESTION)
    assert time.monotonic() - start < 1.0
    assert fake.calls == 1


async def test_task_cancellation_propagates_during_backoff() -> None:
    fake = FakeOpenAI(["ok"]).fail("500", times=5)
    backing_off = asyncio.Event()

    async def long_sleep(seconds: float) -> None:
        backing_off.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(make_llm(fake, sleep=long_sleep).complete(QUESTION))
    await backing_off.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.calls == 1


async def test_model_is_discovered_from_models_when_unset() -> None:
    fake = FakeOpenAI(["ok"], models=["qwen2.5-coder", "other"])
    llm = make_llm(fake, model=None)
    assert llm.model == ""
    await llm.complete(QUESTION)
    await llm.complete(QUESTION)
    assert llm.model == "qwen2.5-coder" and fake.last.model == "qwen2.5-coder"
    assert sum(r.path.endswith("/models") for r in fake.requests) == 1


async def test_unreachable_server_without_model_is_a_connection_error() -> None:
    fake = FakeOpenAI(["ok"])

    async def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(refuse)) as client:
        with pytest.raises(LLMConnectionError):
            await make_llm(fake, model=None, http_client=client).complete(QUESTION)


async def test_no_model_anywhere_is_a_config_error() -> None:
    fake = FakeOpenAI(["ok"], models=[])
    with pytest.raises(LLMConfigError, match="LLM_MODEL"):
        await make_llm(fake, model=None).complete(QUESTION)
    assert fake.calls == 0


async def test_check_probes_models_and_picks_the_model() -> None:
    fake = FakeOpenAI(models=["m1"])
    llm = make_llm(fake, model=None)
    await llm.check()
    assert llm.model == "m1"
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/v1/models")]


async def test_check_fails_fast_on_an_unreachable_or_hanging_server() -> None:
    fake = FakeOpenAI(models=[])
    with pytest.raises(LLMConfigError):
        await make_llm(fake, model=None).check()

    async def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    async def stall(request: httpx2.Request) -> httpx2.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    for handler, error in ((refuse, LLMConnectionError), (stall, LLMTimeout)):
        client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        llm = OpenAILLM(
            base_url="http://down.test/v1", model="m", check_timeout_s=0.05, http_client=client
        )
        start = time.monotonic()
        with pytest.raises(error):
            await llm.check()
        assert time.monotonic() - start < 1.0
        await client.aclose()


async def test_check_passes_when_models_is_missing_but_a_model_is_set() -> None:
    async def no_models(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(404, json={"error": {"message": "not found"}})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(no_models)) as client:
        await OpenAILLM(base_url="http://x.test/v1", model="m", http_client=client).check()
        with pytest.raises(LLMConfigError):
            await OpenAILLM(base_url="http://x.test/v1", http_client=client).check()


async def test_grammar_is_ignored_and_not_sent() -> None:
    fake = FakeOpenAI(["ok"])
    await make_llm(fake).complete(QUESTION, grammar='root ::= "x"')
    assert "grammar" not in json.dumps(fake.last.body)


async def test_aclose_leaves_an_injected_client_open() -> None:
    fake = FakeOpenAI(["ok", "ok"])
    client = fake.client()
    llm = make_llm(fake, http_client=client)
    await llm.aclose()
    assert not client.is_closed
    await client.aclose()
    own = OpenAILLM(base_url="http://x.test/v1", model="m")
    await own.aclose()


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(LLMConfigError):
        OpenAILLM(base_url="http://x.test/v1", timeout_s=0)
    with pytest.raises(LLMConfigError):
        OpenAILLM(base_url="http://x.test/v1", max_retries=-1)
