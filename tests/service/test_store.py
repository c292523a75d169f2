"""The SQLite run store under concurrent runs: one process's runs never lock each other out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.store import RunStore


async def test_concurrent_runs_never_see_a_locked_store(tmp_path: Path) -> None:
    """Found by the PAL replay in CI (8 runs at a time on a loaded machine): a run's end,
    read then written in one transaction, could meet another's and fail with "database is
    locked". 64 runs at once, each created, read and finished, all stored."""
    store = RunStore(f"sqlite+aiosqlite:///{tmp_path}/runs.db?timeout=0.5")
    await store.start()
    try:

        async def one(n: int) -> None:
            run_id = f"{n:032x}"
            await store.create(run_id, "pal", f"question {n}")
            await asyncio.sleep(0)
            assert (await store.get(run_id) or {}).get("status") == "running"
            await store.finish(run_id, status="finished", answer=str(n), duration_ms=1.0)

        await asyncio.gather(*(one(n) for n in range(64)))
        for n in range(64):
            stored = await store.get(f"{n:032x}")
            assert stored is not None and (stored["status"], stored["answer"]) == (
                "finished",
                str(n),
            )
    finally:
        await store.aclose()
