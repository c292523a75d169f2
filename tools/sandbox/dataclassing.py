"""``dataclasses`` for the program's own classes.

CPython's ``dataclasses`` writes each class's methods as source text and ``exec``s it, and
reads the class's annotations by evaluating them; neither happens here. This module reads the
field names the compiler kept in the class body's ``__annotations__`` (as strings, never
evaluated), and gives the class methods made in Python here (``__init__``, ``__repr__``,
``__eq__``, the orderings, ``__hash__``, a frozen class's ``__setattr__``/``__delattr__``),
each contained as a method the class body defined would be
(:meth:`Classes.contained_attribute`). It works on the program's classes whose other bases are
``object``, ``typing.Generic`` or dataclasses of its own; ``slots``, ``weakref_slot`` and
``match_args`` are accepted and change nothing, ``InitVar`` and ``KW_ONLY`` are refused.
"""

from __future__ import annotations

import dataclasses
import inspect
import keyword
import re
import typing
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from tools.sandbox.names import is_special_name
from tools.sandbox.standins import Classes

__all__ = ["make_dataclasses_view"]

MISSING = dataclasses.MISSING
_CLASS_VAR = re.compile(r"^(?:\w+\.)?ClassVar\b")
_REFUSED_KIND = re.compile(r"^(?:\w+\.)?(InitVar|KW_ONLY)\b")
_PLAIN_BASES = (object, typing.Generic)


class Field:
    """What ``field()`` answers and ``fields()`` lists: the documented attributes."""

    __slots__ = (
        "compare",
        "default",
        "default_factory",
        "hash",
        "init",
        "kw_only",
        "metadata",
        "name",
        "repr",
        "type",
    )

    def __init__(
        self,
        default: Any,
        default_factory: Any,
        init: bool,
        repr: bool,  # dataclasses.field's own parameter names
        hash: bool | None,
        compare: bool,
        metadata: Any,
        kw_only: Any,
    ) -> None:
        self.name: str = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = bool(init)
        self.repr = bool(repr)
        self.hash = hash
        self.compare = bool(compare)
        self.metadata = {} if metadata is None else metadata
        self.kw_only = kw_only

    def __repr__(self) -> str:
        return (
            f"Field(name={self.name!r},type={self.type!r},default={self.default!r},"
            f"default_factory={self.default_factory!r},init={self.init},repr={self.repr},"
            f"hash={self.hash},compare={self.compare},kw_only={self.kw_only})"
        )


def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    init: bool = True,
    repr: bool = True,
    hash: bool | None = None,
    compare: bool = True,
    metadata: Any = None,
    kw_only: Any = MISSING,
) -> Field:
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, init, repr, hash, compare, metadata, kw_only)


def make_dataclasses_view(classes: Classes, deepcopy: Callable[[Any], Any]) -> dict[str, Any]:
    """The ``dataclasses`` names for a program; ``deepcopy`` is the sandbox's own (``asdict``
    copies the values that are not dataclasses, lists, tuples or dicts, as CPython's does)."""
    reader = _FieldReader(classes)
    # The classes made dataclasses in this run, by identity: their fields in order, frozen.
    made: dict[int, tuple[type, tuple[Field, ...], bool]] = {}

    def own_entry(cls: Any) -> tuple[type, tuple[Field, ...], bool] | None:
        entry = made.get(id(cls))
        return entry if entry is not None and entry[0] is cls else None

    def fields_of(cls: Any) -> tuple[Field, ...] | None:
        """A dataclass's fields, or its nearest dataclass base's (a subclass is one too)."""
        for base in cls.__mro__ if isinstance(cls, type) else ():
            entry = own_entry(base)
            if entry is not None:
                return entry[1]
        return None

    def dataclass(cls: Any = None, /, **options: Any) -> Any:
        unknown = sorted(set(options) - _OPTIONS.keys())
        if unknown:
            raise TypeError(f"dataclass() got an unexpected keyword argument {unknown[0]!r}")
        settings = {**_OPTIONS, **options}
        if cls is None:  # @dataclass(order=True)
            return lambda cls: process(cls, settings)
        return process(cls, settings)

    def process(cls: Any, settings: dict[str, Any]) -> Any:
        if not isinstance(cls, type) or not classes.is_user_class(cls):
            raise TypeError("dataclass() decorates the program's own classes in the sandbox")
        for base in cls.__mro__[1:]:
            if not classes.is_user_class(base) and base not in _PLAIN_BASES:
                raise TypeError(
                    f"dataclass() of a subclass of {base.__name__} is not available in the "
                    "sandbox: its bases may be object, typing.Generic and the program's classes"
                )
        if settings["order"] and not settings["eq"]:
            raise ValueError("eq must be true if order is true")
        found: dict[str, Field] = {}
        for base in reversed(cls.__mro__[1:]):
            entry = own_entry(base)
            if entry is None:
                continue
            if entry[2] != bool(settings["frozen"]):
                raise TypeError(
                    "cannot inherit frozen dataclass from a non-frozen one"
                    if settings["frozen"]
                    else "cannot inherit non-frozen dataclass from a frozen one"
                )
            for inherited in entry[1]:
                found[inherited.name] = inherited
        namespace = vars(cls)
        annotations = namespace.get("__annotations__", {})
        if type(annotations) is not dict:
            raise TypeError("a dataclass's annotations must be the class body's own")
        for name, annotation in list(annotations.items()):
            if type(name) is not str or not name.isidentifier() or keyword.iskeyword(name):
                raise TypeError(f"{name!r} is not a field name")
            text = annotation if type(annotation) is str else ""
            if _CLASS_VAR.match(text):
                continue
            refused = _REFUSED_KIND.match(text)
            if refused:
                raise TypeError(f"dataclasses.{refused.group(1)} is not available in the sandbox")
            if is_special_name(name) or any(
                name in vars(base) for base in cls.__mro__ if not classes.is_user_class(base)
            ):  # a library base's own name (Generic's _is_protocol) stays the library's
                raise TypeError(f"{name!r} cannot be a dataclass field in the sandbox")
            value = namespace.get(name, MISSING)
            spec = _copied(value) if type(value) is Field else field(default=value)
            if type(value) is Field:  # a Field in the class body is no class attribute
                if spec.default is MISSING:
                    type.__delattr__(cls, name)
                else:  # contained as the class body's value would have been (pass FJ)
                    type.__setattr__(cls, name, classes.contained_attribute(name, spec.default))
            if getattr(type(spec.default), "__hash__", None) is None:  # CPython's own test
                raise ValueError(
                    f"mutable default {type(spec.default)!r} for field {name} is not allowed: "
                    "use default_factory"
                )
            spec.name, spec.type = name, annotation
            if spec.kw_only is MISSING:
                spec.kw_only = bool(settings["kw_only"])
            found[name] = spec
        specs = tuple(found.values())
        made[id(cls)] = (cls, specs, bool(settings["frozen"]))
        # as CPython's: ``hasattr(o, "__dataclass_fields__")``, a common test in a json
        # ``default=`` hook, answered False (pass FM); read-only (``vars(cls)`` shows it)
        fields_map = MappingProxyType({spec.name: spec for spec in specs})
        type.__setattr__(cls, "__dataclass_fields__", fields_map)
        install = _installer(cls, classes)

        def defines(name: str) -> bool:
            """The class body defined ``name`` (not the class hook, which writes out a class
            through wrappers of its own): what it defines stays, as in CPython."""
            return name in namespace and classes.is_program_function(namespace[name])

        if settings["init"] and not defines("__init__"):
            install("__init__", _init(cls, specs, settings["frozen"], classes, reader))
        if settings["repr"] and not defines("__repr__"):
            install("__repr__", _repr(specs, reader.read))
        if settings["eq"] and not defines("__eq__"):
            install("__eq__", _compare(specs, lambda a, b: a == b, reader.read))
        if settings["order"]:
            for name, op in _ORDERINGS.items():
                if name in namespace:
                    raise TypeError(
                        f"Cannot overwrite attribute {name} in class {cls.__name__}. "
                        "Consider using functools.total_ordering"
                    )
                install(name, _compare(specs, op, reader.read))
        if settings["frozen"]:
            install("__setattr__", _frozen("cannot assign to field"))
            install("__delattr__", _frozen("cannot delete field"))
        explicit_hash = "__hash__" in namespace and namespace["__hash__"] is not None
        if settings["unsafe_hash"] or (settings["eq"] and settings["frozen"]):
            if explicit_hash and settings["unsafe_hash"]:
                raise TypeError(f"Cannot overwrite attribute __hash__ in class {cls.__name__}")
            if not explicit_hash:
                install("__hash__", _hash(specs, reader.read))
        elif settings["eq"] and not explicit_hash:
            type.__setattr__(cls, "__hash__", None)
        return cls

    def fields(class_or_instance: Any) -> tuple[Field, ...]:
        cls = class_or_instance if isinstance(class_or_instance, type) else type(class_or_instance)
        specs = fields_of(cls)
        if specs is None:
            raise TypeError("must be called with a dataclass type or instance")
        return specs

    def is_dataclass(obj: Any) -> bool:
        return fields_of(obj if isinstance(obj, type) else type(obj)) is not None

    def asdict(obj: Any, *, dict_factory: Any = dict) -> Any:
        if isinstance(obj, type) or not is_dataclass(obj):
            raise TypeError("asdict() should be called on dataclass instances")
        return converted(obj, lambda pairs: dict_factory(pairs))

    def astuple(obj: Any, *, tuple_factory: Any = tuple) -> Any:
        if isinstance(obj, type) or not is_dataclass(obj):
            raise TypeError("astuple() should be called on dataclass instances")
        return converted(obj, lambda pairs: tuple_factory([value for _, value in pairs]))

    def converted(obj: Any, make: Callable[[list[tuple[str, Any]]], Any]) -> Any:
        """CPython's ``_asdict_inner``/``_astuple_inner``: dataclasses as ``make`` makes them;
        named tuples, lists, tuples and dicts, and their subclasses, rebuilt by their class
        around their items (read as the builtin type holds them); anything else
        deep-copied. (Only the exact types were rebuilt: a dataclass in a named tuple, an
        ``OrderedDict`` or a list subclass came back as itself, red-team pass DV.)"""
        kind = type(obj)
        if not isinstance(obj, type) and fields_of(kind) is not None:
            return make([(f.name, converted(reader.read(obj, f.name), make)) for f in fields(obj)])
        if isinstance(obj, (list, tuple)):
            base: Any = list if isinstance(obj, list) else tuple
            items = [converted(item, make) for item in base.__iter__(obj)]
            if kind is base:
                return base(items)
            named = base is tuple and inspect.getattr_static(kind, "_fields", None) is not None
            return kind(*items) if named else kind(iter(items))  # (as CPython: no len)
        if isinstance(obj, dict):
            pairs = [(converted(k, make), converted(v, make)) for k, v in list(dict.items(obj))]
            return dict(pairs) if kind is dict else kind(iter(pairs))
        return classes.exposed(deepcopy(obj))  # as a method's argument would be

    def replace(obj: Any, /, **changes: Any) -> Any:
        if isinstance(obj, type) or not is_dataclass(obj):
            raise TypeError("replace() should be called on dataclass instances")
        for spec in fields(obj):
            if not spec.init:
                if spec.name in changes:
                    raise ValueError(
                        f"field {spec.name} is declared with init=False, it cannot be "
                        "specified with replace()"
                    )
                continue
            if spec.name not in changes:
                changes[spec.name] = reader.read(obj, spec.name)
        return type(obj)(**changes)

    return {
        "dataclass": dataclass,
        "field": field,
        "fields": fields,
        "asdict": asdict,
        "astuple": astuple,
        "replace": replace,
        "is_dataclass": is_dataclass,
        "Field": Field,
        "MISSING": MISSING,
        "FrozenInstanceError": dataclasses.FrozenInstanceError,
    }


_OPTIONS = {
    "init": True,
    "repr": True,
    "eq": True,
    "order": False,
    "unsafe_hash": False,
    "frozen": False,
    "match_args": True,
    "kw_only": False,
    "slots": False,
    "weakref_slot": False,
}
_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "__lt__": lambda a, b: a < b,
    "__le__": lambda a, b: a <= b,
    "__gt__": lambda a, b: a > b,
    "__ge__": lambda a, b: a >= b,
}


def _installer(cls: type, classes: Classes) -> Callable[[str, Any], None]:
    """Put a method made here on the program's class, contained as its body's would be."""

    def install(name: str, method: Any) -> None:
        method.__name__ = name
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        type.__setattr__(cls, name, classes.contained_attribute(name, method))

    return install


def _copied(spec: Field) -> Field:
    """A class's own copy of a ``Field`` of its body: one given to two classes is named by
    each, and each class's methods read their own."""
    return Field(
        spec.default,
        spec.default_factory,
        spec.init,
        spec.repr,
        spec.hash,
        spec.compare,
        spec.metadata,
        spec.kw_only,
    )


def _init(
    cls: type, specs: tuple[Field, ...], frozen: bool, classes: Classes, reader: _FieldReader
) -> Callable[..., None]:
    given = [spec for spec in specs if spec.init]
    positional = [spec.name for spec in given if not spec.kw_only]
    names = {spec.name for spec in given}
    required = {
        spec.name for spec in given if spec.default is MISSING and spec.default_factory is MISSING
    }
    defaulted = [name for name in positional if name not in required]
    after = [
        name
        for name in positional
        if name in required
        and defaulted
        and positional.index(name) > positional.index(defaulted[0])
    ]
    if after:
        raise TypeError(f"non-default argument {after[0]!r} follows default argument")
    post_init = "__post_init__" in {name for k in cls.__mro__ for name in vars(k)}

    def arguments(owner: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """What CPython binds a generated ``__init__``'s parameters to, or its TypeError."""
        if len(args) > len(positional):
            fewest = len([name for name in positional if name in required]) + 1
            most = len(positional) + 1
            takes = f"{most}" if fewest == most else f"from {fewest} to {most}"
            plural = "" if most == 1 else "s"
            raise TypeError(
                f"{owner}() takes {takes} positional argument{plural} but "
                f"{len(args) + 1} were given"
            )
        bound = dict(zip(positional, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{owner}() got an unexpected keyword argument {key!r}")
            if key in bound:
                raise TypeError(f"{owner}() got multiple values for argument {key!r}")
            bound[key] = value
        for kind, group in (
            ("positional", [n for n in positional if n in required and n not in bound]),
            (
                "keyword-only",
                [s.name for s in given if s.kw_only and s.name in required and s.name not in bound],
            ),
        ):
            if group:
                quoted = [repr(name) for name in group]
                listed = (
                    quoted[0]
                    if len(quoted) == 1
                    else (
                        " and ".join(quoted)
                        if len(quoted) == 2
                        else ", ".join(quoted[:-1]) + ", and " + quoted[-1]
                    )
                )
                plural = "" if len(group) == 1 else "s"
                raise TypeError(
                    f"{owner}() missing {len(group)} required {kind} argument{plural}: {listed}"
                )
        return bound

    def __init__(self: Any, /, *args: Any, **kwargs: Any) -> None:
        reader.check(self)  # the writes below are raw
        bound = arguments(f"{type(self).__qualname__}.__init__", args, kwargs)
        for spec in specs:
            value = bound.get(spec.name, _FACTORY) if spec.init else _FACTORY
            if value is _FACTORY:
                if spec.default_factory is not MISSING:  # as a method's argument would be
                    value = classes.exposed(spec.default_factory())
                elif spec.default is not MISSING:
                    value = spec.default
                else:
                    continue  # init=False and no default: left unset, as in CPython
            if frozen:
                object.__setattr__(self, spec.name, value)
            else:
                setattr(self, spec.name, value)
        if post_init:
            self.__post_init__()

    return __init__


class _FieldReader:
    """The one way this module reads or writes a field of an instance: only on an instance of
    a class whose bases are the program's own, ``object`` and ``typing.Generic``. A subclass
    may add a library base later (``class D(C, str)``): a raw read of the field ``format``
    then gave the real ``str.format`` to ``astuple()``, and a raw write set NormalDist's
    slots (passes CP, CQ)."""

    __slots__ = ("_classes", "_plain")

    def __init__(self, classes: Classes) -> None:
        self._classes = classes
        self._plain: dict[int, type] = {}  # the classes checked, by identity

    def check(self, obj: Any) -> None:
        kind = type(obj)
        if self._plain.get(id(kind)) is kind:
            return
        if not all(self._classes.is_user_class(k) or k in _PLAIN_BASES for k in kind.__mro__):
            raise TypeError(
                f"a dataclass's fields of a {kind.__name__} are not available in the sandbox: "
                "a subclass with a library base is not a dataclass there"
            )
        self._plain[id(kind)] = kind

    def read(self, obj: Any, name: str) -> Any:
        self.check(obj)
        return getattr(obj, name)


# A default made by its field's factory when the argument is not given.
_FACTORY: Any = type("_HAS_DEFAULT_FACTORY", (), {"__repr__": lambda self: "<factory>"})()


def _repr(specs: tuple[Field, ...], read: Callable[[Any, str], Any]) -> Callable[[Any], str]:
    shown = [spec.name for spec in specs if spec.repr]
    running: set[int] = set()  # the instances being written out: a cycle is "..."

    def __repr__(self: Any) -> str:
        key = id(self)
        if key in running:
            return "..."
        running.add(key)
        try:
            parts = ", ".join(f"{name}={read(self, name)!r}" for name in shown)
        finally:
            running.discard(key)
        return f"{type(self).__qualname__}({parts})"

    return __repr__


def _compare(
    specs: tuple[Field, ...], op: Callable[[Any, Any], bool], read: Callable[[Any, str], Any]
) -> Callable[[Any, Any], Any]:
    compared = [spec.name for spec in specs if spec.compare]

    def compare(self: Any, other: Any) -> Any:
        if type(other) is not type(self):
            return NotImplemented
        return op(
            tuple(read(self, name) for name in compared),
            tuple(read(other, name) for name in compared),
        )

    return compare


def _hash(specs: tuple[Field, ...], read: Callable[[Any, str], Any]) -> Callable[[Any], int]:
    hashed = [spec.name for spec in specs if (spec.compare if spec.hash is None else spec.hash)]

    def __hash__(self: Any) -> int:
        return hash(tuple(read(self, name) for name in hashed))

    return __hash__


def _frozen(what: str) -> Callable[..., None]:
    def refuse(self: Any, name: str, *value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"{what} {name!r}")

    return refuse
