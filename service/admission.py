"""Admission: how much work the service takes on, decided before a run is recorded.

* ``MAX_CONCURRENT_RUNS``: runs under way at once, server-wide. Past it, 503 with
  ``Retry-After``: the run is refused, never queued behind the others.
* ``MAX_CONCURRENT_RUNS_PER_CLIENT``: runs under way at once for one client (its API key, else
  its address). Past it, 429 with ``Retry-After``, so one client cannot take every slot.
* ``TOKEN_BUDGET_PER_KEY``: LLM tokens one client may spend per UTC day. Past it, 429 until
  midnight UTC. A run that has started is never cut short by it: its tokens count once it ends.
* ``RATE_LIMIT``: requests per client in a moving window (``limits``), 429 past it.

``RATE_LIMIT_STORAGE_URL`` says where the counts live: ``memory://`` (this process: right for
one process, each worker or replica otherwise counts alone) or ``redis://host:port/db``, shared
by every worker and replica. The rate limit and the token budget use the ``limits`` library's
storage. Run slots need something it does not have, a lease one can give back: each slot is a
member of a Redis sorted set (the run id, scored by when its lease lapses: the run's deadline
plus a margin), taken after counting in one Lua script. A process that dies frees its slots
when their leases lapse instead of holding them for ever. Redis calls have a timeout; Redis
down means 503 ("the limits store is unavailable"), not an unlimited service.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from service.errors import ProblemError
from service.metrics import Metrics

if TYPE_CHECKING:  # redis is imported when the store is Redis: it costs ~0.2 s at start
    from redis.asyncio import ConnectionPool

REDIS_TIMEOUT_S = 2.0
LEASE_MARGIN_S = 60.0  # a run outlives its deadline by its clean-up at most
Taken = Literal["ok", "full", "client"]


class Slots(Protocol):
    async def take(
        self, run_id: str, client: str, limits: tuple[int, int], lease_s: float
    ) -> Taken:
        """A slot for ``run_id``, unless ``limits`` (server-wide, per client) are reached."""

    async def give_back(self, run_id: str, client: str) -> None: ...

    async def aclose(self) -> None: ...


class MemorySlots:
    """This process's runs, by client."""

    def __init__(self) -> None:
        self._runs: dict[str, str] = {}  # run_id -> client

    async def take(
        self, run_id: str, client: str, limits: tuple[int, int], lease_s: float
    ) -> Taken:
        total, per_client = limits
        if len(self._runs) >= total:
            return "full"
        if sum(1 for owner in self._runs.values() if owner == client) >= per_client:
            return "client"
        self._runs[run_id] = client
        return "ok"

    async def give_back(self, run_id: str, client: str) -> None:
        self._runs.pop(run_id, None)

    async def aclose(self) -> None:
        pass


# KEYS: every run's slots, this client's. ARGV: now, lease end, total, per client, run id.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 1 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 2 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
local ttl = math.ceil(tonumber(ARGV[2]) - tonumber(ARGV[1]))
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return 0
"""


class RedisSlots:
    """Run slots shared by every process that uses this Redis (see the module's text)."""

    def __init__(self, pool: ConnectionPool, prefix: str = "reactpal:slots") -> None:
        from redis.asyncio import Redis

        self._pool = pool
        self._redis = Redis(connection_pool=pool)
        self._take = self._redis.register_script(_TAKE)
        self._prefix = prefix

    async def take(
        self, run_id: str, client: str, limits: tuple[int, int], lease_s: float
    ) -> Taken:
        now = time.time()
        keys = [f"{self._prefix}:all", f"{self._prefix}:client:{client}"]
        answer = await self._take(keys=keys, args=[now, now + lease_s, *limits, run_id])
        return ("ok", "full", "client")[int(answer)]

    async def give_back(self, run_id: str, client: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(f"{self._prefix}:all", run_id)
            pipe.zrem(f"{self._prefix}:client:{client}", run_id)
            await pipe.execute()

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()

    @classmethod
    def connect(cls, url: str) -> RedisSlots:
        from redis.asyncio import ConnectionPool

        return cls(
            ConnectionPool.from_url(
                url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
            )
        )


class Admission:
    """Every limit above, for one process, over the storage ``storage_url`` names."""

    def __init__(
        self,
        *,
        storage_url: str,
        max_runs: int,
        max_runs_per_client: int,
        rate_limit: str,
        token_budget: int | None,
        lease_s: float,
        metrics: Metrics,
        read_rate_limit: str = "",
    ) -> None:
        self._storage: Storage
        self._slots: Slots
        if storage_url.startswith(("redis://", "rediss://")):
            slots = RedisSlots.connect(storage_url)  # one connection pool for both
            shared_pool: dict[str, Any] = {"connection_pool": slots._pool}
            self._storage = RedisStorage(
                f"async+{storage_url}", implementation="redispy", **shared_pool
            )
            self._slots = slots
        elif storage_url == "memory://":
            self._storage, self._slots = MemoryStorage(), MemorySlots()
        else:
            raise ValueError("RATE_LIMIT_STORAGE_URL must be memory:// or redis://host:port/db")
        self._limits = (max_runs, max_runs_per_client)
        self._rate = parse(rate_limit) if rate_limit else None
        self._read_rate = parse(read_rate_limit) if read_rate_limit else None
        self._window = MovingWindowRateLimiter(self._storage)
        self._budget = token_budget
        self._lease_s = lease_s + LEASE_MARGIN_S
        self._metrics = metrics

    async def check_rate(self, client: str, kind: Literal["ask", "write", "read"] = "ask") -> None:
        """429 past ``RATE_LIMIT`` for this client: for the requests that start work
        (``ask``), and in a window of their own for the other requests that write to the
        store (``write``: threads, feedback, collections, deletes, cancels). Unlimited,
        3,000 new threads from one key made every other client's ``/ask`` 50 times slower
        on the store's one writer (red-team pass CV). Reads (``read``) past
        ``READ_RATE_LIMIT``, in a window of theirs (red-team pass FB)."""
        rate = self._read_rate if kind == "read" else self._rate
        if rate is None:
            return
        who = _key(client)
        async with _reachable():
            if await self._window.hit(rate, kind, who):
                return
            stats = await self._window.get_window_stats(rate, kind, who)
        self._metrics.rejected.labels("rate_limited").inc()
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        what = "" if kind == "ask" else f" for {kind}s"
        raise ProblemError(
            429,
            f"rate limit of {rate}{what} exceeded; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )

    async def admit(self, run_id: str, client: str) -> None:
        """Take a run slot for ``run_id`` (give it back with ``release``), or raise 429 (this
        client's budget or share) or 503 (the service is full), with ``Retry-After``."""
        who = _key(client)
        async with _reachable():
            if self._budget is not None:
                spent = await self._storage.get(_budget_key(who))
                if spent >= self._budget:
                    self._metrics.rejected.labels("token_budget").inc()
                    retry = _until_midnight_utc()
                    raise ProblemError(
                        429,
                        f"this client's daily budget of {self._budget} LLM tokens is spent "
                        f"({spent}); it renews at midnight UTC, in {retry} s",
                        headers={"Retry-After": str(retry)},
                    )
            taken = await self._slots.take(run_id, who, self._limits, self._lease_s)
        if taken == "full":
            self._metrics.rejected.labels("server_busy").inc()
            raise ProblemError(
                503,
                f"the service is running as many runs as it may ({self._limits[0]}, "
                "MAX_CONCURRENT_RUNS); retry shortly",
                headers={"Retry-After": "1"},
            )
        if taken == "client":
            self._metrics.rejected.labels("client_busy").inc()
            raise ProblemError(
                429,
                f"this client has as many runs under way as it may ({self._limits[1]}, "
                "MAX_CONCURRENT_RUNS_PER_CLIENT); retry when one ends",
                headers={"Retry-After": "1"},
            )

    async def release(self, run_id: str, client: str, tokens: int) -> None:
        """The run ended: its slot is free, its tokens count against the budget."""
        who = _key(client)
        async with _reachable():
            await self._slots.give_back(run_id, who)
            if self._budget is not None and tokens > 0:
                await self._storage.incr(
                    _budget_key(who), _until_midnight_utc() + 3600, amount=tokens
                )

    async def aclose(self) -> None:
        await self._slots.aclose()


@contextlib.asynccontextmanager
async def _reachable() -> AsyncIterator[None]:
    """Redis errors and timeouts as a 503 that says what is down, not a 500."""
    try:
        yield
    except _storage_errors() as exc:
        raise ProblemError(
            503,
            f"the limits store is unavailable ({type(exc).__name__}); retry shortly",
            headers={"Retry-After": "5"},
        ) from exc


def _storage_errors() -> tuple[type[BaseException], ...]:
    redis = sys.modules.get("redis.exceptions")  # imported with a Redis store, if any
    return (StorageError, OSError, TimeoutError, *((redis.RedisError,) if redis else ()))


def _key(client: str) -> str:
    """A client as a storage key: a digest, so no API key is ever written to Redis."""
    return hashlib.sha256(client.encode()).hexdigest()[:32]


def _budget_key(who: str) -> str:
    return f"tokens/{dt.datetime.now(dt.UTC):%Y-%m-%d}/{who}"


def _until_midnight_utc() -> int:
    now = dt.datetime.now(dt.UTC)
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((tomorrow - now).total_seconds()))
