"""``python -m service warm``: it saves the states of the prompts the server warms up, and
fails (so does the Docker build that runs it) when they could not be saved."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agents.llm.base import LLM
from service.settings import Settings
from service.warm import save_warm_states
from tests.fakes.llama import FakeLlama, Harness


def fake_models(warm_dir: Path, built: list[Harness]) -> Callable[[Settings], LLM]:
    def build(settings: Settings) -> LLM:
        harness = Harness(FakeLlama(), n_ctx=1 << 20, warm_dir=warm_dir)
        built.append(harness)
        return harness.llm

    return build


async def test_it_saves_the_warm_up_states_and_checks_they_restore(
    settings_for: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built: list[Harness] = []
    settings = settings_for(llm_base_url=None)
    assert await save_warm_states(settings, fake_models(tmp_path, built)) == 0
    warming, checking = built
    assert any(c["max_tokens"] == 1 for c in warming.llama.calls)  # prefilled
    prompts = [bytes(p).decode() for p in checking.llama.restored]
    # Restored in reverse, never prefilled: ReAct without search (what runs send while it
    # is down), the PAL families, ReAct (its default actions), then the default PAL family,
    # which is left live.
    assert len(prompts) == 5 and checking.llama.calls == []
    assert "python[" in prompts[0] and "search[" not in prompts[0]
    assert "search[" in prompts[3] and "def solution" in prompts[4]
    assert "5 warm states saved" in capsys.readouterr().out


async def test_it_fails_when_the_states_cannot_be_saved(
    settings_for: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("not a directory")
    settings = settings_for(llm_base_url=None)
    assert await save_warm_states(settings, fake_models(tmp_path / "file" / "w", [])) == 1
    assert "only 0 of 5 warm states" in capsys.readouterr().err
