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
(CPython counts two) against the limit the sandbox doubles for every program: a cached function
recurses as deep as in CPython, a cached method of a class (five frames) four fifths as deep.
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
