"""``python -m service``: serve the API with uvicorn on HOST:PORT (default 127.0.0.1:8000), in
``WORKERS`` processes. ``python -m service migrate``: bring the run store's schema up to date,
and exit (the server also does it at start-up). ``python -m service warm``: save the embedded
model's warm-up states, so that the first answer after a start is a warm one (``service.warm``).

With several workers, uvicorn's supervisor starts them (each builds its app from the same
environment, ``worker_app``) and restarts one that dies. The schema is brought up to date here,
once, before they start rather than raced by all of them; the Prometheus metrics of every
worker are summed at ``/metrics`` (``PROMETHEUS_MULTIPROC_DIR``, a fresh directory for this
server's life). What workers must share, they share through the store (``DATABASE_URL``) and,
for the limits, ``RATE_LIMIT_STORAGE_URL`` (with ``memory://`` each worker counts alone)."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic import ValidationError

from service import connections
from service.logging import configure
from service.settings import Settings, describe_invalid

if TYPE_CHECKING:
    from fastapi import FastAPI

    from agents.llm.base import LLM

# The app's modules (FastAPI, SQLAlchemy, the routes: about two seconds of CPU) are imported
# in main(), after the embedded model has begun loading on its own thread: the cold start to a
# first answer is the longer of the two, not their sum (issue 12's 5 s budget).


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"reactpal: invalid settings:\n{describe_invalid(exc)}", file=sys.stderr)
        return 2
    configure(settings.log_level, json=settings.log_json)
    if sys.argv[1:] == ["migrate"]:
        return asyncio.run(_migrate(settings.database_url))
    if sys.argv[1:] == ["warm"]:
        from service.warm import save_warm_states

        return asyncio.run(save_warm_states(settings))
    if sys.argv[1:]:
        print(
            f"reactpal: unknown command {' '.join(sys.argv[1:])!r}; try: migrate, warm",
            file=sys.stderr,
        )
        return 2
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        # X-Forwarded-For is read from the proxies FORWARDED_ALLOW_IPS names only (behind an
        # Ingress every client would otherwise be the proxy's address: one guesser's failed
        # keys would block every tenant); from anybody else it is text the client wrote.
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": list(settings.forwarded_allow_ips) or None,
        "log_config": None,  # uvicorn's loggers go through ours (service/logging.py)
        # SIGTERM: requests in progress get the grace, then the runs (RunManager.aclose).
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
        # a deadline for each request's headers, a cap on connections per address
        "http": connections.BoundedH11Protocol,
    }
    _bound_connections(settings)
    workers = settings.worker_count()
    if workers == 1:
        llm = _loading(settings)
        from service.app import create_app

        uvicorn.run(create_app(settings, llm=llm), **options)
        return 0
    if status := asyncio.run(_migrate(settings.database_url, quiet=True)):
        return status
    if settings.rate_limit_storage_url == "memory://":
        print(
            f"reactpal: {workers} workers count the limits each for itself "
            "(RATE_LIMIT_STORAGE_URL=redis://... shares them)",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="reactpal-metrics-") as metrics:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics)
        uvicorn.run("service.__main__:worker_app", factory=True, workers=workers, **options)
    return 0


def _loading(settings: Settings) -> LLM | None:
    """The embedded model, already loading; None with a server (``LLM_BASE_URL``) or when it
    cannot be built (the app's start-up then builds it again and reports why)."""
    if settings.llm_base_url:
        return None
    from agents.errors import LLMConfigError
    from agents.llm.local import LocalLLM
    from service.components import build_llm

    try:
        llm = build_llm(settings)
    except LLMConfigError:
        return None
    if isinstance(llm, LocalLLM):
        llm.start_loading()
    return llm


def worker_app() -> FastAPI:
    """One worker's app (``WORKERS`` > 1), from the environment its parent read."""
    from service.app import create_app

    settings = Settings()
    configure(settings.log_level, json=settings.log_json)
    _bound_connections(settings)
    return create_app(settings)


def _bound_connections(settings: Settings) -> None:
    connections.configure(
        settings.header_timeout_s,
        settings.max_connections_per_address,
        tuple(settings.forwarded_allow_ips),
    )


async def _migrate(database_url: str, *, quiet: bool = False) -> int:
    from service.store import RunStore, StoreUnavailable

    store = RunStore(database_url)
    try:
        await store.start()
    except StoreUnavailable as exc:
        print(f"reactpal: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.aclose()
    if not quiet:
        print("reactpal: the run store's schema is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
