"""``copy.copy`` and ``copy.deepcopy`` for what a program holds.

CPython's ``copy`` copies any object through its ``__reduce_ex__`` protocol: it calls the
class's ``__getstate__``, ``__setstate__``, ``__getnewargs__`` and constructor with what it
found, which for a library's object is that library's internals (a ``Random``'s state, a real
``decimal.Context`` made from arguments). Here an allow-list instead: the builtin values and
containers, ``collections``' containers, and the instances of the program's own classes whose
bases are the program's too (``object``, ``typing.Generic``, ``tuple`` for a named tuple,
``list``, ``dict`` or ``set`` aside); anything else is a ``TypeError`` that says so.

Containers are read through their builtin type's own methods, from a snapshot taken before any
of the program's code runs (a key's ``__hash__`` or ``__eq__`` while the copy is filled), so
that code can change the original without C code holding a pointer into it.
"""

from __future__ import annotations

import collections
import copy as copy_module
import datetime
import decimal
import fractions
import re
import types
import typing
from typing import Any

from tools.sandbox.standins import Classes, TypeToken

__all__ = ["make_copy_view"]

# Values that are their own copy, shallow or deep (as in CPython's ``copy``).
_ATOMIC = frozenset(
    {
        type(None),
        type(Ellipsis),
        type(NotImplemented),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        range,
        slice,
        fractions.Fraction,
        decimal.Decimal,
        datetime.date,
        datetime.datetime,
        datetime.time,
        datetime.timedelta,
        datetime.timezone,
        re.Pattern,
        re.Match,
        types.FunctionType,
        types.BuiltinFunctionType,
        TypeToken,
    }
)
# The library classes a program's class may have among its bases and still be copied: they
# hold no state of their own but what the builtin base's methods read and write.
_PLAIN_BASES = frozenset({object, typing.Generic, tuple, list, dict, set})
_ABSENT = object()


def make_copy_view(classes: Classes) -> dict[str, Any]:
    """The ``copy`` module's names for a program: ``copy``, ``deepcopy`` and ``Error``."""

    def copy(x: Any) -> Any:
        kind = type(x)
        if kind in _ATOMIC or issubclass(kind, type) or kind is tuple or kind is frozenset:
            return x
        if kind is list:
            return list.copy(x)
        if kind is dict:
            return dict.copy(x)
        if kind is set:
            return set.copy(x)
        if kind is collections.deque:
            return collections.deque.copy(x)  # its maxlen too
        if kind is collections.Counter or kind is collections.OrderedDict:
            return _filled(kind(), x, lambda value: value)
        if kind is collections.defaultdict:
            return _filled(collections.defaultdict(x.default_factory), x, lambda value: value)
        return _instance(x, kind, lambda value: value, None)

    def deepcopy(x: Any, memo: Any = None) -> Any:
        if memo is not None:  # keyed by id(), which the sandbox does not give a program
            raise TypeError("copy.deepcopy's memo is not available in the sandbox")
        return deep(x, {})

    def deep(x: Any, memo: dict[int, Any]) -> Any:
        kind = type(x)
        if kind in _ATOMIC or issubclass(kind, type):
            return x
        key = id(x)
        found = memo.get(key, _ABSENT)
        if found is not _ABSENT:
            return found
        memo.setdefault(id(memo), []).append(x)  # the original outlives its id's entry
        copied: Any
        if kind is list:
            copied = memo[key] = []
            for item in list.copy(x):
                copied.append(deep(item, memo))
        elif kind is tuple or kind is frozenset:
            items = []
            for item in tuple(x):
                items.append(deep(item, memo))
            found = memo.get(key, _ABSENT)  # made while its items were: a cycle through a list
            if found is not _ABSENT:
                return found
            unchanged = kind is tuple and all(a is b for a, b in zip(items, x, strict=True))
            copied = memo[key] = x if unchanged else kind(items)
        elif kind is dict:
            copied = memo[key] = {}  # before its items: they may hold it
            _filled(copied, x, lambda value: deep(value, memo))
        elif kind is set:
            copied = memo[key] = set()
            for item in list(x):
                copied.add(deep(item, memo))
        elif kind is collections.deque:
            copied = memo[key] = collections.deque(maxlen=x.maxlen)
            for item in list(x):
                copied.append(deep(item, memo))
        elif kind is collections.Counter or kind is collections.OrderedDict:
            copied = memo[key] = kind()
            _filled(copied, x, lambda value: deep(value, memo))
        elif kind is collections.defaultdict:
            copied = memo[key] = collections.defaultdict(x.default_factory)
            _filled(copied, x, lambda value: deep(value, memo))
        else:
            copied = _instance(x, kind, lambda value: deep(value, memo), (memo, key))
        return copied

    def _filled(copied: Any, x: Any, each: Any) -> Any:
        """``copied`` given ``x``'s keys and values (each through ``each``), in ``x``'s
        order, listed first by the builtin type's own iterator (no key is hashed then)."""
        if type(x) is collections.OrderedDict:
            keys = list(collections.OrderedDict.__iter__(x))  # its own order, not dict's
            pairs = [(k, dict.__getitem__(x, k)) for k in keys]
        else:
            pairs = list(dict.items(x))
        for k, value in pairs:
            copied[each(k)] = each(value)
        return copied

    def _instance(
        x: Any, kind: type, each: Any, memo_entry: tuple[dict[int, Any], int] | None
    ) -> Any:
        """A new instance of the program's class ``kind`` holding ``x``'s state (its
        ``__dict__``, and a builtin base's items), made without calling ``__init__``, as
        CPython's ``copy`` makes one."""
        library = [base for base in kind.__mro__ if not classes.is_user_class(base)]
        if not classes.is_user_class(kind) or any(b not in _PLAIN_BASES for b in library):
            name = kind.__name__ if classes.is_user_class(kind) else type(x).__name__
            raise TypeError(
                f"copy of a {name} object is not available in the sandbox (it copies numbers, "
                "strings, lists, tuples, dicts, sets, collections' containers and instances "
                "of the program's own classes)"
            )
        for base in kind.__mro__:
            slots = vars(base).get("__slots__", ())
            if classes.is_user_class(base) and not (type(slots) is tuple and not slots):
                raise TypeError(
                    f"copy of a {kind.__name__} object, whose class has __slots__, is not "
                    "available in the sandbox"
                )
        builtin: Any = next((b for b in library if b not in (object, typing.Generic)), None)
        copied: Any
        if builtin is tuple:  # a named tuple: its items are its state
            items = [each(item) for item in tuple(x)]
            copied = tuple.__new__(kind, items)
        else:
            copied = object.__new__(kind) if builtin is None else builtin.__new__(kind)
        if memo_entry is not None:
            memo_entry[0][memo_entry[1]] = copied  # before its parts: they may hold it
        if builtin is list:
            list.extend(copied, [each(item) for item in list.copy(x)])
        elif builtin is dict:
            for k, value in list(dict.items(x)):
                dict.__setitem__(copied, each(k), each(value))
        elif builtin is set:
            set.update(copied, [each(item) for item in list(set.__iter__(x))])
        try:
            state = object.__getattribute__(x, "__dict__")
        except AttributeError:
            return copied
        own = object.__getattribute__(copied, "__dict__")
        for name, value in list(dict.items(state)):
            own[each(name)] = each(value)
        return copied

    return {
        "copy": copy,
        "deepcopy": deepcopy,
        "Error": copy_module.Error,
    }
