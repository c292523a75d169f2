"""Turn a program's answer into JSON-safe data, inside the child, within fixed bounds.

The PAL layer votes on ``value`` and formats ints and floats, so numbers stay numbers:
``Fraction`` and ``Decimal`` become an ``int`` when integral and a ``float`` otherwise (their
exact ``repr`` is kept in ``value_repr``); non-finite floats, complex numbers and other objects
become strings; tuples, sets and other containers of known kinds become lists (sets sorted when
possible); dict keys become strings (a dict two of whose keys would then be one is shown by its
repr). Depth and item count are bounded and the walk is not
recursive, so a million-deep list cannot crash the child or the service.

Every value is read through its base class (``int.__index__``, ``str.__str__``, a Fraction's
slots, ``Decimal``'s own methods), so a subclass cannot lie about its size, its digits or its
items: a container is walked only when its type is exactly a builtin container; anything else
is shown by its (bounded) ``repr``. Ints above ``MAX_INT_BITS`` travel as strings, so the
service never parses a number larger than a few hundred digits.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import math
import re
from typing import Any

MAX_DEPTH = 32
MAX_ITEMS = 10_000
MAX_INT_BITS = 1000  # ~300 digits; larger ints travel as their decimal text
_CONTAINERS = (dict, list, tuple, set, frozenset, collections.deque, range)
_DATES = (datetime.date, datetime.datetime, datetime.time)


class ValueTooLarge(Exception):
    """The answer is too big or too deeply nested to return."""


def _scalar(value: Any) -> Any:
    """A JSON scalar for ``value``, or ``NotImplemented`` when it is a container."""
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return _int(int.__index__(value))
    if isinstance(value, float):
        number = float.__float__(value)
        return number if math.isfinite(number) else repr(number)
    if isinstance(value, fractions.Fraction):
        num = int.__index__(fractions.Fraction._numerator.__get__(value))  # type: ignore[attr-defined]
        den = int.__index__(fractions.Fraction._denominator.__get__(value))  # type: ignore[attr-defined]
        if den == 1:
            return _int(num)
        return _float(num, den)
    if isinstance(value, decimal.Decimal):
        exact = decimal.Decimal(value)  # a plain copy: a subclass's methods are not asked
        if not exact.is_finite():
            return str(exact)
        if exact.adjusted() < 1000 and exact == exact.to_integral_value():
            return _int(int(exact))
        number = float(exact)
        return number if math.isfinite(number) else str(exact)
    if _one_of(kind, _DATES):
        return kind.isoformat(value)
    if _one_of(kind, _CONTAINERS):
        return NotImplemented
    return bounded_repr(value, 2000)


def _one_of(kind: type, classes: tuple[type, ...]) -> bool:
    return any(kind is cls for cls in classes)


def _int(value: int) -> int | str:
    if value.bit_length() <= MAX_INT_BITS:
        return value
    try:
        return str(value)
    except ValueError:
        return f"<int with about {int(value.bit_length() * 0.30103)} digits>"


def _float(num: int, den: int) -> float | str:
    try:
        return num / den
    except OverflowError:
        return "inf" if (num < 0) == (den < 0) else "-inf"


def _key(key: Any) -> str:
    scalar = _scalar(key)
    if scalar is NotImplemented:
        return bounded_repr(key, 200)
    return scalar if type(scalar) is str else str(scalar)


def _items(value: Any) -> list[Any]:
    kind = type(value)
    if kind is set or kind is frozenset:
        items = list(value)
        try:
            return sorted(items)
        except BaseException:  # the program's __lt__ raised (its own KeyboardInterrupt too:
            return items  # pass FC): the set's own order, as CPython answers the set
    return list(value)  # an exact builtin container: its length was checked


class _Room:
    """What is left of ``max_chars``: spent by each text and large int before it is made, so
    an answer of ten thousand 10,000-digit ints is refused before the first of them is
    written out (red-team pass AV: writing them all out ran past the run's deadline)."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, value: Any) -> None:
        if self.left is None:
            return
        if isinstance(value, str):
            self.left -= str.__len__(value)
        elif isinstance(value, int):
            bits = int.__index__(value).bit_length()
            self.left -= int(bits * _DIGITS_PER_BIT) + 1 if bits > MAX_INT_BITS else 1
        else:
            self.left -= 1
        if self.left < 0:
            raise ValueTooLarge(f"result larger than {self.limit} bytes")


_DIGITS_PER_BIT = math.log10(2)


class _KeysCollide(Exception):
    """Two keys of a dict would be one key in JSON (``1`` and ``"1"``)."""


def to_json_safe(value: Any, max_chars: int | None = None) -> Any:
    """A JSON-safe copy of ``value``; raises :class:`ValueTooLarge`, also as soon as its texts
    and numbers alone are longer than ``max_chars`` (before they are written out). A dict two
    of whose keys would be one in JSON (``{1: 'a', '1': 'b'}``, two lone surrogates) cannot be
    data without losing one: the answer is then its repr, as any other object's is."""
    try:
        return _json_safe(value, max_chars)
    except _KeysCollide:  # raised once the whole answer was walked and found within bounds
        try:
            text = str.__str__(repr(value))
        except MemoryError:
            raise  # out of memory: the run's MemoryLimit, not an answer
        except BaseException:
            return bounded_repr(value, 2000)
        return text if len(text) <= 2000 else text[:1997] + "..."


def _json_safe(value: Any, max_chars: int | None) -> Any:
    budget = MAX_ITEMS
    room = _Room(max_chars)
    room.spend(value)
    top = _scalar(value)
    if top is not NotImplemented:
        return top
    root: Any = {} if type(value) is dict else []
    collided = False
    stack: list[tuple[Any, Any, int]] = [(value, root, 1)]
    while stack:
        source, target, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueTooLarge(f"result nested deeper than {MAX_DEPTH} levels")
        if type(source) is not dict and len(source) > budget:
            raise ValueTooLarge(f"result has more than {MAX_ITEMS} items")
        pairs = list(source.items()) if type(source) is dict else list(enumerate(_items(source)))
        budget -= len(pairs)
        if budget < 0:
            raise ValueTooLarge(f"result has more than {MAX_ITEMS} items")
        keys: set[str] = set()  # as the reply will have them: lone surrogates replaced
        for key, item in pairs:
            room.spend(item)
            if type(target) is dict:
                room.spend(key)
            converted = _scalar(item)
            if converted is NotImplemented:
                converted = {} if type(item) is dict else []
                stack.append((item, converted, depth + 1))
            if type(target) is dict:
                text = _key(key)
                cleaned = clean_text(text)
                if cleaned in keys:
                    collided = True  # the rest is still walked: bounded before any repr
                keys.add(cleaned)
                target[text] = converted
            else:
                target.append(converted)
    if collided:
        raise _KeysCollide
    return root


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` as valid UTF-8 text: each lone surrogate becomes one U+FFFD, so the text is
    as long as it was measured (``decode("replace")`` made three of each: a reply the child
    had measured was refused by the parent, red-team pass AD)."""
    return _SURROGATE.sub("\ufffd", str.__str__(text))


def clean_strings(value: Any) -> Any:
    """``value`` (JSON-safe data) with lone surrogates in its strings replaced."""
    if type(value) is str:
        return clean_text(value)
    if type(value) is list:
        return [clean_strings(item) for item in value]
    if type(value) is dict:
        return {clean_strings(k): clean_strings(v) for k, v in value.items()}
    return value


def bounded_repr(value: Any, limit: int) -> str:
    """``repr(value)`` cut to ``limit`` characters (never raises; a lying ``__repr__`` that
    returns a str subclass or fails is contained)."""
    try:
        text = repr(value)
        text = str.__str__(text)
    except RecursionError:
        return "<result too deeply nested to show>"
    except ValueError as exc:  # int too large to convert
        return f"<{type(value).__name__}: {str.__str__(str(exc))[:200]}>"
    except BaseException as exc:
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
