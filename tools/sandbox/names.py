"""Which names a program may use, in one place for the compiler and the run-time guards.

A program may not name anything that starts with ``_`` (RestrictedPython's rule), with three
exceptions, each checked again at run time:

* ``_x`` and ``__x`` (mangled ``_Cls__x``) attributes, on the program's own objects only;
* ``__name__``/``__qualname__``, read-only, on anything (a name is a string);
* ``super().__init__(...)`` and a few other special methods read on a fresh ``super()``,
  which are the parent class's methods bound to the program's own object.
"""

from __future__ import annotations

import re

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

FILENAME = "<sandbox>"

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
        "missing bool post_init"
    ).split(" ")
)
# Dunder attributes anyone may read: a name is a string (``type(x).__name__``).
READABLE_DUNDERS = frozenset({"__name__", "__qualname__"})
_PRIVATE = re.compile(r"__?[A-Za-z0-9]\w*")


def is_private_name(name: str) -> bool:
    """``_x`` or a mangled ``_Cls__x``: one leading underscore, not a dunder."""
    return bool(_PRIVATE.fullmatch(name)) and not name.endswith("__")
