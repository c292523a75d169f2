"""Behaviour of the sandbox through its public interface: answers, limits, isolation."""

from __future__ import annotations

import ast
import asyncio
import calendar
import contextlib
import io
import json
import os
import pathlib
import select
import signal
import sys
import time
from asyncio.subprocess import PIPE
from typing import Any

import pytest

from tests.tools.sandbox.test_corpora import sandbox_processes
from tools.sandbox import ExecutionResult, Sandbox, SandboxConfig, compiler, confine, pool
from tools.sandbox.pool import LAYER_NAMES, SandboxStartError
from tools.sandbox.template import MAX_SPARE_DEATHS, SPARES

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_layers_all_active_here(sandbox: Sandbox) -> None:
    # This machine's kernel (6.x, Landlock ABI 7, user namespaces, run as root) supports
    # every layer; elsewhere they are detected, never assumed.
    assert sandbox.layers == dict.fromkeys(LAYER_NAMES, True)
    assert sandbox.missing_layers == []


@pytest.mark.parametrize(
    ("code", "value", "stdout"),
    [
        ("def solution():\n    return 6 * 7\nresult = 1\n", 42, ""),
        ("result = 3\nanswer = 4\n", 3, ""),
        ("answer = 'x'\n", "x", ""),
        ("print('a')\nprint(7)\n", 7, "a\n7\n"),
        ("print('no number')\n", "no number", "no number\n"),
        ("x = 1\n", None, ""),
    ],
)
async def test_pal_answer_order(sandbox: Sandbox, code: str, value: object, stdout: str) -> None:
    res = await sandbox.run(code)
    assert res.ok, res
    assert res.value == value
    assert res.stdout == stdout


@pytest.mark.parametrize(
    ("code", "value", "stdout"),
    [
        ("import sys\ndef main():\n    print(7)\nsys.exit(main())", 7, "7\n"),
        ("import sys\ndef solution():\n    return 4\nprint(solution())\nsys.exit(0)", 4, "4\n"),
        ("print(3)\nexit()", 3, "3\n"),
        ("result = 5\nraise SystemExit", 5, ""),
    ],
)
async def test_a_script_that_exits_well_keeps_its_answer(
    sandbox: Sandbox, code: str, value: object, stdout: str
) -> None:
    """Differential pass DC: ``sys.exit(main())`` after printing the answer failed the run
    with ``SystemExit``, and ``exit()`` was a NameError."""
    res = await sandbox.run(code)
    assert (res.ok, res.value, res.stdout) == (True, value, stdout), res


@pytest.mark.parametrize(
    "code",
    [
        "import sys\nprint(3)\nsys.exit(1)",
        "class Z(int):\n    def __eq__(self, o):\n        return True\nraise SystemExit(Z(4))",
        "class E(SystemExit):\n    @property\n    def code(self):\n        return 0\nraise E(4)",
    ],
)
async def test_a_script_that_exits_with_an_error_fails(sandbox: Sandbox, code: str) -> None:
    res = await sandbox.run(code)
    assert (res.ok, res.error_kind) in ((False, "SystemExit"), (False, "E")), res


@pytest.mark.parametrize(
    ("code", "value", "stdout"),
    [
        # a side effect in solution(): the run answered 10 where the program printed 5
        (
            "n = 0\ndef solution():\n    global n\n    n += 5\n    return n\nprint(solution())",
            5,
            "5\n",
        ),
        ("def solution(n):\n    return n * n\nprint(solution(25))", 625, "625\n"),  # TypeError
        # a solution() that needs no argument answers itself: setting up with other ones
        # (a table of solution(i), a check of solution(10)) leaves the answer as it was
        ("def solution(n=25):\n    return n * n\nprint(solution(10))", 625, "100\n"),
        ("def solution(n=10):\n    return n * n\ntable = [solution(i) for i in range(5)]", 100, ""),
        # a function passed as a parameter named solution is not the program's solution
        (
            "def check(solution):\n    return solution() == 0\ndef solution():\n    return 42\n"
            "ok = check(lambda: 0)",
            42,
            "",
        ),
        (
            "def solution(n):\n    return n + 1\nfor n in (1, 2, 3):\n    print(solution(n))",
            4,
            "2\n3\n4\n",
        ),
        (
            "def solution():\n    print('once')\n    return 42\ndef main():\n"
            "    return solution()\nif __name__ == '__main__':\n    main()",
            42,
            "once\n",
        ),
        ("def solution(a, b):\n    return a + b\nargs = [1, 2]\nprint(solution(*args))", 3, "3\n"),
        # recursion in its own body is not recorded, nor does it cost a frame
        (
            "def solution(n=900):\n    return 0 if n == 0 else 1 + solution(n - 1)\n"
            "print(solution())",
            900,
            "900\n",
        ),
    ],
)
async def test_the_programs_own_call_of_solution_is_the_answer(
    sandbox: Sandbox, code: str, value: object, stdout: str
) -> None:
    """Differential pass DC: after ``print(solution())`` the sandbox called ``solution()``
    once more for the answer: its side effects ran twice, and ``def solution(n)`` failed."""
    res = await sandbox.run(code)
    assert (res.ok, res.value, res.stdout) == (True, value, stdout), res


async def test_what_the_answers_repr_prints_is_in_the_output_once(sandbox: Sandbox) -> None:
    """Pass FR: the answer's ``__repr__`` runs for its JSON form and again for its repr, and
    what it printed was in the output twice; the first reading is muted now."""
    res = await sandbox.run(
        "class V:\n    def __init__(self, n):\n        self.n = n\n"
        "    def __repr__(self):\n        print('repr', self.n)\n        return f'V({self.n})'\n"
        "print('before')\ndef solution():\n    return V(0)\n"
        "if True:\n    result = [V(1), {'k': V(2)}]\n"
    )
    assert (res.value, res.value_repr) == ("V(0)", "V(0)"), res
    assert res.stdout == "before\nrepr 0\n", res
    res = await sandbox.run(
        "class V:\n    def __init__(self, n):\n        self.n = n\n"
        "    def __repr__(self):\n        print('repr', self.n)\n        return f'V({self.n})'\n"
        "result = [V(1), {'k': V(2)}]\n"
    )
    assert res.value == ["V(1)", {"k": "V(2)"}], res
    assert res.stdout == "repr 1\nrepr 2\n", res
    res = await sandbox.run(  # printing forever while muted: the output limit (pass FY)
        "class A:\n    def __repr__(self):\n        while True:\n            print('x' * 100)\n"
        "result = A()"
    )
    assert res.error_kind == "OutputLimit" and res.duration_ms < 2000, res


@pytest.mark.parametrize(
    ("code", "value"),
    [
        # a solution() that printed its answer and answered None
        ("def solution():\n    left = 9\n    print(left)\nsolution()", 9),
        (
            "def solution():\n    print('Answer:', 5050)\nif __name__ == '__main__':\n"
            "    solution()",
            "Answer: 5050",
        ),
        ("def solution():\n    print(42)\n", 42),  # not called by the program: asked once
        # result, then answer, then the printed line, as the contract says
        ("result = [1, 2]\nprint(len(result))", [1, 2]),
        ("result = 55\nanswer = result * 2\nprint(answer)", 55),
        # None and functions are no answer
        ("result = None\nbest = 9\nprint(best)", 9),
        ("def result(x):\n    return 2 * x\nprint(result(21))", 42),
        # the program's own call raised and it went on: not asked again
        (
            "import numpy\ndef solution():\n    return int(numpy.sum([40, 5]))\ntry:\n"
            "    print(solution())\nexcept ImportError:\n    print(45)",
            45,
        ),
    ],
)
async def test_a_program_that_printed_its_answer_answers_with_it(
    sandbox: Sandbox, code: str, value: object
) -> None:
    """Differential pass FI: a ``solution()`` that printed and answered None gave no answer
    (PAL asked the model for a repair), so did ``result = None`` left as a placeholder or a
    function named ``result``, and a ``solution`` whose own call raised was called again,
    failing the run the program had gone on from."""
    res = await sandbox.run(code)
    assert (res.ok, res.value) == (True, value), res


async def test_a_method_from_a_later_base_is_the_one_used(sandbox: Sandbox) -> None:
    """Differential pass FI: the wrapper that counts what a class inherits
    (``object.__str__`` for a plain ``class Loggable:``, ``Counter.__eq__`` for a Counter
    subclass) stood for that class's own bases, and shadowed a later base's method in a class
    with more bases: ``class Item(Loggable, Named)`` printed ``<__main__.Item object ...>``."""
    code = (
        "from collections import Counter\nclass Loggable:\n    pass\nclass Named:\n"
        "    def __str__(self):\n        return 'named'\n    def __repr__(self):\n"
        "        return 'Named()'\n    def __format__(self, spec):\n        return 'fmt' + spec\n"
        "class Item(Loggable, Named):\n    pass\nclass C1(Counter):\n    pass\n"
        "class M(Counter):\n    def __eq__(self, other):\n        return 'm-eq'\n"
        "    __hash__ = None\nclass D(C1, M):\n    pass\nclass Plain(Loggable):\n    pass\n"
        "class B(Loggable):\n    pass\nclass Deep(B, Named):\n    pass\n"
        "result = [str(Item()), repr(Item()), f'{Item():>3}', '%s' % [Item()], D(a=1) == D(a=1),"
        " str(Plain()).startswith('<__main__.Plain object at '), repr(Deep())]"
    )
    res = await sandbox.run(code)
    assert res.value == [
        "named",
        "Named()",
        "fmt>3",
        "[Named()]",
        "m-eq",
        True,
        "Named()",  # a first base two levels below object (pass FI, after the first fix)
    ], res


async def test_values_are_json_safe_numbers(sandbox: Sandbox) -> None:
    res = await sandbox.run(
        "from fractions import Fraction\nfrom decimal import Decimal\n"
        "result = (Fraction(3, 1), Fraction(1, 4), Decimal('2.50'), {1, 2}, 2 ** 70, float('nan'))"
    )
    assert res.ok, res
    assert res.value == [3, 0.25, 2.5, [1, 2], 2**70, "nan"]
    assert (
        res.value_repr
        == "(Fraction(3, 1), Fraction(1, 4), Decimal('2.50'), {1, 2}, 1180591620717411303424, nan)"
    )
    json.dumps(res.value, allow_nan=False)


@pytest.mark.parametrize(
    ("code", "kind", "limit"),
    [
        ("result = 10 ** 10 ** 10", "OverflowError", "int_size"),
        ("result = 2 ** 10 ** 9", "OverflowError", "int_size"),
        ("x = 7\nx **= 10 ** 8", "OverflowError", "int_size"),
        ("result = 1 << 10 ** 10", "OverflowError", "int_size"),
        # a product one bit past the limit: checked for what it made (10,000 digits: 33,220 bits)
        ("a = 2 ** 16610 - 1\nb = 2 ** 16611 - 1\nresult = a * b", "OverflowError", "int_size"),
        ("result = 'a' * 10 ** 10", "MemoryLimit", "memory"),
        ("result = [0] * 10 ** 10", "MemoryLimit", "memory"),
        ("x = [1]\nfor i in range(40):\n    x = x + x", "MemoryLimit", "memory"),
        # CPython's deque fails without a MemoryError when memory runs out (a SystemError)
        ("import collections\nd = collections.deque(range(10 ** 8))", "MemoryLimit", "memory"),
        ("while True:\n    pass", "Timeout", "time"),
        ("def f(n):\n    return f(n + 1)\nresult = f(0)", "RecursionError", "recursion"),
        ("while True:\n    print('x' * 1000)", "OutputLimit", "output"),
        ("result = 'x' * 100000", "OutputLimit", "output"),
        # print's pieces past what the output ever takes are written one by one, never joined
        # first (red-team pass GO: a 27G-character join ran out of memory)
        ("print(*[''] * 3000, sep='y' * 9_000_000)", "OutputLimit", "output"),
        (
            "import sys\nprint(*['x'] * 3000, sep='y' * 9_000_000, file=sys.stderr)",
            "OutputLimit",
            "output",
        ),
        # refused before ten thousand 10,000-digit ints are written out (red-team pass AV)
        ("result = [10 ** 9999] * 10000", "OutputLimit", "output"),
        ("x = " + "[" * 200 + "]" * 200, "SyntaxError", "nesting"),
        ("import decimal\ndecimal.getcontext().prec = 10 ** 8", "OverflowError", "int_size"),
    ],
)
async def test_limits_fail_fast_and_clearly(
    sandbox: Sandbox, code: str, kind: str, limit: str
) -> None:
    started = time.perf_counter()
    res = await sandbox.run(code)
    assert not res.ok
    assert (res.error_kind, res.limit) == (kind, limit), res
    assert time.perf_counter() - started < sandbox.config.timeout_s + 1.5


async def test_what_scripts_read_and_print_is_as_in_cpython(sandbox: Sandbox) -> None:
    """Differential pass DP: a script's metadata, the sys names a script checks, and how a
    library class and a named tuple's class are written out."""
    code = (
        '__version__ = "1.0"\n__all__ = ["solve"]\nimport sys, statistics\n'
        "from decimal import Decimal, InvalidOperation\nfrom collections import namedtuple\n"
        "out = [__version__, __all__, sys.version_info.major, sys.version_info >= (3, 8),\n"
        "       sys.platform, sys.argv, str(namedtuple('P', 'x'))]\n"
        "try:\n    Decimal('12,50')\nexcept InvalidOperation as e:\n    out.append(str(e))\n"
        "try:\n    statistics.mean([])\nexcept statistics.StatisticsError as e:\n"
        "    out.append(repr(type(e)))\nresult = out"
    )
    res = await sandbox.run(code)
    assert res.value == [
        "1.0",
        ["solve"],
        3,
        True,
        sys.platform,
        [""],
        "<class '__main__.P'>",
        "[<class 'decimal.ConversionSyntax'>]",
        "<class 'statistics.StatisticsError'>",
    ], res


async def test_super_format_is_the_bases_with_its_specification_checked(
    sandbox: Sandbox,
) -> None:
    """Differential pass EC: ``super().__format__(spec)``, a common fallback in a
    ``__format__``, was refused; its specification is checked as ``format()``'s is."""
    code = (
        "import datetime\nclass Money(float):\n    def __format__(self, spec):\n"
        "        if spec.endswith('$'):\n            return '$' + super().__format__(spec[:-1])\n"
        "        return super().__format__(spec)\nclass P:\n    def __format__(self, spec):\n"
        "        return super().__format__(spec)\n    def __str__(self):\n        return 'P'\n"
        "class D(datetime.date):\n    def __format__(self, spec):\n"
        "        return '<' + super().__format__(spec) + '>'\n"
        "class E(ValueError):\n    def __format__(self, spec):\n"
        "        return '[' + super().__format__(spec) + ']'\n"
        "result = [f'{Money(3.14159):.2f$}', f'{P()}', f'{D(2024, 1, 2):%Y/%m}', f'{E(\"bad\")}']"
    )
    assert (await sandbox.run(code)).value == ["$3.14", "P", "<2024/01>", "[bad]"]
    for spec in ("1000000000", "%1000000000Y"):
        wide = await sandbox.run(code + f"\nD(2024, 1, 2).__format__('{spec}')")
        assert wide.error_kind == "MemoryLimit", wide


async def test_a_library_base_s_special_method_called_on_the_program_s_object(
    sandbox: Sandbox,
) -> None:
    """Differential pass FI: ``Exception.__init__(self, msg)`` and ``dict.__init__(self)``,
    the older spelling of ``super().__init__``, were refused. They are ``super()``'s, from
    the class before the base in the object's MRO, with its checks; on an object the
    program's class did not make, or past a library class, they stay refused."""
    code = (
        "class Short(Exception):\n    def __init__(self, need):\n"
        "        Exception.__init__(self, f'need {need}')\n        self.need = need\n"
        "class Counts(dict):\n    def __init__(self):\n        dict.__init__(self, a=1)\n"
        "    def __setitem__(self, key, value):\n        dict.__setitem__(self, key, value * 2)\n"
        "class Tag(str):\n    def __str__(self):\n        return '<' + str.__str__(self) + '>'\n"
        "class L(list):\n    def __setitem__(self, key, value):\n"
        "        list.__setitem__(self, key, value)\n"
        "c = Counts()\nc['b'] = 5\nl = L([1, 2])\nl[0:0] = range(3)\n"
        "result = [str(Short(5)), Short(5).need, dict(c), str(Tag('x')), list(l),\n"
        "    repr(Exception.__init__)]"
    )
    assert (await sandbox.run(code)).value == [
        "need 5",
        5,
        {"a": 1, "b": 10},
        "<x>",
        [0, 1, 2, 1, 2],
        "<slot wrapper '__init__' of 'Exception' objects>",
    ]
    for call in (
        "Exception.__init__(ValueError('a'), 'b')",  # a library's object
        "dict.__setitem__({}, 1, 2)",
        "object.__repr__(int)",  # a class as the object
        # past a class whose methods are guarded (it would leave the OrderedDict's own
        # order behind, as CPython does: OD([]) after od['a'] = 1)
        "import collections\nclass O(collections.OrderedDict):\n    pass\n"
        "dict.__setitem__(O(), 'a', 1)",
    ):
        res = await sandbox.run(call)
        assert res.error_kind == "SecurityError", (call, res)
    # not one of its bases: CPython's own TypeError, unless the class that defines the
    # method is one (``int.__init__`` is ``object.__init__``, ``int.__str__`` ``object``'s:
    # pass FT)
    res = await sandbox.run("class C:\n    pass\ndict.__setitem__(C(), 1, 2)")
    assert res.error_kind == "TypeError", res
    assert "descriptor '__setitem__' requires a 'dict' object but received a 'C'" in str(
        res.error
    ), res
    res = await sandbox.run(
        "class C:\n    __str__ = int.__str__\n    def __repr__(self):\n        return 'C!'\n"
        "int.__init__(C())\nresult = str(C())"
    )
    assert res.value == "C!", res
    res = await sandbox.run("class C(int):\n    pass\nresult = int.__add__(C(2), 10 ** 9999)")
    assert res.error_kind == "SecurityError", res  # what super() does not give stays refused
    res = await sandbox.run("Exception.__init__()")
    assert res.error_kind == "TypeError", res
    # past library classes whose methods are not guarded, and what the class does not have
    # (pass FL: these were refused, or answered a callable)
    res = await sandbox.run(
        "import typing\nclass Bad(ValueError):\n    def __init__(self, m):\n"
        "        Exception.__init__(self, m)\nclass K(KeyError):\n    def __str__(self):\n"
        "        return 'K:' + Exception.__str__(self)\nT = typing.TypeVar('T')\n"
        "class Box(typing.Generic[T]):\n    def __init__(self, v):\n"
        "        object.__init__(self)\n        self.v = v\n"
        "result = [str(Bad('x')), str(K('k')), Box(3).v, getattr(int, '__len__', None),\n"
        "    list.__hash__ is None, hasattr(float, '__iter__')]"
    )
    assert res.value == ["x", "K:k", 3, None, True, False], res


async def test_a_base_s_special_method_aliased_in_a_class_body_binds(sandbox: Sandbox) -> None:
    """Pass FQ: ``__hash__ = object.__hash__`` in a class body (a class with ``__eq__`` that
    stays hashable) was never bound to the instance, and every ``hash()`` of it was a
    TypeError; so were ``__str__ = Exception.__str__`` and ``__hash__ = int.__hash__``. On
    an object that is not the program's own subclass of the base it stays refused."""
    res = await sandbox.run(
        "class P:\n    __hash__ = object.__hash__\n    def __init__(self, v):\n"
        "        self.v = v\n    def __eq__(self, o):\n        return self.v == o.v\n"
        "class E(Exception):\n    __str__ = Exception.__str__\n"
        "class I(int):\n    __eq__ = int.__eq__\n    __hash__ = int.__hash__\n"
        "class R:\n    __init__ = Exception.__init__\n"
        "try:\n    R()\n    refused = False\nexcept Exception:\n    refused = True\n"
        "a, b = P(1), P(1)\n"
        "result = [hash(a) != hash(b), len({a, b}), str(E('m')), I(3) == 3,\n"
        "    hash(I(3)), refused]"
    )
    assert res.value == [True, 2, "m", True, 3, True], res


async def test_the_type_of_a_program_s_class_is_type(sandbox: Sandbox) -> None:
    """Pass FR: ``type(C)`` of the program's own class was a token named ``type``, so
    ``type(x) is type``, the usual test for "a class", was False for every class it made;
    and ``type()`` with no argument named the sandbox's own method in its error."""
    res = await sandbox.run(
        "class C:\n    pass\nclass D(dict):\n    pass\nclass E(Exception):\n    pass\n"
        "out = [type(k) is type for k in (C, D, E, int)] + [type(C()) is type]\n"
        "out += [type(type(C)) is type, isinstance(C, type(C)), type(C)('x') is str]\n"
        "import collections.abc\nclass Bag(collections.abc.Sized):\n"
        "    def __len__(self):\n        return 0\n"
        "out += [type(Bag).__name__, type(type(Bag)) is type]\n"  # (pass FS: TypeToken)
        "try:\n    type()\nexcept TypeError as e:\n    out.append(str(e))\n"
        "try:\n    type(object=1)\nexcept TypeError as e:\n    out.append(str(e))\nresult = out"
    )
    expected = [True, True, True, True, False, True, True, True, "ABCMeta", True]
    expected += ["type() takes 1 or 3 arguments"] * 2  # (pass FT: type(object=1))
    assert res.value == expected, res


async def test_re_debug_is_refused_not_lost(sandbox: Sandbox) -> None:
    """Pass FR: ``re.compile(p, 128)`` (``re.DEBUG`` by number: the view has no such name)
    printed re's dump to the process's own stdout, which is not the run's output: the
    program's output lost it without a word. It is refused, with the other flags as they
    were."""
    res = await sandbox.run(
        "import re\ntry:\n    re.compile('xyz', 128)\nexcept Exception as e:\n"
        "    out = [str(e)]\nresult = out + [re.findall('a', 'aA', re.I | re.M)]"
    )
    assert res.value == ["re.DEBUG is not available in the sandbox", ["a", "A"]], res


async def test_a_string_built_by_a_literal_at_a_time_is_python_s_own(sandbox: Sandbox) -> None:
    """Differential pass FT: once a sum with a string literal was checked through a call,
    ``s = s + "ab"`` copied ``s`` at every step, and 250k steps (13 ms in CPython) ran out
    of the run's 5 s. The check is now made beside Python's own ``+`` and ``+=``, which
    CPython grows in place; what they make is checked all the same (test_attacks)."""
    res = await sandbox.run(
        "def build(n):\n    s = ''\n    for i in range(n):\n        s = s + 'ab'\n"
        "    return s\ndef build2(n):\n    s = ''\n    for i in range(n):\n"
        "        s += 'ab'\n    return s\nl = []\nl += 'ab'\nb = b'x'\nb += b'yz'\n"
        "try:\n    'a' + 1\nexcept TypeError as e:\n    err = str(e)\n"
        "result = [len(build(400_000)), len(build2(400_000)), l, b.decode(), err,\n"
        "    'Total: ' + str(5), 'x' 'y' + 'z']"
    )
    assert res.value == [
        800_000,
        800_000,
        ["a", "b"],
        "xyz",
        'can only concatenate str (not "int") to str',
        "Total: 5",
        "xyz",
    ], res


async def test_a_literal_s_room_is_checked_only_where_the_builtin_adds(
    sandbox: Sandbox,
) -> None:
    """Pass FU: the room check of ``s + "literal"`` ran before the program's own
    ``__add__``, ``__radd__`` or ``__iadd__``, and before a tuple's TypeError: at the item
    limit, each gave a SizeLimit where CPython answers."""
    res = await sandbox.run(
        "class P(str):\n    def __add__(self, o):\n        return 'short'\n"
        "    def __radd__(self, o):\n        return 'short'\n"
        "class L(list):\n    def __iadd__(self, o):\n        return 'ignored'\n"
        "big = P('x' * 10_000_000)\nl = L([0] * 10_000_000)\nl += 'y'\n"
        "t = (0,) * 10_000_000\ntry:\n    t += 'y'\nexcept TypeError as e:\n    err = str(e)\n"
        "result = [big + 'y', 'y' + big, l, err]"
    )
    assert res.value == [
        "short",
        "short",
        "ignored",
        'can only concatenate tuple (not "str") to tuple',
    ], res


async def test_what_scripts_ask_of_stdout_and_errors_they_catch(sandbox: Sandbox) -> None:
    """The differential pass EH: ``sys.stdout.reconfigure(encoding="utf-8")``, a common first
    line, and ``.buffer``/``.encoding`` were missing; ``"%(k)s" % a_tuple`` raised KeyError
    where Python raises TypeError; ``", ".join(None)`` said something else; a few constants."""
    code = (
        "import sys, calendar, re\nsys.stdout.reconfigure(encoding='utf-8')\n"
        "sys.stdout.buffer.write('caf\\u00e9\\n'.encode('utf-8'))\nout = [sys.stdout.encoding]\n"
        "for args in [('Ann',), 'Ann', [1], {'k': 2}]:\n    try:\n"
        "        out.append('%(k)s' % args)\n    except Exception as e:\n"
        "        out.append(f'{type(e).__name__}: {e}')\n"
        "try:\n    ', '.join(None)\nexcept TypeError as e:\n    out.append(str(e))\n"
        "sys.stdout.buffer.write('\u20ac'.encode()[:1])\n"
        "sys.stdout.buffer.write('\u20ac'.encode()[1:] + b'\\n\\xe2\\x82')\n"
        "try:\n    sys.stdout.reconfigure(write_through=True, bogus=1)\n"
        "except TypeError as e:\n    out.append(str(e))\n"
        "re.purge()\nresult = out + [calendar.mdays[2], sys.maxunicode]"
    )
    res = await sandbox.run(code)
    # a character split between two writes is whole; one never finished is U+FFFD (pass ER)
    assert res.stdout == "caf\u00e9\n\u20ac\n\ufffd", res
    assert res.value == [
        "utf-8",
        "TypeError: format requires a mapping",
        "TypeError: format requires a mapping",
        "TypeError: list indices must be integers or slices, not str",
        "2",
        "can only join an iterable",
        "reconfigure() got an unexpected keyword argument 'bogus'",
        28,
        sys.maxunicode,
    ], res


async def test_private_names_on_the_programs_objects_read_as_in_python(sandbox: Sandbox) -> None:
    """Pass EP: ``self._items``, ``self._helper()`` took a slower path than public names
    (a binary tree with an ``_insert`` helper timed out); the fast one answers as CPython."""
    code = (
        "class B:\n    _base = 0\n    def _g(self):\n        return 'g'\n"
        "class C(B):\n    _k = 5\n    __slots__ = ('_s',)\n"
        "    def __init__(self):\n        self._s = 2\n        self.__m = 3\n        self._d = 4\n"
        "    @property\n    def _p(self):\n        return self._d * 10\n"
        "    def _f(self):\n        return self.__m + self._k\n"
        "c = C()\n"
        "out = [c._s, c._d, c._p, c._f(), c._k, c._base, c._g(), getattr(c, '_z', 'd'), "
        "hasattr(c, '_z'), getattr(c, '_C__m')]\n"
        "del c._s\nfor name in ('_nope', '_s'):\n    try:\n        getattr(c, name)\n"
        "    except AttributeError as e:\n        out.append(str(e))\nresult = out"
    )
    res = await sandbox.run(code)
    assert res.value == [
        2,
        4,
        40,
        8,
        5,
        0,
        "g",
        "d",
        False,
        3,
        "'C' object has no attribute '_nope'",
        "'C' object has no attribute '_s'",
    ], res


ICONCAT_CASES = """
import operator, collections
class Seq:
    def __init__(self):
        self.items = []
    def __getitem__(self, i):
        return self.items[i]
    def __iadd__(self, other):
        self.items.append(type(other).__name__)
        return self
out = []
for a, b in [(Seq(), 5), (Seq(), {1}), (Seq(), collections.Counter("a")), (Seq(), Seq()),
             (Seq(), "ab"), ([1], {2}), ((1,), [2]), ("a", 5), (range(2), [1]),
             (collections.ChainMap({}), [1]), (collections.Counter("a"), [1])]:
    try:
        got = operator.iconcat(a, b)
        out.append(got.items if type(got) is Seq else got)
    except TypeError as e:
        out.append(str(e))
result = out
"""


async def test_iconcat_concatenates_what_cpython_does(sandbox: Sandbox) -> None:
    """``operator.iconcat`` decides as CPython's C ``PySequence_InPlaceConcat``: a builtin
    sequence concatenates as its class does, anything else only when both operands are
    sequences and one of them adds; a class of the program's with ``__getitem__`` and
    ``__iadd__`` was handed a number, a set, a Counter (red-team pass EV). The expected
    answers are CPython 3.11's."""
    res = await sandbox.run(ICONCAT_CASES)
    assert res.value == [
        "'Seq' object can't be concatenated",
        "'Seq' object can't be concatenated",
        "'Seq' object can't be concatenated",
        ["Seq"],
        ["str"],
        [1, 2],
        'can only concatenate tuple (not "list") to tuple',
        'can only concatenate str (not "int") to str',
        "'range' object can't be concatenated",
        "'ChainMap' object can't be concatenated",
        "'Counter' object can't be concatenated",
    ], res


async def test_round_takes_the_digits_cpython_takes(sandbox: Sandbox) -> None:
    """A float clamps the digits, a Decimal rounds within its context and an int to digits
    >= 0 is itself: none builds ``10 ** digits``, and all took any digits (pass FC:
    ``round(7, 20000)`` was refused). The expected answers are CPython 3.11's."""
    code = (
        "from decimal import Decimal\nresult = [repr(round(n, d)) for n, d in "
        "[(7, 20000), (True, 10 ** 9), (2.675, 20000), (1.5, -20000), (-0.0, 10 ** 9), "
        "(Decimal('2.5'), 0), (7, -20)]]"
    )
    res = await sandbox.run(code)
    assert res.value == ["7", "1", "2.675", "0.0", "-0.0", "Decimal('2')", "0"], res


async def test_a_set_answered_is_answered_whatever_its_items_compare(sandbox: Sandbox) -> None:
    """A set's items are sorted for a stable answer; items whose ``__lt__`` raises, even a
    ``KeyboardInterrupt`` of the program's, leave the set's own order (pass FC: the run
    failed with it, where CPython answers the set)."""
    code = (
        "class K:\n    def __init__(self, n):\n        self.n = n\n"
        "    def __lt__(self, other):\n        raise KeyboardInterrupt\n"
        "    def __repr__(self):\n        return 'K'\n"
        "def solution():\n    return {K(1), K(2)}"
    )
    res = await sandbox.run(code)
    assert res.ok and res.value == ["K", "K"], res


async def test_percent_asks_a_subclass_s_own_rmod_first(sandbox: Sandbox) -> None:
    """``"%s" % S("x")`` asks ``S.__rmod__`` first, as CPython does for a subclass of the
    template's class (red-team pass EI: measuring first swapped the operand for its text);
    what it declines is formatted, measured as before. The answers are CPython 3.11's."""
    code = (
        "class S(str):\n    def __rmod__(self, other):\n        return 'rmod!'\n"
        "class D(str):\n    def __rmod__(self, other):\n        return NotImplemented\n"
        "s = '%s'\ns %= S('y')\n"
        "result = ['%s' % S('x'), 'abc' % S('x'), '%5s|' % D('x'), s, '%s' % (S('t'),)]"
    )
    res = await sandbox.run(code)
    assert res.value == ["rmod!", "rmod!", "    x|", "rmod!", "t"], res
    declined = await sandbox.run(
        "class D(str):\n    def __rmod__(self, other):\n        return NotImplemented\n"
        "result = '%100000000s' % D('x')"
    )
    assert declined.limit == "memory" and "width" in (declined.error or ""), declined
    # Pass FD: an inherited __rmod__ is not asked first; one that declines is asked once
    # and the template's class formats; a number's % is Python's own.
    dispatch = await sandbox.run(
        "out = []\nclass A:\n    def __mod__(self, o): return 'A.mod'\n"
        "    def __rmod__(self, o): return 'A.rmod'\nclass B(A): pass\nout.append(A() % B())\n"
        "class S(str):\n    def __rmod__(self, o): return 'S.rmod'\nclass S2(S): pass\n"
        "out.append(S('%s!') % S2('x'))\nn = [0]\nclass D(str):\n    def __rmod__(self, o):\n"
        "        n[0] += 1\n        return NotImplemented if n[0] == 1 else 'second'\n"
        "try:\n    r = 'abc' % D('x')\nexcept TypeError as e:\n    r = str(e)\n"
        "out.append([r, n[0]])\nm = [0]\nclass I(int):\n    def __rmod__(self, o):\n"
        "        m[0] += 1\n        return NotImplemented\nout.append([10 % I(3), m[0]])\n"
        "result = out"
    )
    assert dispatch.value == [
        "A.mod",
        "x!",
        ["not all arguments converted during string formatting", 1],
        [1, 1],
    ], dispatch


async def test_a_programs_mod_is_handed_the_operand_itself(sandbox: Sandbox) -> None:
    """Pass FE: a str subclass's own ``__mod__`` was handed the sandbox's measured text of
    the operand (``limits._Made``), which the program could keep. Only the builtin's own
    formatting gets measured values; a program's ``__mod__`` that declines hands the operand
    to its own ``__rmod__`` (a str's formats, measured; a program's is asked). The answers
    are CPython 3.11's."""
    code = (
        "out = []\nclass S(str):\n    def __mod__(self, o):\n"
        "        out.append([type(o).__name__, repr(o)])\n        return 'r'\n"
        "class T(S):\n    def __rmod__(self, o):\n        return NotImplemented\n"
        "out += [S('%s') % T('x'), S('%r') % 'x', S('%r') % ('x',)]\n"
        "class U(str):\n    def __mod__(self, o):\n        return NotImplemented\n"
        "class R:\n    def __rmod__(self, t):\n        return 'R got ' + repr(t)\n"
        "out += [U('%s!') % 'a', U('%s') % R()]\n"
        "for args in (('a', 'b'), 5, b'a'):\n    try:\n        out.append(U('%s') % args)\n"
        "    except TypeError as e:\n        out.append(str(e))\n"
        "class P(str):\n    @staticmethod\n    def __mod__(o):\n"
        "        return 'static ' + repr(o)\n"
        "out.append(P('%s') % 3)\nresult = out"
    )
    res = await sandbox.run(code)
    assert res.value == [
        ["T", "'x'"],
        ["str", "'x'"],
        ["tuple", "('x',)"],
        "r",
        "r",
        "r",
        "a!",
        "R got '%s'",
        "unsupported operand type(s) for %: 'U' and 'tuple'",
        "unsupported operand type(s) for %: 'U' and 'int'",
        "unsupported operand type(s) for %: 'U' and 'bytes'",
        "static 3",
    ], res
    huge = await sandbox.run(
        "class U(str):\n    def __mod__(self, o):\n        return NotImplemented\n"
        "result = U('%100000000s') % 'a'"
    )
    assert huge.limit == "memory" and "width" in (huge.error or ""), huge


async def test_a_mapping_field_is_made_for_its_own_conversion(sandbox: Sandbox) -> None:
    """Pass FE: each name's value was made once, for its first field's conversion, and the
    later fields formatted that: ``%(a)r %(a)s`` showed the repr twice, ``%(x)s %(x).2f``
    of a Fraction refused the text. The value is still asked of the mapping once (see
    docs/sandbox.md); each field is made and measured for itself. CPython 3.11's answers."""
    code = (
        "from decimal import Decimal\nfrom fractions import Fraction\n"
        "class N:\n    def __index__(self):\n        return 5\n"
        "    def __str__(self):\n        return 'five'\n"
        "result = ['%(a)r %(a)s' % {'a': 'x'}, '%(v)s %(v)d' % {'v': Decimal('3.7')},\n"
        "    '%(x)s and %(x).2f' % {'x': Fraction(1, 3)}, '%(x)a %(x)s' % {'x': 'é'},\n"
        "    (b'%(x)a %(x)s' % {b'x': b'q'}).decode(), '%(n)s %(n)d' % {'n': N()},\n"
        "    '%(a)s %(a)s %(b)r %(a)r' % {'a': [1, 'é'], 'b': 2.5}]"
    )
    res = await sandbox.run(code)
    assert res.value == [
        "'x' x",
        "3.7 3",
        "1/3 and 0.33",
        "'\\xe9' é",
        "b'q' q",
        "five 5",
        "[1, 'é'] [1, 'é'] 2.5 [1, 'é']",
    ], res
    wide = await sandbox.run("result = len('%(a)s %(a)r ' * 20 % {'a': 'y' * 300_000})")
    assert wide.limit == "memory" and "exceeds" in (wide.error or ""), wide
    # Pass FF: a field without a name before the first named one formatted the sandbox's own
    # made mapping (its lists shown, its values written whole past a "%(k).0s" that measured
    # them as nothing): refused; after a named one, and "%(k)%", CPython's own errors.
    errors = await sandbox.run(
        "big = 'A' * 1_000_000\nclass M:\n    def __getitem__(self, k):\n        return big\n"
        "    def __str__(self):\n        return 'm'\nout = []\n"
        "for t, a in (('%s' + '%(k0).0s%(k1).0s', M()), ('%s %(a)s %(a)s', {'a': 1}),\n"
        "        ('%(a)s %s', {'a': 1}), ('%(b)s%(a)%', {'b': 1, 'a': 2})):\n"
        "    try:\n        out.append(t % a)\n"
        "    except (TypeError, ValueError) as e:\n        out.append(str(e)[:40])\n"
        "result = out"
    )
    mixed = "a % format mixing %(name) fields with fields without a name"
    assert errors.value == [
        mixed[:40],
        mixed[:40],
        "not enough arguments for format string",
        "unsupported format character '%' (0x25) at index 9"[:40],
    ], errors


async def test_format_s_argument_errors_are_cpython_s(sandbox: Sandbox) -> None:
    """Pass FC: they named the sandbox's own ``Guards.format_map()``."""
    code = (
        "out = []\nfor f in (lambda: str.format_map('{}'), lambda: '{}'.format_map(), "
        "lambda: '{}'.format_map({}, {}), lambda: str.format_map(), lambda: str.format(), "
        "lambda: list(filter(str.format_map, ['{}']))):\n    try:\n        f()\n"
        "    except TypeError as e:\n        out.append(str(e))\nresult = out"
    )
    res = await sandbox.run(code)
    once = "str.format_map() takes exactly one argument"
    named = await sandbox.run("result = '{self}-{x}'.format(self=1, x=2)")  # pass FD
    assert named.value == "1-2", named
    numbered = await sandbox.run(  # pass FG: an IndexError
        "out = []\nfor t, m in (('a{0}b', {'0': 1}), ('{0}', [5]), ('{x}{0.real}', {'x': 1})):\n"
        "    try:\n        out.append(t.format_map(m))\n    except ValueError as e:\n"
        "        out.append(str(e))\nresult = out + ['{x[0]}'.format_map({'x': [7]})]"
    )
    assert numbered.value == ["Format string contains positional fields"] * 3 + ["7"], numbered
    assert res.value == [
        f"{once} (0 given)",
        f"{once} (0 given)",
        f"{once} (2 given)",
        "unbound method str.format_map() needs an argument",
        "unbound method str.format() needs an argument",
        f"{once} (0 given)",
    ], res


async def test_what_pass_ep_found_missing_is_there(sandbox: Sandbox) -> None:
    """Pass EP: the in-place family of ``operator`` past ``iadd``, a few ``typing`` names, and
    a refusal that says what to write instead."""
    code = (
        "import operator\nfrom typing import Dict, List, ContextManager, NotRequired\n"
        "a = [1]\nb = operator.imul(a, 2)\nl = [0]\noperator.iconcat(l, (5,))\n"
        "out = [b is a, a, operator.imod(7, 3), operator.ifloordiv(7, 2), "
        "operator.itruediv(7, 2), operator.ipow(2, 5), operator.ilshift(1, 3), l, "
        "Dict[str, int] == Dict[str, int], NotRequired[int] is not None]\n"
        "for a in (1, {'a': 1}):\n    try:\n        operator.iconcat(a, {'b': 2})\n"
        "    except TypeError as e:\n        out.append(str(e))\n"
        "try:\n    operator.ipow(10, 10 ** 6)\nexcept OverflowError:\n    out.append('big')\n"
        "class P:\n    def __init__(self):\n        self._cache = 1\n        self.x = 2\n"
        "    def __repr__(self):\n        d = dict(vars(self))\n        d.pop('_cache')\n"
        "        return str(d)\nresult = out\nrepr(P())"
    )
    res = await sandbox.run(code)
    assert res.error_kind == "SecurityError", res
    assert "build a new one instead" in (res.error or ""), res
    res = await sandbox.run(code.replace("repr(P())", ""))
    assert res.value == [
        True,
        [1, 1],
        1,
        3,
        3.5,
        32,
        8,
        [0, 5],
        True,
        True,
        "'int' object can't be concatenated",
        "'dict' object can't be concatenated",
        "big",
    ], res


async def test_vars_of_a_protocols_class_after_its_first_instance(sandbox: Sandbox) -> None:
    """Pass EU: typing.Protocol puts object.__init__ in a class on its first instance;
    vars() of the class was refused from then on. What a library put there is left out."""
    res = await sandbox.run(
        "import typing\nclass P(typing.Protocol):\n    def f(self):\n        return 1\n"
        "class I(P):\n    k = 2\nbefore = sorted(vars(I))\nI()\n"
        "result = [before, sorted(vars(I)), I().f()]"
    )
    assert res.value == [["__module__", "k"], ["__module__", "k"], 1], res


async def test_a_number_subclass_may_be_subclassed_again(sandbox: Sandbox) -> None:
    """Pass EG: ``class B(A)`` of ``class A(int)`` was refused as redefining the parts the
    sandbox itself pins on ``A``; what the program redefines is still refused."""
    code = (
        "from decimal import Decimal\nclass A(int):\n    pass\nclass B(A):\n"
        "    def double(self):\n        return B(self * 2)\nclass Money(Decimal):\n    pass\n"
        "class USD(Money):\n    def __str__(self):\n        return f'${Decimal(self):.2f}'\n"
        "result = [B(3) + 1, B(4).double(), str(USD('2.5')), B(5).numerator]"
    )
    assert (await sandbox.run(code)).value == [4, 8, "$2.50", 5]
    again = "class A(int):\n    pass\nclass B(A):\n    def as_integer_ratio(self):\n"
    refused = await sandbox.run(again + "        return (1, 1)")
    assert refused.error == "a number class's as_integer_ratio cannot be redefined (line 3)"


async def test_a_chained_assignment_works_its_value_out_once(sandbox: Sandbox) -> None:
    """Pass EI: ``x, y = p = next(it)`` ran ``next(it)`` once per target, right-most first
    (RestrictedPython's split): x, y and p held different items."""
    code = (
        "it = iter([(1, 2), (3, 4)])\nx, y = p = next(it)\nn = [0]\ndef f():\n"
        "    n[0] += 1\n    return (n[0], n[0])\n(a, b) = c = f()\n"
        "result = [x, y, p, a, b, c, n, next(it)]"
    )
    assert (await sandbox.run(code)).value == [1, 2, [1, 2], 1, 1, [1, 1], [1], [3, 4]]


async def test_a_scripts_docstring_is_its_doc(sandbox: Sandbox) -> None:
    """Differential pass EC: ``print(__doc__)`` was refused when compiled; and Python stores
    a module's first string as ``__doc__`` only while it is the first statement."""
    code = (
        '"""Compute the answer."""\ndef f():\n    return __doc__\nprint(__doc__)\n'
        'def g():\n    """Doc of g."""\n    print("g")\nresult = [f(), g.__doc__]'
    )
    res = await sandbox.run(code)
    assert (res.stdout, res.value) == (
        "Compute the answer.\n",
        ["Compute the answer.", "Doc of g."],
    ), res
    assert (await sandbox.run("print(__doc__)")).stdout == "None\n"


# Red-team pass DT: the target of ``x[k] op= v`` and ``x.a op= v`` is read before ``v`` is
# worked out, as in CPython: a recursion that adds to a shared cell answered 4, not 1.
AUGMENTED_ASSIGNMENTS = {
    "item_read_before_the_value": (
        "res = [0]\ndef dfs(n):\n    if n == 0:\n        res[0] += 1\n        return 1\n"
        "    res[0] += dfs(n - 1)\n    return 1\ndfs(3)\nresult = res[0]",
        1,
    ),
    "attribute_read_before_the_value": (
        "class T:\n    def __init__(self):\n        self.count = 0\n"
        "    def dfs(self, n):\n        if n == 0:\n            self.count += 1\n"
        "            return 1\n        self.count += self.dfs(n - 1)\n        return 1\n"
        "t = T()\nt.dfs(3)\nresult = t.count",
        1,
    ),
    "slice_in_a_function_with_a_local_named_slice": (
        "def best(arr, k):\n    slice = arr[0:k]\n    out = [0] * 5\n"
        "    out[2:4] += slice\n    return out\nresult = best([8, 3, 1], 2)",
        [0, 0, 0, 0, 8, 3, 0],
    ),
    "list_added_to_in_a_repr": (
        "class Grid:\n    def __repr__(self):\n        out = []\n"
        "        for r in (1, 2, 3):\n            out += [str(r)]\n"
        "        return 'Grid(' + ','.join(out) + ')'\nresult = repr(Grid())",
        "Grid(1,2,3)",
    ),
    "list_repeated_by_an_object_with_index": (
        "class N:\n    def __index__(self):\n        return 2\n"
        "a = [1, 2]\nb = a\na *= N()\nresult = [a, a is b]",
        [[1, 2, 1, 2], True],
    ),
    "the_classs_own_in_place_method_first": (  # pass DY: v *= 0.5 made new objects
        "class V:\n    def __init__(self, x):\n        self.x = x\n"
        "    def __mul__(self, k):\n        return V(self.x * k)\n"
        "    def __imul__(self, k):\n        self.x *= k\n        return self\n"
        "class P:\n    def __init__(self, p):\n        self.p = p\n"
        "    def __itruediv__(self, part):\n        self.p += '/' + part\n        return self\n"
        "vs = [V(1), V(2)]\nfor v in vs:\n    v *= 0.5\np = P('/usr')\np /= 'local'\n"
        "result = [[v.x for v in vs], p.p]",
        [[0.5, 1.0], "/usr/local"],
    ),
    "an_in_place_method_that_declines_is_asked_once": (
        "calls = []\nclass V:\n    def __init__(self, x):\n        self.x = x\n"
        "    def __iadd__(self, o):\n        calls.append('iadd')\n        return NotImplemented\n"
        "    def __add__(self, o):\n        calls.append('add')\n        return V(self.x + o)\n"
        "    def __ior__(self, o):\n        calls.append('ior')\n        return NotImplemented\n"
        "    def __or__(self, o):\n        calls.append('or')\n        return V(self.x | o)\n"
        "v = V(3)\nv += 2\nv |= 8\nresult = [v.x, calls]",
        [13, ["iadd", "add", "ior", "or"]],
    ),
    "a_list_added_to_asks_the_objects_radd": (
        "class W:\n    def __radd__(self, o):\n        return ('radd', len(o))\n"
        "class L(list):\n    pass\n"
        "l = [1, 2]\nl += W()\nm = L([1])\ntry:\n    m += W()\n"
        "except TypeError as e:\n    m = str(e)\nresult = [l, m]",
        [["radd", 2], "'W' object is not iterable"],
    ),
    "a_builtin_subclasss_own_in_place_method": (  # pass EE: never asked
        "class I(int):\n    def __imul__(self, o):\n        return 'imul'\n"
        "class L(list):\n    def __imul__(self, n):\n        self.append(n)\n        return self\n"
        "class S(str):\n    def __radd__(self, o):\n        return 'radd'\n"
        "x = I(2)\nx *= 3\ny = L([1])\ny *= 'k'\nz = [1]\nz += S('ab')\nresult = [x, list(y), z]",
        ["imul", [1, "k"], "radd"],
    ),
    "a_name_moved_by_a_number": (  # Python's own += (test_policy): as in CPython
        "calls = []\nclass C:\n    def __iadd__(self, o):\n        calls.append(o)\n"
        "        return self\nc = C()\nc += 1\nl = [1]\ntry:\n    l += 1\n"
        "except TypeError as e:\n    calls.append(str(e))\nn = 2 ** 100\nn -= 1\n"
        "result = [calls, l, n // 3, 7.5 // 2]",
        [[1, "'int' object is not iterable"], [1], (2**100 - 1) // 3, 3.0],
    ),
    "dict_merged_into_in_a_repr": (
        "class Tags:\n    def __repr__(self):\n        seen = {}\n"
        "        for t in 'abca':\n            seen |= {t: seen.get(t, 0) + 1}\n"
        "        return str(seen)\nresult = repr(Tags())",
        "{'a': 2, 'b': 1, 'c': 1}",
    ),
}


@pytest.mark.parametrize("name", sorted(AUGMENTED_ASSIGNMENTS))
async def test_augmented_assignments_work_as_in_cpython(sandbox: Sandbox, name: str) -> None:
    code, value = AUGMENTED_ASSIGNMENTS[name]
    res = await sandbox.run(code)
    assert res.value == value, res


async def test_slots_as_a_dict_and_a_context_with_too_many_arguments(sandbox: Sandbox) -> None:
    """Pass DT: ``__slots__`` as a dict of names and their docs was refused; a
    ``decimal.Context`` given ten positional arguments dropped two instead of raising."""
    code = (
        "import decimal\nclass P:\n    __slots__ = {'x': 'the x', 'y': 'the y'}\n"
        "    def __init__(self):\n        self.x, self.y = 1, 2\np = P()\nout = [p.x, p.y]\n"
        "try:\n    decimal.Context(5, None, -10, 10, 1, 0, [], [], 99, 100)\n"
        "except TypeError as e:\n    out.append(str(e))\nresult = out"
    )
    res = await sandbox.run(code)
    assert res.value == [1, 2, "function takes at most 8 arguments (10 given)"], res


async def test_asdict_goes_into_named_tuples_and_container_subclasses(sandbox: Sandbox) -> None:
    """Pass DV: only exact lists, tuples and dicts were rebuilt; a dataclass inside a named
    tuple, an OrderedDict or a list subclass came back as itself."""
    code = (
        "from dataclasses import dataclass, asdict, astuple\n"
        "from collections import namedtuple, OrderedDict\n"
        "@dataclass\nclass Item:\n    name: str\n    qty: int\n"
        "Pair = namedtuple('Pair', 'left right')\nclass Items(list):\n    pass\n"
        "@dataclass\nclass Order:\n    pair: Pair\n    by_name: OrderedDict\n    items: Items\n"
        "o = Order(Pair(Item('a', 1), Item('b', 2)), OrderedDict(c=Item('c', 3)),\n"
        "          Items([Item('d', 4)]))\n"
        "d, t = asdict(o), astuple(o)\n"
        "result = [repr(d), type(d['items']).__name__, repr(t)]"
    )
    res = await sandbox.run(code)
    assert res.value == [
        "{'pair': Pair(left={'name': 'a', 'qty': 1}, right={'name': 'b', 'qty': 2}), "
        "'by_name': OrderedDict([('c', {'name': 'c', 'qty': 3})]), "
        "'items': [{'name': 'd', 'qty': 4}]}",
        "Items",
        "(Pair(left=('a', 1), right=('b', 2)), OrderedDict([('c', ('c', 3))]), [('d', 4)])",
    ], res


async def test_the_random_class_answers_to_its_own_name(sandbox: Sandbox) -> None:
    code = (
        "import random\nclass R(random.Random):\n    pass\n"
        "result = [type(random.Random(1)).__name__, repr(type(random.Random(1))),\n"
        "          isinstance(R(2), random.Random), random.Random.__name__]"
    )
    res = await sandbox.run(code)
    assert res.value == ["Random", "<class 'random.Random'>", True, "Random"], res


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        # CPython answers 1E-12000: the sandbox's range rounded it to 0E-10027, ok=True
        (
            "from decimal import Decimal\nresult = Decimal('1e-6000') * Decimal('1e-6000')",
            "Underflow",
        ),
        (
            "from decimal import Decimal\nq = Decimal(1)\n"
            "for _ in range(6000):\n    q = q * Decimal('0.01')\nresult = str(q)",
            "Underflow",
        ),
        # no trap of its own: CPython answers 1E+20000, the sandbox's range made it Infinity
        (
            "from decimal import Decimal, ExtendedContext, localcontext\n"
            "with localcontext(ExtendedContext):\n    result = str(Decimal(10) ** 20000)",
            "Overflow",
        ),
        ("import decimal\nresult = str(decimal.Context(traps=[]).power(10, 20000))", "Overflow"),
    ],
)
async def test_a_decimal_past_the_sandboxs_range_raises_rather_than_rounds(
    sandbox: Sandbox, code: str, kind: str
) -> None:
    """The run's decimal contexts have a narrower exponent range than CPython's (red-team
    pass DL): what the wider range would have held is an error, never 0 or Infinity."""
    res = await sandbox.run(code)
    assert (res.ok, res.error_kind) == (False, kind), res
    assert "the sandbox's exponent range" in (res.error or "")
    exact = "from decimal import Decimal\nresult = str(Decimal('1e-6000') * Decimal('1e-4010'))"
    assert (await sandbox.run(exact)).value == "1E-10010"  # subnormal and exact: CPython's
    # a range the program sets is its own, with its own traps: CPython's answer
    own = (
        "import decimal\nc = decimal.Context(prec=2, Emin=-3, Emax=3, traps=[])\n"
        "result = str(c.multiply(decimal.Decimal('0.001'), decimal.Decimal('0.123')))"
    )
    assert (await sandbox.run(own)).value == "0.0001"


async def test_running_out_of_memory_while_holding_it_is_a_memory_limit() -> None:
    """Red-team pass AV: the program still held the memory it ran out of when its error was
    described, which ran out of memory too: the run was reported as a crash ("exit 122")."""
    code = (
        "import collections, itertools\n"
        "collections.Counter(itertools.product(range(100), repeat=4))"
    )
    async with Sandbox(SandboxConfig(workers=1, timeout_s=10)) as sb:
        res = await sb.run(code)
    assert (res.ok, res.error_kind, res.limit) == (False, "MemoryLimit", "memory"), res
    assert res.error == "out of memory (line 2)", res


# Red-team pass ER: a chain of closures held by the running frame (or the module's globals)
# left nothing to describe its MemoryError with, past what letting the program go freed.
CHAINS_HELD_BY_A_FRAME = {
    "in_a_function": (
        "def solution():\n    g = 0\n    while True:\n        g = (lambda h: (lambda: h))(g)",
        4,
    ),
    "at_module_level": ("g = 0\nwhile True:\n    g = (lambda h: (lambda: h))(g)", 3),
}


@pytest.mark.parametrize("name", sorted(CHAINS_HELD_BY_A_FRAME))
async def test_memory_run_out_by_a_chain_a_frame_holds_is_a_memory_limit(name: str) -> None:
    code, line = CHAINS_HELD_BY_A_FRAME[name]
    async with Sandbox(SandboxConfig(workers=1, timeout_s=10)) as sb:
        res = await sb.run(code)
        after = await sb.run("result = 'fine'")
    assert (res.ok, res.error_kind, res.limit) == (False, "MemoryLimit", "memory"), res
    assert res.error == f"out of memory (line {line})", res
    assert after.value == "fine", after


# Red-team pass AZ: the program still held nearly all of its memory when the reply was made:
# joining its output ran out (the child exited 122: a crash), or encoding the reply did (an
# OutputLimit for a program that had answered). The second holds it in a cycle of its objects,
# past its globals: no collector runs in a run.
_FILL = (
    "def fill(into):\n    for size in (1 << 20, 1 << 16, 1 << 13, 1 << 10):\n        try:\n"
    "            while True:\n                into.append(bytes(size))\n"
    "        except MemoryError:\n            pass\n"
)
HOLDING_ITS_MEMORY = {
    "output_of_two_prints": (
        # the answer first: a new global stored after the fill needs memory where the
        # module's dict grows (one more hook of the sandbox's made it grow there)
        "print('a' * 30000)\nprint('b' * 30000)\n" + _FILL + "result = 5\nhold = []\nfill(hold)",
        5,
        "a" * 30000 + "\n" + "b" * 30000 + "\n",
    ),
    "memory_in_a_cycle": (
        "print('a' * 30000)\n" + _FILL + "class Box:\n    pass\n"
        "def solution():\n    b = Box()\n    b.me = b\n    b.data = []\n    fill(b.data)\n"
        "    return 7",
        7,
        "a" * 30000 + "\n",
    ),
}


@pytest.mark.parametrize("name", sorted(HOLDING_ITS_MEMORY))
async def test_an_answer_made_while_the_program_holds_its_memory_comes_back(name: str) -> None:
    code, value, stdout = HOLDING_ITS_MEMORY[name]
    async with Sandbox(SandboxConfig(workers=1, timeout_s=10)) as sb:
        res = await sb.run(code)
    assert res.ok and res.value == value, res.error
    assert res.stdout == stdout, res.error


async def test_caught_output_limit_still_fails(sandbox: Sandbox) -> None:
    code = (
        "for i in range(100000):\n    try:\n        print('y' * 100)\n"
        "    except Exception:\n        pass\nresult = 1"
    )
    res = await sandbox.run(code)
    assert (res.ok, res.limit) == (False, "output")
    assert len(res.stdout.encode()) <= sandbox.config.max_output_bytes


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (
            "def solution():\n    for i in range(20000):\n        print('step', i)\n    return 42",
            42,
        ),
        ("for i in range(20000):\n    print('step', i)\nprint('total', 12345)", "total 12345"),
    ],
)
async def test_output_past_the_limit_is_cut_and_the_answer_kept(
    sandbox: Sandbox, code: str, value: object
) -> None:
    """Pass FI: a program that printed its working (200 KB) and then returned its answer
    failed with an OutputLimit, and PAL lost the answer. The output keeps its beginning and
    its end (where a printed answer is), says how much was cut, and the run answers."""
    res = await sandbox.run(code)
    assert (res.ok, res.value, res.limit) == (True, value, "output"), res
    cap = sandbox.config.max_output_bytes
    assert cap - 200 < len(res.stdout.encode()) <= cap
    assert res.stdout.startswith("step 0\nstep 1\n")
    assert res.stdout.rstrip("\n").endswith("step 19999" if value == 42 else "total 12345")
    assert f"bytes of output cut: a run keeps {cap} ...]\nstep " in res.stdout


async def test_output_within_the_limit_is_whole_and_stderr_is_not_output(
    sandbox: Sandbox,
) -> None:
    cap = sandbox.config.max_output_bytes
    res = await sandbox.run(f"print('x' * {cap - 1})\nresult = 1")
    assert (res.ok, res.limit, res.stdout) == (True, None, "x" * (cap - 1) + "\n"), res
    res = await sandbox.run(f"import sys\nprint('e' * {cap * 4}, file=sys.stderr)\nresult = 2")
    assert (res.ok, res.value, res.limit, res.stdout) == (True, 2, None, ""), res


@pytest.mark.parametrize(
    "exc", ["SystemExit(0)", "KeyboardInterrupt", "GeneratorExit('x')", "BaseException"]
)
async def test_base_exceptions_are_just_errors(sandbox: Sandbox, exc: str) -> None:
    res = await sandbox.run(f"raise {exc}")
    assert not res.ok and res.error_kind == exc.split("(")[0]
    assert (await sandbox.run("result = 1")).value == 1


@pytest.mark.parametrize(
    "code",
    [
        "import random\nrandom.seed(42)\nresult = random.random()",
        "import decimal\ndecimal.getcontext().prec = 5\nresult = str(decimal.Decimal(1) / 7)",
        "import decimal\ndecimal.DefaultContext.prec = 3\nresult = 1",
        "import fractions\nfractions.Fraction.limit_denominator = None",
        "import math\nmath.pi = 3",
        "ValueError.extra = 1",
        "import functools, fractions\nfunctools.total_ordering(fractions.Fraction)",
        "def gen(box):\n    try:\n        yield 1\n    finally:\n"
        "        while True:\n            pass\n"
        "box = []\ng = gen(box)\nbox.append(g)\nnext(g)\nresult = 'left a finalizer'",
    ],
)
async def test_no_state_survives_a_run(sandbox: Sandbox, code: str) -> None:
    probe = (
        "import random, decimal, fractions, math\n"
        "result = (str(decimal.Decimal(1) / 7), math.pi, repr(fractions.Fraction(1, 3)),"
        " decimal.Context().prec, hasattr(ValueError, 'extra'))\n"
    )
    baseline = await sandbox.run(probe)
    seeded = await sandbox.run("import random\nrandom.seed(42)\nresult = random.random()")
    await sandbox.run(code)
    for _ in range(sandbox.config.workers):  # whichever worker comes next
        assert (await sandbox.run(probe)).value == baseline.value
        fresh = await sandbox.run("import random\nresult = random.random()")
        assert fresh.ok and fresh.value != seeded.value


@pytest.mark.parametrize(
    "code",
    [
        "result = '{0.__class__.__base__}'.format(1)",
        "result = str.format('{0.__globals__}', len)",
        "result = '{a.__dict__}'.format_map({'a': str})",
        "result = getattr(getattr(1, '__cl' + 'ass__'), '__ba' + 'se__')",
        "import operator\nresult = operator.attrgetter('__class__.__base__')(1)",
        "import operator\nresult = operator.methodcaller('__reduce_ex__', 2)(1)",
        "result = type('X', (), {})",
        "result = type(1).mro()",
        "import collections\nresult = collections.UserString('{0.__class__}').format(1)",
        "import string\nresult = string.Formatter().format('{0.__class__}', 1)",
        "import functools\nresult = functools.singledispatch",
        "result = vars()",
        "result = open('/etc/passwd').read()",
        "print('x', file=None or 1)",
        "import os\nos.system('true')",
        "from datetime import sys",
    ],
)
async def test_language_escapes_are_refused(sandbox: Sandbox, code: str) -> None:
    res = await sandbox.run(code)
    assert not res.ok, res
    assert "class 'int'" not in (res.error or "") + res.stdout


async def test_concurrent_runs_are_independent(sandbox: Sandbox) -> None:
    codes = [f"def solution():\n    return sum(range({n}))\nprint({n})" for n in range(40)]
    results = await asyncio.gather(*(sandbox.run(code) for code in codes))
    assert [r.value for r in results] == [sum(range(n)) for n in range(40)]
    assert [r.stdout for r in results] == [f"{n}\n" for n in range(40)]


async def test_busy_when_the_queue_is_full() -> None:
    config = SandboxConfig(workers=1, queue_size=1, timeout_s=1.0)
    async with Sandbox(config) as sb:
        results = await asyncio.gather(*(sb.run("while True:\n    pass") for _ in range(4)))
        kinds = sorted(r.error_kind or "" for r in results)
        assert kinds.count("SandboxBusy") == 2 and kinds.count("Timeout") == 2
        assert all(r.limit == "busy" for r in results if r.error_kind == "SandboxBusy")
        assert (await sb.run("result = 5")).value == 5


async def test_one_owner_cannot_keep_another_waiting() -> None:
    """Red-team pass M: one client's programs filled every place, and another's one program
    was refused as busy. Now a newcomer always gets a place, and waiting programs are served
    one owner at a time in turn: the other client waits for one program of the first, not
    for all of them."""
    config = SandboxConfig(workers=1, queue_size=3, timeout_s=5.0)
    busy_loop = "x = 0\nfor i in range(400_000):\n    x += i\nresult = '{}'"
    finished: list[str] = []

    async def run_as(owner: str, name: str) -> str | None:
        pool.OWNER.set(owner)
        res = await sb.run(busy_loop.format(name))
        if res.ok:
            finished.append(name)
        return res.error_kind

    async with Sandbox(config) as sb:
        first = [asyncio.create_task(run_as("a", f"a{n}")) for n in range(4)]
        await asyncio.sleep(0.05)  # a0 runs, a1-a3 fill the queue
        assert await run_as("a", "a4") == "SandboxBusy"  # its own queue is full
        assert await run_as("b", "b0") is None  # but not for another owner
        await asyncio.gather(*first)
    assert finished.index("b0") < finished.index("a3"), finished
    assert sorted(finished) == ["a0", "a1", "a2", "a3", "b0"]


async def test_one_owner_never_holds_every_slot() -> None:
    """Red-team pass DB: an owner whose programs ran to their time limit held every slot,
    and every other owner's program waited for one (p50 5 s, from 3.3 ms). An owner runs
    ``workers`` programs at once; one slot more is the others'."""
    spin = "while True:\n    pass"
    async with Sandbox(SandboxConfig(workers=1, timeout_s=3.0)) as sb:

        async def run_as(owner: str, code: str) -> ExecutionResult:
            pool.OWNER.set(owner)
            return await sb.run(code)

        spinning = [asyncio.create_task(run_as("a", spin)) for _ in range(2)]
        await asyncio.sleep(0.3)  # one of a's runs, the other waits for a's share
        assert (await run_as("b", "result = 7")).value == 7
        assert not any(task.done() for task in spinning)  # b did not wait for a's runs
        assert [r.error_kind for r in await asyncio.gather(*spinning)] == ["Timeout"] * 2


async def test_each_owner_has_a_share_of_the_queue() -> None:
    """Red-team pass DB: one owner that filled the queue left another one place, and 7 of
    its 8 PAL samples were refused as busy. Each owner now gets the queue's size over the
    owners waiting."""
    spin = "while True:\n    pass"
    config = SandboxConfig(workers=1, queue_size=4, timeout_s=1.0)
    async with Sandbox(config) as sb:

        async def run_as(owner: str, code: str) -> ExecutionResult:
            pool.OWNER.set(owner)
            return await sb.run(code)

        filling = [asyncio.create_task(run_as("a", spin)) for _ in range(7)]
        await asyncio.sleep(0.3)  # a: 1 running, 4 waiting, 2 refused
        samples = await asyncio.gather(*(run_as("b", f"result = {n}") for n in range(4)))
        # b: 1 running (the slot a may not take), 2 waiting (4 places over 2 owners)
        assert [r.value for r in samples] == [0, 1, 2, None], samples
        assert samples[3].error_kind == "SandboxBusy"
        # and the places in all stay under twice the queue's size, however many owners come
        others = [asyncio.create_task(run_as(f"o{n}", spin)) for n in range(5)]
        await asyncio.sleep(0.1)  # o0 runs; a: 4 waiting, o1-o4 one each: 8 in all
        assert (await run_as("o9", "result = 9")).error_kind == "SandboxBusy"
        kinds = [r.error_kind for r in await asyncio.gather(*filling, *others)]
        assert sorted(kinds) == ["SandboxBusy"] * 2 + ["Timeout"] * 10, kinds


def waiting_children(sb: Sandbox) -> set[int]:
    """The processes forked for the next runs: the leaves below the only template."""
    processes = sandbox_processes(sb)
    parents, vanished = set(), set()
    for pid in processes:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parents.add(int(stat.read().rsplit(")", 1)[1].split()[1]))
        except (FileNotFoundError, ProcessLookupError):  # a finished run's, reaped meanwhile
            vanished.add(pid)
    return set(processes) - parents - vanished


async def test_every_run_gets_a_process_nobody_ran_code_in() -> None:
    async with Sandbox(SandboxConfig(workers=1)) as sb:
        used: list[int] = []
        for n in range(5):
            for _ in range(200):  # the spares forked for the next runs
                before = waiting_children(sb)
                if len(before) == SPARES:
                    break
                await asyncio.sleep(0.01)
            assert (await sb.run(f"result = {n}")).value == n
            for _ in range(200):  # the template kills and reaps it right after the reply
                gone = before - still_running(before)
                if gone:
                    break
                await asyncio.sleep(0.01)
            assert len(gone) == 1, "the run's process outlived its run"
            used.extend(gone)
        assert len(set(used)) == 5


def uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Uid:"))


async def test_no_two_live_runs_share_a_uid() -> None:
    """Pass DX: every child of a template had uid 65534, so with seccomp off one run could
    ``prlimit`` the spare that would serve the next client."""
    config = SandboxConfig(workers=1, timeout_s=3)
    async with Sandbox(config) as sb:
        for n in range(3):  # children that ended, their uids free again
            assert (await sb.run(f"result = {n}")).value == n
        running = asyncio.create_task(sb.run("while True:\n    pass"))
        for _ in range(300):  # the run and the spare left (its replacement comes after it)
            await asyncio.sleep(0.01)
            live = waiting_children(sb)
            if len(live) == SPARES:
                break
        uids = {uid_of(pid) for pid in live}
        running.cancel()
    assert len(live) == SPARES
    assert len(uids) == len(live), uids
    assert uids <= set(range(config.run_uid, config.run_uid + confine.RUN_UIDS)), uids


IN_A_CONTAINER = """
import asyncio, sys
from tools.sandbox import Sandbox, SandboxConfig
async def main():
    async with Sandbox(SandboxConfig(workers=1)) as sb:
        print(sb.layers["uid"], (await sb.run("result = 6 * 7")).value)
asyncio.run(main())
"""


async def test_the_sandbox_starts_where_few_ids_are_mapped() -> None:
    """Pass EE: in a user namespace of 65,536 ids (a rootless or userns-remapped container),
    mapping 128 runs' ids from 65,534 was refused and no template started; as many as there
    are are mapped."""
    helper = pathlib.Path(__file__).with_name("in_user_namespace.py")
    command = [sys.executable, str(helper), "65536", sys.executable, "-c", IN_A_CONTAINER]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=PIPE, stderr=PIPE, cwd=str(pathlib.Path(__file__).parents[3])
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert (process.returncode, out.decode()) == (0, "True 42\n"), err.decode()[-2000:]


async def test_a_missing_required_layer_stops_the_start_unless_allowed() -> None:
    with pytest.raises(SandboxStartError, match="SANDBOX_ALLOW_WEAK"):
        async with Sandbox(SandboxConfig(workers=1, seccomp=False)):
            pass
    async with Sandbox(SandboxConfig(workers=1, seccomp=False, allow_weak=True)) as weak:
        assert weak.missing_layers == ["seccomp"]
        assert (await weak.run("result = 2 + 2")).value == 4


@pytest.mark.parametrize("namespaces", [True, False])
async def test_timeouts_and_crashes_touch_nothing_but_their_run(namespaces: bool) -> None:
    """A run that times out or crashes is killed and reaped by pid; nothing else is signalled:
    not the waiting children, not the template, not a bystander of the same user."""
    bystander = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        config = SandboxConfig(workers=1, timeout_s=0.5, namespaces=namespaces)
        async with Sandbox(config) as sb:
            crash = "g = iter([1])\nfor i in range(4000000):\n    g = map(abs, g)\nresult = list(g)"
            for code in ("while True:\n    pass", crash, "while True:\n    pass"):
                failed = await sb.run(code)
                assert failed.error_kind in ("Timeout", "Crashed"), failed
                after = await sb.run("result = 'next'")
                assert after.value == "next", after
            assert sb.layers["namespaces"] is namespaces
        assert bystander.returncode is None, "an unrelated process was killed"
    finally:
        bystander.kill()
        await bystander.wait()


async def test_a_child_that_dies_before_reading_keeps_the_framing() -> None:
    config = SandboxConfig(workers=1, timeout_s=2.0)
    async with Sandbox(config) as sb:
        big = "x = 1\n" + "# padding\n" * 5000 + "result = 7\n"
        for _ in range(3):
            assert (await sb.run(big)).value == 7


async def test_spares_killed_from_outside_are_skipped() -> None:
    """Children killed while they wait (the OOM killer, an operator) never ran a program: a run
    goes to a live one, and no caller ever gets an exception or waits for the dead."""
    async with Sandbox(SandboxConfig(workers=1)) as sb:
        for _ in range(3):
            for _ in range(200):
                waiting = waiting_children(sb)
                if len(waiting) == SPARES:
                    break
                await asyncio.sleep(0.01)
            for pid in waiting:
                with contextlib.suppress(ProcessLookupError):  # a finished run's, just reaped
                    os.kill(pid, signal.SIGKILL)
            # Wait without yielding to the event loop: the run takes the dead ones first,
            # before the template's word that they died is read, then a live one.
            deadline = time.monotonic() + 5
            while any(is_alive(pid) for pid in waiting) and time.monotonic() < deadline:
                time.sleep(0.005)  # noqa: ASYNC251 (on purpose: the loop must not run)
            started = time.perf_counter()
            res = await sb.run("result = 6 * 7")
            assert res.value == 42, res
            assert time.perf_counter() - started < 1.5
        for pid in waiting_children(sb):  # and once the template has said they died
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert sb._ready and not any(reader_gone(child.request_w) for child in sb._ready)
        assert (await sb.run("result = 6 * 7")).value == 42


def reader_gone(fd: int) -> bool:
    """The process that read this pipe has died (POLLERR on the write end)."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


async def test_runs_that_die_at_once_are_not_spares_dying() -> None:
    """A run's "start" reaches the template before its program reaches the child, but the
    template polls both: when the child's death and its "start" come in one poll, the start
    is read first, else a run that kills its child at once counts as a spare dying on its
    own, and ten of those end the template and every run on it. Staged with the template
    stopped: a message ahead of the starts, then the children killed."""
    async with Sandbox(SandboxConfig(workers=1)) as sb:
        (template,) = sb._templates
        for _ in range(MAX_SPARE_DEATHS + 2):
            for _ in range(300):
                waiting = waiting_children(sb)
                if len(waiting) == SPARES and len(sb._ready) == SPARES:
                    break
                await asyncio.sleep(0.01)
            assert len(waiting) == SPARES and len(sb._ready) == SPARES
            template_pid = parent_of(next(iter(waiting)))
            os.kill(template_pid, signal.SIGSTOP)
            try:
                template.send({"done": 10**9})  # a message before the starts
                for child in sb._ready:
                    template.send({"start": child.id, "timeout_s": 1.0})
                for pid in waiting:
                    os.kill(pid, signal.SIGKILL)
                for _ in range(1000):  # a stopped parent does not reap: they stay zombies
                    if not any(is_alive(pid) for pid in waiting):
                        break
                    await asyncio.sleep(0.005)
            finally:
                os.kill(template_pid, signal.SIGCONT)
            await asyncio.sleep(0.05)
        assert sb._templates == {template} and template.alive
        assert (await sb.run("result = 6 * 7")).value == 42


def is_alive(pid: int) -> bool:
    """Not yet dead: a zombie's descriptors are closed already."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped (while being read, for the latter)
        return False


async def test_a_run_with_no_reply_and_no_end_is_a_failure_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A child that closes its reply and goes on (a program out of the language layer could)
    is stopped, and its run is the program's failure, not the sandbox's (red-team pass DX);
    a child that does not end even then gives a failure once the pool stops waiting to learn
    how it ended, never the CancelledError of the abandoned wait."""

    async def nothing(fd: int, cap: int) -> bytes:
        return b""

    monkeypatch.setattr(pool, "_read_until_eof", nothing)
    async with Sandbox(SandboxConfig(workers=1, timeout_s=5.0)) as sb:
        res = await sb.run("while True:\n    pass")
        assert res.error_kind == "Crashed", res
        assert "closed its reply and went on" in (res.error or ""), res
    monkeypatch.setattr(pool, "_ENDED_WAIT_S", 0.0)  # the "ended" never seen in time
    async with Sandbox(SandboxConfig(workers=1, timeout_s=5.0)) as sb:
        res = await sb.run("while True:\n    pass")
        assert res.error_kind == "WorkerCrashed", res
    monkeypatch.undo()


async def test_a_run_stopped_by_its_deadline_is_a_timeout_however_late_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a child the pool itself stopped for want of a reply is "closed its reply and
    went on"; one the template's deadline killed, whose end came late, is a Timeout
    (red-team pass DZ: with no time to learn how it ended, it was called a crash)."""
    monkeypatch.setattr(pool, "_ENDED_SOON_S", 0.0)
    async with Sandbox(SandboxConfig(workers=1, timeout_s=0.5)) as sb:
        res = await sb.run("while True:\n    pass")
        assert res.error_kind == "Timeout", res
    monkeypatch.undo()


def still_running(pids: set[int]) -> set[int]:
    return {pid for pid in pids if os.path.exists(f"/proc/{pid}")}


async def test_cancellation_kills_the_run_and_keeps_the_template() -> None:
    async with Sandbox(SandboxConfig(workers=1, timeout_s=5.0)) as sb:
        await asyncio.sleep(0.2)  # the template's spares are forked
        before = set(sandbox_processes(sb))
        task = asyncio.ensure_future(sb.run("while True:\n    pass"))
        await asyncio.sleep(0.3)
        (template,) = sb._templates
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):  # the template kills the cancelled run's child at once
            if len(before - still_running(before)) == 1:
                break
            await asyncio.sleep(0.01)
        assert len(before - still_running(before)) == 1, "the cancelled run's process survives"
        res = await sb.run("result = 'after'")
        assert res.value == "after"
        assert template.process.returncode is None and sb._templates == {template}


async def test_many_cancelled_runs_leave_the_template_serving() -> None:
    async with Sandbox(SandboxConfig(workers=1, timeout_s=5.0)) as sb:
        (template,) = sb._templates
        for delay in [0.0, 0.001, 0.01, 0.05] * 4:
            task = asyncio.ensure_future(sb.run("while True:\n    pass"))
            await asyncio.sleep(delay)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert (await sb.run("result = 'still here'")).value == "still here"
        assert sb._templates == {template}


async def test_a_crashed_template_is_replaced() -> None:
    async with Sandbox(SandboxConfig(workers=1)) as sb:
        (template,) = sb._templates
        template.process.kill()  # its keeper: the template and its children go with it
        res = await sb.run("result = 1")
        assert res.value == 1 or res.error_kind == "WorkerCrashed", res
        for _ in range(300):
            if sb._templates and template not in sb._templates:
                break
            await asyncio.sleep(0.01)
        assert template not in sb._templates and len(sb._templates) == 1
        assert (await sb.run("result = 2")).value == 2


async def test_a_templates_working_directory_is_gone_once_it_started() -> None:
    """Nothing can be made where a run starts, and a service killed outright (no ``aclose``)
    leaves no directory behind."""
    async with Sandbox(SandboxConfig(workers=1)) as sb:
        (template,) = sb._templates
        cwd = os.readlink(f"/proc/{template.process.pid}/cwd")
        assert "reactpal-sandbox-" in cwd and cwd.endswith(" (deleted)"), cwd
        assert not pathlib.Path(cwd.removesuffix(" (deleted)")).exists()  # noqa: ASYNC240
        assert (await sb.run("result = 3")).value == 3


async def test_code_size_and_timeout_arguments(sandbox: Sandbox) -> None:
    res = await sandbox.run("x = 1\n" * 20000)
    assert res.error_kind == "CodeTooLarge"
    escaped = await sandbox.run("x = '" + "\x01" * (sandbox.config.max_code_bytes - 10) + "'")
    assert escaped.ok  # worst-case JSON escaping still fits the request frame
    started = time.perf_counter()
    res = await sandbox.run("while True:\n    pass", timeout_s=0.5)
    assert res.limit == "time" and time.perf_counter() - started < 1.5


# str.format's field numbering: string.Formatter numbers only "{}", and looked "{[0]}" up as
# the keyword "" (compatibility pass CF); its errors are CPython's too.
FORMAT_NUMBERING = (
    '"{[0]}: {[1]}".format(("x", 1), ("x", 1))',
    '"{.real}".format(3+4j)',
    '"{[name]}".format({"name": "n"})',
    '"{} {} {}".format(1, 2, 3)',
    '"{0} {1} {0}".format(1, 2)',
    '"{:{}}|".format("a", 5)',
    '"{:{}.{}f}|".format(3.14159, 10, 3)',
    '"{} {0}".format(1)',
    '"{0} {}".format(1)',
    '"{}".format()',
    '"{1}".format(1)',
    '"{}".format_map({})',
    '"{x[0]} {y.real}".format(x=[7], y=2)',
    '"{{}} {}".format(3)',
    '"{0[0]}{[1]}".format([1, 2])',
    '"{[0]}{0[1]}".format([1, 2])',
    '"{:{}}".format(1)',
)


async def test_str_format_numbers_its_fields_as_cpython_does(sandbox: Sandbox) -> None:
    lines = ["out = []"]
    for case in FORMAT_NUMBERING:
        lines += ["try:", f"    out.append({case})", "except Exception as e:"]
        lines += ["    out.append(f'{type(e).__name__}: {e}')"]
    code = "\n".join([*lines, "result = out"])
    res = await sandbox.run(code)
    assert res.value == cpython_result(code), res


# Compatibility pass CH: writes CPython refuses itself raise its errors, which a program may
# catch; the sandbox's own refusals stay SecurityErrors.
CPYTHON_REFUSALS = """
import datetime, decimal, fractions
out = []
def attempt(f):
    try:
        f()
        out.append('ok')
    except (TypeError, AttributeError) as e:
        out.append(type(e).__name__)
def item():
    t = (1, 2); t[0] = 5
def deletion():
    s = 'ab'; del s[0]
def read_only():
    (5).real = 2
def missing():
    setattr(5, 'x', 1)
def a_date():
    d = datetime.date(2024, 1, 1); d.year = 2025
def a_property():
    f = fractions.Fraction(1, 2); f.numerator = 3
def a_decimal():
    x = decimal.Decimal(1); x.foo = 1
for f in (item, deletion, read_only, missing, a_date, a_property, a_decimal):
    attempt(f)
result = out
"""


async def test_a_write_cpython_refuses_raises_cpython_s_error(sandbox: Sandbox) -> None:
    cpython: dict[str, Any] = {}
    exec(CPYTHON_REFUSALS, cpython)  # the test's own program, in plain Python
    res = await sandbox.run(CPYTHON_REFUSALS)
    assert res.value == cpython["result"], res
    for shared in ("import math\nmath.pi = 3", "ValueError.extra = 1"):
        refused = await sandbox.run(shared)
        assert refused.error_kind == "SecurityError", refused


async def test_sys_calendar_and_random_answer_as_cpython_s(sandbox: Sandbox) -> None:
    res = await sandbox.run(
        "import sys, random, calendar\ntry:\n    import scipy\n"
        "except ModuleNotFoundError as e:\n    missing = e.name\n"
        "first = sys.getrecursionlimit()\nsys.setrecursionlimit(5000)\n"
        "result = [missing, first, sys.getrecursionlimit(), len(random.randbytes(4)),\n"
        "    calendar.timegm((2024, 1, 1, 0, 0, 0)), sys.byteorder]"
    )
    assert res.value == ["scipy", 1000, 5000, 4, 1704067200, sys.byteorder], res


CALENDAR_TEXTS = (
    "import calendar, sys\ncalendar.prmonth(2024, 2)\ncalendar.prcal(2026, m=4)\n"
    "sys.stdout.writelines(['a\\n', 'b\\n'])\nout = [calendar.month(2024, 3, 3, 2),\n"
    "    calendar.calendar(2024, 3, 2, 8, 2), calendar.weekheader(3), calendar.firstweekday()]\n"
    "calendar.setfirstweekday(calendar.SUNDAY)\nout.append(calendar.monthcalendar(2024, 3)[0])\n"
    "try:\n    calendar.setfirstweekday(9)\nexcept calendar.IllegalWeekdayError as e:\n"
    "    out.append(str(e))\ntry:\n    calendar.monthrange(2024, 13)\n"
    "except calendar.IllegalMonthError as e:\n    out.append(str(e))\nresult = out"
)


async def test_calendars_as_text_and_printed(sandbox: Sandbox) -> None:
    """The differential pass EC: ``calendar.month``, ``prmonth``, ``calendar``, ``prcal``,
    ``weekheader``, ``setfirstweekday`` and the two errors were missing; and
    ``sys.stdout.writelines``."""
    res = await sandbox.run(CALENDAR_TEXTS)
    cpython: dict[str, Any] = {}
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(CALENDAR_TEXTS, cpython)  # the test's own program, in plain Python
    finally:
        calendar.setfirstweekday(calendar.MONDAY)
    assert (res.stdout, res.value) == (printed.getvalue(), cpython["result"]), res


@pytest.mark.parametrize(
    "call", ["month(2024, 1, w=10**7)", "calendar(2024, 2, 10**6)", "weekheader(10**8)"]
)
async def test_a_calendar_wider_than_the_limit_is_refused_before_it_is_made(
    sandbox: Sandbox, call: str
) -> None:
    res = await sandbox.run(f"import calendar\ncalendar.{call}")
    assert res.error_kind == "MemoryLimit", res


async def test_refusals_of_what_a_model_writes_say_what_to_write(sandbox: Sandbox) -> None:
    star = await sandbox.run("from numpy import *\nresult = sqrt(4)")
    assert star.error is not None and star.error.startswith(
        "Line 1: module 'numpy' is not available in the sandbox (allowed: "
    ), star
    inner = await sandbox.run("def f():\n    from math import *\n    return sqrt(4)")
    assert inner.error == "Line 2: import * only allowed at module level", inner
    match = await sandbox.run("match 'go n'.split():\n    case ['go', d]:\n        result = d")
    assert match.error is not None and match.error.startswith(
        "Line 1: match statements are not available in the sandbox: use if/elif"
    ), match
    later = await sandbox.run("def deco(cls):\n    cls.__repr__ = repr\n    return cls")
    assert later.error is not None and "define it in the class body" in later.error, later


async def test_a_star_import_binds_what_the_modules_view_has(sandbox: Sandbox) -> None:
    """Differential pass FI: ``from math import *``, which smaller models write, was
    refused. It binds each name of the module's view, as CPython binds a module's public
    names (``pow`` is math's then, as there)."""
    code = (
        "from math import *\nfrom itertools import *\nfrom collections import *\n"
        "from random import *\nfrom decimal import *\nfrom datetime import *\n"
        "seed(1)\ngetcontext().prec = 5\ndef f():\n    return gcd(12, 18)\n"
        "result = [sqrt(16), floor(pi * 100), list(permutations([1, 2])), "
        "Counter('aab').most_common(1), f(), pow(2, 3), randint(1, 10), str(Decimal(1) / 7), "
        "str(date(2024, 1, 2) + timedelta(days=3))]"
    )
    res = await sandbox.run(code)
    assert res.value == [
        4.0,
        314,
        [[1, 2], [2, 1]],
        [["a", 2]],
        6,
        8.0,
        3,
        "0.14286",
        "2024-01-05",
    ], res


async def test_printed_is_a_name_like_any_other(sandbox: Sandbox) -> None:
    """Differential pass FI: a printer word problem's ``printed = ...`` refused the whole
    program ("a reserved name": RestrictedPython's text of what was printed so far)."""
    code = (
        "def pages(printed, per_minute=12):\n    return printed / per_minute\n"
        "printed = 240\nprinted += 60\nprint('so far')\nresult = [pages(printed), printed]"
    )
    res = await sandbox.run(code)
    assert (res.value, res.stdout) == ([25.0, 300], "so far\n"), res


async def test_a_frozen_dataclass_sets_a_derived_field_with_object_setattr(
    sandbox: Sandbox,
) -> None:
    """Differential pass FI: ``object.__setattr__(self, "area", ...)`` in a frozen
    dataclass's ``__post_init__``, the standard idiom, was refused. It writes as ``setattr``
    would, past the class's own ``__setattr__`` only; everything ``setattr`` refuses it
    refuses (a class, a library's object, ``__class__``)."""
    code = (
        "from dataclasses import dataclass, field\n@dataclass(frozen=True)\nclass Rect:\n"
        "    w: float\n    h: float\n    area: float = field(init=False)\n"
        "    def __post_init__(self):\n        object.__setattr__(self, 'area', self.w * self.h)\n"
        "r = Rect(3, 4)\nout = [repr(r), r.area]\ntry:\n    r.area = 5\nexcept Exception as e:\n"
        "    out.append(type(e).__name__)\nclass P:\n    pass\n"
        "for target, name in ((P(), '_y'), (P(), '__class__'), (P, 'z'), (3, 'real')):\n"
        "    try:\n        object.__setattr__(target, name, 1)\n        out.append('set')\n"
        "    except Exception as e:\n        out.append(type(e).__name__)\nresult = out"
    )
    res = await sandbox.run(code)
    assert res.value == [
        "Rect(w=3, h=4, area=12)",
        12,
        "FrozenInstanceError",
        "set",  # the program's own object's private name, as ``self._y = 1`` is
        "SandboxSecurityError",
        "TypeError",
        "SandboxSecurityError",
    ], res


async def test_a_refused_module_says_what_to_write_instead(sandbox: Sandbox) -> None:
    res = await sandbox.run("from enum import Enum\nclass Color(Enum):\n    RED = 1")
    assert res.error_kind == "ModuleNotFoundError", res
    assert res.error is not None and res.error.endswith(
        "; use constants, or a dict of names to values (from enum import Enum) (line 2)"
    ), res
    plain = await sandbox.run("import shelve\nshelve.open('x')")
    assert plain.error is not None and plain.error.endswith("typing) (line 2)"), plain
    for module in ("requests", "urllib.request"):  # pass EZ: a model offline tried each
        fetch = await sandbox.run(f"import {module}\nresult = {module}.urlopen('http://x')")
        assert fetch.error is not None and "look it up with the search action" in fetch.error
    for code, said in (  # what computes offline first (pass FA: only told to search)
        ("from urllib.parse import quote\nquote('a')", "str methods"),
        ("from urllib import parse\nparse.quote('a')", "str methods"),
        ("import http\nhttp.HTTPStatus", "plain ints"),
    ):
        offline = await sandbox.run(code)
        assert offline.error is not None and said in offline.error, offline


@pytest.mark.parametrize(
    ("code", "value"),
    [
        # a model's habit: modules it never uses (differential pass DP)
        ("import numpy as np\nimport math, time\nresult = math.comb(5, 2)", 10),
        ("import os.path\nfrom typing_extensions import Literal\nresult = 1", 1),
        ("import numpy as np\ndef f(x: np.ndarray) -> int:\n    return 2\nresult = f(0)", 2),
        # a probe for the module fails at once, as except ImportError expects
        (
            "try:\n    import numpy\n    result = 'np'\nexcept ImportError:\n    result = 'none'",
            "none",
        ),
        (
            "try:\n    from time import time\nexcept Exception:\n    time = None\nresult = time",
            None,
        ),
    ],
)
async def test_a_module_the_sandbox_lacks_fails_where_it_is_used(
    sandbox: Sandbox, code: str, value: object
) -> None:
    res = await sandbox.run(code)
    assert (res.ok, res.value) == (True, value), res
    for used in (
        "import numpy as np\nx = 1\nresult = np.array([x])",
        "from time import perf_counter\nstart = perf_counter()",
        "import numpy\nresult = [v for v in numpy]",
        "import numpy\nresult = numpy[0]",
        "import numpy\nresult = isinstance(1, numpy.ndarray)",
    ):
        failed = await sandbox.run(used)
        assert failed.error_kind == "ModuleNotFoundError", failed
        assert "is not available in the sandbox" in (failed.error or ""), failed
    # what Python and the sandbox ask of any object is missing, as of a module (pass DQ)
    asked = await sandbox.run("import numpy\nresult = getattr(numpy, '__qualname__', 'none')")
    assert asked.value == "none", asked
    for reserved in ("import print.x", "import builtins.y"):  # the name an import binds
        refused = await sandbox.run(f"{reserved}\nresult = 1")
        assert refused.error_kind == "SecurityError", refused


async def test_a_special_method_read_says_what_to_write_instead(sandbox: Sandbox) -> None:
    own = await sandbox.run(
        "class P:\n    def __eq__(self, o):\n        return True\n"
        "    def __ne__(self, o):\n        return not self.__eq__(o)\n"
        "    def __add__(self, o):\n        return 5\n"
        "    def __radd__(self, o):\n        return self.__add__(o)\n"
        "result = [P() != P(), 1 + P(), P.__add__(P(), 0)]"
    )
    assert own.value == [False, 5, 5], own  # the program's own class's (differential pass DM)
    for made_elsewhere in (  # what the sandbox or a library put in the program's class
        "import collections\nclass O(collections.OrderedDict):\n    pass\n"
        "result = O(a=1).__repr__()",  # a wrapper of the inherited one, which writes unmeasured
        "import functools\n@functools.total_ordering\nclass T:\n"
        "    def __eq__(self, o):\n        return True\n    def __lt__(self, o):\n"
        "        return False\nresult = T().__gt__(T())",
    ):
        refused = await sandbox.run(made_elsewhere)
        assert refused.error_kind == "SecurityError", refused
    res = await sandbox.run("class S(str):\n    pass\nresult = S('a').__mul__(3)")
    assert res.error == (
        '"__mul__" can be read only where the program\'s own class defines it: use the '
        "operation it implements (a == b, a + b, len(a), str(a) ...; as a function: "
        "operator.eq, operator.add, len ...) (line 3)"
    ), res
    field = await sandbox.run("try:\n    1 / 0\nexcept ArithmeticError as e:\n    c = e.__cause__")
    assert field.error is not None and "use the operation" not in field.error, field


# How deep a program's recursion goes, found by the program itself: through a function, a
# method, a constructor, __eq__, __repr__ and __lt__ (the last three called by C).
RECURSION_DEPTHS = """
def probe(make):
    lo, hi = 1, 5000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            make(mid)
            lo = mid
        except RecursionError:
            hi = mid - 1
    return lo
def f(n):
    return 0 if n == 0 else 1 + f(n - 1)
class M:
    def g(self, n):
        return 0 if n == 0 else 1 + self.g(n - 1)
class I:
    def __init__(self, n):
        self.nxt = I(n - 1) if n else None
class E:
    def __init__(self):
        self.nxt = None
    def __eq__(self, o):
        return self.nxt == o.nxt
    def __repr__(self):
        return 'E(' + repr(self.nxt) + ')'
    def __lt__(self, o):
        return self.nxt < o.nxt if self.nxt is not None else False
def chain(n):
    x = None
    for i in range(n):
        y = E()
        y.nxt = x
        x = y
    return x
result = [probe(f), probe(M().g), probe(I), probe(lambda n: chain(n) == chain(n)),
          probe(lambda n: repr(chain(n))), probe(lambda n: chain(n) < chain(n))]
"""


async def test_a_program_recurses_as_deep_as_in_cpython(sandbox: Sandbox) -> None:
    """A method's wrapper, and a special method's count, are frames of the sandbox's own:
    recursion through a method stopped at 507 levels (CPython: 995), through __repr__ at 202
    (331). The limit allows for them; memoised recursion in a method is common in PAL."""
    plain = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-c", RECURSION_DEPTHS + "print(result)", stdout=PIPE
    )
    out, _ = await asyncio.wait_for(plain.communicate(), 60)
    cpython = json.loads(out)
    res = await sandbox.run(RECURSION_DEPTHS)
    assert res.ok, res
    assert all(mine >= theirs for mine, theirs in zip(res.value, cpython, strict=True)), (
        res.value,
        cpython,
    )


async def test_a_template_starts_with_room_for_a_run_s_stack(sandbox: Sandbox) -> None:
    """The kernel leaves room below the stack by the stack limit at exec: the template
    starts again with a run's stack limit, once, before it does anything else."""
    await sandbox.run("result = 1")
    for template in sandbox._templates:
        limits = pathlib.Path(f"/proc/{template.process.pid}/limits").read_text()  # noqa: ASYNC240
        stack = next(line for line in limits.splitlines() if line.startswith("Max stack size"))
        assert int(stack.split()[3]) == confine.stack_bytes(), stack


async def test_templates_and_runs_are_the_first_the_kernel_kills_when_memory_runs_out(
    sandbox: Sandbox,
) -> None:
    """Page tables are outside RLIMIT_AS: when runs take the host's memory anyway, the
    kernel's out-of-memory killer picks a run or a template, never the service."""
    await sandbox.run("result = 1")
    for template in sandbox._templates:
        proc = pathlib.Path(f"/proc/{template.process.pid}")
        assert (proc / "oom_score_adj").read_text().strip() == "1000"
        children = (proc / "task" / str(template.process.pid) / "children").read_text().split()
        assert children  # a spare child is waiting for the next run
        for pid in children:
            adj = pathlib.Path(f"/proc/{pid}/oom_score_adj").read_text()  # noqa: ASYNC240
            assert adj.strip() == "1000", pid
    assert pathlib.Path("/proc/self/oom_score_adj").read_text().strip() != "1000"  # noqa: ASYNC240


async def test_recursion_at_the_deepest_limit_stops_with_a_recursion_error(
    sandbox: Sandbox,
) -> None:
    """At the deepest limit a program may ask for, recursion through C code that calls the
    program back (``sorted``'s key) outgrew an 8 MiB C stack: the run's stack is sized for it."""
    res = await sandbox.run(
        "import sys\nsys.setrecursionlimit(10000)\ndef f(n):\n"
        "    return 0 if n == 0 else sorted([n], key=lambda v: f(v - 1))[0] + 1\n"
        "result = f(9000)"
    )
    assert (res.error_kind, res.limit) == ("RecursionError", "recursion"), res
    assert res.error is not None and "sys.setrecursionlimit(n) raises it" in res.error, res
    assert res.error.endswith("(line 4)"), res


async def test_an_interpreter_crash_is_contained() -> None:
    # 10 s: building four million iterators took past 2 s in a slow hour of the test VM
    async with Sandbox(SandboxConfig(workers=1, timeout_s=10.0)) as sandbox:
        # four million nested iterators overflow the C stack: the run's process dies, nothing else.
        code = "g = iter([1])\nfor i in range(4000000):\n    g = map(abs, g)\nresult = list(g)"
        res = await sandbox.run(code)
        assert not res.ok and res.error_kind in ("Crashed", "RecursionError"), res
        assert "SIGSEGV" in (res.error or "") or res.error_kind == "RecursionError"
        assert (await sandbox.run("result = 1")).value == 1
        # hashing a tuple nested five million deep (pass BM): the message says what to change
        res = await sandbox.run("x = ()\nfor i in range(5000000):\n    x = (x,)\nresult = hash(x)")
        assert res.error == (
            "the program crashed its interpreter (SIGSEGV: usually C code recursing into a value "
            "nested too deeply)"
        ), res


# ``copy`` for what programs copy: each program's answer as CPython 3.11 gives it.
COPIES = {
    "grid": "import copy\ngrid = [[1, 2], [3, 4]]\ng2 = copy.deepcopy(grid)\ng2[0][0] = 9\n"
    "s = copy.copy(grid)\ns[1] = None\ns[0].append(7)\nresult = (grid, g2, s)",
    "nested": "import copy\n"
    "d = {'a': [1], 'b': {'c': {1, 2}}, 't': (1, [2]), 'f': frozenset({3})}\n"
    "d2 = copy.deepcopy(d)\nd2['a'].append(5)\nd2['t'][1].append(0)\n"
    "result = (d, d2, d2['f'] is d['f'], copy.deepcopy((1, 'a')) is not None)",
    "cycle": "import copy\nclass Node:\n    def __init__(self, v):\n        self.v = v\n"
    "        self.kids = []\na, b = Node(1), Node(2)\na.kids.append(b)\nb.kids.append(a)\n"
    "a2 = copy.deepcopy(a)\nl = [1]\nl.append(l)\nl2 = copy.deepcopy(l)\n"
    "result = (a2.v, a2.kids[0].v, a2.kids[0].kids[0] is a2, a2 is not a, l2[1] is l2,"
    " l2 is not l)",
    "collections": "import copy\nfrom collections import namedtuple, Counter, deque, "
    "defaultdict, OrderedDict\nP = namedtuple('P', 'x y')\nt = (1, P(3, [4]))\n"
    "t2 = copy.deepcopy(t)\nt2[1].y.append(0)\nod = OrderedDict(z=1, a=[2])\n"
    "od.move_to_end('z')\nc, dq, dd = Counter('aab'), deque([1, [2]], maxlen=3), "
    "defaultdict(list, k=[1])\ncs = copy.deepcopy((c, dq, dd, od))\ncs[2]['new'].append(1)\n"
    "cs[1][1].append(3)\nresult = (t, t2, type(t2[1]).__name__, cs, dq, dd, "
    "copy.copy(dd), copy.copy(dq).maxlen, list(copy.copy(od)), copy.copy(c))",
    "classes": "import copy\nfrom typing import Generic, TypeVar\nT = TypeVar('T')\n"
    "class Grid(list):\n    def total(self):\n        return sum(sum(r) for r in self)\n"
    "class Stack(Generic[T]):\n    def __init__(self):\n        self.items = []\n"
    "class Tags(set):\n    pass\nclass Book(dict):\n    pass\n"
    "g = Grid([[1, 2], [3]])\ng.name = 'g'\ng2 = copy.deepcopy(g)\ng2[0][0] = 100\n"
    "s = Stack()\ns.items.append(1)\ns2, s3 = copy.copy(s), copy.deepcopy(s)\n"
    "b = copy.deepcopy(Book(a=[1]))\nresult = (type(g2).__name__, g2.total(), g.total(), "
    "g2.name, s2.items is s.items, s3.items == s.items, s3.items is s.items, "
    "sorted(copy.copy(Tags({2, 1}))), type(b).__name__, b)",
    "shared": "import copy\nx = [1]\ny = copy.deepcopy([x, x])\nresult = (y[0] is y[1], y[0] is x)",
    "self_holding": "import copy\nd = {}\nd['a'] = d\nt = ({},)\nt[0]['t'] = t\n"
    "d2, t2 = copy.deepcopy((d, t))\nresult = (d2['a'] is d2, d2 is not d, t2[0]['t'] is t2)",
    "state": "import copy\nclass Board:\n    def __init__(self):\n"
    "        self.cells = [[0] * 3 for _ in range(3)]\n"
    "    def play(self, r, c):\n        b = copy.deepcopy(self)\n        b.cells[r][c] = 1\n"
    "        return b\nb0 = Board()\nb1 = b0.play(1, 1).play(0, 2)\nresult = (b0.cells, b1.cells)",
}


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("copy.deepcopy(random.Random(1))", "Random"),
        ("copy.copy(iter([1]))", "list_iterator"),
        ("copy.deepcopy((i for i in []))", "generator"),
        ("copy.deepcopy(copy)", "copy"),
        ("copy.copy(fractions.Fraction)(1) if False else copy.copy(Half(1, 2))", "Half"),
        ("copy.deepcopy(E('x'))", "E"),
        ("copy.copy(Slotted())", "Slotted"),
        ("copy.deepcopy(decimal.getcontext())", "Context"),
        ("copy.deepcopy([1], {})", "memo"),
    ],
)
async def test_copy_refuses_what_it_cannot_copy_with_a_type_error(
    sandbox: Sandbox, code: str, kind: str
) -> None:
    """An allow-list: what is not a builtin value or container, a collections container or
    an instance of the program's own class is refused by name (no library's reduce)."""
    program = (
        "import copy, random, fractions, decimal\n"
        "class Half(fractions.Fraction):\n    pass\n"
        "class E(Exception):\n    pass\n"
        "class Slotted:\n    __slots__ = ('a',)\n"
        f"try:\n    {code}\n    result = 'copied'\n"
        "except TypeError as error:\n    result = str(error)\n"
    )
    res = await sandbox.run(program)
    assert res.ok, res
    assert "not available in the sandbox" in res.value, res.value
    assert kind in res.value


async def test_deepcopy_of_a_changing_or_deep_original_ends_cleanly(sandbox: Sandbox) -> None:
    """The program's code that runs while a copy is filled (a key's __hash__) may change the
    original: what is copied was listed first (CPython's dict copy raises RuntimeError); a
    set cannot change meanwhile (pass CZ). A structure deeper than the recursion limit is a
    RecursionError, as in CPython."""
    res = await sandbox.run(
        "import copy\nd = {}\nclass K:\n    armed = False\n    def __hash__(self):\n"
        "        if K.armed:\n            d[len(d) + 10] = 0\n"
        "        return 1\nk = K()\nd[k] = [1]\nd[2] = [2]\ns = {k, 3}\nK.armed = True\n"
        "d2, s2 = copy.deepcopy((d, s))\nresult = (len(d2), len(s2), len(d), len(s))"
    )
    assert res.ok, res
    assert res.value == [2, 2, 4, 2]
    res = await sandbox.run(
        "import copy\nx = []\nfor i in range(100000):\n    x = [x]\ncopy.deepcopy(x)"
    )
    assert not res.ok and res.error_kind == "RecursionError", res


# ``dataclasses`` as programs use it: each program's answer as CPython 3.11 gives it.
DATACLASSES = {
    "basic": (
        "from dataclasses import dataclass, field, asdict, astuple, replace, fields\n"
        "@dataclass\n"
        "class Item:\n"
        "    name: str\n"
        "    price: float\n"
        "    qty: int = 1\n"
        "    tags: list = field(default_factory=list)\n"
        "    def total(self):\n"
        "        return self.price * self.qty\n"
        'a = Item("pen", 1.5, 4)\n'
        'b = Item("pen", 1.5, qty=4)\n'
        'a.tags.append("x")\n'
        "result = (repr(a), a == b, a.total(), asdict(a), astuple(b), [f.name for f in fields(a)],"
        " replace(a, qty=2).total(), Item('c', 2).tags is not Item('d', 3).tags)\n"
    ),
    "order_frozen": (
        "from dataclasses import dataclass, FrozenInstanceError\n"
        "@dataclass(order=True, frozen=True)\n"
        "class P:\n"
        "    x: int\n"
        "    y: int = 0\n"
        "ps = sorted([P(3, 1), P(1, 2), P(1, 1)])\n"
        "s = {P(1, 1), P(1, 1), P(2)}\n"
        "try:\n"
        "    ps[0].x = 5\n"
        "    err = None\n"
        "except FrozenInstanceError as e:\n"
        "    err = str(e)\n"
        "result = (ps, len(s), err, P(1) < P(2), hash(P(1, 2)) == hash(P(1, 2)))\n"
    ),
    "inherit_post": (
        "from dataclasses import dataclass, field\n"
        "@dataclass\n"
        "class Base:\n"
        "    a: int\n"
        "    b: int = 2\n"
        "@dataclass\n"
        "class Child(Base):\n"
        "    c: int = 3\n"
        "    total: int = field(init=False, default=0)\n"
        "    def __post_init__(self):\n"
        "        self.total = self.a + self.b + self.c\n"
        "result = (repr(Child(1)), Child(1, c=10).total, Base(1) == Child(1))\n"
    ),
    "errors": (
        "from dataclasses import dataclass, field\n"
        "out = []\n"
        "try:\n"
        "    @dataclass\n"
        "    class Bad:\n"
        "        x: list = []\n"
        "except ValueError as e:\n"
        "    out.append(str(e))\n"
        "try:\n"
        "    @dataclass\n"
        "    class Bad2:\n"
        "        x: int = 1\n"
        "        y: int\n"
        "except TypeError as e:\n"
        "    out.append(str(e))\n"
        "@dataclass\n"
        "class Q:\n"
        "    x: int\n"
        "try:\n"
        "    Q()\n"
        "except TypeError as e:\n"
        "    out.append(str(e))\n"
        "try:\n"
        "    Q(1, 2)\n"
        "except TypeError as e:\n"
        "    out.append(str(e))\n"
        "result = out\n"
    ),
    "unhashable_classvar": (
        "from dataclasses import dataclass\n"
        "from typing import ClassVar, List\n"
        "@dataclass\n"
        "class R:\n"
        "    count: ClassVar[int] = 0\n"
        "    items: List[int]\n"
        "    def __post_init__(self):\n"
        "        R.count += 1\n"
        "R([1]); R([2])\n"
        "try:\n"
        "    hash(R([1]))\n"
        '    h = "hashable"\n'
        "except TypeError as e:\n"
        "    h = str(e)\n"
        "result = (R.count, h, repr(R([3])))\n"
    ),
    "messages": (
        "from dataclasses import dataclass, field\n"
        "@dataclass\n"
        "class Q:\n"
        "    x: int\n"
        "    y: int\n"
        "    z: int = 0\n"
        "    w: int = field(default=1, kw_only=True)\n"
        "    v: int = field(kw_only=True, default_factory=int)\n"
        "out = []\n"
        "for args, kwargs in (((), {}), ((1,), {}), ((1, 2, 3, 4), {}), ((1, 2), {'x': 1}),"
        " ((1, 2), {'q': 1})):\n"
        "    try:\n"
        "        Q(*args, **kwargs)\n"
        "    except TypeError as e:\n"
        "        out.append(str(e))\n"
        "@dataclass(kw_only=True)\n"
        "class K:\n"
        "    a: int\n"
        "    b: int\n"
        "try:\n"
        "    K()\n"
        "except TypeError as e:\n"
        "    out.append(str(e))\n"
        "out.append(repr(K(a=1, b=2)))\n"
        "result = out\n"
    ),
    "own_methods": (
        "from dataclasses import dataclass, field\n"
        "@dataclass\n"
        "class P:\n"
        "    x: int\n"
        "    def __repr__(self):\n"
        '        return "custom"\n'
        "    def __eq__(self, o):\n"
        "        return True\n"
        "@dataclass\n"
        "class Q:\n"
        "    a: int\n"
        "    b: int = 0\n"
        "    def __init__(self, a, b):\n"
        "        self.a = a * 10\n"
        "        self.b = b\n"
        "result = (repr(P(1)), P(1) == P(2), Q(1, 2).a, repr(Q(1, 2)))\n"
    ),
    "subclass_is_dataclass": (
        "from dataclasses import dataclass, asdict, is_dataclass, fields\n"
        "@dataclass\n"
        "class Base:\n"
        "    x: int\n"
        "class S(Base):\n"
        "    def double(self):\n"
        "        return self.x * 2\n"
        "result = (asdict(S(1)), is_dataclass(S), is_dataclass(S(2)),"
        " [f.name for f in fields(S)], S(3).double())\n"
    ),
    "frozen_inheritance": (
        "from dataclasses import dataclass\n"
        "@dataclass(frozen=True)\n"
        "class F:\n"
        "    x: int\n"
        "out = []\n"
        "try:\n"
        "    @dataclass\n"
        "    class G(F):\n"
        "        y: int = 0\n"
        "except TypeError as e:\n"
        "    out.append(str(e))\n"
        "@dataclass\n"
        "class H:\n"
        "    x: int\n"
        "try:\n"
        "    @dataclass(frozen=True)\n"
        "    class I(H):\n"
        "        y: int = 0\n"
        "except TypeError as e:\n"
        "    out.append(str(e))\n"
        "result = out\n"
    ),
    "field_reuse_and_defaults": (
        "from dataclasses import dataclass, field\n"
        "f = field(default=0)\n"
        "@dataclass\n"
        "class A:\n"
        "    a: int = f\n"
        "@dataclass\n"
        "class B:\n"
        "    b: int = f\n"
        "class K:\n"
        "    def __eq__(self, o):\n"
        "        return True\n"
        "try:\n"
        "    @dataclass\n"
        "    class C:\n"
        "        k: object = K()\n"
        "    err = None\n"
        "except ValueError as e:\n"
        "    err = str(e)[:24]\n"
        "result = (sorted(vars(A(5)).items()), sorted(vars(B(6)).items()), err)\n"
    ),
}


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("@dataclass\nclass N(int):\n    x: int = 0", "subclass of int"),
        ("dataclass(int)", "the program's own classes"),
        ("dataclass(1)", "the program's own classes"),
        ("import dataclasses\n@dataclass\nclass V:\n    x: dataclasses.InitVar[int]", "InitVar"),
        ("@dataclass(bogus=True)\nclass B:\n    x: int", "unexpected keyword"),
        ("fields(1)", "dataclass type or instance"),
        (
            "import typing\n@dataclass\nclass G(typing.Generic[typing.TypeVar('T')]):\n"
            "    _is_protocol: bool",
            "cannot be a dataclass field",
        ),
        (
            "@dataclass(order=True)\nclass O:\n    x: int\n    def __lt__(self, o):\n"
            "        return True",
            "Cannot overwrite attribute __lt__",
        ),
    ],
)
async def test_dataclass_refuses_with_a_type_error(
    sandbox: Sandbox, code: str, message: str
) -> None:
    indented = code.replace("\n", "\n    ")
    res = await sandbox.run(
        "from dataclasses import dataclass, fields\n"
        f"try:\n    {indented}\n    result = 'made'\n"
        "except TypeError as error:\n    result = str(error)\n"
    )
    assert res.ok, res
    assert message in res.value, res.value


# ``collections.abc`` (typing's classes) and ``datetime.UTC``: answers as CPython 3.11's.
COLLECTIONS_ABC = {
    "from_the_package": (
        "from collections import abc\n"
        "result = (isinstance({}, abc.Mapping), isinstance(1, abc.Sized))"
    ),
    "flatten": (
        "from collections.abc import Iterable\n"
        "def flatten(x):\n"
        "    for i in x:\n"
        "        if isinstance(i, Iterable) and not isinstance(i, str):\n"
        "            yield from flatten(i)\n"
        "        else:\n"
        "            yield i\n"
        'result = list(flatten([1, [2, [3, (4, 5)]], "ab"]))\n'
    ),
    "import_forms": (
        "import collections.abc\n"
        "import collections.abc as cabc\n"
        "from datetime import datetime, UTC\n"
        "result = (isinstance({}, collections.abc.Mapping), isinstance([], cabc.Sequence),"
        " issubclass(list, cabc.MutableSequence), isinstance(5, cabc.Hashable),"
        " isinstance(len, cabc.Callable), datetime(2024, 1, 1, tzinfo=UTC).isoformat(),"
        " collections.Counter('aa')['a'])\n"
    ),
    "subclass": (
        "from collections.abc import Sequence\n"
        "class R(Sequence):\n"
        "    def __init__(self, n):\n"
        "        self.n = n\n"
        "    def __len__(self):\n"
        "        return self.n\n"
        "    def __getitem__(self, i):\n"
        "        if i >= self.n:\n"
        "            raise IndexError\n"
        "        return i * i\n"
        "r = R(4)\n"
        "result = (list(r), 9 in r, r.index(4), list(reversed(r)))\n"
    ),
}


async def test_sys_stdout_and_stderr_write_as_in_cpython(sandbox: Sandbox) -> None:
    """``sys.stdout.write`` and ``print(file=sys.stdout)`` are the program's output;
    ``sys.stderr`` is not (CPython's is not captured as stdout either); no other file."""
    res = await sandbox.run(
        "import sys\nprint('a', 'b', sep='-', end='!\\n')\nprint('out', file=sys.stdout)\n"
        "print('hidden', file=sys.stderr)\nn = sys.stdout.write('hello\\n')\n"
        "sys.stderr.write('err\\n')\nsys.stdout.flush()\nresult = (n, sys.stdout.isatty())"
    )
    assert (res.ok, res.stdout, res.value) == (True, "a-b!\nout\nhello\n", [6, False]), res
    for code in ("import sys\nsys.stdout.write(5)", "print('x', file=[])"):
        res = await sandbox.run(code)
        assert not res.ok and res.error_kind in ("TypeError", "SecurityError"), res
    res = await sandbox.run("import sys\nfor i in range(20000):\n    sys.stdout.write('x' * 100)")
    assert (res.ok, res.limit) == (False, "output"), res


def cpython_result(code: str) -> Any:
    """What the test's own program answers in CPython (without this module's future import,
    which would turn its annotations into strings)."""
    namespace: dict[str, Any] = {}
    exec(compile(code, "<program>", "exec", dont_inherit=True), namespace)
    return namespace["result"]


async def assert_answers_as_cpython(sandbox: Sandbox, code: str) -> None:
    """``code`` runs in the sandbox and its ``result`` is what CPython's is (by repr)."""
    res = await sandbox.run(code)
    assert res.ok, res
    assert res.value_repr == repr(cpython_result(code)), res


async def test_a_long_chain_of_operators_is_not_deep_nesting(sandbox: Sandbox) -> None:
    """Pass FM: ``total = 1 + 2 + ... + 100`` was "nested deeper than 100 levels" (a chain of
    BinOps is a left spine as deep as it is long); CPython compiles a thousand terms. A chain
    counts apart, up to five times the nesting limit; nesting itself is as it was."""
    literals = "result = " + " + ".join(str(i) for i in range(1, 401))
    names = "a = [1] * 400\nresult = " + " + ".join(f"a[{i}]" for i in range(400))
    words = "w = 'x'\nresult = len(" + " + ' ' + ".join(["w"] * 200) + ")"
    for code, value in ((literals, 80200), (names, 400), (words, 399)):
        res = await sandbox.run(code)
        assert (res.ok, res.value) == (True, value), res
    res = await sandbox.run("result = " + " + ".join(["1"] * 600))
    assert (res.error_kind, res.limit) == ("SyntaxError", "nesting"), res
    res = await sandbox.run("result = " + "(1 + " * 120 + "1" + ")" * 120)
    assert (res.error_kind, res.limit) == ("SyntaxError", "nesting"), res


async def test_hasattr_dataclass_fields_as_in_cpython(sandbox: Sandbox) -> None:
    """Pass FM: a json ``default=`` hook testing ``hasattr(o, "__dataclass_fields__")``
    took its other branch; the class has it (read-only), a subclass inherits it."""
    code = (
        "import dataclasses, json\n@dataclasses.dataclass\nclass P:\n    x: int\n"
        "class Q(P):\n    pass\ndef enc(o):\n    if hasattr(o, '__dataclass_fields__'):\n"
        "        return dataclasses.asdict(o)\n    raise TypeError('no')\n"
        "result = [json.dumps([P(1), Q(2)], default=enc), hasattr(3, '__dataclass_fields__'),\n"
        "    '__dataclass_fields__' in vars(P)]"
    )
    assert (await sandbox.run(code)).value == cpython_result(code)
    res = await sandbox.run(code + "\nvars(P)['__dataclass_fields__']['y'] = 1")
    assert res.error_kind == "TypeError", res  # read-only, as in CPython (pass FS)


@pytest.mark.parametrize(
    ("name", "why"),
    [("__del__", "a finalizer"), ("__deepcopy__", "attribute by attribute"), ("__new__", "")],
)
async def test_a_refused_special_method_says_so(sandbox: Sandbox, name: str, why: str) -> None:
    """Pass FM: defining ``__del__`` was refused as "an invalid variable name because it
    starts with _", which misleads a model repairing the program."""
    res = await sandbox.run(f"class A:\n    def {name}(self, *args):\n        pass\n")
    assert res.error_kind == "SecurityError", res
    assert f"defining {name} is not available in the sandbox: " in str(res.error), res
    assert why in str(res.error)


async def test_what_stands_for_a_library_function_answers_its_name(sandbox: Sandbox) -> None:
    """Pass FM: ``{f.__name__: f(data) for f in (mean, median, pstdev)}`` had one key,
    "call": the sandbox's checking functions answered their own names."""
    code = (
        "import statistics, json, re, itertools, functools, datetime, math\n"
        "fs = [statistics.mean, statistics.median, statistics.pstdev, print, iter, format,\n"
        "      input, json.loads, re.sub, ''.join, 'a'.upper, str.upper, itertools.groupby,\n"
        "      functools.cmp_to_key, datetime.datetime.strptime, math.prod, sorted]\n"
        "result = [[f.__name__ for f in fs], statistics.mean.__qualname__,\n"
        "          statistics.mean.__doc__ is not None]"
    )
    assert (await sandbox.run(code)).value == cpython_result(code)


AS_IN_CPYTHON = {
    f"{module}:{name}": code
    for module, programs in (
        ("copy", COPIES),
        ("dataclasses", DATACLASSES),
        ("collections.abc", COLLECTIONS_ABC),
    )
    for name, code in programs.items()
}


@pytest.mark.parametrize("name", sorted(AS_IN_CPYTHON))
async def test_copy_dataclasses_and_collections_abc_answer_as_cpython_does(
    sandbox: Sandbox, name: str
) -> None:
    code = AS_IN_CPYTHON[name]
    await assert_answers_as_cpython(sandbox, code)


async def test_a_builtin_containers_item_length_and_membership_methods(sandbox: Sandbox) -> None:
    """Differential pass FW: ``sorted(d, key=d.__getitem__)`` was refused; the special
    methods of the operations ``d[k]``, ``k in d`` and ``len(d)`` are read from a builtin
    container as those operations, guarded as they are. Others stay refused."""
    res = await sandbox.run(
        "import collections\nd = {'apple': 3, 'banana': 1, 'cherry': 2}\n"
        "c = collections.Counter('abca')\n"
        "result = [sorted(d, key=d.__getitem__), max(d, key=d.__getitem__),\n"
        "    [1, 2].__len__(), d.__contains__('apple'), 'abc'.__getitem__(1),\n"
        "    (1, 2).__getitem__(0), c.__getitem__('z'), list(map(c.__getitem__, 'ab')),\n"
        "    d.__getitem__.__name__]"
    )
    assert res.value == [
        ["banana", "cherry", "apple"],
        "apple",
        2,
        True,
        "b",
        1,
        0,
        [2, 1],
        "__getitem__",
    ], res
    res = await sandbox.run(  # kept on an object and read back (pass FY)
        "class Table:\n    def __init__(self, d):\n        self.lookup = d.__getitem__\n"
        "t = Table({'a': 1, 'b': 2})\nresult = [t.lookup('b'), sorted('ab', key=t.lookup)]"
    )
    assert res.value == [2, ["a", "b"]], res
    for refused in ("{}.__setitem__", "[].__iadd__", "{}.__class__.__subclasses__"):
        res = await sandbox.run(f"result = {refused}")
        assert res.error_kind == "SecurityError", (refused, res)


async def test_a_builtin_kept_in_a_class_is_not_bound_to_its_instances(sandbox: Sandbox) -> None:
    """Pass FY F2: what stands for a builtin function or a builtin's bound method is a
    function of the sandbox's, and a function in a class body binds: ``class C: get =
    d.__getitem__`` then ``C().get(k)`` passed the instance as the key. CPython's builtins do
    not bind; neither do their stand-ins now, in the body or set on the class after it. The
    program's own functions still bind: one wrapped around a builtin, one given the text key
    the sandbox once marked its stand-ins with (``setattr`` takes any text as a name), and
    that one read from its class and put in another (red-team pass GE: the class hook's
    wrapper shared the marked ``__dict__``)."""
    code = (
        "import collections, functools, itertools, heapq\n"
        "d = {'a': 1, 'b': 2}\nq = collections.deque([1, 2, 3])\nheap = [3, 1, 2]\n"
        "heapq.heapify(heap)\n"
        "class C:\n    get = d.__getitem__\n    has = d.__contains__\n    size = d.__len__\n"
        "    pop = d.pop\n    left = q.popleft\n    join = ','.join\n    show = repr\n"
        "    it = iter\n    count = itertools.count\n    smallest = heapq.heappop\n"
        "    __len__ = d.__len__\n    __contains__ = d.__contains__\n"
        "def loud(f):\n    @functools.wraps(f)\n    def wrapper(*args):\n"
        "        return (len(args), f(args[-1]))\n    return wrapper\n"
        "def marked(*args):\n    return len(args)\n"
        "setattr(marked, 'sandbox: stands for a builtin, which does not bind', True)\n"
        "C.later = repr\nC.wrapped = loud(repr)\nC.marked = marked\nc = C()\n"
        "class D:\n    again = C.marked\n"
        "result = [c.get('a'), c.has('b'), c.size(), c.pop('b'), c.left(), c.join('xy'),\n"
        "    c.show(1), next(c.it([5])), next(c.count(7)), c.smallest(heap), len(c), 'a' in c,\n"
        "    C.get('a'), c.later(2), c.wrapped(3), c.marked(4), D().again(5), d, list(q)]"
    )
    await assert_answers_as_cpython(sandbox, code)


async def test_a_library_function_the_program_put_in_its_class_reads_back_as_it_is(
    sandbox: Sandbox,
) -> None:
    """Differential pass GC: ``class Tools: key = str.lower`` then ``sorted(words,
    key=Tools.key)`` was refused ("applies to instances of Tools only"): read from a class,
    a library's function takes that class's instances only, and the rule also took what the
    program itself had put in its class. That is handed back as it is now; a library class's
    own methods keep the rule, and so does one read from the library class and put in the
    program's (``Counter.copy`` given a class would make the real ``type``). A builtin's
    method (``norm = str.strip``) read from the class takes what the method takes, and an
    ``operator.itemgetter`` in a class does not bind, as in CPython."""
    code = (
        "import collections, heapq, operator, statistics\n"
        "class Tools:\n    key = str.lower\n    mean = statistics.mean\n"
        "    top = heapq.nlargest\n    conv = int\n    norm = str.strip\n"
        "    getter = dict.get\n    second = operator.itemgetter(1)\n"
        "    name = operator.attrgetter('real')\n    upper = operator.methodcaller('upper')\n"
        "class Table(dict):\n    find = dict.get\n"
        "Tools.later = str.upper\nt = Tools()\n"
        "result = [sorted(['b', 'A', 'c'], key=Tools.key), Tools.mean([1, 2]),\n"
        "    Tools.top(2, [3, 1, 2]), Tools.conv('12', 3), Tools.later('x'),\n"
        "    Tools.norm(' a '), Tools.getter({'k': 1}, 'k'), t.second((1, 2)), t.name(3),\n"
        "    t.upper('x'), Table(k=2).find('k')]"
    )
    await assert_answers_as_cpython(sandbox, code)
    for refused in ("M.most_common(5)", "M.copy(M)"):
        res = await sandbox.run(
            "import collections\nclass M(collections.Counter):\n"
            f"    copy = collections.Counter.copy\nresult = {refused}"
        )
        assert res.error_kind == "SecurityError", (refused, res)
        assert "applies to instances of" in str(res.error), res
    res = await sandbox.run("class T:\n    norm = str.strip\nresult = T.norm(T)")
    assert res.error_kind == "SecurityError", res  # a class is never the object (pass AA)


async def test_a_substitution_template_answers_as_in_cpython(sandbox: Sandbox) -> None:
    """Red-team pass GD: a template was parsed again at every match (``Match.expand``),
    5-13 times CPython's time; it is parsed once per call now, as ``re.sub`` parses it. The
    text is CPython's, whatever the template holds."""
    code = (
        "import re\ntext = 'ab cd\\tef 12'\n"
        "result = [re.sub(r'(\\w+)', r'[\\1]', text),\n"
        "    re.sub(r'(?P<w>\\w)(\\w)', r'\\2\\g<w>', text),\n"
        "    re.sub(r'\\w+', r'<\\g<0>>\\n', text), re.sub(r'(a)|(z)', r'\\1-\\2', 'abza'),\n"
        "    re.subn(r'(\\d)', r'\\1\\1', text), re.sub(rb'(\\w)', rb'\\1.', b'ab'),\n"
        "    re.compile(r'(c)(d)').sub(r'\\2\\1\\101', text, count=1)]"
    )
    await assert_answers_as_cpython(sandbox, code)


async def test_a_bad_template_raises_before_anything_matches(sandbox: Sandbox) -> None:
    """Red-team pass GE (F3): a template was parsed at the first match, so a bad one with
    nothing to match gave the text back where CPython raises ``re.error``. It is parsed
    before matching now, by every route to ``sub``."""
    code = (
        "import re\nout = []\n"
        "for call in (lambda: re.sub('a', r'\\9', 'xyz'),\n"
        "        lambda: re.compile('a').subn(r'\\g<n', 'xyz'),\n"
        "        lambda: re.Pattern.sub(re.compile('(a)'), r'\\2', 'b'),\n"
        "        lambda: re.subn(b'a', rb'\\1', b'b', flags=re.I),\n"
        "        lambda: re.sub('(a)', r'\\1!', 'bab', 0, re.I)):\n"
        "    try:\n        out.append(call())\n"
        "    except re.error as e:\n        out.append(str(e))\n"
        "result = out"
    )
    await assert_answers_as_cpython(sandbox, code)


async def test_text_makers_count_all_they_make_and_no_more(sandbox: Sandbox) -> None:
    """Pass GG: ``re.sub``, ``str.format`` and ``str.translate`` count the text they keep
    or write themselves now, besides what they put in; what stays within the limit,
    however it is split between the two, answers as in CPython."""
    code = (
        "import re\ns = ('a' * 9 + 'z') * 50_000\n"
        "t = re.sub('z', 'Z' * 11, s)\nu = re.subn(b'z', lambda m: b'', s.encode())\n"
        "v = ('-' * 4_000_000 + '{}{x}').format('b' * 3_000_000, x='c')\n"
        "w = s.translate({ord('z'): 'y' * 2})\nx = str.translate(s, {ord('a'): None})\n"
        "result = [len(t), t[:24], len(u[0]), u[1], len(v), v[-3:], len(w), w[:12],"
        " len(x), re.sub('(a)', r'<\\1>', 'banana'), 'x{0}y{1}z'.format(1, 2)]"
    )
    await assert_answers_as_cpython(sandbox, code)


FORMAT_CALLS = pathlib.Path(__file__).with_name("format_calls.txt").read_text(encoding="utf-8")


async def test_str_format_answers_as_cpython_on_either_path(sandbox: Sandbox) -> None:
    """``str.format`` on a literal is called without reading ``format`` (``_str_format_``),
    and a template of plain fields with exact ints, floats, strs, bools and None goes to
    the real ``str.format`` once what it can make is bounded (25-30 times CPython's time
    through ``string.Formatter``); what each path answers, errors included, is CPython's."""
    await assert_answers_as_cpython(sandbox, FORMAT_CALLS)


PERCENT_CALLS = pathlib.Path(__file__).with_name("percent_calls.txt").read_text(encoding="utf-8")


async def test_percent_formatting_answers_as_cpython_on_either_path(sandbox: Sandbox) -> None:
    """``%`` with an exact str template of positional fields and exact ints, floats, strs,
    bools and None is str's own ``%`` once what it can make is bounded (20 times CPython's
    time when measured field by field); what each path answers, errors included, is
    CPython's."""
    await assert_answers_as_cpython(sandbox, PERCENT_CALLS)


PARTIAL_CALLS = pathlib.Path(__file__).with_name("partial_calls.txt").read_text(encoding="utf-8")


async def test_partial_answers_as_cpython(sandbox: Sandbox) -> None:
    """Pass GH: the program's ``functools.partial`` counts the arguments C joins (a partial
    of a partial, a call); it answers as CPython's does: joined ``.func``/``.args``, its
    repr, ``type(p) is functools.partial``, a subclass, a sort key."""
    await assert_answers_as_cpython(sandbox, PARTIAL_CALLS)


async def test_print_writes_as_cpython_and_counts_what_it_writes(sandbox: Sandbox) -> None:
    """Pass GR: print writes each piece as CPython does, made just before it is written (a
    ``__str__`` that prints prints between them; a piece before one that raises is out),
    ``sep`` and ``end`` through their own ``__str__``; and what it writes is counted as an
    exact str: a str subclass's ``__len__`` and ``encode`` told the output 1 byte for
    530,000 characters (the reply came back malformed)."""
    order = (
        "class S(str):\n    def __str__(self):\n        return 'X'\n"
        "class A:\n    def __init__(self, n):\n        self.n = n\n"
        "    def __str__(self):\n        print('inner', self.n)\n        return 'A%d' % self.n\n"
        "class B:\n    def __str__(self):\n        raise ValueError('b')\n"
        "print(1, 2, sep=S('-'), end=S('!\\n'))\nprint(A(1), A(2))\n"
        "try:\n    print('first', B())\nexcept ValueError:\n    print('<caught>')\n"
        "print('x', 'y', sep='', end='')\nprint()\nprint(*[], sep='zz', end='.\\n')\n"
        "print(None, 2.5, True, 3j, sep=None, end=None)\n"
    )
    res = await sandbox.run(order)
    assert res.ok, res
    assert res.stdout == "1X2Xinner 1\nA1 inner 2\nA2\nfirst <caught>\nxy\n.\nNone 2.5 True 3j\n"
    liar = (
        "class S(str):\n    def __len__(self):\n        return 1\n"
        "    def encode(self, *a, **k):\n        return b'x'\n"
        "    def __str__(self):\n        return self\n"
        "class A:\n    def __str__(self):\n        return S('y' * 530_000)\n"
        "print(A(), A())\nprint('after')\nresult = 1\n"
    )
    res = await sandbox.run(liar)
    assert (res.error_kind, res.limit) == ("OutputLimit", "output"), res
    res = await sandbox.run("print(1, sep=3)")
    assert (res.error_kind, res.error) == (
        "TypeError",
        "sep must be None or a string, not int (line 1)",
    )


async def test_a_class_is_named_and_made_in_the_scope_around_it(sandbox: Sandbox) -> None:
    """Pass GV: a class's bases and decorators are evaluated in the scope around it, where a
    private name is mangled with the enclosing class's name (``_A__base``, not ``_B__base``);
    the class's own name, and a walrus in its bases or decorators, are bound there too, so a
    special method's name is refused at the top as any other name starting with "_"."""
    code = (
        "class A:\n    def __init__(self):\n        self.__base = dict\n"
        "        self.__tag = 'deco'\n"
        "    def make(self):\n        tag = self.__tag\n"
        "        def deco(cls):\n            cls.tag = tag\n            return cls\n"
        "        @deco\n        class B(self.__base):\n            __slot = 1\n"
        "            def get(self):\n                return self.__slot\n"
        "        return B\n"
        "B = A().make()\nresult = [B.tag, B().get(), issubclass(B, dict), B.__name__]\n"
    )
    await assert_answers_as_cpython(sandbox, code)
    for code in ("@(__call__ := (lambda c: c))\nclass C:\n    pass", "class __call__:\n    pass"):
        res = await sandbox.run(code)
        assert res.error_kind == "SecurityError", res


INPLACE_ERRORS = pathlib.Path(__file__).with_name("inplace_errors.txt").read_text(encoding="utf-8")


async def test_in_place_operators_refuse_as_cpython_says(sandbox: Sandbox) -> None:
    """Differential pass GQ: ``x -= "s"`` said "for -:" where CPython says "for -=:" (the
    sandbox's in-place operators run the binary ones' checks); a refusal inside a library's
    operator (``Fraction ** "s"`` refuses a float) keeps its own words, and ``x *= seq``
    says what CPython's does for a class with sequence slots and for one without."""
    await assert_answers_as_cpython(sandbox, INPLACE_ERRORS)
    # the program's own operators' refusals keep their words (pass GR: "for *:" raised
    # inside an __imul__, an __rsub__'s own message, were rewritten)
    own = (
        "class Vec:\n    def __imul__(self, k):\n        return self * k\n"
        "class Y:\n    def __rsub__(self, other):\n"
        "        raise TypeError(\"unsupported operand type(s) for -: 'int' and 'Y'\")\n"
        "out = []\nfor k in (2, 'ab'):\n    v = Vec()\n    try:\n        v *= k\n"
        "    except TypeError as e:\n        out.append(str(e))\n"
        "n = 1\ntry:\n    n -= Y()\nexcept TypeError as e:\n    out.append(str(e))\n"
        "result = out\n"
    )
    await assert_answers_as_cpython(sandbox, own)


async def test_loops_and_unpacking_are_pythons_own(sandbox: Sandbox) -> None:
    """Differential pass FW: RestrictedPython wrapped every loop's iterable in
    ``_getiter_`` and listed whatever a tuple target unpacked whole first, guarding nothing
    here (``_getiter_`` is ``iter``) and costing a third of a BFS loop; an infinite iterator
    unpacked into two names ran to the time limit where CPython raises at once."""
    code = (
        "import itertools\nout = []\ntry:\n    a, b = itertools.count()\n"
        "except ValueError as e:\n    out.append(str(e))\n"
        "for x, (y, z) in [(1, (2, 3))]:\n    out.append(x + y + z)\n"
        "first, *rest = range(5)\n"
        "result = out + [[(a, b) for a, b in zip('ab', range(2))], first, rest]"
    )
    res = await sandbox.run(code)
    assert res.ok and res.duration_ms < 2000, res
    assert res.value == [
        "too many values to unpack (expected 2)",
        6,
        [["a", 0], ["b", 1]],
        0,
        [1, 2, 3, 4],
    ], res
    tree = compiler.SandboxTransformer([], [], {}).visit(
        compiler._parse("for a, b in x:\n    c, d = a\n[p for p, q in x]")
    )
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & {"_getiter_", "_unpack_sequence_", "_iter_unpack_sequence_"}


async def test_dir_lists_an_objects_names(sandbox: Sandbox) -> None:
    """Differential pass FW: ``dir`` was not defined, and programs list their own methods
    with it. Names only, without the private ones; ``dir()`` of the scope is refused."""
    res = await sandbox.run(
        "import math, collections\nclass Calc:\n    def op_add(self, a, b):\n        return a + b\n"
        "    def op_mul(self, a, b):\n        return a * b\n    def _hidden(self):\n"
        "        pass\nc = Calc()\nc.x = 1\nops = [m for m in dir(c) if m.startswith('op_')]\n"
        "result = [ops, [getattr(c, m)(3, 4) for m in ops], 'x' in dir(c), '_hidden' in dir(c),\n"
        "    '__init__' in dir(c), 'sqrt' in dir(math), 'bit_length' in dir(int),\n"
        "    'most_common' in dir(collections.Counter), [n for n in dir(int) if n[:1] == '_'\n"
        "    and n[:2] != '__'], all(type(n) is str for n in dir(str))]"
    )
    assert res.value == [
        ["op_add", "op_mul"],
        [7, 12],
        True,
        False,
        True,
        True,
        True,
        True,
        [],
        True,
    ], res
    res = await sandbox.run("result = dir()")
    assert res.error_kind == "SecurityError", res
    res = await sandbox.run("import numpy\nresult = dir(numpy)")  # as the import fails (GA)
    assert res.error_kind == "ModuleNotFoundError", res
