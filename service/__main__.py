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
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from service.app import create_app
from service.logging import configure
from service.settings import Settings, describe_invalid
from service.store import RunStore, StoreUnavailable
from service.warm import save_warm_states


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
        "proxy_headers": False,
        "log_config": None,  # uvicorn's loggers go through ours (service/logging.py)
        # SIGTERM: requests in progress get the grace, then the runs (RunManager.aclose).
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
    }
    workers = settings.worker_count()
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
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


def worker_app() -> FastAPI:
    """One worker's app (``WORKERS`` > 1), from the environment its parent read."""
    settings = Settings()
    configure(settings.log_level, json=settings.log_json)
    return create_app(settings)


async def _migrate(database_url: str, *, quiet: bool = False) -> int:
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
