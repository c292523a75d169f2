"""Runs as resources, measured through the real ASGI app (scripted OpenAI-compatible model,
real sandbox, SQLite store in a temporary directory). Prints a table:

- cancel latency: ``POST /runs/{id}/cancel`` until it answers with the run stored as
  ``cancelled``, while the run waits on the model (an LLM call that never answers) and while
  its program spins in the sandbox;
- event replay: ``GET /runs/{id}/events`` of a finished run with N steps (time to the whole
  replay, events per second), and replay after every ``Last-Event-ID`` checked equal to the
  stored trace.

    python bench/runs_api.py [--cancels 20] [--steps 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.app import create_app
from service.settings import Settings
from tests.fakes import FakeOpenAI, make_llm
from tests.fakes.search import FakeSearchProvider
from tools.sandbox import Sandbox, SandboxConfig

SPIN = "Thought: compute\nAction: python[while True:\n    pass]"


def _events(text: str) -> list[tuple[int, str]]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        if "event" in fields:
            out.append((int(fields["id"]), fields["event"].strip()))
    return out


async def _client(fake: FakeOpenAI, tmp: Path, **settings: Any) -> Any:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp}/runs.db",
        "llm_base_url": FakeOpenAI.base_url,
        "rate_limit": "",
        "sandbox_timeout_s": 60,
        "max_steps_limit": 100,
        **settings,
    }
    sandbox = Sandbox(SandboxConfig(workers=2, timeout_s=60))
    app = create_app(
        Settings(**values),
        llm=make_llm(fake),
        sandbox=sandbox,
        search_provider=FakeSearchProvider(),
    )
    return app


async def _wait(client: httpx2.AsyncClient, run_id: str, status: str) -> None:
    for _ in range(2000):
        if (await client.get(f"/runs/{run_id}")).json()["status"] == status:
            return
        await asyncio.sleep(0.005)
    raise RuntimeError(f"run {run_id} never reached {status}")


async def _called(fake: FakeOpenAI, before: int) -> None:
    """Until the model has been asked once more than ``before``."""
    for _ in range(5000):
        if fake.calls > before:
            return
        await asyncio.sleep(0.002)
    raise RuntimeError("the model was never asked")


async def cancel_latencies(kind: str, count: int, tmp: Path) -> list[float]:
    fake = FakeOpenAI(script=lambda request: SPIN) if kind == "sandbox" else FakeOpenAI()
    app = await _client(fake, tmp)
    latencies = []
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(count):
                calls = fake.calls
                if kind == "llm":
                    fake.fail("hang", times=1)
                body = {"question": "q", "actions": ["python"]}
                run_id = (await client.post("/runs", json=body)).json()["run_id"]
                await _wait(client, run_id, "running")
                await _called(fake, calls)
                if kind == "sandbox":
                    await asyncio.sleep(0.2)  # the program is spinning
                started = time.perf_counter()
                answer = await client.post(f"/runs/{run_id}/cancel")
                latencies.append(time.perf_counter() - started)
                assert answer.json()["status"] == "cancelled", answer.text
    return latencies


async def replay(steps: int, tmp: Path) -> tuple[int, float, float, bool]:
    script = [f"Thought: step {n}\nAction: python[print({n})]" for n in range(steps)]
    fake = FakeOpenAI(script=[*script, "Thought: done\nAction: finish[ok]"])
    app = await _client(fake, tmp, max_steps_limit=steps + 2)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
            body = {"question": "q", "actions": ["python"], "max_steps": steps + 2}
            run_id = (await client.post("/ask", json=body)).json()["run_id"]
            started = time.perf_counter()
            full = _events((await client.get(f"/runs/{run_id}/events")).text)
            whole = time.perf_counter() - started
            resumes = []
            exact = True
            for n in range(len(full) + 1):
                started = time.perf_counter()
                text = (await client.get(f"/runs/{run_id}/events?after={n}")).text
                resumes.append(time.perf_counter() - started)
                exact &= _events(text) == full[n:]
    return len(full), whole, statistics.median(resumes), exact


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{p50 * 1000:7.1f} {p99 * 1000:7.1f} {max(ordered) * 1000:7.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cancels", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        llm = await cancel_latencies("llm", args.cancels, Path(tmp) / "a")
        box = await cancel_latencies("sandbox", args.cancels, Path(tmp) / "b")
        events, whole, resume, exact = await replay(args.steps, Path(tmp) / "c")
    print(f"{'cancel latency (ms)':<34} {'p50':>7} {'p99':>7} {'max':>7}   n")
    print(f"{'  during an LLM call':<34} {_ms(llm)}   {len(llm)}")
    print(f"{'  during a sandbox run':<34} {_ms(box)}   {len(box)}")
    print(
        f"event replay of a {args.steps}-step run: {events} events in {whole * 1000:.1f} ms "
        f"({events / whole:,.0f} events/s); resume p50 {resume * 1000:.1f} ms; "
        f"every Last-Event-ID exact: {exact}"
    )


if __name__ == "__main__":
    asyncio.run(main())
