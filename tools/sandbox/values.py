"""Turn a program's answer into JSON-safe data, inside the worker, within fixed bounds.

The PAL layer votes on ``value`` and formats ints and floats, so numbers stay numbers:
``Fraction`` and ``Decimal`` become an ``int`` when integral and a ``float`` otherwise (their
exact ``repr`` is kept in ``value_repr``); non-finite floats, complex numbers and other objects
become strings; tuples, sets and other iterables of known kinds become lists (sets sorted when
possible); dict keys become strings. Depth and item count are bounded and the walk is not
recursive, so a million-deep list cannot crash the worker or the service.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import math
from typing import Any

MAX_DEPTH = 32
MAX_ITEMS = 10_000
# Ints above this size travel as strings: the service's JSON parser limits int digits.
MAX_INT_BITS = 4000 * 3


class ValueTooLarge(Exception):
    """The answer is too big or too deeply nested to return."""


def _scalar(value: Any) -> Any:
    """A JSON scalar for ``value``, or ``NotImplemented`` when it is a container."""
    if value is None or isinstance(value, (bool, str)):
        return str(value) if isinstance(value, str) else value
    if isinstance(value, int):
        return int(value) if value.bit_length() <= MAX_INT_BITS else _int_text(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, fractions.Fraction):
        if value.denominator == 1:
            return _scalar(value.numerator)
        return _scalar(float(value))
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value() and value.adjusted() < 1000:
            return _scalar(int(value))
        return _scalar(float(value))
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple, set, frozenset, collections.deque, range)):
        return NotImplemented
    return str(value)


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:
        return f"<int with about {int(value.bit_length() * 0.30103)} digits>"


def _key(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    scalar = _scalar(key)
    return repr(key) if scalar is NotImplemented else str(scalar)


def _items(value: Any) -> list[Any]:
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    return list(value)


def to_json_safe(value: Any) -> Any:
    """A JSON-safe copy of ``value``; raises :class:`ValueTooLarge`."""
    budget = MAX_ITEMS
    top = _scalar(value)
    if top is not NotImplemented:
        return top
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any, int]] = [(value, root, 1)]
    while stack:
        source, target, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueTooLarge(f"result nested deeper than {MAX_DEPTH} levels")
        pairs = (
            list(source.items()) if isinstance(source, dict) else list(enumerate(_items(source)))
        )
        budget -= len(pairs)
        if budget < 0:
            raise ValueTooLarge(f"result has more than {MAX_ITEMS} items")
        for key, item in pairs:
            converted = _scalar(item)
            if converted is NotImplemented:
                converted = {} if isinstance(item, dict) else []
                stack.append((item, converted, depth + 1))
            if isinstance(target, dict):
                target[_key(key)] = converted
            else:
                target.append(converted)
    return root


def bounded_repr(value: Any, limit: int) -> str:
    """``repr(value)`` cut to ``limit`` characters (never raises)."""
    try:
        text = repr(value)
    except RecursionError:
        return "<result too deeply nested to show>"
    except ValueError as exc:  # int too large to convert
        return f"<{type(value).__name__}: {exc}>"
    except Exception as exc:
        return f"<unrepresentable {type(exc).__name__}>"
    if len(text) > limit:
        return text[: max(limit - 3, 0)] + "..."
    return text


def parse_printed(line: str) -> Any:
    """The last printed line as a number when it is one, else the text."""
    text = line.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text
