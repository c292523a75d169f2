"""The language layer at run time: the guards RestrictedPython's output calls, and the builtins.

Runs only inside a worker process. Everything here assumes the program is hostile; the rules:

* **No name or attribute starting with ``_``**, ever: refused at compile time by RestrictedPython
  and again at run time by :func:`guarded_getattr` (``getattr(x, '__class__')``, a ``str``
  subclass that lies in ``startswith``), and in format strings (:func:`safe_format`).
* **No C-level attribute lookup by a user-chosen name**: ``str.format``/``format_map`` go
  through a formatter that uses the guards; ``operator.attrgetter``/``methodcaller``,
  ``string.Formatter``, ``vars``, ``dir``, ``globals``, ``type(name, bases, ns)`` are not
  available (see ``modules.py`` for what each allowed module exposes).
* **Attribute writes only on objects the program created** (instances of its own classes and
  the classes themselves); item writes only on plain containers. Nothing shared between runs
  can be mutated.
* **Big numbers fail fast**: ``**``, ``*`` and ``<<`` (also in augmented assignment and the
  ``pow`` builtin) check the size of the result before computing it.

Compilation (and its bounds) is in ``compiler.py``.
"""

from __future__ import annotations

import _string  # type: ignore[import-not-found]  # CPython's format-string field parser
import builtins
import collections
import decimal
import operator
import string
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

FILENAME = "<sandbox>"

# Attribute names refused even though they do not start with "_": frames, code, and the MRO
# (``type.mro()`` would hand out ``object``'s relatives).
DENIED_ATTRIBUTES = frozenset(INSPECT_ATTRIBUTES) | frozenset(
    "mro f_locals f_globals gi_frame cr_frame ag_frame tb_frame func_globals func_code "  # noqa: SIM905
    "im_func im_self".split(" ")
)


class SandboxSecurityError(Exception):
    """A program tried something the sandbox refuses (reported as ``SecurityError``)."""


class ResourceLimit(Exception):
    """A sandbox limit stopped the program; ``limit`` names it (see ``result.Limit``)."""

    limit = "memory"


class IntSizeLimit(ResourceLimit, OverflowError):
    limit = "int_size"


class SizeLimit(ResourceLimit, MemoryError):
    limit = "memory"


class OutputLimit(ResourceLimit):
    limit = "output"


def _check_attr_name(name: object) -> str:
    if type(name) is not str:  # a str subclass could lie in startswith/__eq__
        raise TypeError("attribute name must be a str")
    if name.startswith("_") or name in DENIED_ATTRIBUTES:
        raise SandboxSecurityError(f"access to attribute {name!r} is not allowed in the sandbox")
    return name


_MISSING = object()


def guarded_getattr(obj: Any, name: Any, default: Any = _MISSING) -> Any:
    name = _check_attr_name(name)
    if name in ("format", "format_map") and (
        isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))
    ):
        return _bound_format(obj, name)
    if isinstance(obj, string.Formatter):
        raise SandboxSecurityError("string.Formatter is not available in the sandbox")
    if default is _MISSING:
        return getattr(obj, name)
    return getattr(obj, name, default)


def guarded_hasattr(obj: Any, name: Any) -> bool:
    try:
        guarded_getattr(obj, name)
    except (AttributeError, SandboxSecurityError):
        return False
    return True


def guarded_getitem(obj: Any, key: Any) -> Any:
    return obj[key]


class _SafeFormatter(string.Formatter):
    """``str.format`` whose field lookups (``{0.attr}``, ``{0[key]}``) go through the guards."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            obj = guarded_getattr(obj, key) if is_attr else guarded_getitem(obj, key)
        return obj, first


_FORMATTER = _SafeFormatter()


def safe_format(template: str, /, *args: Any, **kwargs: Any) -> str:
    if not isinstance(template, str):
        raise TypeError("format() needs a str")
    return _FORMATTER.vformat(str(template), args, kwargs)


def safe_format_map(template: str, mapping: Any, /) -> str:
    if not isinstance(template, str):
        raise TypeError("format_map() needs a str")
    return _FORMATTER.vformat(str(template), (), mapping)


def _bound_format(obj: Any, name: str) -> Callable[..., str]:
    func = safe_format if name == "format" else safe_format_map
    if isinstance(obj, type):
        return func  # str.format(template, ...): unbound form
    return lambda *args, **kwargs: func(obj, *args, **kwargs)


# Classes created by sandboxed programs: only they and their instances accept attribute writes.
_USER_CLASSES: weakref.WeakSet[type] = weakref.WeakSet()
_ITEM_WRITABLE = (dict, list, bytearray, collections.deque)


def sandbox_metaclass(
    name: str, bases: tuple[Any, ...], namespace: dict[str, Any], **kw: Any
) -> type:
    """``__metaclass__`` for every ``class`` statement: records the class as the program's own."""
    for base in bases:
        if not isinstance(base, type):
            raise TypeError("class bases must be classes")
    cls = type(name, bases, namespace, **kw)
    _USER_CLASSES.add(cls)
    return cls


def is_user_object(obj: Any) -> bool:
    if isinstance(obj, type):
        return obj in _USER_CLASSES
    return type(obj) in _USER_CLASSES


class _WriteRefused:
    """What ``_write_`` returns for objects the program may not modify."""

    __slots__ = ("_target",)
    _target: Any

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)

    def _refuse(self, *_args: Any) -> None:
        kind = type(self._target).__name__
        raise SandboxSecurityError(f"{kind} objects cannot be modified in the sandbox")

    __setattr__ = __delattr__ = __setitem__ = __delitem__ = _refuse


class _ItemWriter:
    """Item writes on a plain container; attribute writes refused."""

    __slots__ = ("_target",)
    _target: Any

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._target[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._target[key]

    def __setattr__(self, name: str, value: Any) -> None:
        raise SandboxSecurityError(f"cannot set attributes on {type(self._target).__name__}")

    __delattr__ = __setattr__  # type: ignore[assignment]


class _ContextWriter:
    """Attribute writes on a decimal context (each run has its own), precision capped."""

    __slots__ = ("_target",)
    _target: Any
    max_prec = 10_000
    _FIELDS = frozenset({"prec", "rounding", "Emin", "Emax", "capitals", "clamp"})

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._FIELDS:
            raise SandboxSecurityError(f"cannot set {name!r} on a decimal context")
        if name == "prec":
            check_decimal_prec(value, self.max_prec)
        setattr(self._target, name, value)

    def __delattr__(self, name: str) -> None:
        raise SandboxSecurityError("cannot delete decimal context attributes")


def check_decimal_prec(prec: Any, max_prec: int) -> None:
    if isinstance(prec, int) and prec > max_prec:
        raise IntSizeLimit(f"decimal precision above {max_prec} digits (sandbox limit)")


def guarded_write(obj: Any) -> Any:
    if type(obj) in (dict, list) or is_user_object(obj):
        return obj
    if type(obj) is decimal.Context:
        return _ContextWriter(obj)
    if isinstance(obj, _ITEM_WRITABLE):
        return _ItemWriter(obj)
    return _WriteRefused(obj)


def guarded_setattr(obj: Any, name: Any, value: Any) -> None:
    setattr(guarded_write(obj), _check_attr_name(name), value)


def guarded_delattr(obj: Any, name: Any) -> None:
    delattr(guarded_write(obj), _check_attr_name(name))


class Arithmetic:
    """``**``, ``*`` and ``<<`` with the result size checked before it is computed."""

    def __init__(self, max_int_digits: int, max_sequence_items: int) -> None:
        self.max_bits = int(max_int_digits * 3.3219280948873626) + 1
        self.max_digits = max_int_digits
        self.max_items = max_sequence_items
        _ContextWriter.max_prec = max_int_digits

    def _too_big(self) -> IntSizeLimit:
        return IntSizeLimit(f"integer result would exceed {self.max_digits} digits (sandbox limit)")

    def pow(self, base: Any, exp: Any, mod: Any = None) -> Any:
        if mod is not None:
            return builtins.pow(base, exp, mod)
        if isinstance(exp, int) and exp > 1:
            for part in _int_parts(base):
                if abs(part) > 1 and (part.bit_length() - 1) * exp > self.max_bits:
                    raise self._too_big()
        return base**exp

    def mul(self, a: Any, b: Any) -> Any:
        if isinstance(a, int) and isinstance(b, int):
            if a.bit_length() + b.bit_length() > self.max_bits + 1:
                raise self._too_big()
        elif isinstance(b, int):
            self._check_repeat(a, b)
        elif isinstance(a, int):
            self._check_repeat(b, a)
        return a * b

    def _check_repeat(self, seq: Any, times: int) -> None:
        sequences = (str, bytes, bytearray, list, tuple, collections.deque)
        if isinstance(seq, sequences) and times > 0 and len(seq) * times > self.max_items:
            raise SizeLimit(
                f"sequence of {len(seq) * times} items exceeds the sandbox limit of "
                f"{self.max_items}"
            )

    def lshift(self, a: Any, b: Any) -> Any:
        if isinstance(a, int) and isinstance(b, int) and a and b > 0:  # noqa: SIM102
            if a.bit_length() + b > self.max_bits:
                raise self._too_big()
        return a << b

    def inplace(self, op: str, x: Any, y: Any) -> Any:
        if op == "*=":
            self.mul(x, y)  # checks only; the in-place form keeps list identity
            x *= y
            return x
        if op == "**=":
            return self.pow(x, y)
        if op == "<<=":
            return self.lshift(x, y)
        return _INPLACE[op](x, y)

    def aug_item(self, obj: Any, key: Any, op: str, value: Any) -> None:
        guarded_write(obj)[key] = self.inplace(op, guarded_getitem(obj, key), value)

    def aug_attr(self, obj: Any, name: str, op: str, value: Any) -> None:
        guarded_setattr(obj, name, self.inplace(op, guarded_getattr(obj, name), value))


def _int_parts(value: Any) -> Iterator[int]:
    if isinstance(value, int):
        yield value
    else:  # Fraction-like
        num, den = getattr(value, "numerator", None), getattr(value, "denominator", None)
        if isinstance(num, int) and isinstance(den, int):
            yield num
            yield den


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
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


# --------------------------------------------------------------------------- builtins

_PLAIN_BUILTINS = (  # noqa: SIM905
    "abs all any ascii bin bool bytes callable chr classmethod complex dict divmod enumerate "
    "filter float format frozenset hash hex int isinstance issubclass iter len list map max min "
    "next object oct ord property range repr reversed round set slice sorted staticmethod str "
    "sum super tuple zip None True False Ellipsis NotImplemented"
).split(" ")

_EXCEPTIONS = [
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException) and not name.startswith("_")
]


def safe_type(obj: Any, *more: Any) -> type:
    """``type(x)``; the three-argument form (class creation past the guards) is refused."""
    if more:
        raise SandboxSecurityError("type() with three arguments is not available")
    return type(obj)


def make_builtins(arith: Arithmetic, importer: Callable[..., Any]) -> dict[str, Any]:
    names: dict[str, Any] = {name: getattr(builtins, name) for name in _PLAIN_BUILTINS}
    names.update({name: getattr(builtins, name) for name in _EXCEPTIONS})
    names.update(
        __build_class__=builtins.__build_class__,
        __import__=importer,
        getattr=guarded_getattr,
        hasattr=guarded_hasattr,
        setattr=guarded_setattr,
        delattr=guarded_delattr,
        pow=arith.pow,
        type=safe_type,
    )
    return names


class PrintSink:
    """The program's stdout: one capped buffer per run, shared by every function's ``print``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parts: list[str] = []
        self.size = 0
        self.overflowed = False

    def write(self, text: str) -> None:
        if self.overflowed:
            raise OutputLimit(f"output exceeds {self.max_bytes} bytes (sandbox limit)")
        room = self.max_bytes - self.size
        encoded = len(text.encode("utf-8", "replace"))
        if encoded > room:
            self.parts.append(text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore"))
            self.size = self.max_bytes
            self.overflowed = True
            raise OutputLimit(f"output exceeds {self.max_bytes} bytes (sandbox limit)")
        self.parts.append(text)
        self.size += encoded

    def text(self) -> str:
        return "".join(self.parts)


class _PrintCollector:
    """What RestrictedPython's ``_print_`` returns for each scope that prints."""

    __slots__ = ("_sink",)

    def __init__(self, sink: PrintSink) -> None:
        self._sink = sink

    def _call_print(
        self, *objects: Any, sep: Any = " ", end: Any = "\n", file: Any = None, flush: bool = False
    ) -> None:
        if file is not None:
            raise SandboxSecurityError("print(file=...) is not available in the sandbox")
        sep = " " if sep is None else sep
        end = "\n" if end is None else end
        if not isinstance(sep, str) or not isinstance(end, str):
            raise TypeError("sep and end must be str")
        self._sink.write(sep.join(str(obj) for obj in objects) + end)

    def __call__(self) -> str:  # the ``printed`` variable
        return self._sink.text()


def make_globals(
    builtins_dict: dict[str, Any], arith: Arithmetic, sink: PrintSink
) -> dict[str, Any]:
    """A fresh namespace for one run, with every hook RestrictedPython's output calls."""
    return {
        "__builtins__": builtins_dict,
        "__name__": "__sandbox__",
        "__metaclass__": sandbox_metaclass,
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_getiter_": iter,
        "_write_": guarded_write,
        "_inplacevar_": arith.inplace,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_apply_": _apply,
        "_print_": lambda _getattr=None: _PrintCollector(sink),
        "_pow_": arith.pow,
        "_mul_": arith.mul,
        "_lshift_": arith.lshift,
        "_aug_item_": arith.aug_item,
        "_aug_attr_": arith.aug_attr,
    }


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)
