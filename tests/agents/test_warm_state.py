"""The persisted warm states: the file format and its store (``agents.llm.warm_state``), the
embedded backend restoring and saving them with a fake llama (fast, in ``make test``), and,
marked ``local_model`` (``make test-local``), the same against the real model."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from agents.llm.base import ChatMessage
from agents.llm.local import LocalLLM, chatml
from agents.llm.warm_state import StateKey, WarmState, WarmStore
from tests.fakes.llama import FakeLlama, Harness

TOKENS = tuple(range(100, 160))
STATE = WarmState(TOKENS, b"llama-state" * 50)


def key_for(tokens: tuple[int, ...] = TOKENS, **changes: Any) -> StateKey:
    fields: dict[str, Any] = {"model": "sha256:abc", "runtime": "llama-cpp-python 0.3.36"}
    fields["n_ctx"] = 4096
    fields.update(changes)
    return StateKey.of(tokens=tokens, **fields)


def ignored(logs: list[dict[str, Any]]) -> list[str]:
    return [e["reason"] for e in logs if e["event"] == "warm state ignored"]


def test_a_state_round_trips(tmp_path: Path) -> None:
    store = WarmStore(tmp_path / "warm")
    assert store.save(key_for(), STATE)
    assert store.load(key_for(), TOKENS) == STATE
    assert [p.name for p in (tmp_path / "warm").iterdir()] == [key_for().filename]


@pytest.mark.parametrize(
    "changes",
    [{"model": "sha256:other"}, {"runtime": "llama-cpp-python 0.3.37"}, {"n_ctx": 2048}],
)
def test_a_state_made_for_another_key_is_never_loaded(
    tmp_path: Path, changes: dict[str, Any]
) -> None:
    store = WarmStore(tmp_path)
    store.save(key_for(**changes), STATE)
    with structlog.testing.capture_logs() as logs:
        assert store.load(key_for(), TOKENS) is None  # no file under this key's name
    assert any(e["event"] == "no saved warm state" for e in logs)
    # Even under the right name (renamed, or a name collision) its header gives it away.
    (tmp_path / key_for(**changes).filename).rename(tmp_path / key_for().filename)
    with structlog.testing.capture_logs() as logs:
        assert store.load(key_for(), TOKENS) is None
    [reason] = ignored(logs)
    assert reason.startswith("made for another ") and next(iter(changes)) in reason


def test_a_state_whose_tokens_are_not_the_prompts_is_never_loaded(tmp_path: Path) -> None:
    store = WarmStore(tmp_path)
    other = (*TOKENS[:-1], 7)
    store.save(key_for(other), WarmState(other, STATE.state))
    (tmp_path / key_for(other).filename).rename(tmp_path / key_for().filename)
    with structlog.testing.capture_logs() as logs:
        assert store.load(key_for(), TOKENS) is None
    assert ignored(logs) == ["made for another tokens_sha256"]


def _rewrite(path: Path, edit: Any) -> None:
    path.write_bytes(edit(path.read_bytes()))


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _new_version(data: bytes) -> bytes:
    return data[:6] + struct.pack("<H", 99) + data[8:]


def _forged_tokens(data: bytes) -> bytes:
    """Another prompt's tokens with a checksum and key that match: only the tokens differ."""
    (length,) = struct.unpack_from("<I", data, 8)
    header = data[12 : 12 + length]
    payload = struct.pack("<i", 999) + data[12 + length + 4 :]
    fields = json.loads(header)
    fields["sha256"] = hashlib.sha256(payload).hexdigest()
    forged = json.dumps(fields).encode()
    return data[:8] + struct.pack("<I", len(forged)) + forged + payload


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: d[:-7], "truncated or padded"),
        (lambda d: d + b"\0", "truncated or padded"),
        (_flip_last, "checksum mismatch"),
        (lambda d: d[:20], "truncated or corrupt header"),
        (lambda d: d[:12] + b"{not json" + d[21:], "corrupt header"),
        (lambda d: b"\x80\x04\x95 a pickle" + d, "not a warm state file"),
        (lambda d: b"", "not a warm state file"),
        (_new_version, "another format version"),
        (_forged_tokens, "its tokens are not the prompt's"),
    ],
)
def test_a_damaged_file_is_ignored_with_a_log_line(tmp_path: Path, edit: Any, reason: str) -> None:
    store = WarmStore(tmp_path)
    store.save(key_for(), STATE)
    _rewrite(store.path_for(key_for()), edit)
    with structlog.testing.capture_logs() as logs:
        assert store.load(key_for(), TOKENS) is None
    [logged] = ignored(logs)
    assert logged.startswith(reason)


def test_the_directory_stays_within_its_bound_dropping_the_least_recently_used(
    tmp_path: Path,
) -> None:
    size = len(STATE.state) + 4 * len(TOKENS) + 400  # a file, with room for its header
    store = WarmStore(tmp_path, max_bytes=3 * size)
    prompts = [tuple(range(i, i + len(TOKENS))) for i in range(4)]
    for age, tokens in enumerate(prompts[:3]):
        assert store.save(key_for(tokens), WarmState(tokens, STATE.state))
        os.utime(store.path_for(key_for(tokens)), (time.time() - 100 + age,) * 2)
    assert store.load(key_for(prompts[0]), prompts[0]) is not None  # now the most recent
    left = tmp_path / ".tmp-abandoned"
    left.write_bytes(b"x" * size)
    os.utime(left, (time.time() - 3600,) * 2)
    store.save(key_for(prompts[3]), WarmState(prompts[3], STATE.state))
    kept = {p.name for p in tmp_path.iterdir()}
    assert kept == {key_for(t).filename for t in (prompts[0], prompts[2], prompts[3])}
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 3 * size


def test_a_state_larger_than_the_bound_is_not_written(tmp_path: Path) -> None:
    store = WarmStore(tmp_path, max_bytes=100)
    assert not store.save(key_for(), STATE)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_directory_keeps_the_state_in_memory_only(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = WarmStore(tmp_path / "file" / "warm")
    with structlog.testing.capture_logs() as logs:
        assert not store.save(key_for(), STATE)
    assert [e["event"] for e in logs] == ["warm state kept in memory only"]


# -- the embedded backend, with a fake llama -------------------------------------------------

PAL = [
    ChatMessage(role="system", content="Write a program."),
    ChatMessage(role="user", content="Q: What is 2 + 2?"),
]
REACT = [ChatMessage(role="system", content="Thought, Action."), ChatMessage("user", "2 + 2?")]


def harness(warm_dir: Path, **kwargs: Any) -> Harness:
    return Harness(FakeLlama(), warm_dir=warm_dir, **kwargs)


def saved(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.state"))


def prefills(h: Harness) -> int:
    return sum(1 for call in h.llama.calls if call["max_tokens"] == 1)


async def test_the_warm_up_saves_its_states_and_the_next_start_restores_them(
    tmp_path: Path,
) -> None:
    first = harness(tmp_path)
    assert await first.llm.warm_up([PAL, REACT], chunk_tokens=16, quiet_s=0) == 2
    assert prefills(first) > 2
    assert len(saved(tmp_path)) == 2
    await first.llm.aclose()

    second = harness(tmp_path)
    with structlog.testing.capture_logs() as logs:
        assert await second.llm.warm_up([PAL, REACT], chunk_tokens=16, quiet_s=0) == 2
    assert second.llama.calls == []  # nothing prefilled
    assert [e["event"] for e in logs].count("warm state restored") == 2
    # PAL (the first) is restored last, so that it is the live context.
    assert second.llama.restored == [rendered(REACT), rendered(PAL)]
    assert second.llama.evaluated == rendered(PAL)
    reply = await second.llm.complete(PAL)
    assert reply.text
    await second.llm.aclose()


def rendered(chat: list[ChatMessage]) -> tuple[int, ...]:
    """The fake tokenizer's tokens: the ChatML text's bytes."""
    return tuple(chatml([{"role": m.role, "content": m.content} for m in chat]).text.encode())


@pytest.mark.parametrize("changes", [{"model_id": "sha256:another"}, {"n_ctx": 8192}])
async def test_a_state_for_another_model_or_context_is_rebuilt(
    tmp_path: Path, changes: dict[str, Any]
) -> None:
    first = harness(tmp_path)
    await first.llm.warm_up([PAL], quiet_s=0)
    other = harness(tmp_path, **changes)
    assert await other.llm.warm_up([PAL], quiet_s=0) == 1
    assert other.llama.restored == []
    assert prefills(other) == 1  # prefilled again, as without a saved state
    assert len(saved(tmp_path)) == 2  # and saved under its own key


async def test_a_corrupt_state_is_prefilled_and_saved_again(tmp_path: Path) -> None:
    first = harness(tmp_path)
    await first.llm.warm_up([PAL], quiet_s=0)
    [state] = saved(tmp_path)
    _rewrite(state, _flip_last)
    again = harness(tmp_path)
    with structlog.testing.capture_logs() as logs:
        assert await again.llm.warm_up([PAL], quiet_s=0) == 1
    assert ignored(logs) == ["checksum mismatch: the file is corrupt"]
    assert again.llama.restored == [] and prefills(again) == 1
    assert await harness(tmp_path).llm.restore_saved([PAL]) == 1  # repaired


async def test_a_state_llama_cpp_refuses_is_prefilled(tmp_path: Path) -> None:
    await harness(tmp_path).llm.warm_up([PAL], quiet_s=0)
    refusing = harness(tmp_path)
    refusing.llama.refuse_states = True
    with structlog.testing.capture_logs() as logs:
        assert await refusing.llm.restore_saved([PAL]) == 0
        assert await refusing.llm.warm_up([PAL], quiet_s=0) == 1
    assert ignored(logs)[0] == "llama.cpp refused it: Failed to set llama state data"
    assert prefills(refusing) == 1


async def test_without_a_warm_dir_nothing_is_saved(tmp_path: Path) -> None:
    h = Harness(FakeLlama())
    assert h.llm.warm_dir is None
    await h.llm.warm_up([PAL], quiet_s=0)
    assert await h.llm.restore_saved([PAL]) == 0
    assert saved(tmp_path) == []


def test_from_settings_keeps_the_states_next_to_the_model(tmp_path: Path) -> None:
    assert LocalLLM.from_settings(cache_dir=tmp_path).warm_dir == tmp_path / "warm"
    own = LocalLLM.from_settings(model_path=tmp_path / "m.gguf", cache_dir=tmp_path / "c")
    assert own.warm_dir == tmp_path / "c" / "warm"


# -- the real model (make test-local) ------------------------------------------------------

SHOTS = [
    ChatMessage(
        role="system",
        content="Solve the question with a Python program: define `def solution():` that "
        "returns the answer. Reply with the program only.",
    ),
    ChatMessage(role="user", content="Q: Tom has 3 boxes of 12 eggs and breaks 5. How many?"),
    ChatMessage(
        role="assistant",
        content='def solution():\n    """Eggs left."""\n    result = 3 * 12 - 5\n    return result',
    ),
]
WARM = [*SHOTS, ChatMessage(role="user", content="Q: What is 2 + 2?")]
ASK = [*SHOTS, ChatMessage(role="user", content="Q: What is 1234 * 5678?")]


def _cache_dir() -> Path:
    return Path(os.environ.get("MODEL_CACHE_DIR") or "data/models")


def real_llm(warm_dir: Path, **kwargs: Any) -> LocalLLM:
    return LocalLLM.from_settings(cache_dir=_cache_dir(), warm_dir=warm_dir, **kwargs)


async def _warm_and_answer(warm_dir: Path) -> str:
    """Prefill and save ``WARM``'s state, then answer ``ASK`` greedily."""
    llm = real_llm(warm_dir)
    try:
        assert await llm.warm_up([WARM], quiet_s=0) == 1
        assert len(saved(warm_dir)) == 1
        return (await llm.complete(ASK, max_tokens=80)).text
    finally:
        await llm.aclose()


def _live_tokens(llm: LocalLLM) -> int:
    assert llm._loaded is not None
    return int(llm._loaded.llama.n_tokens)


@pytest.mark.local_model
async def test_real_saved_state_restores_in_milliseconds_and_answers_the_same(
    tmp_path: Path,
) -> None:
    expected = await _warm_and_answer(tmp_path)
    llm = real_llm(tmp_path)
    try:
        await llm.check()
        started = time.monotonic()
        assert await llm.restore_saved([WARM]) == 1
        assert time.monotonic() - started < 1.0
        assert _live_tokens(llm) > 50  # the context holds the prompt: nothing was evaluated
        # The same greedy answer as after the prefill: the restored state is the computed one.
        assert (await llm.complete(ASK, max_tokens=80)).text == expected
    finally:
        await llm.aclose()


@pytest.mark.local_model
async def test_real_state_for_another_context_size_is_not_loaded(tmp_path: Path) -> None:
    await _warm_and_answer(tmp_path)
    other = real_llm(tmp_path, n_ctx=2048)
    try:
        await other.check()
        assert await other.restore_saved([WARM]) == 0  # another key: another file name
        # Even under that key's name, its header (n_ctx 4096) keeps it from being loaded.
        [state] = saved(tmp_path)
        loaded = other._loaded
        assert loaded is not None
        prompt = loaded.render([{"role": m.role, "content": m.content} for m in WARM])
        ids = loaded.llama.tokenize(prompt.text.encode(), add_bos=prompt.add_bos, special=True)
        state.rename(tmp_path / loaded.state_key(list(ids)).filename)
        with structlog.testing.capture_logs() as logs:
            assert await other.restore_saved([WARM]) == 0
        assert ignored(logs) == ["made for another n_ctx"]
        assert _live_tokens(other) == 0
    finally:
        await other.aclose()


def _truncate_state(data: bytes) -> bytes:
    """Half of llama.cpp's state, with a header and checksum that match: only llama.cpp can
    tell that it is broken."""
    (length,) = struct.unpack_from("<I", data, 8)
    fields = json.loads(data[12 : 12 + length])
    payload = data[12 + length :]
    payload = payload[: 4 * fields["n_tokens"] + fields["state_bytes"] // 2]
    fields["state_bytes"] //= 2
    fields["sha256"] = hashlib.sha256(payload).hexdigest()
    header = json.dumps(fields).encode()
    return data[:8] + struct.pack("<I", len(header)) + header + payload


@pytest.mark.local_model
async def test_real_corrupt_states_are_not_loaded_and_the_model_still_answers(
    tmp_path: Path,
) -> None:
    await _warm_and_answer(tmp_path)
    [state] = saved(tmp_path)
    good = state.read_bytes()
    # After a refused state the prompt is evaluated from scratch: compare with that path, as
    # a fresh model takes it (a chunked prefill, as the warm-up's, may differ by a token on
    # the 1.5B model: float sums in another order).
    fresh = real_llm(tmp_path / "none")
    try:
        expected = (await fresh.complete(ASK, max_tokens=80)).text
    finally:
        await fresh.aclose()
    llm = real_llm(tmp_path)
    try:
        await llm.check()
        state.write_bytes(_flip_last(good))
        with structlog.testing.capture_logs() as logs:
            assert await llm.restore_saved([WARM]) == 0
        assert ignored(logs) == ["checksum mismatch: the file is corrupt"]
        state.write_bytes(_truncate_state(good))
        with structlog.testing.capture_logs() as logs:
            assert await llm.restore_saved([WARM]) == 0
        [refused] = ignored(logs)
        assert refused.startswith("llama.cpp refused it")
        assert _live_tokens(llm) == 0  # reset, not half-restored
        assert (await llm.complete(ASK, max_tokens=80)).text == expected
    finally:
        await llm.aclose()
