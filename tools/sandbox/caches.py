"""A bounded ``lru_cache`` that its own C code never re-enters.

CPython's C ``lru_cache`` with a ``maxsize`` keeps a linked list of its entries beside its dict.
When it is full it takes the oldest entry out of the list, then removes that entry's key from
the dict, comparing keys; a key's ``__eq__`` that called the same cached function again found
the half-removed entry, moved it again, and the list then pointed at freed memory (SIGSEGV in
3.11 to 3.13, gh-94879, open; red-team pass DD). The unbounded cache (``maxsize=None``,
``cache``) is a dict alone, which CPython keeps consistent whatever a comparison does, and
``maxsize=0`` caches nothing: those stay the C ones.

The program's bounded cache is the C one behind a function that knows when the cache's C code
is running (hashing, looking up, adding, evicting) and the program's function is not. A call
made then, by whatever program code C ran (a key's ``__eq__``, a generator's ``finally`` as an
entry is freed), is answered by an unbounded cache of the same function: the bounded one is
never re-entered, whatever route the program found into its middle. Hits cost one Python call
more than CPython's (about 0.25 µs). Recursion through the cache counts four frames a level
(CPython counts two) against the limit the sandbox doubles for every program: at the default
limit a cached function recurses as deep as in CPython (~500 levels), a cached method of a class
(five frames) four fifths as deep; a program that raises its limit gets at most 10,000 doubled,
so about 5,000 levels through a bounded cache, where ``@cache`` (the C one) goes 10,000 deep
(differential pass DI).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from tools.sandbox.standins import SandboxSecurityError


def bounded_lru_cache(func: Callable[..., Any], maxsize: int) -> Callable[..., Any]:
    """``functools.lru_cache(maxsize)(func)`` for ``maxsize > 0``, safe to call from anywhere,
    with ``cache_info``, ``cache_clear`` and ``cache_parameters`` as its attributes."""
    in_c = [False]  # the bounded cache's C code is running, and func is not

    def call(*args: Any, **kwargs: Any) -> Any:  # what the bounded cache calls on a miss
        in_c[0] = False
        try:
            return func(*args, **kwargs)
        finally:
            in_c[0] = True

    bounded = functools.lru_cache(maxsize)(call)
    beside = functools.lru_cache(None)(func)  # a dict alone: consistent under any re-entry

    def cached(*args: Any, **kwargs: Any) -> Any:
        if in_c[0]:
            return beside(*args, **kwargs)
        in_c[0] = True
        try:
            return bounded(*args, **kwargs)
        finally:
            in_c[0] = False

    def cache_info() -> Any:
        return bounded.cache_info()

    def cache_clear() -> None:
        if in_c[0]:  # clearing the list it is walking is the same corruption
            raise SandboxSecurityError(
                "cache_clear() cannot run while the same cache is looking up a key"
            )
        bounded.cache_clear()
        beside.cache_clear()

    def cache_parameters() -> dict[str, Any]:
        return {"maxsize": maxsize, "typed": False}

    for name in ("__name__", "__qualname__", "__doc__"):
        text = getattr(func, name, None)
        if isinstance(text, str):
            setattr(cached, name, str.__str__(text))
        elif name == "__doc__":
            cached.__doc__ = None
    cached.cache_info = cache_info  # type: ignore[attr-defined]
    cached.cache_clear = cache_clear  # type: ignore[attr-defined]
    cached.cache_parameters = cache_parameters  # type: ignore[attr-defined]
    return cached


_NOT_FOUND = object()


def cached_property_for(
    is_program_function: Callable[[Any], bool], store: Callable[[Any, str, Any], None]
) -> Callable[[Any], Any]:
    """``functools.cached_property`` for the program's own functions: computed once per
    instance and kept in its ``__dict__`` as CPython's is, but stored as the program's own
    ``self.name = value`` would be (``store``: the attribute guard), so it never shadows what
    the program could not write itself (a library base's method). The library's class is not
    handed out: its lock and ``__class_getitem__`` would be more surface than the decorator
    needs (differential corpus ``v012_functools_missing``)."""

    class CachedProperty:
        __slots__ = ("attrname", "func")

        def __init__(self, func: Any) -> None:
            if not is_program_function(func):
                raise SandboxSecurityError(
                    "cached_property() decorates the program's own functions only"
                )
            self.func = func
            self.attrname: str | None = None

        def __set_name__(self, owner: type, name: str) -> None:
            if self.attrname is None:
                self.attrname = name
            elif name != self.attrname:
                raise TypeError(
                    "Cannot assign the same cached_property to two different names "
                    f"({self.attrname!r} and {name!r})."
                )

        def __get__(self, instance: Any, owner: Any = None) -> Any:
            if instance is None:
                return self
            name = self.attrname
            if name is None:
                raise TypeError(
                    "Cannot use cached_property instance without calling __set_name__ on it."
                )
            try:
                cache = instance.__dict__
            except AttributeError:
                raise TypeError(
                    f"No '__dict__' attribute on {type(instance).__name__!r} instance "
                    f"to cache {name!r} property."
                ) from None
            value = cache.get(name, _NOT_FOUND) if type(cache) is dict else _NOT_FOUND
            if value is _NOT_FOUND:
                value = self.func(instance)
                store(instance, name, value)
            return value

    CachedProperty.__name__ = CachedProperty.__qualname__ = "cached_property"

    def cached_property(func: Any) -> Any:
        return CachedProperty(func)

    return cached_property
