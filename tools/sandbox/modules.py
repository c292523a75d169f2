"""The import allow-list: what each allowed module deliberately exposes to a program.

A real module object is never handed out: it carries references to other modules
(``datetime.sys``, ``json.codecs``, ``random._os``, ``collections.sys`` ...) and, through its
functions, to the real builtins. A program gets a :class:`ModuleView`, a read-only object
holding only the public names listed here. Names left out on purpose:

* ``operator.attrgetter``/``methodcaller`` (C-level getattr by a user-chosen name): replaced by
  guarded versions.
* ``string.Formatter`` (field lookups past the guards, CVE-2023-41039 family).
* ``functools.singledispatch`` (evaluates annotation strings with a real ``eval``).
* ``collections.UserString`` (its ``format`` calls the real ``str.format``).
* ``random`` and ``decimal`` state: each run gets its own ``random.Random`` and its own
  decimal context (whose exponent range is bounded, so no Decimal holds a huge integer).

Size-taking functions go through the run's guards: ``math.factorial``/``comb``/``perm``/
``prod``/``lcm``, ``operator.pow``/``mul``/``lshift``/``mod``, ``json.dumps``'s ``indent``,
``random.getrandbits``; ``Fraction``, ``Decimal`` and ``Context`` are stand-ins
(``standins.py``) that check what they construct.
"""

from __future__ import annotations

import bisect
import calendar
import cmath
import collections
import datetime
import decimal
import fractions
import functools
import heapq
import importlib
import itertools
import json
import math
import operator
import os
import random
import re
import statistics
import string
import sys
import typing
from collections.abc import Callable, Mapping
from types import FunctionType, MappingProxyType, WrapperDescriptorType
from typing import Any, NoReturn

from tools.sandbox.caches import bounded_lru_cache, cached_property_for
from tools.sandbox.copying import make_copy_view
from tools.sandbox.dataclassing import make_dataclasses_view
from tools.sandbox.limits import (
    Arithmetic,
    SizeLimit,
    class_attribute,
    defining_class,
    exact_kwargs,
    exact_len,
    exact_number,
    index_value,
    int_parts,
)
from tools.sandbox.missing import not_available
from tools.sandbox.names import ALLOWED_MODULES
from tools.sandbox.policy import (
    EmptyInput,
    Guards,
    PrintSink,
    SandboxSecurityError,
    StandardStream,
    attribute_name,
    named_like,
    shielded,
)
from tools.sandbox.standins import (
    NUMBER_TYPES,
    RANDOM_MAX_BITS,
    RANDOM_MAX_ITEMS,
    SandboxRandom,
    counted_comparison,
    unbound_stand_ins,
)

# Imported from C by allowed modules (``datetime.strptime``); loaded now, before the OS layer.
for _lazy in ("_strptime", "encodings.ascii", "encodings.latin_1", "encodings.idna", "unicodedata"):
    importlib.import_module(_lazy)


class ModuleView:
    """A read-only stand-in for an allowed module: only the listed public attributes."""

    __slots__ = ("_view_attrs", "_view_name")

    def __init__(self, name: str, attrs: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_view_name", name)
        object.__setattr__(self, "_view_attrs", MappingProxyType(dict(attrs)))

    def __getattr__(self, attr: str) -> Any:
        if attr == "__name__":  # ImportError's "cannot import name 'x' from 'typing'"
            return self._view_name
        try:
            return self._view_attrs[attr]
        except KeyError:
            raise AttributeError(
                f"module {self._view_name!r} has no attribute {attr!r} in the sandbox"
            ) from None

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError(f"module {self._view_name!r} is read-only in the sandbox")

    __delattr__ = __setattr__  # type: ignore[assignment]

    def __dir__(self) -> list[str]:
        return sorted(self._view_attrs)

    def __repr__(self) -> str:
        return f"<module {self._view_name!r} (sandboxed)>"


def _public(module: Any, *exclude: str, names: str | None = None) -> dict[str, Any]:
    if names is not None:
        return {name: getattr(module, name) for name in names.split()}
    return {
        name: getattr(module, name)
        for name in dir(module)
        if not name.startswith("_")
        and name not in exclude
        and not isinstance(getattr(module, name), type(math))  # no sub-modules
    }


def _attrgetter(guards: Guards) -> Callable[..., Callable[[Any], Any]]:
    def attrgetter(*given: str) -> Callable[[Any], Any]:
        if not all(issubclass(type(name), str) for name in given):
            raise TypeError("attribute name must be a string")
        names = tuple(map(attribute_name, given))  # exact strs, read once (pass FV)

        def resolve(obj: Any, dotted: str) -> Any:
            for part in dotted.split("."):
                obj = guards.getattr(obj, part)
            return obj

        if len(names) == 1:
            return lambda obj: resolve(obj, names[0])
        return lambda obj: tuple(resolve(obj, name) for name in names)

    return attrgetter


def _itemgetter(guards: Guards) -> Callable[..., Callable[[Any], Any]]:
    def itemgetter(*keys: Any) -> Callable[[Any], Any]:
        if not keys:
            raise TypeError("itemgetter expected 1 argument, got 0")
        getitem = guards.getitem
        if len(keys) == 1:
            key = keys[0]
            return lambda obj: getitem(obj, key)
        return lambda obj: tuple(getitem(obj, key) for key in keys)

    return itemgetter


def _methodcaller(guards: Guards) -> Callable[..., Callable[[Any], Any]]:
    def methodcaller(given: str, /, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        if not issubclass(type(given), str):
            raise TypeError("method name must be a string")
        name = attribute_name(given)  # the exact str, read once (pass FV)
        return lambda obj: guards.getattr(obj, name)(*args, **kwargs)

    return methodcaller


# What these make stands for an object of operator's that does not bind to a class's
# instances (``class S: key = itemgetter(1)``, then ``sorted(rows, key=self.key)``): kept
# unbound in a class (``standins.unbound_stand_ins``; differential pass GC).
unbound_stand_ins(_attrgetter, _itemgetter, _methodcaller)


def _namedtuple(guards: Guards) -> Callable[..., type]:
    def namedtuple(typename: str, field_names: Any, **kwargs: Any) -> type:
        kwargs.pop("module", None)  # it would be looked up in sys.modules
        cls = collections.namedtuple(  # type: ignore[misc]  # the program's own name
            typename, field_names, module="__main__", **kwargs
        )
        return guards.classes.register(cls)

    return namedtuple


def _typed_namedtuple(guards: Guards) -> Callable[..., type]:
    """``typing.NamedTuple('P', [('x', int)])`` makes the program's own class, as
    ``collections.namedtuple`` does (its ``_fields``, ``_asdict()``...); the class form
    (``class P(NamedTuple)``) goes through the class hook as any class."""

    def NamedTuple(typename: str, fields: Any = None, /, **kwargs: Any) -> type:
        cls = typing.NamedTuple(typename, fields, **exact_kwargs(kwargs))  # type: ignore[misc]
        cls.__module__ = "__main__"  # the program's, as CPython says; not this module's
        return guards.classes.register(cls)

    def mro_entries(bases: tuple[Any, ...]) -> Any:  # typing's asserts its own function
        return typing.NamedTuple.__mro_entries__((typing.NamedTuple, *bases[1:]))  # type: ignore[attr-defined]

    NamedTuple.__mro_entries__ = mro_entries  # type: ignore[attr-defined]
    return NamedTuple


def _total_ordering(guards: Guards) -> Callable[[Any], Any]:
    def total_ordering(cls: Any) -> Any:
        if not guards.classes.is_user_class(cls):
            raise SandboxSecurityError("total_ordering() works on the program's own classes only")
        return functools.total_ordering(cls)

    return total_ordering


def _caches(guards: Guards) -> dict[str, Callable[..., Any]]:
    """``functools.lru_cache`` and ``cache`` for the program's own functions only: the real
    ones copy the decorated object's ``__dict__`` into the wrapper (``update_wrapper``), and a
    class's holds the raw descriptors of its methods."""

    def own(func: Any) -> Any:
        if not guards.classes.is_program_function(func):
            raise SandboxSecurityError(
                "lru_cache() and cache() decorate the program's own functions only"
            )
        return func

    def cached(func: Any, maxsize: int | None) -> Any:
        if maxsize is None or maxsize <= 0:  # a dict alone, or no cache: the C ones
            made = functools.lru_cache(maxsize)(own(func))
            for name in ("cache_info", "cache_clear"):  # copied from a cache it wraps (its own
                vars(made).pop(name, None)  # are the C type's; lru_cache set cache_parameters)
            return made
        wrapper = bounded_lru_cache(own(func), maxsize)  # never re-entered (caches.py)
        guards.classes.contain_cache(wrapper, func)
        return wrapper

    def lru_cache(maxsize: Any = 128, typed: Any = False) -> Any:
        if callable(maxsize) and not isinstance(maxsize, int):  # @lru_cache without ()
            return cached(maxsize, 128)
        if typed:
            # A typed key holds type(arg) of every argument: the real type of a class, which
            # the dict's comparison then hands to a colliding key's __eq__.
            raise SandboxSecurityError("lru_cache(typed=True) is not available in the sandbox")
        if maxsize is not None and not isinstance(maxsize, int):
            raise TypeError("Expected first argument to be an integer, a callable, or None")
        size = None if maxsize is None else max(operator.index(maxsize), 0)
        return lambda func: cached(func, size)

    def cache(func: Any) -> Any:
        return cached(func, None)

    return {"lru_cache": lru_cache, "cache": cache}


def _wraps(guards: Guards) -> Callable[..., Callable[[Any], Any]]:
    """``functools.wraps`` for the program's own functions: the name, qualified name and
    docstring, copied as plain text. Never ``update_wrapper`` itself, which also copies the
    wrapped object's ``__dict__`` (``wraps(object)`` handed out ``object.__getattribute__``)
    and sets ``__wrapped__``."""

    def wraps(wrapped: Any, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        def decorate(wrapper: Any) -> Any:
            if type(wrapper) is not FunctionType or not guards.classes.is_user_object(wrapper):
                raise SandboxSecurityError("wraps() decorates the program's own functions only")
            for name in ("__name__", "__qualname__", "__doc__"):
                value = getattr(wrapped, name, None)
                if isinstance(value, str):
                    setattr(wrapper, name, str.__str__(value))
            return wrapper

        return decorate

    return wraps


def _json_dumps(guards: Guards) -> Callable[..., str]:
    def dumps(obj: Any, **kwargs: Any) -> str:
        kwargs = exact_kwargs(kwargs)  # first: a str subclass named "cls" could dodge the pop
        if kwargs.pop("cls", None) is not None:
            raise SandboxSecurityError("json.dumps(cls=...) is not available in the sandbox")
        # The indent is repeated once per nesting level and line, a separator once per item:
        # both are kept to the sizes anyone formats JSON with.
        indent = kwargs.get("indent")
        if indent is not None:
            size = len(str.__str__(indent)) if isinstance(indent, str) else index_value(indent)
            if size > _JSON_MAX_INDENT:
                raise SizeLimit(f"json indent above {_JSON_MAX_INDENT} (sandbox limit)")
            kwargs["indent"] = str.__str__(indent) if isinstance(indent, str) else size
        separators = kwargs.get("separators")
        if separators is not None:
            item, key = (str.__str__(part) for part in separators)
            if len(item) + len(key) > _JSON_MAX_INDENT:
                raise SizeLimit("json separators too long (sandbox limit)")
            kwargs["separators"] = (item, key)
        # The output outgrows the input many times over: the indent on every line, a
        # separator per item, twelve characters for an emoji written as ASCII. It is built
        # piece by piece and refused once past the limit, not measured once built.
        room = guards.arith.max_items
        pieces = []
        for piece in json.JSONEncoder(**kwargs).iterencode(obj):
            room -= str.__len__(piece)
            if room < 0:
                raise SizeLimit(f"json text exceeds {guards.arith.max_items} characters")
            pieces.append(piece)
        return "".join(pieces)

    return dumps


def _itertools_sized(arith: Arithmetic) -> dict[str, Callable[..., Any]]:
    """The combinatoric iterators, whose every item is a tuple of ``r`` (or ``repeat`` times
    the pools) elements, with that length checked before the first item is built."""

    # The length is asked of the program's object once, and that exact int is passed on.
    def length(r: Any, what: str) -> int:
        size = index_value(r)
        arith.check_items(size, what)
        return size

    def permutations(iterable: Any, r: Any = None) -> Any:
        return itertools.permutations(iterable, None if r is None else length(r, "permutation"))

    def combinations(iterable: Any, r: Any) -> Any:
        return itertools.combinations(iterable, length(r, "combination"))

    def combinations_with_replacement(iterable: Any, r: Any) -> Any:
        return itertools.combinations_with_replacement(iterable, length(r, "combination"))

    def product(*iterables: Any, repeat: Any = 1) -> Any:
        times = index_value(repeat)
        arith.check_items(times * len(iterables), "product")
        return itertools.product(*iterables, repeat=times)

    def accumulate(iterable: Any, func: Any = None, *, initial: Any = None) -> Any:
        """Without a function it adds in C, unchecked: ``+`` as the program's sums do."""
        return itertools.accumulate(iterable, arith.add if func is None else func, initial=initial)

    return {
        "permutations": permutations,
        "combinations": combinations,
        "combinations_with_replacement": combinations_with_replacement,
        "product": product,
        "accumulate": accumulate,
    }


def _with_ints(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` given its arguments as exact ints (each asked for its ``__index__`` once)."""

    def call(*args: Any) -> Any:
        return func(*(index_value(arg) for arg in args))

    call.__name__ = call.__qualname__ = func.__name__
    call.__doc__ = func.__doc__
    return call


def _timegm(parts: Any) -> int:
    """``calendar.timegm`` of a time tuple's first six fields, each an exact int or float."""
    fields = tuple(parts)[:6]
    if len(fields) < 6:
        raise ValueError("timegm() needs year, month, day, hour, minute and second")
    year, month, *rest = fields
    clock = (v if type(v) is float else index_value(v) for v in rest)
    stamp: Any = (index_value(year), index_value(month), *clock)  # a float second is valid
    return calendar.timegm(stamp)


# The run's output, for what a module prints itself (calendar.prmonth): set by new_run
_OUTPUT: list[PrintSink | None] = [None]


def _calendar_texts(arith: Arithmetic) -> dict[str, Any]:
    """``calendar``'s text functions, each measured before it is made: its widths and line
    spacings are the program's (``month(2024, 1, w=10**8)``); and the two that print, into
    the run's output."""

    def month(theyear: Any, themonth: Any, w: Any = 0, l: Any = 0) -> str:  # noqa: E741
        year, number, width, lines = map(index_value, (theyear, themonth, w, l))
        width, lines = max(2, width), max(1, lines)
        arith.check_items(8 * (7 * (width + 1) + lines), "calendar")  # 8 lines at most
        return calendar.month(year, number, width, lines)

    def year_text(theyear: Any, w: Any = 2, l: Any = 1, c: Any = 6, m: Any = 3) -> str:  # noqa: E741
        year, width, lines, gap, months = map(index_value, (theyear, w, l, c, m))
        width, lines, gap = max(2, width), max(1, lines), max(2, gap)
        rows = -(-12 // max(1, months))
        row = max(1, months) * ((width + 1) * 7 - 1 + gap) + lines
        arith.check_items(row * (2 + 9 * rows), "calendar")  # a title, then 9 lines a row
        return calendar.calendar(year, width, lines, gap, months)

    def weekheader(n: Any) -> str:
        width = index_value(n)
        arith.check_items(7 * (max(width, 0) + 1), "calendar")
        return calendar.weekheader(width)

    def prmonth(theyear: Any, themonth: Any, w: Any = 0, l: Any = 0) -> None:  # noqa: E741
        _printed(month(theyear, themonth, w, l))

    def prcal(theyear: Any, w: Any = 0, l: Any = 0, c: Any = 6, m: Any = 3) -> None:  # noqa: E741
        _printed(year_text(theyear, w, l, c, m))

    def setfirstweekday(firstweekday: Any) -> None:
        calendar.setfirstweekday(index_value(firstweekday))

    year_text.__name__ = year_text.__qualname__ = "calendar"
    functions = (month, year_text, weekheader, prmonth, prcal, setfirstweekday)
    return {f.__name__: f for f in functions}


def _printed(text: str) -> None:
    """``print(text, end="")`` into the run's output, as the module's own printing does."""
    sink = _OUTPUT[0]
    if sink is not None:
        sink.write(text, True)


def _itertools_view(arith: Arithmetic) -> dict[str, Any]:
    """``itertools``, each iterator behind a generator (``policy.shielded``: CPython 3.11's
    ``islice`` and ``zip_longest`` free what they hold when the program's code they call
    advances them again), ``groupby`` in Python (its C groups compare a key that advancing the
    parent frees: red-team pass AW), the combinatorics sized."""
    view: dict[str, Any] = {**_public(itertools), **_itertools_sized(arith)}
    for name, make in list(view.items()):
        view[name] = _shielding(make)
    view["chain"].from_iterable = _shielding(itertools.chain.from_iterable)
    view["groupby"] = _groupby

    def count(start: Any = 0, step: Any = 1) -> Any:
        # C adds step to start, unchecked, with whatever the program's objects are: a str
        # subclass with __float__ grew 9x past the limit in ten steps (pass CN)
        if type(start) not in EXACT_NUMBERS or type(step) not in EXACT_NUMBERS:
            raise TypeError("itertools.count counts with numbers in the sandbox")
        return shielded(itertools.count(start, step))

    view["count"] = count

    def tee(iterable: Any, n: Any = 2) -> tuple[Any, ...]:
        count = index_value(n)
        arith.check_items(count, "tee")
        return tuple(shielded(each) for each in itertools.tee(iterable, count))

    view["tee"] = tee
    return view


def _shielding(make: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return shielded(make(*args, **kwargs))

    call.__name__ = call.__qualname__ = make.__name__
    call.__doc__ = make.__doc__
    return call


def _groupby(iterable: Any, key: Any = None) -> Any:
    """``itertools.groupby`` as its documentation writes it in Python, comparing keys as C
    does (``is``, then ``==``); the iterable is read from at once, as C does."""
    return _groups(iter(iterable), key)


def _groups(iterator: Any, key: Any) -> Any:
    keyfunc = (lambda value: value) if key is None else key
    exhausted = False
    try:
        curr_value = next(iterator)
    except StopIteration:
        return
    curr_key = keyfunc(curr_value)

    def grouper(target_key: Any) -> Any:
        nonlocal curr_value, curr_key, exhausted
        yield curr_value
        for curr_value in iterator:
            curr_key = keyfunc(curr_value)
            if not (target_key is curr_key or target_key == curr_key):
                return
            yield curr_value
        exhausted = True

    while not exhausted:
        target_key = curr_key
        group = grouper(target_key)
        yield curr_key, group
        if target_key is curr_key or target_key == curr_key:
            for _ in group:  # what the program left of the group, as C skips it
                pass


# The numbers library code may do arithmetic with: nothing a program's class could answer for.
EXACT_NUMBERS = frozenset({int, bool, float, complex, fractions.Fraction, decimal.Decimal})

# The functions of statistics that add, multiply and divide what they are given, in Python
# and unguarded: their data, weights and parameters are exact numbers (a program's object that
# answered a string to as_integer_ratio, or a deque subclass, grew past the limits in
# statistics' own arithmetic, and the program got the result back as self of its method, pass
# CN). median_low, median_high, mode and multimode compare and count: anything goes there.
_STATISTICS_ARITHMETIC = frozenset(
    "mean fmean geometric_mean harmonic_mean median median_grouped quantiles pstdev pvariance "  # noqa: SIM905
    "stdev variance covariance correlation linear_regression".split(" ")
)
# Keyword arguments of those that are not numbers: quantiles' method and count (asked for
# its __index__ once, below), linear_regression's flag.
_STATISTICS_OPTIONS = frozenset({"method", "n", "proportional"})


def _numbers_only(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Every argument of a statistics function as exact numbers: an iterable read once into
    a list of them, a parameter one or None (a number subclass's value, read from its own
    fields: statistics then runs none of the program's code)."""
    what = f"statistics.{name}"

    def checked(value: Any) -> Any:
        if value is None or issubclass(type(value), NUMBER_TYPES):
            return exact_number(value, what) if value is not None else None
        if issubclass(type(value), (str, bytes)) or not _iterable(value):
            raise TypeError(f"{what} takes numbers in the sandbox")
        return [exact_number(item, what) for item in list(value)]

    kwargs = exact_kwargs(kwargs)
    return (
        tuple(checked(arg) for arg in args),
        {k: v if k in _STATISTICS_OPTIONS else checked(v) for k, v in kwargs.items()},
    )


def _iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _checked_result(guards: Guards, func: Any) -> Any:
    """``statistics`` squares and multiplies inside its own (unguarded) code: its results are
    checked, and each call can at most square a number that passed the check. Nor does a
    class come out of it: given classes as data (``mean([C, C])``), it converts its result
    with ``type(C)``, the real ``type``, and answers the real ``Fraction`` class."""
    if isinstance(func, type):
        return func  # NormalDist, StatisticsError: classes stay classes
    arith = guards.arith

    def call(*args: Any, **kwargs: Any) -> Any:
        if func.__name__ in _STATISTICS_ARITHMETIC:
            args, kwargs = _numbers_only(func.__name__, args, kwargs)
        if func is statistics.quantiles:  # n - 1 cut points; n asked once, that int passed on
            kwargs = exact_kwargs(kwargs)
            kwargs["n"] = index_value(kwargs.get("n", 4))
            arith.check_items(kwargs["n"] - 1, "quantiles")
        result = func(*args, **kwargs)
        for value in result if type(result) is tuple else (result,):
            if isinstance(value, type) and not guards.classes.is_user_class(value):
                raise SandboxSecurityError("statistics does not work on classes in the sandbox")
            for part in int_parts(value):
                arith.check_bits(part.bit_length())
        return result

    return call


MAX_RECURSION = 10_000  # what a program may ask for with sys.setrecursionlimit
# Frames of the sandbox's own a program's call may take besides the program's: a method of the
# program's class runs inside a wrapper that checks what it is given, a special method that C
# calls inside one that counts it too (recursion through a method reached half of CPython's
# depth, through __repr__ three fifths). A recursion limit a program has or asks for is
# multiplied by this, so that its recursion goes as deep as in CPython; the run's C stack is
# sized for it (``confine.STACK_BYTES``).
FRAMES_PER_CALL = 2


def _sys_view(guards: Guards) -> dict[str, Any]:
    """What programs use ``sys`` for: a deeper recursion (capped), a few constants, exit."""

    def setrecursionlimit(limit: Any) -> None:
        """Counted from where the program starts, never from where it is: asked again from
        deep in a recursion, it gave as much again each time (red-team pass CG: 300,000
        levels, then a C stack overflow)."""
        frames = min(max(index_value(limit), 100), MAX_RECURSION) * FRAMES_PER_CALL
        sys.setrecursionlimit(guards.run_depth + frames + 20)

    def getrecursionlimit() -> int:
        """The limit as the program set it (or CPython's default), not the frames it takes."""
        return max((sys.getrecursionlimit() - guards.run_depth - 20) // FRAMES_PER_CALL, 1)

    def exit(*status: Any) -> None:  # SystemExit() has no args: str(e) is '' (pass DR)
        raise SystemExit(*status)

    def set_int_max_str_digits(maxdigits: Any) -> None:
        """What 3.11 programs call before printing a big int (differential pass DC): checked
        as CPython checks it, and nothing changes: a run's ints are within the sandbox's own
        digit limit, which ``str()`` already allows."""
        digits = index_value(maxdigits)
        if digits != 0 and digits < 640:
            raise ValueError("maxdigits must be 0 or larger than 640")

    return {
        "setrecursionlimit": setrecursionlimit,
        "getrecursionlimit": getrecursionlimit,
        "set_int_max_str_digits": set_int_max_str_digits,
        "get_int_max_str_digits": sys.get_int_max_str_digits,
        "byteorder": sys.byteorder,
        "exit": exit,
        "maxsize": sys.maxsize,
        "float_info": sys.float_info,
        "int_info": sys.int_info,
        "version_info": sys.version_info,  # ints and a str: .major, as CPython writes it
        "version": sys.version,
        "platform": sys.platform,
        "argv": [""],  # the program's own list: no arguments (differential pass DP)
        "getsizeof": sys.getsizeof,  # object.__sizeof__: a program defines no __sizeof__
        "maxunicode": sys.maxunicode,
        "hexversion": sys.hexversion,
        "getdefaultencoding": sys.getdefaultencoding,
    }


def stack_depth() -> int:
    """How many frames are on the stack here (recursion limits are set relative to it)."""
    frame: Any = sys._getframe()
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def _json_loads(text: Any, **kwargs: Any) -> Any:
    kwargs = exact_kwargs(kwargs)
    if kwargs.pop("cls", None) is not None:
        raise SandboxSecurityError("json.loads(cls=...) is not available in the sandbox")
    return json.loads(text, **kwargs)


_JSON_MAX_INDENT = 64
_TYPING = (
    "Any Callable Dict List Set FrozenSet Tuple Optional Union Iterable Iterator Sequence "
    "Mapping MutableMapping Generator DefaultDict Deque TypeVar Literal cast TYPE_CHECKING "
    "Type NamedTuple ClassVar Protocol Final Generic Counter OrderedDict ChainMap Hashable Sized "
    "Collection Container Reversible AbstractSet MutableSet MutableSequence Self Annotated "
    "TypeAlias NoReturn Never NewType overload Text NotRequired Required LiteralString "
    "ContextManager"
)
# ``collections.abc`` as ``typing`` gives its classes (the same objects the typing view hands
# out: isinstance, issubclass, subclassing and subscripting work as with the ABCs themselves).
_COLLECTIONS_ABC = (
    "Iterable Iterator Generator Sequence MutableSequence Mapping MutableMapping MutableSet "
    "Hashable Sized Container Collection Callable Reversible"
)
_STATISTICS = (
    "mean fmean geometric_mean harmonic_mean median median_low median_high median_grouped "
    "mode multimode quantiles pstdev pvariance stdev variance covariance correlation "
    "linear_regression NormalDist StatisticsError"
)


def _exact(value: Any) -> Any:
    """A ``str``, bytes-like or ``int`` subclass as the exact ``str``/``bytes``/``int`` it
    holds; else itself (a flag with a lying ``|`` went through ``re``'s checks, pass BN)."""
    if isinstance(value, int) and type(value) is not int and type(value) is not bool:
        return int.__index__(value)
    if isinstance(value, str) and type(value) is not str:
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray)) and type(value) not in (bytes, bytearray):
        with memoryview(value) as view:
            return view.tobytes()
    return value


# Where each ``re`` function takes its ``flags`` positionally.
_RE_FLAGS_AT = {
    "compile": 1,
    "search": 2,
    "match": 2,
    "fullmatch": 2,
    "findall": 2,
    "finditer": 2,
    "split": 3,
    "sub": 4,
    "subn": 4,
}


def _int_flags(func: Callable[..., Any], position: int) -> Callable[..., Any]:
    """``func`` refusing ``flags`` that are not an int (after ``_exact``): re's Python code
    computes ``flags & TEMPLATE`` with them, which handed a program's ``__and__`` the real
    ``RegexFlag`` member, an enum whose class state ``|`` writes (red-team pass FH)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs = exact_kwargs(kwargs)
        flags = _exact(args[position] if len(args) > position else kwargs.get("flags", 0))
        if type(flags) is not int and type(flags) is not bool:
            raise TypeError(f"flags must be an int, not {type(flags).__name__}")
        if flags & re.DEBUG:  # (by number: the view has no DEBUG) re's own print writes
            # its dump to the process's stdout, not the run's output (pass FR)
            raise SandboxSecurityError("re.DEBUG is not available in the sandbox")
        return func(*args, **kwargs)

    call.__name__ = func.__name__
    return call


def _exact_text(func: Callable[..., Any], *, required: bool = False) -> Callable[..., Any]:
    """``func`` given its text arguments as exact ``str``/``bytes`` (and, ``required``, its
    first argument a str at all: ``capwords`` would call ``split`` on anything)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if required and args and not isinstance(args[0], str):
            raise TypeError(f"{func.__name__}() needs a str")
        args = tuple(_exact(arg) for arg in args)
        kwargs = {key: _exact(value) for key, value in exact_kwargs(kwargs).items()}
        return func(*args, **kwargs)

    call.__name__ = func.__name__
    return call


def _checked_length(func: Callable[..., Any], arith: Arithmetic) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        made = func(*args, **kwargs)
        arith.check_items(exact_len(made) or 0, func.__name__)
        return made

    call.__name__ = func.__name__
    return call


def _checked_number_of(func: Callable[[Any], Any], arith: Arithmetic) -> Callable[[Any], Any]:
    def call(x: Any) -> Any:
        return arith.checked_number(func(x))

    call.__name__ = func.__name__
    return call


# The builtin classes with a C concatenation (``sq_concat``), and those that are sequences to
# CPython (``sq_item``) besides the classes whose ``__getitem__`` is Python code.
_CONCATENATING = (list, tuple, str, bytes, bytearray, collections.deque)
_SEQUENCES = (*_CONCATENATING, range, memoryview)
_DICT_SUBCLASS = 1 << 29  # Py_TPFLAGS_DICT_SUBCLASS


def _is_sequence(value: Any) -> bool:
    """CPython's ``PySequence_Check``, from the value's real class (never what it says of
    itself): not a dict; a builtin sequence, or a class whose ``__getitem__`` is not a C
    slot's (a builtin's that only maps, ``re.Match``'s, makes no sequence)."""
    kind = type(value)
    if kind.__flags__ & _DICT_SUBCLASS:
        return False
    if issubclass(kind, _SEQUENCES):
        return True
    getitem = class_attribute(kind, "__getitem__")
    return getitem is not None and type(getitem) is not WrapperDescriptorType


def _iconcat(arith: Arithmetic) -> Callable[[Any, Any], Any]:
    def iconcat(a: Any, b: Any) -> Any:
        """``operator.iconcat``: ``a += b`` as CPython's ``PySequence_InPlaceConcat`` decides
        it: a builtin sequence concatenates as its class does, anything else only when both
        are sequences (a class of the program's with ``__getitem__`` and ``__iadd__`` was
        handed a number, red-team pass EV), checked as the statement is."""
        if not issubclass(type(a), _CONCATENATING) and not (
            _is_sequence(a)
            and _is_sequence(b)
            and (
                defining_class(type(a), "__iadd__")
                or defining_class(type(a), "__add__")
                or defining_class(type(b), "__radd__")
            )
        ):  # nothing would add them: C's "can't be concatenated", not the operator's error
            raise TypeError(f"'{type(a).__name__}' object can't be concatenated")
        return arith.inplace("+=", a, b)

    return iconcat


def _static_views(guards: Guards) -> dict[str, ModuleView]:
    arith, classes = guards.arith, guards.classes
    # No setitem/delitem (item writes past ``_write_``), no call, no attrgetter/methodcaller.
    op = _public(
        operator,
        "attrgetter",
        "methodcaller",
        "pow",
        "ipow",
        "mul",
        "imul",
        "lshift",
        "ilshift",
        "call",
        "setitem",
        "delitem",
        "repeat",
        "mod",
        "imod",
        "add",
        "iadd",
        "sub",
        "concat",
        "iconcat",
        "truediv",
        "itruediv",
        "floordiv",
        "ifloordiv",
        "getitem",
        "itemgetter",
    )
    op.update(
        getitem=guards.getitem,  # an item is vetted as ``a[i]``'s is
        itemgetter=_itemgetter(guards),
        attrgetter=_attrgetter(guards),
        methodcaller=_methodcaller(guards),
        pow=arith.pow,
        mul=arith.mul,
        lshift=arith.lshift,
        mod=guards.mod,
        add=arith.add,  # as a sum of three terms is: the sequence it made is checked
        iadd=lambda a, b: arith.inplace("+=", a, b),
        sub=arith.sub,
        # in place on a container takes items out: kept as the statement's would be
        isub=lambda a, b: arith.inplace("-=", a, b),
        iand=lambda a, b: arith.inplace("&=", a, b),
        ior=lambda a, b: arith.inplace("|=", a, b),
        ixor=lambda a, b: arith.inplace("^=", a, b),
        # the rest of the in-place family as their statements are checked (pass EP)
        imul=lambda a, b: arith.inplace("*=", a, b),
        imod=lambda a, b: arith.inplace("%=", a, b),
        ifloordiv=lambda a, b: arith.inplace("//=", a, b),
        itruediv=lambda a, b: arith.inplace("/=", a, b),
        ipow=lambda a, b: arith.inplace("**=", a, b),
        ilshift=lambda a, b: arith.inplace("<<=", a, b),
        iconcat=_iconcat(arith),
        concat=lambda a, b: arith._checked(operator.concat(a, b)),
        truediv=arith.truediv,
        floordiv=arith.floordiv,
    )
    col = _public(collections, names="Counter defaultdict deque OrderedDict ChainMap")
    col["namedtuple"] = _namedtuple(guards)
    # No wraps/update_wrapper: they rename and re-dict any object, shared classes included.
    ft = _public(functools, names="reduce partial lru_cache cache cmp_to_key")
    ft["partial"] = guards.classes.partial  # its joins of arguments counted (pass GH)
    ft["total_ordering"] = _total_ordering(guards)
    ft["wraps"] = _wraps(guards)
    ft.update(_caches(guards))
    ft["cached_property"] = cached_property_for(guards.classes.is_program_function, guards.setattr)
    # its C key objects call the function in the middle of a C comparison: counted as the
    # program's comparisons are (red-team pass BA emptied a list from it, mid-comparison)
    ft["cmp_to_key"] = lambda mycmp: functools.cmp_to_key(
        counted_comparison(mycmp, classes.comparing, classes._keep_alive)
    )
    mth = _public(math)
    mth.update(
        factorial=arith.factorial, comb=arith.comb, perm=arith.perm, prod=arith.prod, lcm=arith.lcm
    )
    for name in ("floor", "ceil", "trunc"):  # a Decimal at the top of its range: 33,223 bits
        mth[name] = _checked_number_of(getattr(math, name), arith)
    dt = _public(datetime, names="date datetime time timedelta timezone tzinfo MINYEAR MAXYEAR UTC")
    st = _public(
        string,
        names="ascii_letters ascii_lowercase ascii_uppercase digits hexdigits "
        "octdigits punctuation printable whitespace capwords",
    )
    rx = _public(
        re,
        names="compile search match fullmatch findall finditer sub subn split purge "
        "escape error Pattern Match A ASCII DOTALL I IGNORECASE M MULTILINE S U "
        "UNICODE VERBOSE X NOFLAG",
    )
    # the flags as the ints they are: RegexFlag's enum code stored what the program's int
    # subclass answered in the class's value map, and ``re.I | x`` then gave it back (pass BN)
    for name in "A ASCII DOTALL I IGNORECASE M MULTILINE S U UNICODE VERBOSE X NOFLAG".split():  # noqa: SIM905
        rx[name] = int(rx[name])

    # re.sub's own steps (``_compile(pattern, flags).sub(...)``), so that the replacement
    # knows its pattern and its text: a template is parsed before matching, as re.sub does
    def sub(pattern: Any, repl: Any, string: Any, count: Any = 0, flags: Any = 0) -> Any:
        return guards.substitute(
            re.Pattern.sub, re.compile(pattern, flags), repl, (string, count), {}
        )

    def subn(pattern: Any, repl: Any, string: Any, count: Any = 0, flags: Any = 0) -> Any:
        return guards.substitute(
            re.Pattern.subn, re.compile(pattern, flags), repl, (string, count), {}
        )

    rx["sub"], rx["subn"] = sub, subn
    # re's and string's Python code calls methods of the text it is given (re.escape runs
    # pattern.translate(its own table): a str subclass got re's table and rewrote it; capwords
    # joins what s.split answers): they are given exact str and bytes.
    for name in [
        "compile",
        "search",
        "match",
        "fullmatch",
        "findall",
        "finditer",
        "split",
        "sub",
        "subn",
        "escape",
    ]:
        rx[name] = _exact_text(rx[name])
    for name, position in _RE_FLAGS_AT.items():
        rx[name] = _int_flags(rx[name], position)
    rx["escape"] = _checked_length(rx["escape"], arith)  # doubles: a loop of them grew 8x
    # an item per group per match: 44 empty groups split a 1M-character string into 45M
    # items (pass CN); counted once made, as the memory limit bounds the making
    for name in ("split", "findall"):
        rx[name] = _checked_length(rx[name], arith)
    # capitalize() inside may make three characters of one ("\ufb03" is "Ffi"): measured
    st["capwords"] = _checked_length(_exact_text(string.capwords, required=True), arith)
    js = {
        "dumps": _json_dumps(guards),
        "loads": _json_loads,
        "JSONDecodeError": json.JSONDecodeError,
    }
    cal = _public(
        calendar,
        names="isleap leapdays monthrange weekday monthcalendar month_name "
        "month_abbr day_name day_abbr MONDAY TUESDAY WEDNESDAY THURSDAY FRIDAY "
        "SATURDAY SUNDAY timegm firstweekday IllegalMonthError IllegalWeekdayError",
    )
    cal["mdays"] = tuple(calendar.mdays)  # type: ignore[attr-defined]  # a tuple: its list stays
    cal["EPOCH"] = calendar.EPOCH
    cal.update(_calendar_texts(arith))
    # calendar's Python code does arithmetic with what it is given (timegm multiplied what a
    # program's object answered by 86,400; isleap applied % to a format string: pass CN)
    for name in ("isleap", "leapdays", "monthrange", "weekday", "monthcalendar"):
        cal[name] = _with_ints(cal[name])
    cal["timegm"] = _timegm
    copying = make_copy_view(classes)
    collections_abc = {
        **_public(typing, names=_COLLECTIONS_ABC),
        "Set": typing.AbstractSet,
    }
    views = {
        "math": mth,
        "cmath": _public(cmath),
        "fractions": {"Fraction": classes.fraction},
        "statistics": {
            name: _checked_result(guards, value) if callable(value) else value
            for name, value in _public(statistics, names=_STATISTICS).items()
        },
        "datetime": dt,
        "itertools": _itertools_view(arith),
        "functools": ft,
        "collections": col,
        "string": st,
        "re": rx,
        "heapq": {
            **_public(
                heapq,
                names="heappush heappop heapify heapreplace heappushpop nlargest nsmallest merge",
            ),
            # they take an item out of the program's list (see Classes.keep_contents)
            **{
                f.__name__: guards.keeping_unbound(f, True)
                for f in (heapq.heappop, heapq.heapreplace, heapq.heappushpop)
            },
        },
        "bisect": _public(bisect),
        "operator": op,
        "json": js,
        "calendar": cal,
        # Annotations are dropped at compile time; these names only need to import.
        "typing": {
            **_public(typing, names=_TYPING),
            "NamedTuple": _typed_namedtuple(guards),
            "final": _final,  # typing's sets __final__ on what it is given: any class
            "overload": _overload,
        },
        "copy": copying,
        "collections.abc": collections_abc,
        "dataclasses": make_dataclasses_view(classes, copying["deepcopy"]),
    }
    # A view's name for a builtin class with a stand-in (``typing.Text`` is ``str``) names
    # the stand-in, as the builtin's own name does: the real class's constructor skips the
    # stand-in's size checks (red-team pass EO: typing.Text([s] * 20), 18x the text limit).
    _name_stand_ins(views)
    made = {
        name: ModuleView(name, {key: classes.stand_in(value) for key, value in attrs.items()})
        for name, attrs in views.items()
    }
    # ``collections.abc`` read as the package's attribute too, as CPython's import sets it
    made["collections"] = ModuleView(
        "collections", {**views["collections"], "abc": made["collections.abc"]}
    )
    return made


def _name_stand_ins(views: dict[str, dict[str, Any]]) -> None:
    """Each function the sandbox made to stand for a module's function answers that
    function's name and docstring (``statistics.mean.__name__`` was "call": pass FM), unless
    it stands under more than one name."""
    made_here = os.path.dirname(__file__)
    seen = collections.Counter(id(value) for attrs in views.values() for value in attrs.values())
    for module_name, attrs in views.items():
        module = sys.modules.get(module_name)
        for key, value in attrs.items():
            if (
                type(value) is FunctionType
                and os.path.dirname(value.__code__.co_filename) == made_here
                and seen[id(value)] == 1
            ):
                original = getattr(module, key, None)
                if original is not None:
                    named_like(value, original)
                else:  # one of the sandbox's own, under the module's name for it
                    value.__name__ = key


def _final(f: Any) -> Any:
    """``typing.final``: a marker for type checkers, which changes nothing at run time."""
    return f


def _overload(func: Any) -> Any:
    """``typing.overload``: what typing's answers (a function that raises when called),
    without typing's registry, a module-level dict keyed by the function's
    ``__module__``/``__qualname__``, which a program's own object sets (red-team pass FH:
    the program's ``__hash__`` and ``__eq__`` ran in the library's dict)."""
    return _overload_dummy


def _overload_dummy(*args: Any, **kwargs: Any) -> NoReturn:
    raise NotImplementedError(
        "You should not call an overloaded function. A series of @overload-decorated "
        "functions outside a stub module should always be followed by an implementation "
        "that is not @overload-ed."
    )


_RANDOM_FUNCS = [
    "random",
    "uniform",
    "randint",
    "randrange",
    "choice",
    "choices",
    "shuffle",
    "sample",
    "gauss",
    "normalvariate",
    "expovariate",
    "triangular",
    "betavariate",
    "gammavariate",
    "lognormvariate",
    "vonmisesvariate",
    "paretovariate",
    "weibullvariate",
    "getrandbits",
    "randbytes",  # counted by SandboxRandom, as the class's own
    "seed",
]

_DECIMAL_NAMES = [
    "Decimal",
    "Context",
    "localcontext",
    "getcontext",
    "setcontext",
    "DecimalException",
    "Clamped",
    "DivisionByZero",
    "Inexact",
    "InvalidOperation",
    "Overflow",
    "Rounded",
    "Subnormal",
    "Underflow",
    "FloatOperation",
    "ROUND_DOWN",
    "ROUND_HALF_UP",
    "ROUND_HALF_EVEN",
    "ROUND_CEILING",
    "ROUND_FLOOR",
    "ROUND_UP",
    "ROUND_HALF_DOWN",
    "ROUND_05UP",
    "MAX_PREC",
    "MAX_EMAX",
    "MIN_EMIN",
]


class ModuleRegistry:
    """Builds the per-run import function: static views are shared (they are read-only),
    ``random`` and ``decimal`` are rebuilt for every run."""

    ALLOWED = ALLOWED_MODULES

    def __init__(self, guards: Guards) -> None:
        self._guards = guards
        self._static = _static_views(guards)
        self._per_run: dict[str, ModuleView] = {}
        self._sink: PrintSink | None = None
        guards.module_view_type = ModuleView
        for view in self._static.values():
            guards.classes.reachable(*view._view_attrs.values())
        RANDOM_MAX_BITS[0] = guards.arith.max_bits
        RANDOM_MAX_ITEMS[0] = guards.arith.max_items

    def star_names(self) -> dict[str, tuple[str, ...]]:
        """What ``from <module> import *`` binds, for each module: its view's names (all
        public: a module's own ``__all__`` lists no more)."""
        names = {name: tuple(sorted(view._view_attrs)) for name, view in self._static.items()}
        names["random"] = (*_RANDOM_FUNCS, "Random")
        names["decimal"] = tuple(
            sorted({*_DECIMAL_NAMES, "DefaultContext", "BasicContext", "ExtendedContext"})
        )
        names["sys"] = tuple(sorted({*_sys_view(self._guards), "stdout", "stderr", "stdin"}))
        return names

    def new_run(self, sink: PrintSink | None = None) -> None:
        """Set up the run's own module state: a bounded decimal context, no module views of
        an earlier run (the template's warm-up) for ``random``, ``decimal`` and ``sys``, whose
        ``stdout`` writes into ``sink``, the run's output."""
        decimal.setcontext(self._guards.classes.new_context())
        self._per_run = {}
        self._sink = sink
        _OUTPUT[0] = sink
        self._guards.module_reads.clear()  # nothing read by the template's warm-up is kept
        # The module's own generator, which stdlib code uses (statistics.NormalDist.samples):
        # the template's state would otherwise repeat in every run it forks.
        random.seed()

    def importer(
        self, name: Any, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> ModuleView | None:
        """The ``__import__`` of a run."""
        if type(name) is not str or level != 0:
            raise ImportError("relative or non-string imports are not available")
        if type(fromlist) is list and not fromlist and name in sys.modules:
            # CPython's own lazy import from C (``datetime.strptime`` -> ``_strptime``):
            # PyImport_Import discards this value and reads sys.modules itself. Programs
            # cannot call __import__ directly, so they never get here.
            return None
        if name not in self.ALLOWED:
            # what `except ModuleNotFoundError:` expects, by name
            raise ModuleNotFoundError(not_available(name), name=name)
        view = self._static.get(name) or self._per_run.get(name)
        if view is None:
            view = self._per_run[name] = self._fresh(name)
        if "." in name and not fromlist:  # ``import collections.abc`` binds ``collections``
            return self._static[name.partition(".")[0]]
        return view

    def _fresh(self, name: str) -> ModuleView:
        classes = self._guards.classes
        if name == "random":
            rng = SandboxRandom()
            attrs: dict[str, Any] = {fn: getattr(rng, fn) for fn in _RANDOM_FUNCS}
            attrs["Random"] = SandboxRandom
            return ModuleView("random", attrs)
        if name == "sys":
            attrs = _sys_view(self._guards)
            attrs["stdout"] = StandardStream(self._sink, "<stdout>")
            # discarded, but counted in the run's output: print(file=sys.stderr) of 150M
            # characters was made and dropped unmeasured (pass CQ), then an OutputLimit of
            # its own was caught and the run went on (pass CR)
            attrs["stderr"] = StandardStream(self._sink, "<stderr>", keep=False)
            attrs["stdin"] = EmptyInput()
            return ModuleView("sys", attrs)
        if name == "decimal":
            attrs = {n: getattr(decimal, n) for n in _DECIMAL_NAMES}
            for ctx in ("DefaultContext", "BasicContext", "ExtendedContext"):
                model = getattr(decimal, ctx)  # the module's own; the run gets bounded copies
                attrs[ctx] = classes.new_context(
                    prec=model.prec, rounding=model.rounding, traps=model.traps
                )
            attrs["Decimal"] = classes.decimal
            attrs["Context"] = classes.context
            attrs["localcontext"] = classes.local_context
            classes.reachable(*attrs.values())
            return ModuleView("decimal", attrs)
        raise SandboxSecurityError(f"no view for module {name!r}")  # pragma: no cover
