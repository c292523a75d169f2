"""Every callable a program can import (each module view's, each builtin), called with values a
program can hold, must answer only what the program could read itself: never a builtin class
that has a stand-in, a metaclass, a module, frame, traceback, code object or cell, at any
depth of a tuple, list, set or dict it answers, or among the first items of an iterator.

Red-team pass ES: ``typing.get_origin(typing.Type[int])``, added to the ``typing`` view that
day, read ``__origin__`` for the program and answered the real ``type``. Guards check what a
program reads as an attribute; a library function's answer is not vetted as one, so a name
added to a view later must pass this scan (pass ET ran a larger one: 5.7M calls, nothing).

Run in a process of its own (``tests/tools/sandbox/test_attacks.py`` does): the calls change
module state (``decimal.setcontext``, ``calendar.setfirstweekday``...). Prints one JSON
object: ``callables`` scanned, ``calls`` made and ``found``, a list of
``[callable, arguments, what it answered]``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import fractions
import itertools
import json
import re
import signal
import sys
import types
import typing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tools.sandbox import SandboxConfig, child, policy, warmup
from tools.sandbox.modules import _OUTPUT

# Never called: they end the process, wait for input, or change the interpreter's limits.
SKIPPED = {
    "sys.exit",
    "sys.setrecursionlimit",
    "builtins.exit",
    "builtins.quit",
    "builtins.input",
    "builtins.breakpoint",
    "builtins.__build_class__",
    "builtins.__import__",
}
CALL_TIME_S = 0.2  # a call that takes longer is abandoned (SIGALRM)
_INTERNAL = (types.ModuleType, types.FrameType, types.TracebackType, types.CodeType, types.CellType)


def main() -> None:
    runner = child.Runner(dataclasses.asdict(SandboxConfig()))
    warmup.prepare(runner)
    runner.classes.reset()
    sink = policy.PrintSink(1 << 20)
    runner.modules.new_run(sink)
    _OUTPUT[0] = sink
    classes = runner.classes
    views = dict(runner.modules._static)
    for name in ("random", "decimal", "sys"):
        views[name] = runner.modules._fresh(name)

    def forbidden(value: Any) -> bool:
        if isinstance(value, type):
            try:
                return bool(classes.exposed(value) is not value)
            except Exception:  # refused outright: the program could not hold it
                return True
        return isinstance(value, _INTERNAL)

    def first_forbidden(value: Any, depth: int = 0) -> Any:
        if forbidden(value):
            return value
        if depth > 2:
            return None
        kind = type(value)
        if kind in (tuple, list, set, frozenset):
            items: list[Any] = list(value)[:20]
        elif kind is dict:
            items = [part for pair in list(value.items())[:20] for part in pair]
        else:
            return None
        for item in items:
            found = first_forbidden(item, depth + 1)
            if found is not None:
                return found
        return None

    def program_function(*args: Any, **kwargs: Any) -> Any:
        return args[0] if args else None

    # the program's own class, made as its ``class`` statement makes one
    program_class = classes.metaclass("ProgramObject", (), {"__module__": "__main__"})

    held: dict[str, Any] = {
        "0": 0,
        "1": 1,
        "-1": -1,
        "1.5": 1.5,
        "'ab'": "ab",
        "b'ab'": b"ab",
        "[1, 2]": [1, 2],
        "(1, 2)": (1, 2),
        "{'a': 1}": {"a": 1},
        "None": None,
        "Decimal": decimal.Decimal("1.5"),
        "Fraction": fractions.Fraction(1, 3),
        "date": datetime.date(2020, 1, 1),
        "timedelta": datetime.timedelta(1),
        "ValueError()": ValueError("x"),
        "Counter": collections.Counter("ab"),
        "match": re.match("(a)", "a"),
        "object()": program_class(),
        "function": program_function,
    }
    # What names a class or a generic alias: also called two at a time.
    kinds: dict[str, Any] = {
        "str": classes.str,
        "int": classes.int,
        "type": classes.type,
        "Type": typing.Type,  # noqa: UP006  (typing's aliases are what the program holds)
        "Type[int]": typing.Type[int],  # noqa: UP006
        "List[int]": typing.List[int],  # noqa: UP006
        "Callable[[int], str]": typing.Callable[[int], str],
        "Any": typing.Any,
        "ProgramObject": program_class,
        "ValueError": classes.exposed(ValueError),
    }
    callables = [
        (f"{view_name}.{name}", value)
        for view_name, view in sorted(views.items())
        for name, value in sorted(view._view_attrs.items())
        if callable(value)
    ]
    callables += [
        (f"builtins.{name}", value)
        for name, value in sorted(runner.hooks["__builtins__"].items())
        if callable(value)
    ]
    callables = [(name, value) for name, value in callables if name not in SKIPPED]
    pool = {**held, **kinds}
    combos: list[tuple[str, ...]] = [()]
    combos += [(name,) for name in pool]
    combos += [(a, b) for a in kinds for b in pool]

    def abandon(*_: Any) -> None:
        raise TimeoutError

    signal.signal(signal.SIGALRM, abandon)
    found: list[list[str]] = []
    calls = 0
    for name, function in callables:
        for combo in combos:
            calls += 1
            signal.setitimer(signal.ITIMER_REAL, CALL_TIME_S)
            try:
                answer = function(*(pool[part] for part in combo))
                bad = first_forbidden(answer)
                if bad is None and hasattr(answer, "__next__") and not isinstance(answer, type):
                    bad = first_forbidden(list(itertools.islice(answer, 5)))
                if bad is not None:
                    found.append([name, ", ".join(combo), repr(bad)[:100]])
            except BaseException:  # refused, or the wrong arguments: nothing answered
                pass
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    print(json.dumps({"callables": len(callables), "calls": calls, "found": found}))


if __name__ == "__main__":
    main()
