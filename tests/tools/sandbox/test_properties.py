"""Property tests: the guards agree with plain Python wherever they let a value through, the
answer conversion always yields bounded JSON, and the sandbox computes what Python computes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tools.sandbox import Sandbox, policy, values
from tools.sandbox.standins import Classes

ARITH = policy.Arithmetic(max_int_digits=1000, max_sequence_items=10_000)
GUARDS = policy.Guards(ARITH, Classes(ARITH))
small_ints = st.integers(min_value=-(10**6), max_value=10**6)


@given(small_ints, st.integers(min_value=0, max_value=300))
def test_pow_guard_agrees_or_refuses(base: int, exp: int) -> None:
    try:
        result = ARITH.pow(base, exp)
    except policy.IntSizeLimit:
        assert abs(base) > 1 and len(str(abs(base) ** exp)) > 900
    else:
        assert result == base**exp


@given(st.integers(), st.integers(min_value=-50, max_value=5000))
def test_mul_and_shift_guards_agree_or_refuse(a: int, b: int) -> None:
    for op, plain in ((ARITH.mul, a * b), (ARITH.lshift, a << b if b >= 0 else None)):
        if plain is None:
            continue
        try:
            assert op(a, b) == plain
        except policy.IntSizeLimit:
            assert plain.bit_length() > 1000 * 3


@given(st.text(max_size=20), st.integers(min_value=-5, max_value=2000))
def test_sequence_repeat_guard(text: str, times: int) -> None:
    try:
        assert ARITH.mul(text, times) == text * times
    except policy.SizeLimit:
        assert len(text) * times > 10_000


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.frozensets(st.integers(), max_size=5)
        | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=5)
    ),
    max_leaves=50,
)


@given(json_like)
def test_answers_always_become_strict_json(value: Any) -> None:
    converted = values.to_json_safe(value)
    assert json.loads(json.dumps(converted, allow_nan=False)) == converted


@given(st.text(alphabet="{}:.0123456789abcdefx!r_<>^ ", max_size=12), small_ints)
@example("{:c}", -1)  # str.format's own OverflowError: found by a CI-like run
def test_safe_format_matches_str_format_or_refuses(template: str, number: int) -> None:
    try:
        expected = template.format(number, x=number)
    except (ValueError, IndexError, KeyError, AttributeError, TypeError, OverflowError):
        return  # malformed template: whatever the guarded formatter does, it must not leak
    try:
        got = GUARDS.format(template, number, x=number)
    except policy.SandboxSecurityError:
        assert "_" in template
    except policy.SizeLimit:
        assert any(int(run) > 10_000 for run in re.findall(r"\d+", template))
    else:
        assert got == expected


expressions = st.recursive(
    small_ints.map(str),
    lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*", "//", "%"]), inner).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    ),
    max_leaves=8,
)


@pytest.mark.asyncio(loop_scope="module")
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(expressions)
async def test_sandbox_computes_what_python_computes(sandbox: Sandbox, expr: str) -> None:
    try:
        expected: Any = eval(expr)  # our own generated integer arithmetic, never attack input
    except ZeroDivisionError:
        expected = ZeroDivisionError
    res = await sandbox.run(f"result = {expr}")
    if expected is ZeroDivisionError:
        assert res.error_kind == "ZeroDivisionError"
    else:
        assert res.ok and res.value == expected
