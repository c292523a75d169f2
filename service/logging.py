"""Structured logs (structlog): key=value for people, JSON lines with ``LOG_JSON=true``."""

from __future__ import annotations

import logging

import structlog


def configure(level: str = "info", *, json: bool = False) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.basicConfig(level=level.upper(), format="%(message)s")
    # The HTTP clients log every request at INFO; the run's own log line says what matters.
    quiet = logging.DEBUG if level == "debug" else logging.WARNING
    for name in ("httpx", "httpx2", "openai"):
        logging.getLogger(name).setLevel(max(quiet, logging.getLevelName(level.upper())))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
