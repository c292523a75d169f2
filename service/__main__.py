"""``python -m service``: serve the API with uvicorn on HOST:PORT (default 127.0.0.1:8000)."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from service.app import create_app
from service.logging import configure
from service.settings import Settings, describe_invalid


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"reactpal: invalid settings:\n{describe_invalid(exc)}", file=sys.stderr)
        return 2
    configure(settings.log_level, json=settings.log_json)
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


if __name__ == "__main__":
    raise SystemExit(main())
