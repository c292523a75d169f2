"""Replay: 404 real LLM-written PAL programs (GSM-Hard, from the PAL repo) through run_pal.

Each program is the scripted completion for its question; the run goes through the real
OpenAI client (against the fake), extraction, the REAL sandbox and the vote, and must return
the corpus ``target``. A third of the completions are fenced with prose around them and a
third run on into a next few-shot question, with a server that ignores ``stop``, so
extraction has to cut them.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from agents.pal import PalOptions, format_answer, run_pal
from tests.agents.pal.conftest import collect
from tests.corpora import load_jsonl
from tests.fakes import FakeOpenAI, FakeRequest, make_llm
from tools.sandbox import Sandbox, SandboxConfig

CORPUS = "pal_programs_gsmhard.jsonl"
CONCURRENCY = 16


def messy(index: int, program: str) -> str:
    if index % 3 == 1:
        return f"Here is the program:\n\n```python\n{program}```\n\nIt returns the answer."
    if index % 3 == 2:
        return (
            f"{program}\n\n\n\n\nQ: Another question?\n\n# solution in Python:\n\n\ndef solution():"
        )
    return program


async def test_replay_returns_every_target() -> None:
    rows = load_jsonl(CORPUS)
    assert len(rows) == 404
    completions = {
        f"Q: {row['question'].strip()}": messy(i, row["program"]) for i, row in enumerate(rows)
    }

    def script(request: FakeRequest) -> str:
        return completions[str(request.messages[-1]["content"])]

    fake = FakeOpenAI(script, honour_stop=False)
    llm = make_llm(fake)
    gate = asyncio.Semaphore(CONCURRENCY)
    failures: list[str] = []

    async def replay(row: dict[str, Any], sandbox: Sandbox) -> None:
        async with gate:
            _, final = await collect(
                run_pal(
                    row["question"], llm=llm, sandbox=sandbox, options=PalOptions(max_repairs=0)
                )
            )
        value = final.details.get("value")
        ok = (
            final.status == "finished"
            and isinstance(value, int | float)
            and math.isclose(value, row["target"], rel_tol=1e-6, abs_tol=1e-6)
            and final.answer == format_answer(value)
        )
        if not ok:
            failures.append(
                f"{row['id']}: {final.status} {final.answer!r} {final.error} != {row['target']}"
            )

    async with Sandbox(SandboxConfig(workers=2, timeout_s=5.0)) as sandbox:
        await asyncio.gather(*(replay(row, sandbox) for row in rows))

    assert failures == [], f"{len(failures)}/{len(rows)} failed:\n" + "\n".join(failures[:20])
    assert fake.calls == len(rows)
