"""The app with the embedded backend (a fake llama behind the real ``LocalLLM``): the model is
loaded before the first request, ReAct completions are constrained by the step grammar built
from the run's allow-list, and the few-shot prompts are prefilled in the background."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
import structlog

from agents.errors import LLMConfigError
from agents.llm.local import LocalLLM
from service.app import create_app
from service.settings import Settings
from tests.fakes.llama import FakeLlama, Harness
from tests.fakes.search import FakeSearchProvider
from tools.sandbox import Sandbox


async def test_embedded_model_is_loaded_constrained_and_warmed(
    sandbox: Sandbox, settings_for: Callable[..., Settings]
) -> None:
    # The fake tokenizer counts bytes: give it a context that holds the few-shot prompts.
    harness = Harness(FakeLlama(text="Thought: I know it.\nAction: finish[42]"), n_ctx=1 << 20)
    app = create_app(
        settings_for(llm_base_url=None),
        llm=harness.llm,
        sandbox=sandbox,
        search_provider=FakeSearchProvider(),
    )
    async with app.router.lifespan_context(app):
        assert harness.loads == 1  # loaded during start-up, before any request
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://localhost") as client:
            reply = await client.post(
                "/ask", json={"question": "What is 6 * 7?", "actions": ["python"]}
            )
        assert reply.status_code == 200, reply.text
        assert reply.json()["answer"] == "42"
        answer_call = next(c for c in harness.llama.calls if c["max_tokens"] > 1)
        kind, grammar = answer_call["grammar"]
        assert kind == "compiled"
        assert '"python["' in grammar and '"finish["' in grammar and "search" not in grammar

        def warmed() -> list[str]:
            calls = harness.llama.calls
            return [bytes(c["prompt"]).decode() for c in calls if c["max_tokens"] == 1]

        end_of_react = "Question: What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"
        for _ in range(200):  # the warm-up prefills PAL, then ReAct, in chunks
            if any(p.endswith(end_of_react) for p in warmed()):
                break
            await asyncio.sleep(0.05)
        prompts = warmed()
        react = [p for p in prompts if p.endswith(end_of_react)]
        assert react and "search[" in react[0]  # the default request's allow-list
        first_react = prompts.index(react[0])
        assert any("def solution" in p for p in prompts[:first_react])  # PAL math comes first


async def test_a_restart_restores_the_saved_warm_states_instead_of_prefilling(
    sandbox: Sandbox, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    warm_dir = tmp_path / "warm"

    async def start_and_warm() -> Harness:
        harness = Harness(FakeLlama(), n_ctx=1 << 20, warm_dir=warm_dir)
        app = create_app(
            settings_for(llm_base_url=None),
            llm=harness.llm,
            sandbox=sandbox,
            search_provider=FakeSearchProvider(),
        )
        with structlog.testing.capture_logs() as logs:
            async with app.router.lifespan_context(app):
                for _ in range(200):  # the background warm-up: restore or prefill, then save
                    if any(e["event"] == "model warm" for e in logs):
                        break
                    await asyncio.sleep(0.05)
                # Three PAL families, ReAct, and ReAct without search (which can be down).
                assert len(_saved(warm_dir)) == 5
                transport = httpx2.ASGITransport(app=app)
                async with httpx2.AsyncClient(
                    transport=transport, base_url="http://localhost"
                ) as client:
                    reply = await client.post("/ask", json={"question": "2 + 2?", "mode": "pal"})
                assert reply.status_code == 200, reply.text
        return harness

    first = await start_and_warm()
    assert first.llama.restored == []
    assert any(c["max_tokens"] == 1 for c in first.llama.calls)  # prefilled
    second = await start_and_warm()
    # The same prompts (the PAL one live), restored rather than prefilled.
    assert len(second.llama.restored) == 5
    assert b"def solution" in bytes(second.llama.restored[-1])
    assert [c["max_tokens"] for c in second.llama.calls if c["max_tokens"] == 1] == []


def _saved(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.state"))


async def test_a_bad_model_file_stops_the_start_with_a_clear_error(
    sandbox: Sandbox, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    not_a_model = tmp_path / "model.gguf"
    not_a_model.write_bytes(b"this is not a GGUF file")
    app = create_app(
        settings_for(llm_base_url=None),
        llm=LocalLLM(not_a_model),
        sandbox=sandbox,
        search_provider=FakeSearchProvider(),
    )
    # Without the `local` extra (as in CI) the error names the install command instead.
    with pytest.raises(LLMConfigError, match=r"not a GGUF file|local` extra"):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.local_model
async def test_real_offline_ask_with_the_embedded_model(
    sandbox: Sandbox, settings_for: Callable[..., Settings]
) -> None:
    """``make test-local``: the app as ``make serve`` builds it, with no LLM variables."""
    cache = Path(os.environ.get("MODEL_CACHE_DIR") or "data/models")
    app = create_app(
        settings_for(llm_base_url=None, model_cache_dir=cache),
        sandbox=sandbox,
        search_provider=FakeSearchProvider(),
    )
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://localhost", timeout=300
        ) as client:
            pal = await client.post(
                "/ask", json={"question": "What is 1234 * 5678?", "mode": "pal"}
            )
            assert pal.status_code == 200, pal.text
            assert pal.json()["answer"] == "7006652"
            react = await client.post(
                "/ask",
                json={"question": "What is 17 squared plus 3?", "actions": ["python"]},
            )
            assert react.status_code == 200, react.text
            body = react.json()
            assert body["status"] in ("finished", "max_steps")
            # The grammar lets the small model write only allowed, well-formed actions.
            assert {step["action"] for step in body["steps"]} <= {"python", "finish"}
