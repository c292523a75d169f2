"""The limits on a real Redis (``RATE_LIMIT_STORAGE_URL=redis://``), as two processes or
replicas see them: each ``Admission`` here is one process's, and both count in one Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from service.admission import Admission, RedisSlots
from service.errors import ProblemError
from service.metrics import Metrics
from tests.fakes import FakeOpenAI
from tests.service.conftest import AppFactory
from tests.service.live import free_port
from tests.service.test_runs_api import FINISH, wait_for


@pytest.fixture
def processes(redis_url: str) -> Callable[..., Any]:
    """``processes(n, **limits)``: n admissions sharing ``redis_url``, closed afterwards."""

    @asynccontextmanager
    async def make(n: int, **limits: Any) -> AsyncIterator[list[Admission]]:
        options = {
            "storage_url": redis_url,
            "max_runs": 100,
            "max_runs_per_client": 100,
            "rate_limit": "",
            "token_budget": None,
            "lease_s": 60.0,
            **limits,
        }
        made = [Admission(**options, metrics=Metrics(actions=["finish"])) for _ in range(n)]
        try:
            yield made
        finally:
            for admission in made:
                await admission.aclose()

    return make


async def _status(call: Any) -> int:
    try:
        await call
    except ProblemError as exc:
        assert exc.headers is not None and int(exc.headers["Retry-After"]) >= 1
        return exc.status
    return 200


async def test_the_server_wide_cap_holds_across_processes(processes: Any) -> None:
    async with processes(2, max_runs=2) as (one, two):
        assert await _status(one.admit("r1", "alice")) == 200
        assert await _status(two.admit("r2", "bob")) == 200
        assert await _status(two.admit("r3", "carol")) == 503
        assert await _status(one.admit("r4", "dave")) == 503
        await one.release("r1", "alice", tokens=0)  # a slot one process took, freed for all
        assert await _status(two.admit("r5", "carol")) == 200


async def test_the_per_client_cap_holds_across_processes(processes: Any) -> None:
    async with processes(2, max_runs_per_client=1) as (one, two):
        assert await _status(one.admit("r1", "alice")) == 200
        assert await _status(two.admit("r2", "alice")) == 429
        assert await _status(two.admit("r3", "bob")) == 200


async def test_the_rate_limit_is_shared(processes: Any) -> None:
    async with processes(2, rate_limit="3/minute") as (one, two):
        statuses = [await _status(p.check_rate("alice")) for p in (one, two, one, two)]
        assert statuses == [200, 200, 200, 429]
        assert await _status(one.check_rate("bob")) == 200


async def test_the_token_budget_is_shared(processes: Any) -> None:
    async with processes(2, token_budget=100) as (one, two):
        assert await _status(one.admit("r1", "alice")) == 200
        await one.release("r1", "alice", tokens=120)
        assert await _status(two.admit("r2", "alice")) == 429
        assert await _status(two.admit("r3", "bob")) == 200


async def test_a_dead_process_slots_come_back_when_their_leases_lapse(redis_url: str) -> None:
    """A process killed mid-run never gives its slots back: the lease (the run's deadline
    plus a margin) does."""
    slots = RedisSlots.connect(redis_url)
    try:
        assert await slots.take("r1", "alice", (1, 1), lease_s=0.3) == "ok"
        assert await slots.take("r2", "bob", (1, 1), lease_s=0.3) == "full"
        await asyncio.sleep(0.4)
        assert await slots.take("r2", "bob", (1, 1), lease_s=0.3) == "ok"
    finally:
        await slots.aclose()


async def test_redis_down_is_a_503_that_says_so_not_an_open_door() -> None:
    admission = Admission(
        storage_url=f"redis://127.0.0.1:{free_port()}/0",
        max_runs=10,
        max_runs_per_client=10,
        rate_limit="10/minute",
        token_budget=None,
        lease_s=60.0,
        metrics=Metrics(actions=["finish"]),
    )
    try:
        for call in (admission.admit("r1", "alice"), admission.check_rate("alice")):
            with pytest.raises(ProblemError, match="limits store is unavailable") as caught:
                await call
            assert caught.value.status == 503
    finally:
        await admission.aclose()


async def test_two_replicas_share_their_run_slots(app_client: AppFactory, redis_url: str) -> None:
    """Two apps (replicas) on one Redis, MAX_CONCURRENT_RUNS=1: a run under way on one makes
    the other answer 503 with Retry-After; once it ends, the other takes runs again."""
    fake = FakeOpenAI(default=FINISH)
    fake.fail("hang", times=1)
    shared = {"rate_limit_storage_url": redis_url, "max_concurrent_runs": 1}
    async with app_client(fake, **shared) as one, app_client(fake, **shared) as two:
        run_id = (await one.post("/runs", json={"question": "first"})).json()["run_id"]
        await wait_for(one, run_id, "running")
        refused = await two.post("/ask", json={"question": "second"})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        await one.post(f"/runs/{run_id}/cancel")
        assert (await two.post("/ask", json={"question": "third"})).status_code == 200
