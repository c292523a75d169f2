"""PAL against the real sandbox: our exemplars run, and failures become repairable errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agents.events import ObservationEvent
from agents.pal import TASKS, PalOptions, run_pal
from agents.pal.prompt import load_family
from tests.agents.pal.conftest import collect, fenced, program
from tests.fakes import FakeOpenAI, FakeRequest, make_llm
from tools.sandbox import Sandbox, SandboxConfig


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(workers=2, timeout_s=2.0)) as box:
        yield box


async def test_every_exemplar_runs_in_the_sandbox(sandbox: Sandbox) -> None:
    for task in TASKS:
        for exemplar in load_family(task).exemplars:
            result = await sandbox.run(exemplar.program)
            assert result.ok, (task, exemplar.question, result.error)
            assert result.value is not None


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ("1 / 0", "ZeroDivisionError"),
        ("__import__('os').getcwd()", "SecurityError"),
        ("[i for i in iter(int, 1)]", "Timeout"),
    ],
    ids=["exception", "forbidden", "endless"],
)
async def test_sandbox_failures_are_repaired(sandbox: Sandbox, broken: str, error: str) -> None:
    def script(request: FakeRequest) -> str:
        last = str(request.messages[-1]["content"])
        return fenced(program("6 * 7")) if "failed with" in last else program(broken)

    fake = FakeOpenAI(script)
    steps, final = await collect(run_pal("What is 6 * 7?", llm=make_llm(fake), sandbox=sandbox))

    observation = steps[1]
    assert isinstance(observation, ObservationEvent) and error in observation.text
    assert error in str(fake.last.messages[-1]["content"])  # the model saw the error
    assert final.status == "finished" and final.answer == "42"


async def test_date_answers_through_the_sandbox(sandbox: Sandbox) -> None:
    code = (
        "def solution():\n    from datetime import date, timedelta\n"
        "    result = (date(2024, 2, 27) + timedelta(days=3)).strftime('%m/%d/%Y')\n"
        "    return result\n"
    )
    fake = FakeOpenAI(lambda req: fenced(code))
    options = PalOptions(task="date", samples=3)
    _, final = await collect(run_pal("Q?", llm=make_llm(fake), sandbox=sandbox, options=options))
    assert final.answer == "03/01/2024" and final.details["agreement"] == 1.0
