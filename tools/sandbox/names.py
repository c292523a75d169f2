"""Which names a program may use, in one place for the compiler and the run-time guards.

A program may not name anything that starts with ``_`` (RestrictedPython's rule), with three
exceptions, each checked again at run time:

* ``_x`` and ``__x`` (mangled ``_Cls__x``) attributes, on the program's own objects only, and
  variables, functions and classes named so, except the names RestrictedPython's output uses
  (its hooks all end with ``_``; ``_print``; ``_tmp0``...);
* ``__name__``/``__qualname__``, read-only, on anything (a name is a string), ``__class__``,
  read-only, which is ``type()`` (``policy.py``), and the module's ``__name__`` (``"__main__"``);
* ``super().__init__(...)`` and a few other special methods read on a real ``super()`` object
  bound to the program's own object (checked at run time: ``super`` is only a name);
* in a class body, the special methods a class may define, also as names
  (``__repr__ = __str__``).
"""

from __future__ import annotations

import re

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

FILENAME = "<sandbox>"
ANSWER_FUNCTION = "solution"  # what a PAL program defines; the child calls it for the answer

# Attribute names refused even though they do not start with "_": frames, code, and the MRO
# (``type.mro()`` would hand out ``object``'s relatives).
DENIED_ATTRIBUTES = frozenset(INSPECT_ATTRIBUTES) | frozenset(
    "mro f_locals f_globals gi_frame cr_frame ag_frame tb_frame func_globals func_code "  # noqa: SIM905
    "im_func im_self".split(" ")
)

# ``super().__init__(...)`` and its kind: read raw on a fresh ``super()`` object, whose
# methods are the parent class's, bound to the program's own instance.
SUPER_DUNDERS = frozenset(
    f"__{name}__"
    for name in (  # noqa: SIM905
        "init repr str eq ne lt le gt ge hash len contains iter getitem setitem delitem "
        "missing bool post_init format"
    ).split(" ")
)
# Dunder attributes anyone may read: a name is a string (``type(x).__name__``); ``__class__``
# is answered by ``type()``'s policy, never by the object.
READABLE_DUNDERS = frozenset({"__name__", "__qualname__", "__class__", "__doc__"})
# Dunder attributes read only on the program's own objects (``self.__dict__``).
OWN_DUNDERS = frozenset({"__dict__"})
# A script's own metadata, which Python gives no meaning to (``__version__ = "1.0"`` at the
# top of a script refused the whole program, differential pass DP).
MODULE_METADATA = frozenset(
    f"__{name}__"
    for name in (  # noqa: SIM905
        "all version author license email status credits maintainer copyright date"
    ).split(" ")
)
# The modules a program may import (views built by ``modules.ModuleRegistry``).
ALLOWED_MODULES = frozenset(
    {
        *("math", "cmath", "fractions", "decimal", "statistics", "datetime", "itertools"),
        *("functools", "collections", "collections.abc", "string", "re", "random", "heapq"),
        *("bisect", "operator", "json", "calendar", "typing", "sys", "copy", "dataclasses"),
    }
)
# Dunder names a class body may assign besides its methods.
CLASS_BODY_NAMES = frozenset({"__slots__"})
# Methods a program may define on its own classes (RestrictedPython allows only ``__init__``
# and comparisons). Defining them changes only the program's own objects; ``__del__``,
# ``__getattr__`` and the like stay refused.
ALLOWED_DUNDER_METHODS = frozenset(
    f"__{name}__"
    for name in (  # noqa: SIM905
        "init repr str format len iter next contains getitem setitem delitem call bool hash "
        "eq ne lt le gt ge add radd iadd sub rsub isub mul rmul imul truediv rtruediv "
        "floordiv rfloordiv mod rmod pow rpow neg pos abs int float index round enter exit "
        "post_init missing reversed and or xor matmul divmod "
        # the rest of the operators (the differential pass: Bits.__invert__, Tags.__ior__,
        # Money.__floor__ were refused); each changes only the program's own objects
        "invert lshift rlshift ilshift rshift rrshift irshift rand iand ror ior rxor ixor "
        "itruediv ifloordiv ipow imod rmatmul imatmul rdivmod floor ceil trunc complex"
    ).split(" ")
)
_RESERVED_VARIABLES = re.compile(r"_print|_tmp\d+")
_PRIVATE = re.compile(r"__?[A-Za-z0-9]\w*")


def is_special_name(name: str) -> bool:
    """``__iter__``, ``__eq__``...: a name Python gives a meaning of its own."""
    return len(name) > 4 and name[:2] == name[-2:] == "__"


def is_private_name(name: str) -> bool:
    """``_x``, ``__x`` (which Python mangles to ``_Cls__x`` in a class): not a dunder."""
    return bool(_PRIVATE.fullmatch(name)) and not name.endswith("__")


def is_private_variable(name: str) -> bool:
    """A private name a program may give a variable, function, class or parameter: not one
    ending with ``_`` (every RestrictedPython hook, ``_getattr_``, ``_write_``...) and not
    one of its own variables (``_print``, ``_tmp0``)."""
    return (
        is_private_name(name) and not name.endswith("_") and not _RESERVED_VARIABLES.fullmatch(name)
    )
