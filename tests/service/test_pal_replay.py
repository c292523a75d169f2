"""The 404 real LLM-written PAL programs (GSM-Hard) replayed through POST /ask in pal mode:
each must come back with its ``target``, as the exact value and as the displayed answer."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from tests.corpora import load_jsonl
from tests.fakes import FakeOpenAI, FakeRequest
from tests.service.conftest import AppFactory

CORPUS = "pal_programs_gsmhard.jsonl"


def _close(value: Any, target: float) -> bool:
    return isinstance(value, int | float) and math.isclose(
        value, target, rel_tol=1e-6, abs_tol=1e-6
    )


async def test_every_program_returns_its_target_through_ask(app_client: AppFactory) -> None:
    rows = load_jsonl(CORPUS)
    programs = {row["question"].strip(): f"```python\n{row['program']}```" for row in rows}

    def script(request: FakeRequest) -> str:
        asked = str(request.messages[-1]["content"])
        return next(p for q, p in programs.items() if q in asked)

    gate = asyncio.Semaphore(8)  # one client, eight runs at once: more than its default share
    failures: list[str] = []
    async with app_client(FakeOpenAI(script), max_concurrent_runs_per_client=8) as client:

        async def replay(row: dict[str, Any]) -> None:
            async with gate:
                response = await client.post(
                    "/ask", json={"question": row["question"], "mode": "pal"}
                )
            body = response.json()
            value = body.get("details", {}).get("value")
            if response.status_code != 200 or not _close(value, float(row["target"])):
                failures.append(
                    f"{row['id']}: {response.status_code} {body.get('answer')!r} "
                    f"!= {row['target']!r}"
                )
                return
            answer = float(body["answer"].replace(",", ""))
            if not math.isclose(answer, float(row["target"]), rel_tol=1e-6, abs_tol=1e-6):
                failures.append(f"{row['id']}: displayed {body['answer']!r} != {row['target']!r}")

        await asyncio.gather(*(replay(row) for row in rows))
    assert not failures, f"{len(failures)}/{len(rows)} failed: {failures[:5]}"
