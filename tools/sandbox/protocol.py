"""What crosses a process boundary: length-prefixed frames of JSON, never pickle.

A compromised process could send a malicious pickle, and unpickling it in the service would
run its code. A run's reply is a 4-byte big-endian length and that many bytes of UTF-8 JSON
(``child.py`` writes it, ``pool.py`` reads it); the control messages between the service and a
template are single JSON datagrams (``template.py``). Every reader refuses non-finite numbers
and integers longer than a few hundred digits (parsing one costs time), and checks the fields
it expects (see ``pool.parse_reply``).
"""

from __future__ import annotations

import json
import struct
from typing import Any

HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame or message was malformed, too large, or the other side went away."""


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"non-finite number {name} in frame")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):  # 1e400 parses to inf
        raise ProtocolError("non-finite number in frame")
    return number


def _bounded_int(max_digits: int) -> Any:
    def parse_int(text: str) -> int:
        if len(text) > max_digits:
            raise ProtocolError(f"integer of {len(text)} digits in frame")
        return int(text)

    return parse_int


def decode(body: bytes, max_int_digits: int | None = 4000) -> dict[str, Any]:
    """A JSON object from untrusted bytes. Raises ProtocolError.

    ``max_int_digits=None`` parses numbers at C speed, with no Python call per number (a
    megabyte of ``[0.5],`` cost the service 260 ms that way, red-team pass BQ): the caller
    then checks every number it keeps (``pool.parse_reply``). CPython's own limit on the
    digits of an int read from text (4,300) bounds what parsing one costs meanwhile."""
    hooks: dict[str, Any] = {}
    if max_int_digits is not None:
        hooks = {"parse_float": _finite_float, "parse_int": _bounded_int(max_int_digits)}
    try:
        message = json.loads(body.decode("utf-8"), parse_constant=_reject_constant, **hooks)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"bad frame: {type(exc).__name__}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


def reply_frame_cap(max_output: int) -> int:
    """The largest reply frame: stdout, the value's repr and the JSON value, each up to
    ``max_output`` characters of up to 6 bytes once in JSON (a control character is written
    ``\\u0001``), plus the fields."""
    return 18 * max_output + 65536
