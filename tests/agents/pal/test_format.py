"""Answer display: ints without .0, floats rounded for display, other values readable."""

from __future__ import annotations

import pytest

from agents.pal.format import format_answer


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (8, "8"),
        (8.0, "8"),
        (-6887448.0, "-6887448"),
        (3244047.0999999996, "3244047.1"),
        (0.1 + 0.2, "0.3"),
        (66.00000000000001, "66"),
        (2 / 3, "0.6666666667"),
        (12.5, "12.5"),
        (-0.0, "0"),
        (1e20, "1e20"),
        (1.5e-9, "1.5e-9"),
        (123456789012.5, "123456789000"),
        (10**30, "1" + "0" * 30),
        (True, "True"),
        (None, "None"),
        (" 04/07/2024 ", "04/07/2024"),
        ("Wednesday", "Wednesday"),
        ([1, 2.0, "a"], '[1, 2, "a"]'),
        ({"x": 1.5}, '{"x": 1.5}'),
        ("inf", "inf"),
    ],
)
def test_format_answer(value: object, shown: str) -> None:
    assert format_answer(value) == shown


def test_non_finite_floats() -> None:
    assert format_answer(float("nan")) == "nan"
    assert format_answer(float("-inf")) == "-inf"
