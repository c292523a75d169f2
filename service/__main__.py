"""``python -m service``: serve the API with uvicorn on HOST:PORT (default 127.0.0.1:8000).
``python -m service migrate``: bring the run store's schema up to date, and exit (the server
also does it at start-up)."""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from pydantic import ValidationError

from service.app import create_app
from service.logging import configure
from service.settings import Settings, describe_invalid
from service.store import RunStore, StoreUnavailable


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"reactpal: invalid settings:\n{describe_invalid(exc)}", file=sys.stderr)
        return 2
    configure(settings.log_level, json=settings.log_json)
    if sys.argv[1:] == ["migrate"]:
        return asyncio.run(_migrate(settings.database_url))
    if sys.argv[1:]:
        print(
            f"reactpal: unknown command {' '.join(sys.argv[1:])!r}; try: migrate", file=sys.stderr
        )
        return 2
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=False,
        log_config=None,  # uvicorn's loggers go through ours (service/logging.py)
        timeout_graceful_shutdown=10,
    )
    return 0


async def _migrate(database_url: str) -> int:
    store = RunStore(database_url)
    try:
        await store.start()
    except StoreUnavailable as exc:
        print(f"reactpal: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.aclose()
    print("reactpal: the run store's schema is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
