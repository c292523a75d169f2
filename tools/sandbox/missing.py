"""Modules a program may not import: what to write instead, and what an import of one binds
where nothing could catch its failure (see ``compiler.RestrictedCompiler.visit_Import``)."""

from __future__ import annotations

from typing import Any, NoReturn

from tools.sandbox.names import ALLOWED_MODULES

# What to write instead of a module a program may not import, for those programs reach for
# most (compatibility pass CF): a model repairs its program from the message.
_INSTEAD = {
    "enum": "use constants, or a dict of names to values",
    "abc": "a plain base class, whose methods the subclasses override, does the same",
    "time": "there is no clock: datetime computes with dates and times",
    "numpy": "use lists, math, statistics and fractions",
    "pandas": "use lists of dicts, collections and statistics",
    "sympy": "use fractions, math and an explicit loop or formula",
    "os": "there are no files, processes or environment in the sandbox",
    "csv": "split lines with str.split(',') or re",
    "textwrap": "str methods and slicing format text",
}
# No network in the sandbox: a model with search unavailable (offline) tried requests, urllib
# and open() in turn for minutes, never told that a program cannot look anything up (pass EZ).
_NO_NETWORK = "there is no network in the sandbox: look it up with the search action, if offered"
_INSTEAD.update(
    dict.fromkeys(
        [
            "requests",
            "urllib",
            "urllib3",
            "http",
            "httpx",
            "aiohttp",
            "socket",
            "wikipedia",
            "bs4",
            "webbrowser",
        ],
        _NO_NETWORK,
    )
)


# Packages with offline parts: what to write for those first, then the network (pass FA:
# "import urllib.parse", to quote a URL, was only told to search; pass FD: "from urllib
# import parse" and "from http import client" name only the package).
_URLS = "split and quote URLs with str methods and re"
_STATUS = "HTTP status codes are plain ints (200, 404 ...)"
_INSTEAD.update(
    {
        "urllib": f"{_URLS}; {_NO_NETWORK}",
        "urllib.parse": _URLS,
        "http": f"{_STATUS}; {_NO_NETWORK}",
    }
)


def not_available(name: str) -> str:
    """Why ``import <name>`` fails, and what to use instead: for the module itself, else for
    its package."""
    allowed = ", ".join(sorted(ALLOWED_MODULES))
    instead = _INSTEAD.get(name, _INSTEAD.get(name.partition(".")[0], ""))
    return f"module {name!r} is not available in the sandbox (allowed: {allowed})" + (
        f"; {instead}" if instead else ""
    )


class MissingModule:
    """What an import of a module the sandbox does not have binds when no ``try`` around it
    could catch its failure (``compiler``): a model imports ``numpy``, ``time`` or ``os`` it
    never uses, and the program ran no further than the import (differential pass DP). Any
    use of it fails as the import would have, with the line of the use."""

    __slots__ = ("_message", "_module")

    def __init__(self, module: str, name: str | None = None) -> None:
        self._module = module
        self._message = not_available(module) + (
            f" (from {module} import {name})" if name is not None else ""
        )

    def _missing(self) -> NoReturn:
        raise ModuleNotFoundError(self._message, name=self._module)

    def __getattr__(self, name: str) -> NoReturn:
        if name[:2] == "__" and name[-2:] == "__":  # asked by Python and the sandbox's code,
            raise AttributeError(name)  # as of a module that has no such attribute (pass DQ)
        self._missing()

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._missing()

    def __getitem__(self, key: Any) -> NoReturn:
        self._missing()

    def __iter__(self) -> NoReturn:
        self._missing()

    def __mro_entries__(self, bases: tuple[Any, ...]) -> NoReturn:  # class C(Enum): ...
        self._missing()

    def __repr__(self) -> str:
        return f"<module {self._module!r}, not available in the sandbox>"
