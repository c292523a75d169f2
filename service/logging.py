"""Structured logs (structlog): key=value for people, JSON lines with ``LOG_JSON=true``.

Every logger goes through one formatter: structlog's own and the standard library's (the
sandbox, search, uvicorn's error and access logs), so ``LOG_JSON=true`` gives JSON on every
line. The request id and, once a run starts, its run id are bound in context variables and
appear on every line logged while serving that request (``service/request_id.py``).

Access lines never carry a query string: it is where a misplaced ``?api_key=`` ends up, and
its text is the client's to choose. The path stays, percent-encoded, so that no byte of it can
end a line and start a forged one in the plain format.
"""

from __future__ import annotations

import logging
import sys
import urllib.parse

import structlog

_SHARED: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso"),
]


def configure(level: str = "info", *, json: bool = False) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric = logging.getLevelName(level.upper())
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_access_without_query)  # on the handler: one per configure(), none stale
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []  # through the root handler, in the same format
        uvicorn_logger.propagate = True
    # The HTTP clients log every request at INFO; the run's own log line says what matters.
    # Alembic, imported only when the schema is behind (service.store), lists its plugins.
    quiet = logging.DEBUG if level == "debug" else logging.WARNING
    for name in ("httpx", "httpx2", "openai", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(max(quiet, numeric))
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )


def _access_without_query(record: logging.LogRecord) -> bool:
    """Rewrite uvicorn's access record, ``(client, method, path?query, version, status)``, to
    hold the path alone. The query is dropped, not redacted: a list of secret parameter names
    misses the next one (``token=``, ``key=``), and the access line needs only the route."""
    args = record.args
    if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        client, method, full_path, version, status = args
        record.args = (client, method, _loggable_path(str(full_path)), version, status)
    return True


def _loggable_path(full_path: str) -> str:
    """The path without its query, everything but letters, digits and ``/_.-~%``
    percent-encoded; ``%`` stays, so a path that uvicorn already encoded comes out unchanged."""
    path = full_path.split("?", 1)[0]
    return urllib.parse.quote(path, safe="/%")
