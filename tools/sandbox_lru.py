"""The pure-Python ``functools.lru_cache`` for ``typing``'s caches in sandbox templates.

CPython's C ``lru_cache`` keeps pointers into its own entries while it compares keys, and a key's
``__eq__`` that calls the same cached function again (or ``cache_clear()``) corrupts it: SIGSEGV in
3.11.7, 3.12 and 3.13 alike (gh-94879, open), from a program's ``@lru_cache`` function or from
``typing``'s own caches (``typing.Literal[K()]``, red-team pass DD). The Python version, which
``functools.py`` ships for interpreters without ``_functools``, can at worst be left inconsistent
by a re-entry, never corrupt memory.

It lives outside ``tools.sandbox`` because that package imports ``typing``, whose caches are made
when it is imported: this must run first (``pool._BOOTSTRAP``).
"""

from __future__ import annotations

import functools
import importlib.util
import sys


def install() -> None:
    """Import ``typing`` with the Python wrapper for its caches. (The program's own bounded
    ``lru_cache`` stays the C one, never re-entered: ``tools/sandbox/caches.py``; its memoised
    calls would take twice as long or more with the Python version.)"""
    if "typing" in sys.modules:
        raise RuntimeError("the pure-Python lru_cache must be installed before typing is imported")
    spec = importlib.util.find_spec("functools")
    assert spec is not None and spec.loader is not None
    hidden = sys.modules.get("_functools")
    sys.modules["_functools"] = None  # type: ignore[assignment]  # its fallbacks, in a copy
    try:
        python_functools = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(python_functools)
    finally:
        if hidden is None:
            del sys.modules["_functools"]
        else:
            sys.modules["_functools"] = hidden
    c_wrapper = functools._lru_cache_wrapper
    functools._lru_cache_wrapper = python_functools._lru_cache_wrapper  # type: ignore[misc]
    try:
        import typing  # noqa: F401  (its caches made now, of the Python kind)
    finally:
        functools._lru_cache_wrapper = c_wrapper  # type: ignore[misc]
