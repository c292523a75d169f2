"""The embedded backend's plumbing with a fake llama object (fast, in ``make test``), and, marked
``local_model`` (``make test-local``), real generations with the packaged model."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agents.errors import LLMBadResponse, LLMConfigError, LLMError, LLMTimeout
from agents.llm.base import LLM, ChatMessage
from agents.llm.grammar import react_grammar
from agents.llm.local import LoadedModel, LocalLLM, RenderedPrompt, _check_gguf, chatml
from tests.fakes.llama import FakeLlama, Harness
from tools.sandbox import Sandbox, SandboxConfig

QUESTION = [
    ChatMessage(role="system", content="You answer."),
    ChatMessage(role="user", content="What is 6 * 7?"),
]


async def test_it_is_an_llm_without_n_or_tools() -> None:
    llm = LocalLLM(Path("models/some-model.Q4.gguf"), loader=Harness(FakeLlama()).load)
    assert isinstance(llm, LLM)
    assert llm.model == "some-model.Q4"
    assert llm.supports_n is False
    assert llm.supports_tools is False
    await llm.aclose()


async def test_request_is_rendered_and_passed_through() -> None:
    h = Harness(FakeLlama(steps=5))
    grammar = 'root ::= "x"'
    result = await h.llm.complete(
        QUESTION,
        stop=["Observation", "", "Observation"],
        temperature=0.7,
        max_tokens=77,
        grammar=grammar,
    )
    call = h.llama.calls[0]
    prompt = bytes(call["prompt"]).decode()
    expected = chatml(
        [
            {"role": "system", "content": "You answer."},
            {"role": "user", "content": "What is 6 * 7?"},
        ]
    )
    assert prompt == expected.text
    assert prompt.endswith("<|im_start|>assistant\n")
    assert call["stop"] == ["Observation", "<|im_end|>"]  # deduplicated, template stop added
    assert call["max_tokens"] == 77
    assert call["temperature"] == 0.7
    assert call["grammar"] == ("compiled", grammar)
    assert result.text == "Thought: ok\nAction: finish[42]"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage.prompt_tokens == len(call["prompt"])
    assert result.usage.completion_tokens == 5
    await h.llm.aclose()


async def test_a_final_assistant_message_is_continued_not_answered() -> None:
    h = Harness(FakeLlama())
    assert h.llm.supports_prefill
    start = '```python\ndef solution():\n    """What is 6 * 7'
    await h.llm.complete([*QUESTION, ChatMessage("assistant", start)])
    prompt = bytes(h.llama.calls[0]["prompt"]).decode()
    assert (
        prompt
        == chatml(
            [
                {"role": "system", "content": "You answer."},
                {"role": "user", "content": "What is 6 * 7?"},
            ]
        ).text
        + start
    )  # inside the assistant's turn: no end of turn, no new turn after it
    assert h.llama.calls[0]["stop"] == ["<|im_end|>"]
    await h.llm.aclose()


async def test_n_is_ignored_and_without_grammar_none_is_passed() -> None:
    h = Harness(FakeLlama())
    result = await h.llm.complete(QUESTION, n=3)
    assert len(result.choices) == 1
    assert h.llama.calls[0]["grammar"] is None
    await h.llm.aclose()


async def test_each_call_draws_a_fresh_seed() -> None:
    # llama-cpp reuses one seed unless told otherwise: every "sample" would be identical.
    h = Harness(FakeLlama())
    for _ in range(4):
        await h.llm.complete(QUESTION, temperature=0.8)
    seeds = {c["seed"] for c in h.llama.calls}
    assert len(seeds) == 4
    await h.llm.aclose()


async def test_grammar_is_compiled_once_per_text_and_a_bad_one_is_an_llm_error() -> None:
    h = Harness(FakeLlama())
    for _ in range(3):
        await h.llm.complete(QUESTION, grammar='root ::= "a"')
    assert h.compiled == ['root ::= "a"']
    with pytest.raises(LLMError, match="does not compile"):
        await h.llm.complete(QUESTION, grammar="bad grammar")
    assert len(h.llama.calls) == 3  # the bad grammar never reached the model
    await h.llm.aclose()


async def test_tool_messages_are_shown_as_user_text() -> None:
    h = Harness(FakeLlama())
    await h.llm.complete([*QUESTION, ChatMessage(role="tool", content="42", tool_call_id="c1")])
    prompt = bytes(h.llama.calls[0]["prompt"]).decode()
    assert "<|im_start|>user\n42<|im_end|>" in prompt
    await h.llm.aclose()


async def test_generations_are_serialised_and_the_loop_stays_free() -> None:
    h = Harness(FakeLlama(steps=5, delay=0.02))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    started = time.monotonic()
    results = await asyncio.gather(*(h.llm.complete(QUESTION) for _ in range(4)))
    elapsed = time.monotonic() - started
    tick_task.cancel()

    assert len(results) == 4
    assert h.llama.max_active == 1
    assert elapsed >= 4 * 5 * 0.02 * 0.9  # one after another
    assert ticks >= 10  # the event loop kept running while the model worked
    await h.llm.aclose()


async def test_cancellation_stops_the_generation_and_frees_the_model() -> None:
    h = Harness(FakeLlama(steps=2000, delay=0.005))  # ~10 s if nobody stops it
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await h.llm.complete(QUESTION)
    assert h.llama.started.is_set()

    h.llama.steps = 2
    started = time.monotonic()
    await h.llm.complete(QUESTION)
    assert time.monotonic() - started < 2.0
    assert h.llama.stopped_early.is_set()
    assert h.llama.generated[0] < 200  # stopped within a few tokens of the cancellation
    await h.llm.aclose()


async def test_a_call_cancelled_while_queued_never_reaches_the_model() -> None:
    h = Harness(FakeLlama(steps=20, delay=0.01))
    first = asyncio.create_task(h.llm.complete(QUESTION))
    second = asyncio.create_task(h.llm.complete(QUESTION))
    await asyncio.sleep(0.05)
    second.cancel()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    assert len(h.llama.calls) == 1
    await h.llm.aclose()


async def test_a_generation_past_max_generation_s_is_an_llm_timeout() -> None:
    h = Harness(FakeLlama(steps=1000, delay=0.01), max_generation_s=0.1)
    with pytest.raises(LLMTimeout, match=r"over 0\.1 s"):
        await h.llm.complete(QUESTION)
    assert h.llama.generated[0] < 100


async def test_a_prompt_longer_than_the_context_is_a_bad_response() -> None:
    h = Harness(FakeLlama(), n_ctx=300)
    with pytest.raises(LLMBadResponse, match="context holds 300"):
        await h.llm.complete([ChatMessage(role="user", content="x" * 400)])
    assert h.llama.calls == []


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (ValueError("Requested tokens exceed context window"), LLMBadResponse),
        (RuntimeError("llama_decode returned -1"), LLMError),
    ],
)
async def test_llama_errors_are_translated(raised: Exception, expected: type[LLMError]) -> None:
    fake = FakeLlama()
    fake.raise_exc = raised
    h = Harness(fake)
    with pytest.raises(expected) as info:
        await h.llm.complete(QUESTION)
    assert info.value.__cause__ is raised
    await h.llm.aclose()


async def test_unexpected_result_shape_is_a_bad_response() -> None:
    class Broken(FakeLlama):
        def create_completion(self, **kwargs: Any) -> dict[str, Any]:
            return {"choices": []}

    h = Harness(Broken())
    with pytest.raises(LLMBadResponse, match="unexpected result"):
        await h.llm.complete(QUESTION)
    await h.llm.aclose()


async def test_check_loads_once_and_complete_reuses_it() -> None:
    h = Harness(FakeLlama())
    await h.llm.check()
    await h.llm.check()
    await h.llm.complete(QUESTION)
    assert h.loads == 1
    await h.llm.aclose()


async def test_a_failing_load_is_a_config_error_and_is_retried() -> None:
    attempts = 0

    def loader() -> LoadedModel:
        nonlocal attempts
        attempts += 1
        raise OSError("disk on fire")

    llm = LocalLLM(Path("m.gguf"), loader=loader)
    with pytest.raises(LLMConfigError, match="disk on fire"):
        await llm.check()
    with pytest.raises(LLMConfigError):
        await llm.complete(QUESTION)
    assert attempts == 2
    await llm.aclose()


async def test_start_loading_overlaps_the_caller_and_check_waits_for_that_load() -> None:
    release = threading.Event()
    h = Harness(FakeLlama())
    load = h.load

    def slow_load() -> LoadedModel:
        release.wait(5)
        return load()

    h.llm._loader = slow_load
    h.llm.start_loading()  # returns at once: the load waits for release
    h.llm.start_loading()  # a second call starts nothing more
    checking = asyncio.create_task(h.llm.check())
    await asyncio.sleep(0.05)
    assert not checking.done()
    release.set()
    await checking
    await h.llm.complete(QUESTION)
    assert h.loads == 1
    await h.llm.aclose()


async def test_a_failed_start_loading_is_reported_by_check_without_loading_again() -> None:
    attempts = 0

    def loader() -> LoadedModel:
        nonlocal attempts
        attempts += 1
        raise OSError("disk on fire")

    llm = LocalLLM(Path("m.gguf"), loader=loader)
    llm.start_loading()
    with pytest.raises(LLMConfigError, match="disk on fire"):
        await llm.check()
    assert attempts == 1
    await llm.aclose()


async def test_aclose_frees_the_model_and_later_calls_fail() -> None:
    h = Harness(FakeLlama())
    await h.llm.complete(QUESTION)
    await h.llm.aclose()
    await h.llm.aclose()  # idempotent
    assert h.llama.closed
    with pytest.raises(LLMError, match="closed"):
        await h.llm.complete(QUESTION)


def _rendered(messages: list[ChatMessage]) -> list[int]:
    return list(chatml([{"role": m.role, "content": m.content} for m in messages]).text.encode())


async def test_warm_up_prefills_each_conversation_in_growing_chunks() -> None:
    h = Harness(FakeLlama())
    other = [ChatMessage(role="user", content="another prefix")]
    assert await h.llm.warm_up([QUESTION, other], chunk_tokens=16, quiet_s=0) == 2
    assert {c["max_tokens"] for c in h.llama.calls} == {1}
    prompts = [c["prompt"] for c in h.llama.calls]
    full = [_rendered(QUESTION), _rendered(other)]
    split = len(range(16, len(full[0]), 16)) + 1  # the calls for the first conversation
    assert prompts[split - 1] == full[0] and prompts[-1] == full[1]
    for conversation, calls in ((full[0], prompts[:split]), (full[1], prompts[split:])):
        expected = sorted({*range(16, len(conversation), 16), len(conversation)})
        assert [len(p) for p in calls] == expected
        assert all(conversation[: len(p)] == p for p in calls)  # prefixes of the real prompt


async def test_a_request_during_the_warm_up_waits_for_one_chunk_only() -> None:
    h = Harness(FakeLlama(steps=2, delay=0.02))
    warming = asyncio.create_task(h.llm.warm_up([QUESTION], chunk_tokens=8, quiet_s=0))
    await asyncio.to_thread(h.llama.started.wait, 5)
    await h.llm.complete(QUESTION)  # arrives while the first chunk is being evaluated
    assert await warming == 1
    sizes = [c["max_tokens"] for c in h.llama.calls]
    assert sizes.index(512) == 1  # right after the chunk in progress
    assert sizes.count(1) == len(range(8, len(_rendered(QUESTION)), 8)) + 1


async def test_warm_up_waits_for_idleness_and_gives_up_when_never_idle() -> None:
    h = Harness(FakeLlama(steps=40, delay=0.01))
    request = asyncio.create_task(h.llm.complete(QUESTION))
    await asyncio.to_thread(h.llama.started.wait, 5)
    # The model is busy and then only just used: the warm-up must not start before quiet_s.
    assert await h.llm.warm_up([QUESTION], quiet_s=1.0, max_wait_s=0.1) == 0
    await request
    assert [c["max_tokens"] for c in h.llama.calls] == [512]
    assert await h.llm.warm_up([QUESTION], chunk_tokens=10_000, quiet_s=0.05, max_wait_s=5) == 1
    assert [c["max_tokens"] for c in h.llama.calls] == [512, 1]


async def test_bad_arguments_are_llm_errors() -> None:
    h = Harness(FakeLlama())
    with pytest.raises(LLMError):
        await h.llm.complete(QUESTION, n=0)
    with pytest.raises(LLMError):
        await h.llm.complete(QUESTION, max_tokens=0)
    with pytest.raises(LLMError):
        await h.llm.complete([])
    with pytest.raises(LLMConfigError):
        LocalLLM(Path("m.gguf"), n_threads=0)
    with pytest.raises(LLMConfigError):
        LocalLLM(Path("m.gguf"), prompt_cache_bytes=-1)
    await h.llm.aclose()


async def test_missing_extra_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if the extra were not installed
    llm = LocalLLM(tmp_path / "m.gguf")
    with pytest.raises(LLMConfigError) as info:
        await llm.check()
    assert "make install-local" in str(info.value)
    assert "-DGGML_NATIVE=OFF" in str(info.value)
    assert 'pip install -e ".[local]"' in str(info.value)
    await llm.aclose()


def test_from_settings_does_no_io(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    llm = LocalLLM.from_settings(model="small", cache_dir=cache, n_threads=1)
    assert llm.model == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert not cache.exists()
    own = LocalLLM.from_settings(model_path=tmp_path / "mine.gguf")
    assert own.model == "mine"
    with pytest.raises(LLMConfigError, match="unknown local model"):
        LocalLLM.from_settings(model="huge")


def test_check_gguf(tmp_path: Path) -> None:
    with pytest.raises(LLMConfigError, match="no model file"):
        _check_gguf(tmp_path / "absent.gguf")
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"PK\x03\x04zip")
    with pytest.raises(LLMConfigError, match="not a GGUF"):
        _check_gguf(not_gguf)
    ok = tmp_path / "ok.gguf"
    ok.write_bytes(b"GGUF\x03\x00")
    _check_gguf(ok)


def test_chatml_fallback() -> None:
    rendered = chatml([{"role": "user", "content": "hi"}])
    assert rendered == RenderedPrompt(
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", stop=("<|im_end|>",)
    )


# -- the ReAct grammar ----------------------------------------------------------------------


def _rule_names(grammar: str) -> tuple[set[str], set[str]]:
    """(defined, referenced) rule names, ignoring quoted literals and character classes."""
    defined, referenced = set(), set()
    for line in grammar.splitlines():
        if "::=" not in line:
            continue
        lhs, rhs = line.split("::=", 1)
        defined.add(lhs.strip())
        stripped = re.sub(r'"(?:\\.|[^"\\])*"', " ", rhs)
        stripped = re.sub(r"\[(?:\\.|[^\]\\])*\]", " ", stripped)
        stripped = re.sub(r"\{\d+(,\d*)?\}", " ", stripped)
        referenced.update(re.findall(r"[A-Za-z][A-Za-z0-9-]*", stripped))
    return defined, referenced


def test_react_grammar_lists_exactly_the_allowed_actions() -> None:
    grammar = react_grammar(["python", "search", "finish"], max_thought_chars=120)
    assert grammar.startswith('root ::= "Thought: " thought "\\nAction: " action end\n')
    assert 'end ::= ("\\n" "\\n"?)?' in grammar  # "]\n" is one token for most tokenizers
    assert r"thought ::= [^\n]{1,120}" in grammar
    assert 'action ::= "python[" code "]" | "search[" text "]" | "finish[" text "]"' in grammar
    defined, referenced = _rule_names(grammar)
    assert referenced <= defined
    assert "root" in defined


def test_react_grammar_only_includes_the_rules_it_uses() -> None:
    only_text = react_grammar(["Search", "finish"])
    assert '"Search[" text "]"' in only_text
    assert "code ::=" not in only_text
    only_code = react_grammar(["Python"])  # code actions match case-insensitively
    assert '"Python[" code "]"' in only_code
    assert "text ::=" not in only_code
    defined, referenced = _rule_names(only_code)
    assert referenced <= defined


def test_react_grammar_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        react_grammar([])
    with pytest.raises(ValueError, match="plain identifier"):
        react_grammar(['finish" | "rm'])
    with pytest.raises(ValueError, match="at least 1"):
        react_grammar(["finish"], max_thought_chars=0)
    assert react_grammar(["finish", "finish"]).count('"finish["') == 1


@pytest.mark.parametrize(
    "actions", [["python", "search", "finish"], ["finish"], ["python"], ["lookup", "finish"]]
)
def test_react_grammar_compiles_in_llama_cpp(actions: list[str]) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    # llama.cpp's own GBNF parser; the vocabulary is only needed for sampling, not parsing.
    grammar = react_grammar(actions)
    sampler = llama_cpp.llama_sampler_init_grammar(None, grammar.encode(), b"root")
    assert sampler, grammar
    llama_cpp.llama_sampler_free(sampler)
    broken = llama_cpp.llama_sampler_init_grammar(None, b'root ::= "a" (', b"root")
    assert not broken  # the check above can fail


# -- the real model (make test-local) ------------------------------------------------------

PAL_SYSTEM = (
    "Solve the question by writing a Python program: define `def solution():` that computes "
    "the answer step by step and returns it. Reply with the program only."
)


def pal_turns(question: str, program_body: str) -> list[ChatMessage]:
    program = f'def solution():\n    """{question}"""\n{program_body}'
    return [
        ChatMessage(role="user", content=f"Q: {question}"),
        ChatMessage(role="assistant", content=program),
    ]


PAL_SHOTS = [
    *pal_turns(
        "Tom has 3 boxes of 12 eggs and breaks 5. How many eggs are left?",
        "    boxes = 3\n    eggs_per_box = 12\n    broken = 5\n"
        "    result = boxes * eggs_per_box - broken\n    return result",
    ),
    *pal_turns(
        "What is 417 + 38 * 9?",
        "    result = 417 + 38 * 9\n    return result",
    ),
]


def _cache_dir() -> Path:
    return Path(os.environ.get("MODEL_CACHE_DIR") or "data/models")


@pytest.fixture
async def real_llm() -> Any:
    llm = LocalLLM.from_settings(cache_dir=_cache_dir())
    try:
        await llm.check()
    except LLMConfigError as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"the embedded model is not usable: {exc} (run `make model`)")
    yield llm
    await llm.aclose()


async def _run_program(program: str) -> Any:
    """The model wrote it: it runs in the sandbox like any generated code, never bare."""
    code = program.strip()
    if code.startswith("```"):
        code = code.split("\n", 1)[1].rsplit("```", 1)[0]
    async with Sandbox(SandboxConfig(workers=1)) as box:
        result = await box.run(code)
    assert result.ok, result.error
    return result.value


@pytest.mark.local_model
async def test_real_model_writes_a_pal_program(real_llm: LocalLLM) -> None:
    messages = [
        ChatMessage(role="system", content=PAL_SYSTEM),
        *PAL_SHOTS,
        ChatMessage(role="user", content="Q: What is 1234 * 5678?"),
    ]
    first = await real_llm.complete(messages, max_tokens=200)
    assert "def solution" in first.text
    assert await _run_program(first.text) == 7006652
    assert first.usage.prompt_tokens > 50
    assert 0 < first.usage.completion_tokens <= 200


@pytest.mark.local_model
async def test_real_model_follows_the_react_grammar(real_llm: LocalLLM) -> None:
    messages = [
        ChatMessage(
            role="system",
            content=(
                "Answer by writing one step:\nThought: <reasoning>\nAction: <action>[<input>]\n"
                "Actions: python[code] runs Python and shows what it prints; finish[answer] "
                "gives the final answer."
            ),
        ),
        ChatMessage(role="user", content="Question: what is the sum of [3, 4, 5] squared?"),
    ]
    # No stop sequence: the grammar alone must end the completion right after the action.
    result = await real_llm.complete(
        messages, grammar=react_grammar(["python", "finish"], 200), max_tokens=300
    )
    text = result.text
    assert result.choices[0].finish_reason == "stop"
    assert text.startswith("Thought: ")
    thought, action = text.split("\nAction: ", 1)
    assert len(thought) <= len("Thought: ") + 200
    assert action.startswith(("python[", "finish["))
    assert action.rstrip("\n").endswith("]")
    assert len(action) - len(action.rstrip("\n")) <= 2


@pytest.mark.local_model
async def test_real_model_cancellation_frees_it_fast(real_llm: LocalLLM) -> None:
    long = [ChatMessage(role="user", content="Count from 1 to 500, one number per line.")]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await real_llm.complete(long, max_tokens=2000)
    started = time.monotonic()
    await real_llm.complete([ChatMessage(role="user", content="Say hi.")], max_tokens=4)
    # The cancelled one would have run ~2000 tokens (over a minute) had it not been stopped.
    assert time.monotonic() - started < 10.0


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0  # pragma: no cover - not Linux


@pytest.mark.local_model
async def test_real_model_prompt_cache_switches_prefixes_without_growing(
    real_llm: LocalLLM,
) -> None:
    pal = [ChatMessage(role="system", content=PAL_SYSTEM), *PAL_SHOTS]
    other = [ChatMessage(role="system", content="You are terse. " * 40)]
    await real_llm.complete(
        [*pal, ChatMessage(role="user", content="Q: What is 2 * 3?")], max_tokens=1
    )
    await real_llm.complete([*other, ChatMessage(role="user", content="hi")], max_tokens=1)
    baseline = _rss_mb()
    for i in range(4):
        await real_llm.complete(
            [*pal, ChatMessage(role="user", content=f"Q: What is {i} * 7?")], max_tokens=1
        )
        await real_llm.complete([*other, ChatMessage(role="user", content=f"hi {i}")], max_tokens=1)
    # Saved states are ~5-15 MB each; llama-cpp's 311 MB logits buffer must not be copied.
    assert _rss_mb() - baseline < 200


_HEAP_PROBE = """
import ctypes, sys
from agents.llm.local import _bound_heap
if sys.argv[1] == "bound":
    _bound_heap()
def region(address):
    for line in open("/proc/self/maps"):
        parts = line.split()
        low, high = (int(x, 16) for x in parts[0].split("-"))
        if low <= address < high:
            return parts[5] if len(parts) > 5 else "anonymous"
first = bytearray(11 << 20)  # a saved prompt state's size
del first
second = bytearray(11 << 20)
print(region(ctypes.addressof((ctypes.c_char * 1).from_buffer(second))))
"""


@pytest.mark.parametrize(("mode", "where"), [("bound", "anonymous"), ("default", "[heap]")])
def test_big_blocks_get_their_own_mapping_once_the_heap_is_bounded(mode: str, where: str) -> None:
    """The prompt cache's ~11 MB states: with glibc's defaults, one freed block moves the next
    ones onto the heap, where they fragment it (RSS crept by 120 MB over 80 runs); bounded,
    each is a mapping of its own, returned when freed."""
    done = subprocess.run(
        [sys.executable, "-c", _HEAP_PROBE, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert done.stdout.strip() == where


@pytest.mark.local_model
def test_loading_the_real_model_leaves_stderr_alone() -> None:
    """The model loads while the server starts (service.__main__): whatever the server logs
    meanwhile must reach stderr, so llama.cpp may not point it at /dev/null as it loads."""
    program = """
import asyncio, os, sys, threading
from pathlib import Path
from agents.llm.local import LocalLLM
llm = LocalLLM.from_settings(cache_dir=Path(sys.argv[1]))
llm.start_loading()
async def main():
    checking = asyncio.ensure_future(llm.check())
    written = 0
    while not checking.done():
        os.write(2, b"still-here\\n")
        written += 1
        await asyncio.sleep(0.005)
    await checking
    print(written)
    await llm.aclose()
asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", program, str(_cache_dir())],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = int(done.stdout.split()[-1])
    assert written > 5  # the load took long enough for the check to mean something
    assert done.stderr.count("still-here") == written
    assert "llama_model_loader" not in done.stderr  # its own chatter stays out


@pytest.mark.local_model
async def test_the_pal_reply_start_tokenizes_as_the_start_of_the_whole_program(
    real_llm: LocalLLM,
) -> None:
    """reply_start cuts at a boundary of the model's tokenizer: the prompt it makes is, token
    for token, the start of the prompt the whole reply would make (else the model continues
    from a split it never saw in training)."""
    from agents.pal.prompt import TASKS, fence, load_family, reply_start

    tokenize = real_llm._ensure_loaded().llama.tokenize
    for task in TASKS:
        for exemplar in load_family(task).exemplars:
            whole = fence(exemplar.program)
            start = reply_start(exemplar.question)
            assert start is not None
            head = tokenize(start.encode(), add_bos=False, special=True)
            full = tokenize(whole.encode(), add_bos=False, special=True)
            assert full[: len(head)] == head, exemplar.question
