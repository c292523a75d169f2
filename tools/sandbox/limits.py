"""Size guards that the program's own objects cannot talk their way past.

A guard that asks a program's object about itself (``x > limit``, ``x.bit_length()``,
``len(x)``) gets the answer the program chose. Every guard here first turns the operand into an
exact builtin value with the *base class's* own slot (``int.__index__``, ``str.__len__``,
``Fraction``'s slots), checks that value, and where it matters passes that exact value on, so
the object is not asked twice (no time-of-check/time-of-use lie through ``__index__``).

What is guarded, all failing at once with :class:`IntSizeLimit` or :class:`SizeLimit`:

* ``**``, ``*``, ``<<`` (and their augmented forms, ``pow``, ``operator.pow/mul/lshift``) on
  ints, Fractions (numerator and denominator) and sequences; integral ``Fraction`` exponents
  count as int exponents (``7 ** Fraction(10**6)``);
* ``math.factorial``, ``comb``, ``perm``, ``prod`` and ``lcm`` by the size of their result;
* widths that build strings: ``ljust``/``rjust``/``center``/``zfill``, ``expandtabs``,
  ``replace``, ``int.to_bytes``, and every format specification (``format()``, ``str.format``,
  f-strings, ``%``), in any of which a number above the sequence limit is refused.

Every operation of ``Fraction`` (``+`` and ``-`` too: a sum of fractions multiplies their
denominators), wherever it runs, a library's code included, refuses a result past the int limit
(:func:`bound_fractions`). Decimal sizes are bounded by the run's decimal context (see
``standins.py``). Growing a list, bytearray or deque in place (``extend``, slice assignment) is
counted (:meth:`Arithmetic.growth`). Everything else that grows slowly (``translate``, loops)
is bounded by the run's address space and CPU limits, in a process that ends with the run.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import datetime
import decimal
import fractions
import inspect
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterable
from types import FunctionType
from typing import Any, TypeVar, cast

_SEQUENCES = (str, bytes, bytearray, list, tuple, collections.deque)
_INT_PARTS = (int, fractions.Fraction)  # what int_parts finds parts in
_TRUE_LENGTH = frozenset({list, tuple, str, bytes, bytearray})  # read by their length in C
_FAST = frozenset({int, float, bool})  # what builtins.sum adds without asking anybody
# Exact immutable values whose in-place operators are their binary ones and run no program
# code: ``d += timedelta(days=1)``, ``total += Decimal("9.99")``, ``s += "x"`` go through the
# checks of ``d + timedelta(...)`` at once (the in-place path's questions about the program's
# own methods made them 4-9x slower than the binary form: pass EP).
_VALUES = _FAST | frozenset(
    {
        complex,
        str,
        bytes,
        tuple,
        decimal.Decimal,
        fractions.Fraction,
        datetime.date,
        datetime.datetime,
        datetime.time,
        datetime.timedelta,
    }
)
_Converted = TypeVar("_Converted")
TYPE_MRO: Any = type.__dict__["__mro__"]  # read past any class's own names
_TYPE_NAME: Any = type.__dict__["__name__"]
_TYPE_DICT: Any = type.__dict__["__dict__"]
# In-place operations that, on two ints or floats, make nothing much bigger than they are.
_NUMBERS_AT_ONCE = frozenset({"+=", "-=", "%=", "//=", "/=", "&=", "|=", "^=", ">>="})
_DIGITS = re.compile(r"\d+")
_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement or type()
_REPEATED = (str, bytes, bytearray, list, tuple, collections.deque)  # C's sq_repeat
# A strftime directive: glibc's flags and width (``%_10d``, ``%1270Y``), an E/O modifier.
_STRFTIME_DIRECTIVE = re.compile(r"%[-_0^#]*(\d*)[EO]?", re.DOTALL)
# The most a directive writes without a width (``%c`` in a verbose locale, a zone name).
_STRFTIME_DIRECTIVE_CHARS = 64


class ResourceLimit(Exception):
    """A sandbox limit stopped the program; ``limit`` names it (see ``result.Limit``)."""

    limit = "memory"


class IntSizeLimit(ResourceLimit, OverflowError):
    limit = "int_size"


class SizeLimit(ResourceLimit, MemoryError):
    limit = "memory"


class OutputLimit(ResourceLimit):
    limit = "output"


def _name_inplace_operator(exc: TypeError, op: str, x: Any, y: Any) -> None:
    """``exc`` says ``op`` (``-=``) where the binary operator that refused ``x`` and ``y``
    says ``-``: ``x -= "s"`` is "unsupported operand type(s) for -=: 'float' and 'str'" in
    CPython. Only that refusal of these operands: one raised inside a library's operator
    (``Fraction ** "s"`` refuses a float) is left as it is."""
    if type(exc) is not TypeError or len(exc.args) != 1 or type(exc.args[0]) is not str:
        return
    if _programs_class(type(x)) or _programs_class(type(y)):
        return  # its own operator may have raised it, in its own words (pass GR)
    binary = "** or pow()" if op == "**=" else op[:-1]
    names = f"'{_type_name(type(x))}' and '{_type_name(type(y))}'"
    said = exc.args[0]
    if said == f"unsupported operand type(s) for {binary}: {names}" or (
        # x *= seq asks seq to repeat only when x's class has no sequence slots at all,
        # which every class made in Python and a set or dict have: "can't multiply
        # sequence" is then CPython's "unsupported operand type(s) for *="
        op == "*="
        and said == f"can't multiply sequence by non-int of type '{_type_name(type(x))}'"
        and not isinstance(x, _REPEATED)
        and _has_sequence_slots(type(x))
    ):
        exc.args = (f"unsupported operand type(s) for {op}: {names}",)


def _has_sequence_slots(kind: type) -> bool:
    """Whether C gives ``kind`` a ``tp_as_sequence`` (a class made in Python always has one;
    of C's, one that can tell what it contains: set, frozenset, dict...)."""
    return bool(kind.__flags__ & _HEAP_TYPE) or any("__contains__" in vars(k) for k in kind.__mro__)


def _type_name(kind: type) -> str:
    """The name C's messages give a class (its ``tp_name``): a class made in Python by its
    name, one of C's with its module (``collections.deque``, ``decimal.Decimal``)."""
    name = type.__dict__["__name__"].__get__(kind)
    if kind.__flags__ & _HEAP_TYPE:
        return name  # type: ignore[no-any-return]
    module = type.__dict__["__module__"].__get__(kind)
    return name if module == "builtins" else f"{module}.{name}"


def exact_kwargs(kwargs: dict[Any, Any]) -> dict[str, Any]:
    """Keyword arguments with exact ``str`` names: a ``str`` subclass could answer one way to
    a guard's ``"prec" in kwargs`` and another way to the function's argument parser."""
    return {str.__str__(name): value for name, value in kwargs.items()}


def exact_int(value: Any) -> int | None:
    """The exact int value of an int (or int subclass, or bool); None for anything else."""
    if isinstance(value, int):
        return int.__index__(value)
    return None


_FRACTION_PARTS = (
    cast(Any, fractions.Fraction.numerator).fget,
    cast(Any, fractions.Fraction.denominator).fget,
)


def exact_number(value: Any, what: str) -> Any:
    """``value`` as the exact int, float, Fraction or Decimal it holds, read from the number's
    own fields (a subclass's methods are never asked); a TypeError for anything else. Library
    code computing with it then runs none of the program's code (statistics.covariance
    subtracted an int subclass whose ``__sub__`` answered a 5M-character string, and
    multiplied that: pass CQ)."""
    kind = type(value)
    if kind is int or kind is float or kind is bool or kind is fractions.Fraction:
        return value
    if kind is decimal.Decimal:
        return value
    if issubclass(kind, int):
        return int.__index__(value)
    if issubclass(kind, float):
        return float.__float__(value)
    if issubclass(kind, fractions.Fraction):
        numerator, denominator = (int.__index__(part(value)) for part in _FRACTION_PARTS)
        return fractions.Fraction(numerator, denominator)
    if issubclass(kind, decimal.Decimal):
        return decimal.Decimal(value)
    raise TypeError(
        f"{what} takes numbers (int, float, Fraction, Decimal) in the sandbox, not {kind.__name__}"
    )


_DEQUE_MAXLEN = vars(collections.deque)["maxlen"]


def deque_maxlen(deque: collections.deque[Any]) -> int | None:
    """A deque's ``maxlen`` from its slot: a subclass's ``maxlen = 5`` is not it (red-team
    pass AC: 30M items went into a deque that said it kept 5)."""
    return cast("int | None", _DEQUE_MAXLEN.__get__(deque))


def _log2_factorial(n: int) -> float:
    """log2(n!) to within a small fraction of a bit (past a float: as big as ``n``)."""
    if n < 2:
        return 0.0
    try:
        return math.lgamma(n + 1) / math.log(2)
    except OverflowError:  # n past 1e308: far past any limit
        return math.inf


_OWN_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "**=": operator.ipow,
    "%=": operator.imod,
    "<<=": operator.ilshift,
}
_NUMBERS = (int, float, complex, fractions.Fraction, decimal.Decimal)
# The in-place method a program's class may define for each operator: asked first, as CPython
# asks it, whatever the other operand is
_INPLACE_METHODS = {
    "+=": "__iadd__",
    "-=": "__isub__",
    "*=": "__imul__",
    "/=": "__itruediv__",
    "//=": "__ifloordiv__",
    "%=": "__imod__",
    "**=": "__ipow__",
    "<<=": "__ilshift__",
    ">>=": "__irshift__",
    "&=": "__iand__",
    "|=": "__ior__",
    "^=": "__ixor__",
    "@=": "__imatmul__",
}


# What ``x *= n`` repeats in place when ``n`` is an int or an object with ``__index__``
_REPEATED_IN_PLACE = (list, bytearray, collections.deque)


def class_namespace(kind: type) -> Any:
    """``kind.__dict__`` as ``type`` holds it, whatever ``kind`` defines."""
    return _TYPE_DICT.__get__(kind)


def defining_class(kind: type, name: str) -> type | None:
    """The first class of ``kind``'s MRO (read past any class's own names) whose namespace
    holds ``name``, or None."""
    return next((k for k in TYPE_MRO.__get__(kind) if name in class_namespace(k)), None)


def class_attribute(kind: type, name: str) -> Any:
    """What ``kind``'s MRO holds for ``name`` (read past any class's own names, no descriptor
    run, the metaclass not asked: what an instance's operator finds), or None."""
    owner = defining_class(kind, name)
    return None if owner is None else class_namespace(owner)[name]


def _programs_method(kind: type, name: str) -> bool:
    """``kind`` (a subclass of a builtin, say) has ``name`` from a class of the program's
    (``__main__``'s), as a plain function: a builtin's own slot, or a library's method, is
    not."""
    owner = defining_class(kind, name)
    return (
        owner is not None
        and class_namespace(owner).get("__module__") == "__main__"
        and type(class_namespace(owner)[name]) is FunctionType
    )


def _programs_class(kind: type) -> bool:
    """``kind`` or a class it is made on is the program's (``__main__``'s)."""
    return any(class_namespace(k).get("__module__") == "__main__" for k in kind.__mro__)


def _own_object(value: Any) -> bool:
    """Neither a number nor a builtin sequence (nor a subclass of one): an object whose
    operators are its class's own code."""
    return exact_len(value) is None and not isinstance(value, _NUMBERS)


_EXACT_FLOAT = 2**50  # below it, lgamma(n + 1) and lgamma(n - k + 1) are distinct floats


def _below(bits: float) -> int:
    """Bits that the number surely has less two (the result itself is checked after)."""
    return int(min(bits, 2.0**62)) - 2 if bits > 2 else 0


def exact_len(value: Any) -> int | None:
    """The true length of a builtin sequence (or subclass); None for anything else."""
    kind = type(value)
    if kind in _TRUE_LENGTH or kind is collections.deque:
        return len(value)  # the builtin's own length
    if kind in _FAST or not issubclass(kind, _SEQUENCES):
        # by the type, in one call: isinstance() also reads the object's __class__ for each
        # class it fails against (a vector class's v * 0.01 asked it six times: pass GC)
        return None
    for base in _SEQUENCES:
        if issubclass(kind, base):
            return int(cast(Any, base).__len__(value))
    return None


def fraction_parts(value: Any) -> tuple[int, int] | None:
    """Numerator and denominator of a Fraction, read from its slots as exact ints."""
    if isinstance(value, fractions.Fraction):
        num = exact_int(fractions.Fraction._numerator.__get__(value))  # type: ignore[attr-defined]
        den = exact_int(fractions.Fraction._denominator.__get__(value))  # type: ignore[attr-defined]
        if num is not None and den is not None:
            return num, den
    return None


def int_parts(value: Any) -> tuple[int, ...]:
    """The exact ints a number is made of (an int; a Fraction's two); () for the rest."""
    number = exact_int(value)
    if number is not None:
        return (number,)
    return fraction_parts(value) or ()


def int_exponent(value: Any) -> int | None:
    """An exponent as an exact int when it is one (an int, or an integral Fraction)."""
    number = exact_int(value)
    if number is not None:
        return number
    parts = fraction_parts(value)
    if parts is not None and parts[1] == 1:
        return parts[0]
    return None


# A conversion between text and bytes takes an encoding and an error handler, named or not.
_CODEC_ARGUMENTS = inspect.Signature(
    [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
        for name, default in (("encoding", "utf-8"), ("errors", "strict"))
    ]
)
# Codecs (by canonical name) that write at most four bytes a character, and a BOM.
_PLAIN_CODEC = re.compile(
    r"ascii|charmap|palmos|utf-(?:8|16|32)(?:-sig|-le|-be)?|cp\d+|iso8859-\d+|mac-[a-z0-9]+"
    r"|koi8-[a-z]|kz1048|ptcp154|hp-roman8|tis-620|big5(?:hkscs)?|euc_[a-z0-9_]+"
    r"|gb(?:2312|k|18030)|johab|shift_jis[a-z0-9_]*"
)
# Error handlers that write at most one character (or four bytes) for what they replace.
_PLAIN_ERRORS = frozenset({"strict", "ignore", "replace", "surrogateescape", "surrogatepass"})


def _nothing(*_: Any) -> None:
    return None


class Arithmetic:
    """``**``, ``*`` and ``<<`` with the result size checked before it is computed."""

    def __init__(self, max_int_digits: int, max_sequence_items: int) -> None:
        self.max_bits = int(max_int_digits * 3.3219280948873626) + 1
        self.max_digits = max_int_digits
        self.max_items = max_sequence_items
        self._specs: dict[str, str] = {}  # format specs checked: f"{x:>8.2f}" in a loop
        # Called with a container an in-place operation is about to change, the operator and
        # the other operand (Classes sets it)
        self.before_change: Callable[[Any, str, Any], None] = _nothing
        # ``binary``'s operators that have checks of their own
        self._checked_binary: dict[str, Callable[[Any, Any], Any]] = {
            "+=": self.add,
            "-=": self.sub,
            "*=": self.mul,
            "**=": self.pow,
            "<<=": self.lshift,
            "/=": self.truediv,
            "//=": self.floordiv,
        }

    def too_big(self) -> IntSizeLimit:
        return IntSizeLimit(
            f"integer result would exceed {self.max_digits} digits (sandbox limit; for a "
            f"remainder, pow(a, b, m) or % at each step keeps it small)"
        )

    def check_bits(self, bits: int) -> None:
        if bits > self.max_bits:
            raise self.too_big()

    def keeps_few(self, deque: collections.deque[Any]) -> bool:
        """A deque whose ``maxlen`` keeps it within the item limit, whatever is added."""
        maxlen = deque_maxlen(deque)
        return maxlen is not None and maxlen <= self.max_items

    def check_items(self, items: int, what: str = "sequence") -> None:
        if items > self.max_items:
            raise SizeLimit(
                f"{what} of {items} items exceeds the sandbox limit of {self.max_items}"
            )

    def codec_arguments(
        self, length: int, args: tuple[Any, ...], kwargs: dict[str, Any], *, decoding: bool
    ) -> tuple[Any, Any]:
        """The ``(encoding, errors)`` of a conversion of ``length`` characters to bytes (or
        bytes to text, ``decoding``), after the most it can write was counted, however it is
        spelled (``s.encode``, ``str.encode(s)``, ``bytes(s, enc, errors)``, ``b.decode``,
        ``str(b, enc, errors)``, a subclass's ``super()``): encoding, an escaping codec or
        error handler writes up to ten bytes a character (``namereplace`` up to 90:
        ``\\N{ARABIC LIGATURE ...}``, red-team pass AJ); decoding, ``backslashreplace`` four
        characters a byte. The plain ones write at most four bytes a character or one
        character a byte: a small factor, left to the memory limit."""
        bound = _CODEC_ARGUMENTS.bind(*args, **exact_kwargs(kwargs))
        encoding = bound.arguments.get("encoding", "utf-8")
        errors = bound.arguments.get("errors", "strict")
        if isinstance(encoding, str) and isinstance(errors, str):  # else the codec's TypeError
            handler = str.__str__(errors)
            if decoding:
                factor = (
                    0 if handler in _PLAIN_ERRORS else 4 if handler == "backslashreplace" else 10
                )
            else:
                try:  # by the codec's own name: an alias ("unicode-1-1-utf-7") is the same codec
                    codec = codecs.lookup(str.__str__(encoding)).name
                except LookupError:
                    codec = "utf-8"  # the conversion refuses it itself
                # any codec but a plain one (escapes, utf-7, the shifting iso2022 and hz,
                # punycode) writes up to ten bytes a character
                factor = 0 if _PLAIN_CODEC.fullmatch(codec) else 10
                if handler in ("xmlcharrefreplace", "backslashreplace"):
                    factor = max(factor, 10)
                elif handler not in _PLAIN_ERRORS:  # namereplace, or one registered by name
                    factor = 90
            if factor:
                self.check_items(length * factor, "decoded text" if decoding else "encoded text")
        return encoding, errors

    def converted(self, made: _Converted) -> _Converted:
        """What an encode or decode made, counted once made. A plain codec writes at most
        four bytes a character, which ``codec_arguments`` leaves to the memory limit, but one
        conversion's output is the next one's input: utf-32, latin-1, utf-32 made 16 times
        the item limit with ok=True (red-team pass FR)."""
        kind: Any = type(made)
        if kind is not str and kind is not bytes and kind is not bytearray:
            return made
        length: int = kind.__len__(cast(Any, made))
        if length > self.max_items:
            self.check_items(length, "text" if kind is str else "encoded text")
        return made

    def pow(self, base: Any, exp: Any, mod: Any = None) -> Any:
        if mod is not None:
            return builtins.pow(base, exp, mod)  # bounded by the modulus
        tb, te = type(base), type(exp)
        if tb is int and te is int:  # i ** 2 in a loop: the checks below, inline (they cost
            # 15 times CPython's time through fraction_parts' ABC tests: pass FW)
            if (
                exp > 1
                and (base > 1 or base < -1)
                and (base.bit_length() - 1) * exp > self.max_bits
            ):
                raise self.too_big()  # before it is made: its size is at least that
            power = base**exp
            if type(power) is int and power.bit_length() > self.max_bits:
                raise self.too_big()
            return power  # (a negative exponent: a float, or ZeroDivisionError)
        if (tb is float and (te is float or te is int)) or (te is float and tb is int):
            # a float, a complex or an OverflowError: never bigger than a float (x ** 2 on a
            # float cost 18 times CPython's: pass EL)
            return base**exp
        exponent = int_exponent(exp)
        if exponent is not None:
            # An int base with a negative exponent gives a float; with a Fraction on either
            # side the result is exact (3 ** Fraction(-N) is 1/3**N).
            exact = fraction_parts(base) is not None or fraction_parts(exp) is not None
            size = abs(exponent) if exact else exponent
            for part in int_parts(base):
                if size > 1 and abs(part) > 1:
                    self.check_bits((part.bit_length() - 1) * size)
        return self.checked_number(base**exp)  # and what came out, whatever made it

    def add(self, a: Any, b: Any) -> Any:
        """``a + b``: a sequence or an int that came out of it is checked (``s + s + ... + s``
        in one expression, ``x = x + x`` in a loop: each step at most doubles, none may pass
        the limit; red-team pass CA doubled an int to 12 times the digit limit)."""
        ta, tb = type(a), type(b)
        if ta is int and tb is int:
            total = a + b
            if total.bit_length() > self.max_bits:  # inline: this is every loop's sum
                raise self.too_big()
            return total
        if (ta is int or ta is float) and (tb is int or tb is float):
            return a + b  # a float, or OverflowError
        return self.checked_number(self._checked(a + b))

    def sub(self, a: Any, b: Any) -> Any:
        """``a - b``: an int that came out of it is checked (``x = x - -x`` doubles as ``+``
        does); anything else takes items out, or is a float."""
        if type(a) is int and type(b) is int:
            difference = a - b
            if difference.bit_length() > self.max_bits:
                raise self.too_big()
            return difference
        return self.checked_number(a - b)

    def room(self, operand: Any, literal: Any, literal_first: bool = False) -> Any:
        """``operand`` itself, once it has room for ``literal`` where the builtin's own ``+``
        will join them: ``s + "literal"`` is compiled to ``_room_(s, "literal") + "literal"``,
        Python's own ``+``, which CPython grows in place when ``s`` is a local stored again
        (through the checked ``_add_``, a loop of 200k steps took 0.9 s, 14 ms before:
        differential pass FT; with no check, one made 360M characters in 0.24 s: red-team
        pass FR). Where the program's own ``__add__`` (``__radd__``, ``literal_first``)
        answers, or the types do not add, what Python does is left as it is (pass FU: a
        10M-item subclass's ``__add__`` answered); one that answers ``NotImplemented`` hands
        the builtin one step, whose exact result is checked at the next."""
        kind = type(operand)
        if kind is str or kind is bytes:  # every loop's case: one test
            if type(literal) is kind and kind.__len__(operand) + len(literal) > self.max_items:
                self.check_items(kind.__len__(operand) + len(literal), kind.__name__)
            return operand
        for text in (str, bytes):
            if type(literal) is text and issubclass(kind, text):
                if literal_first:
                    joins = class_attribute(kind, "__radd__") is None  # (str has none)
                else:
                    joins = class_attribute(kind, "__add__") is vars(text)["__add__"]
                if joins:
                    self._room_for(text.__len__(operand), len(literal), text.__name__)
        return operand

    def adding(self, target: Any, literal: Any) -> Any:
        """``literal`` itself, once ``target`` has room for it where the builtin's own ``+=``
        will add it: ``s += "literal"`` is compiled to ``s += _adding_(s, "literal")``,
        Python's own ``+=`` (see :meth:`room`); a list or deque takes a string's items."""
        kind = type(target)
        if kind is str or kind is bytes:
            self.room(target, literal)
            return literal
        for grown in (list, collections.deque):
            if issubclass(kind, grown):
                if class_attribute(kind, "__iadd__") is vars(grown)["__iadd__"]:
                    self._room_for(grown.__len__(target), len(literal), grown.__name__)
                return literal
        self.room(target, literal)
        return literal

    def _room_for(self, length: int, added: int, what: str) -> None:
        if length + added > self.max_items:
            self.check_items(length + added, what)

    def checked_int(self, number: int) -> int:
        """An exact int made by adding: refused past the limit."""
        if number.bit_length() > self.max_bits:
            raise self.too_big()
        return number

    def apply(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """A call that unpacks (``f(*l, *l, *l)``): its arguments are one tuple, which
        may be many times the longest iterable it unpacked; checked before the call."""
        self.check_items(len(args), "call arguments")
        return func(*args, **kwargs)

    def sized(self, display: Any) -> Any:
        """A display that unpacks two iterables or more (``[*l, *l]``), checked once made."""
        return self._checked(display)

    def sum(self, iterable: Any, /, start: Any = 0) -> Any:
        """``sum``: numbers at C speed, a thousand at a time; anything else added one by one,
        each sum checked. C's ``sum`` adds whatever comes after a start whose ``__add__``
        answers its operand: twenty 10M strings made 200M in one call."""
        if isinstance(start, (str, bytes, bytearray)):
            return builtins.sum(iterable, start)  # its own TypeError: "use ''.join(seq)"
        total = start
        items = iter(iterable)
        while chunk := list(itertools.islice(items, 1024)):
            if (type(total) is int or type(total) is float) and set(map(type, chunk)) <= _FAST:
                total = builtins.sum(chunk, total)  # 1,024 items add ten bits at most
                if type(total) is int:
                    self.checked_int(total)
                continue
            for item in chunk:
                total = self.add(total, item)
        return total

    def mul(self, a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if ta is int and tb is int:  # the common case first, by exact type: nothing to ask
            product = a * b  # of two ints within the limit: twice as long at most
            if product.bit_length() > self.max_bits:
                raise self.too_big()
            return product
        if (ta is float and (tb is float or tb is int)) or (tb is float and ta is int):
            return a * b  # a float (or OverflowError): no bigger than a float
        if ta is float or tb is float:
            # ``v * 0.5`` of a program's vector: a float repeats no sequence (it has no
            # __index__) and is no int to size, so none of the questions below applies
            return self.checked_number(self._checked(a * b))
        ia, ib = exact_int(a), exact_int(b)
        if ia is not None and ib is not None:
            self.check_bits(ia.bit_length() + ib.bit_length() - 1)
        elif ib is not None:
            self._check_repeat(a, ib)
        elif ia is not None:
            self._check_repeat(b, ia)
        elif _repeats(a, b):  # seq * obj: Python's order, by hand (see _repeats)
            return self._checked(self._repeat(a, b, "__rmul__"))
        elif _repeats(b, a):  # obj * seq
            return self._checked(self._repeat(b, a, "__mul__"))
        else:
            fa, fb = fraction_parts(a), fraction_parts(b)
            if fa is not None and fb is not None:
                self.check_bits(fa[0].bit_length() + fb[0].bit_length() - 1)
                self.check_bits(fa[1].bit_length() + fb[1].bit_length() - 1)
        return self.checked_number(self._checked(a * b))

    def _repeat(self, seq: Any, other: Any, method: str) -> Any:
        """``seq`` times ``other``: ``other``'s own ``method`` first, as Python tries it; then
        the count, asked of ``__index__`` once and checked before the repeat."""
        product = _own_operation(other, method, seq)
        if product is NotImplemented:
            times = index_value(other)
            self._check_repeat(seq, times)
            product = seq * times
        return product

    def _check_repeat(self, seq: Any, times: int) -> None:
        length = exact_len(seq)
        if length is not None and times > 0:
            self.check_items(length * times)
        parts = fraction_parts(seq)
        if parts is not None:
            self.check_bits(parts[0].bit_length() + times.bit_length())

    def _checked(self, result: Any) -> Any:
        """Refuse a sequence that got too long anyway (an ``__index__`` that lied)."""
        length = exact_len(result)
        if length is not None:
            self.check_items(length)
        return result

    def growth(self, have: int, items: Any, what: str) -> Any:
        """``items`` as a container that holds ``have`` may grow by them (``extend``, a slice
        assigned): a length C reads as it is is checked; anything else, which C reads through
        its ``__iter__`` (a list subclass's length is not what it yields), is read here once,
        at most one past the room, counted, and what was read is passed on."""
        kind = type(items)
        if kind is memoryview:
            size = items.nbytes
        elif kind in _TRUE_LENGTH:
            size = len(items)
        else:
            items = list(itertools.islice(iter(items), max(self.max_items - have, 0) + 1))
            size = len(items)
        self.check_items(have + size, what)
        return items

    def lshift(self, a: Any, b: Any) -> Any:
        ia, ib = exact_int(a), exact_int(b)
        if ia is not None and ib is not None and ia and ib > 0:
            self.check_bits(ia.bit_length() + ib)
        return a << b

    def inplace(self, op: str, x: Any, y: Any) -> Any:
        if type(x) in _FAST and type(y) in _FAST and op in _NUMBERS_AT_ONCE:
            result = INPLACE[op](x, y)  # total += i: a number no bigger than a bit more,
            if type(result) is int and result.bit_length() > self.max_bits:  # x += x, repeated
                raise self.too_big()
            return result
        try:
            return self._inplace(op, x, y)
        except TypeError as exc:  # CPython names the in-place operator where it refuses
            _name_inplace_operator(exc, op, x, y)  # the operands (differential pass GQ)
            raise

    def _inplace(self, op: str, x: Any, y: Any) -> Any:
        """:meth:`inplace` past its fast path of two ints or floats."""
        if type(x) in _VALUES and type(y) in _VALUES:
            return self.binary(op, x, y)
        self.before_change(x, op, y)  # l *= 0, s -= t, d |= e take items out
        name = _INPLACE_METHODS.get(op)
        if (
            name is not None
            and (_own_object(x) or _programs_method(type(x), name))
            and class_attribute(type(x), name) is not None
        ):
            # a program's object: its own __imul__, __itruediv__... first, as Python does (a
            # loop's v *= 0.5 made new objects where CPython changes each: pass DY); and a
            # program's subclass of a builtin's own (an int subclass's __imul__: pass EE)
            result = getattr(type(x), name)(x, y)
            if result is not NotImplemented:
                return self.checked_number(self._checked(result))
            # NotImplemented: the binary operator, as CPython falls back to it; the in-place
            # path below would ask the same method a second time
            return self.binary(op, x, y)
        if op == "*=":
            ix, iy = exact_int(x), exact_int(y)
            if (
                ix is None
                and iy is None
                and isinstance(x, _REPEATED_IN_PLACE)
                and _own_object(y)
                and inspect.getattr_static(type(y), "__rmul__", None) is None
                and inspect.getattr_static(type(y), "__index__", None) is not None
            ):  # l *= n where n is an object with __index__: still in place (pass DT)
                iy = index_value(y)
            if ix is None and iy is not None:
                self._check_repeat(x, iy)
                x *= iy  # the in-place form keeps list identity
                return x
            return self.mul(x, y)
        if op == "+=":  # x += x doubles: each step checked, not only the memory at the end
            if (type(x) is list or type(x) is collections.deque) and (
                (_own_object(y) and inspect.getattr_static(type(y), "__radd__", None) is not None)
                or _programs_method(type(y), "__radd__")  # a str or list subclass's (pass EE)
            ):  # l += obj: obj's own __radd__ first, as CPython asks it (an exact list has
                # no number slot; a subclass has its inherited __iadd__, which extends);
                # NotImplemented goes on to extend
                result = _own_operation(y, "__radd__", x)
                if result is not NotImplemented:
                    return self.checked_number(self._checked(result))
            if (
                (
                    (isinstance(x, list) and type(x).__iadd__ is list.__iadd__)
                    or (
                        isinstance(x, collections.deque)
                        and type(x).__iadd__ is collections.deque.__iadd__
                        and not self.keeps_few(x)
                    )
                )
                and type(y) is not list
                and type(y) is not tuple
            ):  # list or deque += reads anything else through its __iter__ (a list
                # subclass's length is not what it yields): read here once, counted, and the
                # items passed on
                room = self.max_items - (exact_len(x) or 0)
                y = list(itertools.islice(iter(y), max(room, 0) + 1))
            lx, ly = exact_len(x), exact_len(y)
            if lx is not None and ly is not None:
                self.check_items(lx + ly)
        if op in _OWN_INPLACE and _own_object(x) and exact_len(y) is None:
            # a program's object: its own __itruediv__, __ipow__... first, as Python does
            return self.checked_number(self._checked(_OWN_INPLACE[op](x, y)))
        if op == "%=":  # s %= args formats: checked as s % args is
            return self.percent(x, y)
        if op == "**=":
            return self.pow(x, y)
        if op == "<<=":
            return self.lshift(x, y)
        if op == "/=":
            return self.truediv(x, y)
        if op == "//=":
            return self.floordiv(x, y)
        return INPLACE[op](x, y)

    def binary(self, op: str, x: Any, y: Any) -> Any:
        """``x op y`` for the in-place ``op`` (``"+="`` is ``x + y``), through the same checks
        as the program's own binary operators."""
        checked = self._checked_binary.get(op)
        if checked is not None:
            return checked(x, y)
        if op == "%=":
            return self.percent(x, y)
        return self.checked_number(self._checked(_BINARY[op](x, y)))

    # -- math ----------------------------------------------------------------------------

    # n!, C(n, k) and P(n, k) by the log-gamma function: their size to a few bits, where a
    # coarse bound (n * log2 n) refused math.factorial(3000), 9,131 digits, and
    # comb(10000, 5000) by seven times (the differential pass); what came out is checked too.

    def factorial(self, n: Any) -> int:
        value = index_value(n)
        if value > 1:
            self.check_bits(_below(_log2_factorial(value)))
        return self.checked_number(math.factorial(value))  # type: ignore[no-any-return]

    def comb(self, n: Any, k: Any) -> int:
        total, chosen = index_value(n), index_value(k)
        if 0 <= chosen <= total:
            rest = total - chosen
            if total < _EXACT_FLOAT:
                bits = _log2_factorial(total) - _log2_factorial(chosen) - _log2_factorial(rest)
            else:  # the log-gammas of n and n - k are one float: C(n, k) >= (n / k) ** k
                fewer = min(chosen, rest)
                bits = fewer * (total.bit_length() - 1 - fewer.bit_length())
            self.check_bits(_below(bits))
        return self.checked_number(math.comb(total, chosen))  # type: ignore[no-any-return]

    def perm(self, n: Any, k: Any = None) -> int:
        total = index_value(n)
        chosen = total if k is None else index_value(k)
        if 0 <= chosen <= total:
            if total < _EXACT_FLOAT:
                bits = _log2_factorial(total) - _log2_factorial(total - chosen)
            else:  # P(n, k) >= (n - k + 1) ** k
                bits = chosen * ((total - chosen + 1).bit_length() - 1)
            self.check_bits(_below(bits))
        return self.checked_number(math.perm(total, chosen))  # type: ignore[no-any-return]

    def prod(self, iterable: Iterable[Any], /, *, start: Any = 1) -> Any:
        result = start
        for item in iterable:
            result = self.mul(result, item)
        return result

    def lcm(self, *numbers: Any) -> int:
        result = 1
        for number in numbers:
            value = index_value(number)
            self.check_bits(result.bit_length() + value.bit_length())
            result = math.lcm(result, value)
        return result

    # -- widths --------------------------------------------------------------------------

    def check_width(self, width: Any) -> int:
        value = index_value(width)
        self.check_items(value, "padded string")
        return value

    def check_format_spec(self, spec: Any) -> str:
        """A format specification with no width or precision above the limit, as exact str
        (a short exact one passed is known after: it is checked once)."""
        if type(spec) is str:
            known = self._specs.get(spec)
            if known is not None:
                return known
        if not isinstance(spec, str):
            raise TypeError("format spec must be a str")
        text = str.__str__(spec)
        for digits in _DIGITS.findall(text):
            if len(digits) > 12 or int(digits) > self.max_items:
                raise SizeLimit(f"format width {digits[:20]} exceeds the sandbox limit")
        if type(spec) is str:
            remember(self._specs, text, text, most=1024)
        return text

    def check_strftime(self, fmt: Any) -> str:
        """A strftime format, as exact str, whose output stays within the limit: every
        directive counts its width (glibc pads ``%1270Y`` to 1,270 characters), or the most
        a directive writes without one."""
        if not isinstance(fmt, str):
            raise TypeError("strftime format must be a str")
        text = str.__str__(fmt)
        total = len(text)
        for width in _STRFTIME_DIRECTIVE.findall(text):
            if len(width) > 12:
                raise SizeLimit(f"strftime width {width[:20]} exceeds the sandbox limit")
            total += max(int(width or 0), _STRFTIME_DIRECTIVE_CHARS)
        self.check_items(total, "formatted date")
        return text

    def percent(self, template: Any, args: Any) -> Any:
        """``template % args`` (and ``%=``), dispatched as CPython does, with the builtin's
        formatting (and only it) given measured values (``check_percent``): the program's own
        ``__rmod__`` on a subclass of the template's class is asked first (measuring first had
        swapped the operand for its text, so ``"%s" % S("x")`` never asked ``S.__rmod__``,
        red-team pass EI), then the template's class's ``__mod__``, then, if that is the
        program's own and declines, the operand's ``__rmod__``. A program's method is handed
        the operand itself, never the sandbox's measured objects (pass FE: a str subclass's
        ``__mod__`` was handed the ``_Made`` text of the operand)."""
        if not isinstance(template, (str, bytes, bytearray)):
            return self.checked_number(self._checked(template % args))  # nothing to measure
        if type(template) is str:
            made = _percent_fast(template, args, self.max_items)
            if made is not None:
                return made
        kind, other = type(template), type(args)
        if (
            other is not kind  # Python's own % dispatches (pass FD: int subclasses)
            and any(base is kind for base in TYPE_MRO.__get__(other))
            and _programs_method(other, "__rmod__")
            # its own, not the template's class's inherited (pass FD: B(A) was asked A's)
            and class_attribute(other, "__rmod__") is not class_attribute(kind, "__rmod__")
        ):
            answer = _bound_special(args, "__rmod__")(template)
            if answer is NotImplemented:
                # Declined: the template's class formats, and the operand is not asked again
                # (pass FD: ``%`` dispatched anew and asked it twice, taking its 2nd answer).
                answer = self._template_mod(template, args)
        else:
            answer = self._template_mod(template, args)
            if answer is NotImplemented and other is not kind:
                answer = self._operand_rmod(template, args)
        if answer is NotImplemented:
            left, right = _TYPE_NAME.__get__(kind), _TYPE_NAME.__get__(other)
            raise TypeError(f"unsupported operand type(s) for %: '{left}' and '{right}'")
        return self.checked_number(self._checked(answer))

    def _template_mod(self, template: Any, args: Any) -> Any:
        """The template's class's ``__mod__``: the builtin's formats what was measured; a
        program's own is asked with the operand itself."""
        kind = type(template)
        if kind is str or kind is bytes or kind is bytearray:  # the common case, at once
            # (the slot itself, not ``%``, which would ask the operand's __rmod__ again)
            return kind.__mod__(template, self.check_percent(template, args))
        formats = class_attribute(kind, "__mod__")
        if any(formats is builtin for builtin in _FORMATTING):
            return formats(template, self.check_percent(template, args))
        if _programs_method(type(template), "__mod__"):
            return _bound_special(template, "__mod__")(args)
        return NotImplemented  # a library's, or none: not called with unmeasured values

    def _operand_rmod(self, template: Any, args: Any) -> Any:
        """The operand's ``__rmod__``, after the template's class's own ``__mod__`` declined: a
        str's (bytes', bytearray's) formats the template when it is one too (what C's
        ``unicode_mod`` does), measured; a program's own is asked; a library's is not."""
        reflected = class_attribute(type(args), "__rmod__")
        for family, builtin, formats in _FAMILIES:
            if reflected is builtin:
                if not isinstance(template, family):
                    return NotImplemented
                return formats(template, self.check_percent(template, args))
        if _programs_method(type(args), "__rmod__"):
            return _bound_special(args, "__rmod__")(template)
        return NotImplemented

    def check_percent(self, template: Any, args: Any) -> Any:
        """``args`` for ``template % args``, each value read once, and the most the result
        can hold checked before anything is formatted: the template and every field at its
        widest, widths and precisions (``*`` ones taken from ``args``) included. Twenty
        fields of a 100,000-character value would otherwise be 2M characters past nothing.
        The answer holds what was measured (a field's text already made, a mapping's values
        in an exact dict), so a ``__str__``, ``__getitem__`` or ``__index__`` asked again by
        the formatting cannot answer longer than it did here."""
        text = str.__str__(template) if isinstance(template, str) else None
        if text is None and isinstance(template, (bytes, bytearray)):
            text = bytes(template).decode("latin-1")
        if text is None:
            return args
        in_bytes = isinstance(template, (bytes, bytearray))
        takes = (tuple, str, bytes, bytearray) if in_bytes else (tuple, str)
        queue = list(tuple.__iter__(args)) if isinstance(args, tuple) else [args]
        mapping: dict[Any, list[Any]] | None = None
        read: dict[Any, Any] = {}  # each name's value, asked of the mapping once
        loose = False  # a field without a name was formatted
        position = 0
        total = len(text)
        try:
            specs = list(percent_specs(text))
        except IncompleteKey:
            if isinstance(args, takes) or not hasattr(type(args), "__getitem__"):
                return args  # no mapping: the formatting's own TypeError comes first
            raise ValueError("incomplete format key") from None  # CPython's, as it is
        for key, width, precision, conversion in specs:
            sizes = [0, 0]
            for slot, field in enumerate((width, precision)):
                if field == "*":
                    if position < len(queue):
                        if not isinstance(queue[position], int):  # C takes an int only,
                            raise TypeError("* wants int")  # never __index__ (pass GJ)
                        sizes[slot] = self.check_width(int.__index__(queue[position]))
                        queue[position] = sizes[slot]
                    position += 1
                elif field:
                    self.check_format_spec(field)
                    sizes[slot] = int(field)
            if conversion in ("%", "") and key is None:
                continue
            if key is not None:
                if isinstance(args, takes) or not hasattr(type(args), "__getitem__"):
                    # not what Python takes for a mapping (a tuple or a string is not one):
                    # its own "format requires a mapping" (pass EH: KeyError), with what
                    # was measured so far
                    return tuple(queue) if isinstance(args, tuple) else queue[0]
                if loose:
                    raise TypeError(_MIXED_FIELDS)
                name: Any = key.encode("latin-1") if in_bytes else key
                if mapping is None:
                    mapping = {}
                if name not in read:
                    # what the lookup raises is what Python's formatting raises (pass EH: a
                    # list's TypeError became a KeyError)
                    read[name] = args[name]
                if conversion in ("%", ""):  # "%(k)%", a "%(k)" at the end: C reads k, then
                    mapping.setdefault(name, []).append(None)  # refuses the field (pass FF)
                    continue
                # made for this field's conversion (pass FE: "%(a)r %(a)s" showed the repr
                # twice, and "%(x)s %(x).2f" of a Fraction refused the first one's text)
                value = _made_field(conversion, read[name], in_bytes)
                mapping.setdefault(name, []).append(value)
            elif mapping is not None:  # CPython's own answer, raised here: nothing is left
                raise TypeError("not enough arguments for format string")
            elif position < len(queue):
                loose = True
                value = queue[position] = _made_field(conversion, queue[position], in_bytes)
                position += 1
            else:
                continue
            size = _field_size(conversion, value, sizes[1], bool(precision), in_bytes)
            total += max(sizes[0], size)
            if total > self.max_items:  # at once: a million fields are not all measured
                self.check_items(total, "formatted string")
        self.check_items(total, "formatted string")
        if mapping is not None:
            if all(len(made) == 1 for made in mapping.values()):  # each name in one field
                return {name: made[0] for name, made in mapping.items()}
            return _Fields(mapping)
        return tuple(queue) if isinstance(args, tuple) else queue[0]

    def checked_number(self, result: Any) -> Any:
        """Refuse a number past the int limit, checked after an operation that can at most
        square its operands' size (Fraction ``/``, ``//``, ``%``, ``divmod``, constructors)."""
        if not issubclass(type(result), _INT_PARTS):  # by the class: see exact_len
            return result
        for part in int_parts(result):
            self.check_bits(part.bit_length())
        return result

    def checked_parts(self, parts: tuple[Any, ...]) -> tuple[Any, ...]:
        """Each number of a tuple checked (``divmod``, an exact ratio), the tuple returned."""
        for part in parts:
            self.checked_number(part)
        return parts

    def truediv(self, a: Any, b: Any) -> Any:
        """``a / b``; a Fraction result is checked (``f / (1 / f)`` squares ``f``); of two ints
        or a float, a float."""
        if type(a) is float or type(b) is float or (type(a) is int and type(b) is int):
            return a / b
        return self.checked_number(a / b)

    def floordiv(self, a: Any, b: Any) -> Any:
        """``a // b``; checked like ``/`` (``n // Fraction(1, n)`` is ``n * n``); of two ints
        or a float, no bigger than what it divides."""
        if type(a) is float or type(b) is float or (type(a) is int and type(b) is int):
            return a // b
        return self.checked_number(a // b)

    def divmod(self, a: Any, b: Any) -> Any:
        result = divmod(a, b)  # a program's __divmod__/__rdivmod__ answers what it likes
        if type(result) is tuple:
            return self.checked_parts(result)
        return self.checked_number(result)

    def round(self, number: Any, ndigits: Any = None) -> Any:
        """``round``: a Fraction rounds through ``10 ** ndigits``, an int to negative digits
        through ``10 ** -ndigits``, and so may a program's class that borrows their
        ``__round__``; a float (which clamps the digits) or a Decimal (its context's
        precision) never builds such a power, nor does an int to digits >= 0 (itself): those
        take any digits, as in CPython (pass FC: ``round(7, 20000)`` was refused)."""
        if ndigits is None:
            return self.checked_number(builtins.round(number))
        digits = index_value(ndigits)
        kind = type(number)
        itself = (kind is int or kind is bool) and digits >= 0
        bounded = kind is float or kind is decimal.Decimal or itself
        if abs(digits) > self.max_digits and not bounded:
            raise IntSizeLimit(f"round() to {digits} digits exceeds the sandbox limit")
        return self.checked_number(builtins.round(number, digits))


# CPython formats the mapping itself into a field without a name before the first named one:
# what the formatting would read there is the measured mapping, not the program's (pass FF: the
# sandbox's own made mapping was written out, unmeasured). One after a named field is an error.
_MIXED_FIELDS = (
    "a % format mixing %(name) fields with fields without a name is not available in the "
    "sandbox: name every field, or format the mapping with a separate %"
)


class _Fields(dict[Any, Any]):
    """A ``%`` mapping's values as the builtin's formatting reads them: for each name, the
    values made for its fields, handed out in the template's order (the formatting asks the
    mapping once per field, in order). Never handed to the program's code."""

    __slots__ = ()

    def __getitem__(self, name: Any) -> Any:
        made: list[Any] = dict.__getitem__(self, name)
        return made.pop(0) if len(made) > 1 else made[0]


class _Made:
    """A ``%s``/``%r``/``%a`` field's text, made once: formatted again, it is that text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def _made_field(conversion: str, value: Any, in_bytes: bool) -> Any:
    """``value`` as the field ``%conversion`` will read it, asked of the value once: its
    text made (``str()``, ``repr()``, ``ascii()``; a bytes template's bytes), a number as
    an exact int or float. What the formatting would refuse is passed on for it to refuse."""
    if conversion in "sb" and in_bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            with memoryview(value) as view:
                return view.tobytes()
        if hasattr(type(value), "__bytes__"):
            made = bytes(value)
            return made if type(made) is bytes else bytes.__bytes__(made)
        return value
    if conversion in "sra":
        if conversion == "s" and type(value) is str:
            return value
        if conversion == "s":
            shown = str(value)
        elif conversion == "r" and not in_bytes:
            shown = repr(value)
        else:  # a bytes template's %r is its %a
            shown = ascii(value)
        return _Made(str.__str__(shown))
    kind = type(value)
    if kind is int or kind is float or isinstance(value, (str, bytes, bytearray)):
        return value
    if conversion in "diu":  # as C's PyNumber_Long reads it (pass GJ: __index__ was first)
        if isinstance(value, int):
            return int.__index__(value)  # an int subclass: its own value, no method asked
        if hasattr(kind, "__int__") or hasattr(kind, "__index__"):
            return int.__index__(int(value))  # __int__ first, then __index__: asked once
    if isinstance(value, float):
        return float.__float__(value)
    if conversion in "oxXc" and hasattr(kind, "__index__"):
        return index_value(value)
    if conversion in "eEfFgG" and (hasattr(kind, "__float__") or hasattr(kind, "__index__")):
        return float.__float__(float(value))
    return value


def _field_size(
    conversion: str, value: Any, precision: int, has_precision: bool, in_bytes: bool
) -> int:
    """The most one ``%`` field can write for ``value`` (before its width), measured without
    making it where the value says its own length (a str, bytes in a bytes template)."""
    if conversion in "sb" and in_bytes and isinstance(value, (bytes, bytearray)):
        size = len(bytes(value))  # b"%s" % b"..." writes the bytes themselves
    elif conversion == "s" and type(value) is str:
        size = str.__len__(value)
    elif conversion == "s" and type(value) in (bytes, bytearray):
        size = 4 * len(value) + 14  # str() of bytes: b'...' or bytearray(b'...'), escaped
    elif conversion in "sra":
        try:
            shown = (
                str(value)
                if conversion == "s"
                else repr(value)
                if conversion == "r"
                else ascii(value)
            )
        except Exception:
            return 0  # the formatting itself raises
        size = str.__len__(shown) if isinstance(shown, str) else 0
    else:
        size = -1
    if size >= 0:
        return min(size, precision) if has_precision else size
    if conversion == "c":
        return 1
    number = exact_int(value)
    if number is not None:  # octal is the longest: a digit per 3 bits
        return number.bit_length() // 3 + 4 + precision
    return 330 + precision  # a float: at most 309 digits before the point


# The fast paths of ``str.format`` (policy.py) and ``%`` (``Arithmetic.percent``): a
# template whose fields only name a value, with no width or precision past four digits, given
# exact ints, floats, strs, bools or None, goes to str's own formatting once what it can make
# is bounded within the limit: such a call reads nothing of the program's and runs none of
# its code (measured field by field in Python, ``'{} {:>5}'.format(a, b)`` took 25-30 times
# CPython's time and ``'%d %5d' % (a, b)`` 20 times). Anything else is measured as ever.
_FIELD_SLACK = 10_000  # what a four-digit width or precision may add to a field's own text
_FLOAT_TEXT = 1_000  # the most a float's own digits take: 309, separators, sign, exponent
_KEPT_TEXT_MAX = 1_000  # what ``remember`` keeps: short templates only


def plain_field_bound(value: Any, escaped: bool) -> int | None:
    """The most one fast-path field writes for ``value``, its width and precision included;
    None for a value that is not an exact int, float, str, bool or None. ``escaped``: the
    field may be ``!r``/``!a`` (``%r``/``%a``), which writes a character as at most ten."""
    kind = type(value)
    if kind is str:
        size = str.__len__(value) * (10 if escaped else 1) + 2
    elif kind is int or kind is bool:
        size = 2 * int.bit_length(value) + 8  # binary, with separators, sign and prefix
    elif kind is float or value is None:
        size = _FLOAT_TEXT
    else:
        return None
    return size + _FIELD_SLACK


def remember(cache: dict[str, Any], text: str, answer: Any, most: int = 512) -> None:
    """Keep ``answer`` for the exact str ``text`` in a cache of at most ``most`` entries, of
    the run's own process (a fresh child: nothing outlives the run); never for a long text,
    which the cache would keep alive."""
    if len(text) <= _KEPT_TEXT_MAX:
        if len(cache) >= most:
            cache.clear()
        cache[text] = answer


_PERCENT_PLANS: dict[str, bool] = {}


def _percent_plain(text: str) -> bool:
    """Whether ``text``'s conversions name no key, take no ``*`` and no long number."""
    plain = _PERCENT_PLANS.get(text)
    if plain is None:
        try:
            plain = all(
                key is None
                and "*" not in (width + precision)
                and len(width) <= 4
                and len(precision) <= 4
                for key, width, precision, _ in percent_specs(text)
            )
        except IncompleteKey:
            plain = False
        remember(_PERCENT_PLANS, text, plain)
    return plain


def _percent_fast(text: str, args: Any, limit: int) -> Any:
    """``text % args`` when ``_percent_plain`` allows it and what it can make is within
    ``limit``; None otherwise. Each value is formatted once (positional fields only)."""
    values = args if type(args) is tuple else (args,)
    total = len(text)
    for value in values:
        size = plain_field_bound(value, escaped=True)  # (which conversion reads it: any)
        if size is None:
            return None
        total += size
        if total > limit:
            return None
    if not _percent_plain(text):
        return None
    return str.__mod__(text, args)


class IncompleteKey(ValueError):
    """A ``%(`` whose key the template ends inside."""


def percent_specs(text: str) -> Iterable[tuple[str | None, str, str, str]]:
    """``(key, width, precision, conversion)`` of every ``%`` conversion, scanned the way
    CPython does, nested parentheses in a mapping key included (``key`` is None without one;
    ``conversion`` is empty for one the text ends before)."""
    index, size = 0, len(text)
    while (index := text.find("%", index)) >= 0:
        index += 1
        key = None
        if index < size and text[index] == "(":
            depth, index = 1, index + 1
            start = index
            while index < size and depth:
                depth += {"(": 1, ")": -1}.get(text[index], 0)
                index += 1
            if depth:  # the text ends inside the key: CPython's ValueError (pass GJ)
                raise IncompleteKey("incomplete format key")
            key = text[start : index - 1]
        while index < size and text[index] in "-#0 +":
            index += 1
        width, index = _spec_number(text, index)
        precision = ""
        if index < size and text[index] == ".":
            precision, index = _spec_number(text, index + 1)
            precision = precision or "0"
        while index < size and text[index] in "hlL":
            index += 1
        if index < size:
            yield key, width, precision, text[index]
            index += 1
        else:  # "... %(k)" at the end: C reads the key before it finds nothing to convert
            yield key, width, precision, ""


def _spec_number(text: str, index: int) -> tuple[str, int]:
    if index < len(text) and text[index] == "*":
        return "*", index + 1
    start = index
    while index < len(text) and text[index].isdigit():
        index += 1
    return text[start:index], index


def _repeats(seq: Any, other: Any) -> bool:
    """``seq * other`` may repeat a builtin sequence by ``other.__index__()``: ``seq``'s
    class multiplies as the builtin does, ``other`` is neither int nor sequence. Python then
    tries ``other``'s own multiplication, and repeats only if it answers NotImplemented:
    :meth:`Arithmetic.mul` does the same by hand, so that the count is asked once and
    checked before anything is built (CPython asks it after ``__rmul__`` declines, and the
    sequence is made before any check could see it)."""
    if exact_len(seq) is None or exact_len(other) is not None or exact_int(other) is not None:
        return False
    kind = type(seq)
    base = next(b for b in _SEQUENCES if isinstance(seq, b))
    builtin = all(
        getattr(kind, name, None) is getattr(base, name, None) for name in ("__mul__", "__rmul__")
    )
    return builtin and hasattr(type(other), "__index__")


# The builtins' own %-formatting (identity: a class's __mod__ that is one of these formats),
# and their reflected slots (C's unicode_mod, bytes_mod, bytearray_mod).
_FORMATTING = (str.__mod__, bytes.__mod__, bytearray.__mod__)
# Each text class, its own ``__rmod__`` and the ``__mod__`` that formats with it.
_FAMILIES = tuple(
    (kind, vars(kind)["__rmod__"], formats)
    for kind, formats in zip((str, bytes, bytearray), _FORMATTING, strict=True)
)


def _bound_special(obj: Any, name: str) -> Any:
    """``obj``'s special method bound as CPython's operator slots bind it: looked up on its
    class (past any class's own names), then bound through the descriptor's class (a
    function binds ``obj``; a staticmethod does not)."""
    found = class_attribute(type(obj), name)
    bind = class_attribute(type(found), "__get__")
    return found if bind is None else bind(found, obj, type(obj))


def _own_operation(obj: Any, name: str, other: Any) -> Any:
    """``obj``'s own ``__mul__``/``__rmul__`` with ``other``, as Python would call it, or
    NotImplemented when its class has none."""
    method = getattr(type(obj), name, None)
    return NotImplemented if method is None else method(obj, other)


def index_value(value: Any) -> int:
    """``operator.index`` as an exact int (an int subclass cannot lie about its value)."""
    number = exact_int(value)
    if number is not None:
        return number
    return int.__index__(operator.index(value))


SIZED_METHOD_NAMES = (
    "ljust", "rjust", "center", "zfill", "expandtabs", "replace", "to_bytes", "hex",
)  # fmt: skip


def sized_method(arith: Arithmetic, base: Any, name: str, method: Any) -> Any:
    """A guarded version of a width-taking method, bound or unbound; None when not sized.

    ``method`` is what attribute access produced: ``"x".ljust`` (bound) or ``str.ljust``.
    Every size argument is turned into an exact int once, checked, and that int (not the
    program's object, which could answer differently when asked again) is what the real
    method receives.
    """
    if name not in SIZED_METHOD_NAMES:
        return None
    bound = _bound(method)

    def guarded(*args: Any, **kwargs: Any) -> Any:
        kwargs = exact_kwargs(kwargs)
        call = list(args)
        target = method.__self__ if bound else (call[0] if call else None)
        first = 0 if bound else 1  # index of the first argument after the object
        if name in ("ljust", "rjust", "center", "zfill"):
            if len(call) > first:
                call[first] = arith.check_width(call[first])
            if "width" in kwargs:
                kwargs["width"] = arith.check_width(kwargs["width"])
        elif name == "expandtabs":
            size = kwargs.pop("tabsize", call[first] if len(call) > first else 8)
            tabsize = max(0, index_value(size))
            del call[first:]
            tabs = base.count(target, "\t" if base is str else b"\t")
            arith.check_items((exact_len(target) or 0) + tabs * tabsize, "string")
            kwargs["tabsize"] = tabsize
        elif name == "replace":
            rest = call[first:]
            if len(rest) > 2:
                rest[2] = index_value(rest[2])
                call[first + 2] = rest[2]
            if "count" in kwargs:
                kwargs["count"] = index_value(kwargs["count"])
            if len(rest) >= 2:
                old_len, new_len = exact_len(rest[0]) or 0, exact_len(rest[1]) or 0
                length = exact_len(target) or 0
                hits = base.count(target, rest[0]) if old_len else length + 1
                count = rest[2] if len(rest) > 2 else kwargs.get("count", -1)
                if count >= 0:
                    hits = min(hits, count)
                arith.check_items(length + hits * max(0, new_len - old_len), "string")
        elif name == "to_bytes":
            if len(call) > first:
                call[first] = index_value(call[first])
                length = call[first]
            else:
                length = kwargs["length"] = index_value(kwargs.get("length", 1))
            arith.check_items(length, "bytes")
        elif name == "hex":  # two digits a byte, and a separator between groups
            separated = len(call) > first or "sep" in kwargs
            arith.check_items((3 if separated else 2) * (exact_len(target) or 0), "string")
        return method(*call, **kwargs)

    return guarded


def _bound(method: Any) -> bool:
    return getattr(method, "__self__", None) is not None and not isinstance(method.__self__, type)


# The binary operator an in-place one falls back to, for those ``Arithmetic.binary`` does not
# check by hand
_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    ">>=": operator.rshift,
    "|=": operator.or_,
    "^=": operator.xor,
    "&=": operator.and_,
    "@=": operator.matmul,
}

INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "/=": operator.itruediv,
    "%=": operator.imod,
    ">>=": operator.irshift,
    "|=": operator.ior,
    "^=": operator.ixor,
    "&=": operator.iand,
    "//=": operator.ifloordiv,
    "@=": operator.imatmul,
}


_FRACTION_OPERATIONS = ("add", "sub", "mul", "truediv", "floordiv", "mod", "divmod", "pow")


def bound_fractions(arith: Arithmetic) -> None:
    """Make every ``Fraction`` operation in this process refuse a result past the int limit.

    ``a + b`` is left to Python in a program (a hook on every addition would cost every loop),
    and library code adds fractions in C (``sum``, ``statistics``' exact sums): a sum of
    fractions whose denominators share no factor multiplies them, so 32 fractions of 33,000 bits
    summed in pairs made a denominator of a million bits in 0.9 s (red-team pass W). The class's
    own operators check what they made, whoever calls them. Only the sandbox's processes call
    this (the template, before it forks): the service's ``Fraction`` is Python's own."""
    cls = fractions.Fraction
    for name in _FRACTION_OPERATIONS:
        for method_name in (f"__{name}__", f"__r{name}__"):
            method = vars(cls)[method_name]
            if getattr(method, "_bounded", False):
                continue
            setattr(cls, method_name, _bounded_operation(method, arith))


def _bounded_operation(method: Callable[..., Any], arith: Arithmetic) -> Any:
    def operation(a: Any, b: Any, *modulo: Any) -> Any:
        result = method(a, b, *modulo)
        if type(result) is tuple:  # divmod
            return arith.checked_parts(result)
        return arith.checked_number(result)

    operation.__name__ = method.__name__
    operation.__qualname__ = method.__qualname__
    operation._bounded = True  # type: ignore[attr-defined]
    return operation
