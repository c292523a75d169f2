"""The wire format between the service, a template and a run: length-prefixed JSON frames.

Never pickle: a compromised process could send a malicious pickle, and unpickling it in the
service would run its code. A frame is a 4-byte big-endian length and that many bytes of UTF-8
JSON. Every reader refuses frames over a size cap; the service also refuses non-finite
numbers, integers longer than a few hundred digits (parsing one costs time), and anything but
the fields it expects (see ``pool.parse_reply``).

Service → template: a header frame ``{"id", "size", "timeout_s"}`` followed by ``size`` raw
bytes of the program. Template → service: ``{"id", "status", "size", "signal", "exit"}``
followed, when ``status`` is ``"done"``, by ``size`` bytes: the run's own JSON reply.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame was malformed, too large, or the pipe closed."""


def encode(message: dict[str, Any], max_bytes: int) -> bytes:
    body = json.dumps(message, ensure_ascii=False, allow_nan=False).encode("utf-8")
    if len(body) > max_bytes:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the cap of {max_bytes}")
    return HEADER.pack(len(body)) + body


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"non-finite number {name} in frame")


def _bounded_int(max_digits: int) -> Any:
    def parse_int(text: str) -> int:
        if len(text) > max_digits:
            raise ProtocolError(f"integer of {len(text)} digits in frame")
        return int(text)

    return parse_int


def decode(body: bytes, max_int_digits: int = 4000) -> dict[str, Any]:
    try:
        message = json.loads(
            body.decode("utf-8"),
            parse_constant=_reject_constant,
            parse_int=_bounded_int(max_int_digits),
        )
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"bad frame: {type(exc).__name__}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


def read_frame_fd(fd: int, max_bytes: int) -> dict[str, Any]:
    """Blocking read of one frame (worker side)."""
    (size,) = HEADER.unpack(_read_exactly(fd, HEADER.size))
    if size > max_bytes:
        raise ProtocolError(f"frame of {size} bytes exceeds the cap of {max_bytes}")
    return decode(_read_exactly(fd, size))


def write_frame_fd(fd: int, frame: bytes) -> None:
    view = memoryview(frame)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise ProtocolError("pipe closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
