"""How a PAL answer is displayed: ints without ``.0``, floats rounded for display.

The display string is for people; the exact JSON value travels next to it (``details.value``).
Floats are shown with at most ``SIGNIFICANT_DIGITS`` significant digits, trailing zeros
stripped, in positional notation unless the number is very large or very small, so
``3244047.0999999996`` shows as ``3244047.1`` and ``0.1 + 0.2`` as ``0.3``.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

SIGNIFICANT_DIGITS = 10
_POSITIONAL_RANGE = (1e-6, 1e16)  # outside it, scientific notation reads better


def format_answer(value: Any) -> str:
    """The display string for a JSON-safe value returned by the sandbox."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_item(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_item(v)}" for k, v in value.items()) + "}"
    return str(value)


def _item(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else format_answer(value)


def format_float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"  # also -0.0
    rounded = f"{value:.{SIGNIFICANT_DIGITS}g}"
    low, high = _POSITIONAL_RANGE
    if low <= abs(value) < high:
        text = format(Decimal(rounded), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    mantissa, _, exponent = rounded.partition("e")
    return f"{mantissa}e{int(exponent)}"
