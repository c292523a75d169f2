"""Compile one untrusted program: parse, bound, restrict, compile. Runs only in a run's child
(the template never sees a program), and nothing compiled outlives that child.

The source size is capped before it gets here (``SandboxConfig.max_code_bytes``); the AST depth
is measured by the restricting visitor on its way down, before it or the CPython compiler goes
deeper than the limit, so a 20,000-term expression or a 5,000-deep call chain is refused
cheaply, and an int literal above
the int limit is refused (a hex literal escapes CPython's own digit limit). The RestrictedPython
policy is extended, not loosened: ``**``, ``*``, ``<<`` and ``%`` become calls to size-checking
guards, an f-string field with a format specification becomes a call that checks it,
augmented assignment works on items and attributes (through the write guard), ``nonlocal`` is
allowed, and a program's own classes may define the common special methods.

One slip of small models is read as they meant it: a decimal literal with leading zeros
(``date(1989, 11, 09)``), a SyntaxError since Python 3, is read as the decimal number (``9``),
at the position the parser reports, at most ``MAX_ZERO_FIXES`` times. The rest of the program
is checked as any other.
"""

from __future__ import annotations
import __future__

import ast
import re
import types
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeVar, cast

import RestrictedPython.transformer
from RestrictedPython.transformer import RestrictingNodeTransformer

from tools.sandbox.missing import not_available
from tools.sandbox.names import (
    ALLOWED_DUNDER_METHODS,
    ALLOWED_MODULES,
    ANSWER_FUNCTION,
    CLASS_BODY_NAMES,
    DENIED_ATTRIBUTES,
    FILENAME,
    MODULE_METADATA,
    OWN_DUNDERS,
    READABLE_DUNDERS,
    SUPER_DUNDERS,
    is_private_name,
    is_private_variable,
)


def _is_deferred_field(node: ast.AST) -> bool:
    """A field ``visit_FormattedValue`` made into ``_format_value_(...)``."""
    return (
        isinstance(node, ast.FormattedValue)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "_format_value_"
    )


def _strip_annotations(args: ast.arguments) -> None:
    for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
        if arg is not None:
            arg.annotation = None


def _is_super_call(node: ast.expr) -> bool:
    """``super()`` or ``super(Class, name)``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "super"
        and not node.keywords
        and (not node.args or (len(node.args) == 2 and isinstance(node.args[1], ast.Name)))
    )


_CUSTOM_HOOKS = {
    ast.Add: "_add_",
    ast.Sub: "_sub_",
    ast.Pow: "_pow_",
    ast.Mult: "_mul_",
    ast.LShift: "_lshift_",
    ast.Mod: "_mod_",
    ast.Div: "_truediv_",
    ast.FloorDiv: "_floordiv_",
}


def _is_checked_sum(node: ast.BinOp) -> bool:
    """``a + b`` with neither term a number literal: checked, whatever the terms are. A sum
    at most doubles its larger term, but sums nest however the program writes them
    (``s + s + s``, ``(c := (b := s + s) + b) + c``, ``(s + s)[:] + (s + s)[:]``, a property
    that answers ``self.p + self.p``: red-team pass BM, 144M characters in one statement),
    so each is checked, never a shape of them. A number literal moves an int by one bit at
    most, so ``i + 1`` stays Python's own ``+``, at full speed; a string literal does not:
    CPython grows ``s = s + "x" * ...`` in place, in linear time, and a loop of it made 360M
    characters in 0.24 s (red-team pass FR). ``a - b`` likewise: it doubles an int as a sum
    does (``x = x - -x``)."""
    return not _is_number_literal(node.left) and not _is_number_literal(node.right)


def _is_number_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, complex, bool)


def _is_text_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (str, bytes)


def _room_for(operand: ast.expr, literal: ast.expr, literal_first: bool) -> ast.expr:
    """``_room_(operand, literal, literal_first)``, placed where ``operand`` was."""
    text = ast.Constant(cast(Any, literal).value)
    args: list[ast.expr] = [operand, ast.copy_location(text, literal)]
    if literal_first:
        args.append(ast.copy_location(ast.Constant(True), literal))
    call = ast.Call(func=ast.Name("_room_", ast.Load()), args=args, keywords=[])
    return ast.copy_location(call, operand)


def _docstring(node: ast.Module | ast.FunctionDef) -> ast.stmt | None:
    """The statement that is the docstring of a module or function, if it has one."""
    return node.body[0] if ast.get_docstring(node, clean=False) is not None else None


def _first_again(body: list[ast.stmt], docstring: ast.stmt | None) -> None:
    """The docstring first again, ahead of RestrictedPython's ``_print = ...``: Python takes
    a module's or function's first string as its ``__doc__`` (``print(__doc__)`` answered
    None; a function that printed lost its ``__doc__``: passes EC, EI)."""
    if docstring is not None and docstring in body and body[0] is not docstring:
        body.remove(docstring)
        body.insert(0, docstring)


def _is_int_literal(node: ast.expr) -> bool:
    """An int literal: ``n // 2`` is no bigger than ``n``, whatever ``n`` is (an int, a
    Fraction, a Decimal, a float, a timedelta; a sequence cannot be divided), so it is
    Python's own ``//`` at full speed (a Collatz loop ran ten times CPython's time)."""
    return isinstance(node, ast.Constant) and type(node.value) is int


def _counts_by_a_number(node: ast.AugAssign) -> bool:
    """``steps += 1``, ``x -= 0.5``: a name moved by a number literal, which is Python's own
    ``+=`` at full speed (the in-place hook cost a counting loop four times CPython's time:
    pass EC). It grows nothing: an int by one bit at most each time, and a sequence, a set
    or a dict cannot take a number (TypeError, before any change); a program's object runs
    its own ``__iadd__``/``__add__``, whose code is checked as all of the program's is."""
    value = node.value
    return (
        isinstance(node.op, (ast.Add, ast.Sub))
        and isinstance(value, ast.Constant)
        and type(value.value) in (int, float)
    )


# Special methods a program's class may not define, and why, said where one is refused
_REFUSED_SPECIAL_METHODS = {
    "__del__": "a finalizer would run when the sandbox collects the object, not in the "
    "program's order; close or release things explicitly (a with statement, a close() method)",
    "__copy__": "copy.copy copies the program's objects attribute by attribute",
    "__deepcopy__": "copy.deepcopy copies the program's objects attribute by attribute",
    "__new__": "initialise in __init__ (a class cannot build its own instances here)",
    "__getattr__": "define the attributes, or a method that looks them up",
    "__getattribute__": "define the attributes, or a method that looks them up",
    "__setattr__": "assign attributes directly, or use a method or a property",
    "__delattr__": "delete attributes directly, or use a method",
    "__init_subclass__": "class hooks are not available",
    "__class_getitem__": "class hooks are not available",
    "__set_name__": "descriptors are not available; use a property",
    "__get__": "descriptors are not available; use a property",
    "__set__": "descriptors are not available; use a property",
    "__reduce__": "pickling is not available",
    "__reduce_ex__": "pickling is not available",
}


def copy_locations(new_node: ast.AST, old_node: ast.AST) -> None:
    """``new_node`` placed where ``old_node`` was in the source. RestrictedPython's own also
    ran ``fix_missing_locations`` over the whole subtree below the new node, at every node
    it or this module rewrites: depth times size, a 41 KB program of nested displays took
    10 s to compile (red-team pass FN). What is left unplaced is placed by the one pass at
    the end of :func:`compile_program`, from the nearest placed node above it, as that did.
    RestrictedPython's transformer calls it by its module's name: it is replaced there."""
    ast.copy_location(new_node, old_node)


RestrictedPython.transformer.copy_locations = copy_locations
_Node = TypeVar("_Node", bound=ast.AST)


def place_missing(tree: _Node) -> _Node:
    """``ast.fix_missing_locations``: every node the rewrite left unplaced takes the position
    of the nearest placed node above it. The same result, 1.6x as fast (35 of a program's 210
    us of compile, warm; more in a run's cold child): no generator per node, and a loop
    instead of recursion (an operator chain is ``SPINE_PER_LEVEL`` times ``max_nesting``
    deep)."""
    ast_type, inert = ast.AST, _INERT
    stack: list[tuple[ast.AST, int, int, int, int]] = [(tree, 1, 0, 1, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        node, lineno, col, end_lineno, end_col = pop()
        attributes = node._attributes
        if attributes:  # statements, expressions, handlers, arguments ... (not contexts)
            if "lineno" in attributes:
                if not hasattr(node, "lineno"):
                    node.lineno = lineno  # type: ignore[attr-defined]
                else:
                    lineno = node.lineno
            if "end_lineno" in attributes:
                if getattr(node, "end_lineno", None) is None:
                    node.end_lineno = end_lineno  # type: ignore[attr-defined]
                else:
                    end_lineno = node.end_lineno  # type: ignore[attr-defined]
            if "col_offset" in attributes:
                if not hasattr(node, "col_offset"):
                    node.col_offset = col  # type: ignore[attr-defined]
                else:
                    col = node.col_offset
            if "end_col_offset" in attributes:
                if getattr(node, "end_col_offset", None) is None:
                    node.end_col_offset = end_col  # type: ignore[attr-defined]
                else:
                    end_col = node.end_col_offset  # type: ignore[attr-defined]
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, ast_type):
                if type(value) not in inert:
                    push((value, lineno, col, end_lineno, end_col))
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast_type) and type(item) not in inert:
                        push((item, lineno, col, end_lineno, end_col))
    return tree


def _subclasses(cls: type[ast.AST]) -> set[type[ast.AST]]:
    found: set[type[ast.AST]] = set()
    pending = [cls]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found


_INERT = frozenset(c for c in _subclasses(ast.AST) if not c._fields and not c._attributes)
"""Node classes with neither fields nor a position (``Load``, ``Add``, ``Eq`` ...): nothing
to place, in them or under them."""


SPINE_PER_LEVEL = 5  # a chain of binary operators may be this many times max_nesting long


class _TooDeep(Exception):
    """Raised inside the transformer when the tree is nested deeper than allowed."""


class CompileRefused(Exception):
    """The source was refused before running; ``kind`` is the error kind to report."""

    def __init__(self, kind: str, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.limit = limit


# --------------------------------------------------------------------------- compile


def _names_solution(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == ANSWER_FUNCTION


def _recorded(func: ast.expr) -> ast.expr:
    call = ast.Call(func=ast.Name("_solution_", ast.Load()), args=[func], keywords=[])
    copy_locations(call, func)
    return call


_PRINTED = "printed"


def _formats_a_literal(node: ast.Call) -> bool:
    """``"...".format(...)`` on a string literal, with no ``*args`` or ``**kwargs``: called
    as ``_str_format_("...", ...)``, the sandbox's ``str.format`` (``Guards.format``) that
    reading the literal's ``format`` gives, without the read (a third of such a call's
    time went to the attribute read and the stand-in it made)."""
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "format"
        and isinstance(func.value, ast.Constant)
        and type(func.value.value) is str
        and not any(isinstance(arg, ast.Starred) for arg in node.args)
        and all(keyword.arg is not None for keyword in node.keywords)
    )


def _is_object_setattr(node: ast.Call) -> bool:
    """``object.__setattr__(obj, name, value)``, spelled so (``Guards.object_setattr``)."""
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "__setattr__"
        and isinstance(func.value, ast.Name)
        and func.value.id == "object"
        and len(node.args) == 3
        and not node.keywords
        and not any(isinstance(arg, ast.Starred) for arg in node.args)
    )


def _passes_through(self: RestrictingNodeTransformer, node: ast.AST) -> ast.AST:
    return self.node_contents_visit(node)


def _leaves_passed_through(
    transformer: type[RestrictingNodeTransformer],
) -> frozenset[type[ast.AST]]:
    """The node classes with no fields (``Load``, ``Store``, ``Add``, ``Eq``, ``Pass`` ...)
    whose visitor only returns the node: visiting one changes nothing. Decided from the
    visitors' own bytecode, so a visitor RestrictedPython or this module ever makes do more
    takes its class off the list."""
    reference = _passes_through.__code__
    skipped: set[type[ast.AST]] = set()
    for cls in _subclasses(ast.AST):
        if cls._fields:
            continue
        visitor = getattr(transformer, "visit_" + cls.__name__, None)
        code = getattr(visitor, "__code__", None)
        if (
            code is not None
            and code.co_code == reference.co_code  # loads no constant: a docstring may differ
            and code.co_names == reference.co_names
            and code.co_varnames == reference.co_varnames
            and code.co_argcount == reference.co_argcount
        ):
            skipped.add(cls)
    return frozenset(skipped)


class SandboxTransformer(RestrictingNodeTransformer):
    """RestrictedPython's policy plus: guarded ``**``/``*``/``<<``/``%``, checked f-string
    format specifications, bounded int literals, augmented assignment on items and
    attributes, and the common special methods on the program's own classes."""

    max_bits = 1 << 20
    oversized_literal = False

    max_depth = 100
    star_names: Mapping[str, tuple[str, ...]] = MappingProxyType({})
    passed_through: frozenset[type[ast.AST]] = frozenset()  # see node_contents_visit

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.passed_through = _leaves_passed_through(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._classes: list[str] = []  # the enclosing class statements, innermost last
        self._scopes: list[str] = []  # "class" or "function", innermost last
        self._depth = 0
        self._spine = 0  # BinOps in the left operands of the one being visited (see visit)
        self._left_operand: ast.AST | None = None
        self._in_solution = False  # in the body of the module's own ``def solution``
        self._catching = 0  # inside a ``try`` with handlers (an import there may be a probe)

    def visit(self, node: ast.AST) -> Any:
        """Every node passes here: the nesting is measured on the way, before anything
        recursive (this visitor, CPython's compiler) goes deeper than ``max_depth``. A chain
        of binary operators (``1 + 2 + ... + 100``, a left spine of BinOps) counts apart, up
        to ``SPINE_PER_LEVEL`` times as long: CPython's compiler takes a thousand terms, and
        100 were refused (differential pass FM)."""
        if node is self._left_operand and type(node) is ast.BinOp:
            self._spine += 1
            try:
                if self._spine > self.max_depth * SPINE_PER_LEVEL:
                    raise _TooDeep
                return super().visit(node)
            finally:
                self._spine -= 1
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise _TooDeep
            return super().visit(node)
        finally:
            self._depth -= 1

    def node_contents_visit(self, node: Any) -> Any:
        """``ast.NodeTransformer.generic_visit``, the same result faster: a third of a
        program's nodes are leaves (``Load``, ``Store``, an operator) whose visit changes
        nothing, and they are kept as they are without a call (the depth a visit would
        measure is checked all the same); no generator per node."""
        passed_through = self.passed_through
        visit = self.visit
        ast_type = ast.AST
        for field in node._fields:
            try:
                old = getattr(node, field)
            except AttributeError:
                continue
            if isinstance(old, list):
                new_values = []
                for value in old:
                    if isinstance(value, ast_type):
                        if type(value) in passed_through and self._depth < self.max_depth:
                            new_values.append(value)
                            continue
                        value = visit(value)
                        if value is None:
                            continue
                        if not isinstance(value, ast_type):
                            new_values.extend(value)
                            continue
                    new_values.append(value)
                old[:] = new_values
            elif isinstance(old, ast_type):
                if type(old) in passed_through and self._depth < self.max_depth:
                    continue
                new_node = visit(old)
                if new_node is None:
                    delattr(node, field)
                else:
                    setattr(node, field, new_node)
        return node

    def visit_Constant(self, node: ast.Constant) -> Any:
        value = node.value
        if type(value) is int and value.bit_length() > self.max_bits:
            self.oversized_literal = True
            self.error(node, f"integer literal larger than {self.max_bits} bits (sandbox limit)")
        return self.node_contents_visit(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        """``f"{x:{width}}"``: a specification is evaluated at run time, so the field becomes
        ``_format_value_(x, conversion, spec)``, which checks the spec's widths first."""
        node = self.node_contents_visit(node)
        if node.format_spec is None:
            return node
        call = ast.Call(
            func=ast.Name("_format_value_", ast.Load()),
            args=[node.value, ast.Constant(node.conversion), node.format_spec],
            keywords=[],
        )
        copy_locations(call, node)
        new = ast.FormattedValue(value=call, conversion=-1, format_spec=None)
        copy_locations(new, node)
        return new

    def visit_JoinedStr(self, node: ast.JoinedStr) -> Any:
        """An f-string with a field becomes ``_fstring_((pieces))``: the fields with a
        specification come as formats not yet made (``_format_value_``: a width may ask for
        any length), the others and the text as strings, and the hook makes them in order
        against one budget for the whole string, as ``str.format`` does for its fields: twenty
        fields each within the limit (``f"{s}{s}..."``) would otherwise be twenty times past
        it, and one field is ``str()`` of its value, which ``str()`` measures: a list of long
        strings (red-team pass AL), ``!a`` ten characters a character (pass AJ)."""
        node = self.node_contents_visit(node)
        fields = [value for value in node.values if isinstance(value, ast.FormattedValue)]
        if not fields:  # text alone: as long as the literal
            return node
        pieces: list[ast.expr] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue) and _is_deferred_field(value):
                pieces.append(value.value)  # the _format_value_(...) call
            elif isinstance(value, ast.FormattedValue):  # {x} or {x!r}: made natively; the
                joined = ast.JoinedStr(values=[value])  # hook counts it before anything is
                copy_locations(joined, value)  # joined
                pieces.append(joined)
            else:
                pieces.append(value)
        deferred = any(_is_deferred_field(field) for field in fields)
        call = ast.Call(  # without a specification every piece is text: _fjoin_ only counts
            func=ast.Name("_fstring_" if deferred else "_fjoin_", ast.Load()),
            args=[ast.Tuple(elts=pieces, ctx=ast.Load())],
            keywords=[],
        )
        copy_locations(call, node)
        return call

    def check_name(self, node: Any, name: str | None, allow_magic_methods: bool = False) -> None:
        if name is None:
            return
        in_class_body = bool(self._scopes) and self._scopes[-1] == "class"
        if (name in ALLOWED_DUNDER_METHODS or name in CLASS_BODY_NAMES) and (
            (allow_magic_methods and getattr(node, "col_offset", 0) != 0) or in_class_body
        ):
            return  # a method of the program's own class, defined or aliased in its body
        if is_private_variable(name) or name in MODULE_METADATA:
            return
        if name in ("__name__", "__doc__") and isinstance(getattr(node, "ctx", None), ast.Load):
            return  # the module's name, "__main__", and its docstring (or None)
        if name == _PRINTED:
            return  # a variable like any other (see visit_Name)
        refused = _REFUSED_SPECIAL_METHODS.get(name)
        if refused is not None and (
            in_class_body or allow_magic_methods
        ):  # (RestrictedPython: "an invalid variable
            # name because it starts with _", misleading for a method: pass FM)
            self.error(node, f"defining {name} is not available in the sandbox: {refused}")
            return
        super().check_name(node, name, allow_magic_methods)

    def visit_Name(self, node: ast.Name) -> Any:
        """``printed`` is a variable of the program's (``printed = pages * copies``: printer
        word problems, differential pass FI), not RestrictedPython's text of what was printed
        so far, which had no use here: ``print`` writes to the run's own output."""
        if node.id == _PRINTED:
            return node
        return super().visit_Name(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        if any(keyword.arg != "metaclass" for keyword in node.keywords):
            # RestrictedPython's new class statement dropped them, and the class was made
            # where CPython raises: no base among the allowed modules takes one (pass DQ)
            self.error(node, "class keywords (class A(B, x=1)) are not available in the sandbox")
        # Its name, decorators and bases belong to the enclosing scope, as CPython compiles
        # them: a private name there is mangled with the enclosing class's name (``class
        # B(self.__base)`` in a method of A reads ``_A__base``), and a special method's name
        # is a method's in a class body only (``class __call__:`` at the top: pass GV)
        self.check_name(node, node.name)
        decorators = [self.visit(decorator) for decorator in node.decorator_list]
        bases = [self.visit(base) for base in node.bases]
        node.decorator_list, node.bases = [], []
        self._classes.append(node.name)
        self._scopes.append("class")
        try:
            new = super().visit_ClassDef(node)
        finally:
            self._scopes.pop()
            self._classes.pop()
        if isinstance(new, ast.ClassDef):
            new.decorator_list, new.bases = decorators, bases
        if isinstance(new, ast.ClassDef) and new is not node:
            # RestrictedPython parses a new class statement, at line 1: an error in making
            # the class (a base that cannot be one) was reported there
            ast.copy_location(new, node)
            for keyword in new.keywords:
                for part in ast.walk(keyword):
                    ast.copy_location(part, node)
        return new

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        _strip_annotations(node.args)
        node.returns = None
        solution = not self._scopes and node.name == ANSWER_FUNCTION
        self._scopes.append("function")
        self._in_solution |= solution
        docstring = _docstring(node)
        try:
            new = super().visit_FunctionDef(node)
            if isinstance(new, ast.FunctionDef):
                _first_again(new.body, docstring)
            return new
        finally:
            self._scopes.pop()
            if solution:
                self._in_solution = False

    def visit_Call(self, node: ast.Call) -> Any:
        """``print(solution())``: a call of ``solution`` anywhere but in its own body (its
        recursion costs no frame) goes through ``_solution_``, which keeps what the outermost
        call answered, and that is the run's answer: calling ``solution()`` again after the
        program had answered ran its side effects twice (a counter in it answered 10 where
        the program printed 5) or failed (``def solution(n)``: differential pass DC)."""
        if _is_object_setattr(node):  # a frozen dataclass's __post_init__ sets a field
            args = [self.visit(arg) for arg in node.args]
            hook = ast.Call(func=ast.Name("_object_setattr_", ast.Load()), args=args, keywords=[])
            return ast.copy_location(hook, node)
        if _formats_a_literal(node):  # "{} {}".format(a, b): no attribute to read
            call = ast.Call(
                func=ast.Name("_str_format_", ast.Load()),
                args=[node.func.value, *(self.visit(arg) for arg in node.args)],  # type: ignore[attr-defined]
                keywords=[self.visit(keyword) for keyword in node.keywords],
            )
            copy_locations(call, node)
            return call
        visited = super().visit_Call(node)
        if not isinstance(visited, ast.Call) or self._in_solution:
            return visited
        node = visited
        if _names_solution(node.func):
            node.func = _recorded(node.func)
        elif (  # f(*args): RestrictedPython made it _apply_(f, *args)
            isinstance(node.func, ast.Name)
            and node.func.id == "_apply_"
            and node.args
            and _names_solution(node.args[0])
        ):
            node.args[0] = _recorded(node.args[0])
        return node

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        self._scopes.append("function")
        try:
            return super().visit_Lambda(node)
        finally:
            self._scopes.pop()

    def visit_Try(self, node: ast.Try) -> Any:
        if not node.handlers:
            return super().visit_Try(node)
        self._catching += 1
        try:
            return super().visit_Try(node)
        finally:
            self._catching -= 1

    def _binds_missing(self, module: str) -> bool:
        """``import <module>`` of a module the sandbox does not have, where no ``try`` could
        catch its failure: it binds a ``missing.MissingModule``, which fails when it is used
        (a model imports ``numpy`` or ``time`` it never uses, differential pass DP). Inside a
        ``try`` with handlers the import fails at once, as ``except ImportError:`` expects."""
        return not self._catching and module.partition(".")[0] not in ALLOWED_MODULES

    def _missing(self, node: ast.stmt, target: str, module: str, name: str | None) -> ast.stmt:
        names = [module] if name is None else [module, name]
        return _bind(node, target, "_missing_module_", names)

    def visit_Import(self, node: ast.Import) -> Any:
        new = super().visit_Import(node)
        for alias in node.names:  # the name it binds (RestrictedPython checks "print.x")
            self.check_name(node, alias.asname or alias.name.partition(".")[0])
        if not any(self._binds_missing(alias.name) for alias in node.names):
            return new
        statements: list[ast.stmt] = []
        for alias in node.names:
            if self._binds_missing(alias.name):
                target = alias.asname or alias.name.partition(".")[0]
                statements.append(self._missing(node, target, alias.name, None))
            else:
                kept = ast.Import(names=[alias])
                statements.append(ast.copy_location(kept, node))
        return statements

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        if any(alias.name == "*" for alias in node.names):
            return self._import_star(node)
        if node.module == "__future__" and not node.level:
            # a directive to the compiler, with nothing to import: every feature is
            # Python 3's own but postponed annotations, and annotations are dropped here
            unknown = [a.name for a in node.names if a.name not in __future__.all_feature_names]
            if unknown:
                self.error(node, f"future feature {unknown[0]} is not defined")
            return ast.copy_location(ast.Pass(), node)
        for alias in node.names:
            if alias.name.startswith("_"):
                self.error(node, f'"{alias.name}" cannot be imported: it starts with "_".')
        if node.level or not node.module:
            self.error(node, "relative imports are not available in the sandbox")
            return node
        super().visit_ImportFrom(node)  # the names it binds are checked as any other
        # ``name = _import_from_("module", "name")`` for each name: CPython's own import of a
        # name reads it from the module raw, and when that fails, takes the module named
        # "<module>.<name>" from sys.modules: `from json import decoder` was the real module,
        # and its attributes the real sys (red-team pass CI). The hook reads the name through
        # the guards, as `module.name` is read, and nothing else.
        assigns: list[ast.stmt] = []
        hook = "_missing_module_" if self._binds_missing(node.module) else "_import_from_"
        for alias in node.names:
            bound = alias.asname or alias.name
            assigns.append(_bind(node, bound, hook, [node.module, alias.name]))
        return assigns

    def visit_Match(self, node: ast.Match) -> Any:
        """Refused (a class pattern reads attributes past the guards), with what to write
        instead: a model repairs from the message (differential pass FI)."""
        self.error(
            node,
            "match statements are not available in the sandbox: use if/elif "
            "(if cmd == 'go': ..., elif isinstance(x, Point): ..., elif len(parts) == 2: ...)",
        )
        return node

    def _import_star(self, node: ast.ImportFrom) -> Any:
        """``from math import *`` (smaller models write it) as the import of each name the
        module's view has, by name, as ``from math import a, b`` is; at module level only,
        as CPython's compiler says."""
        names = self.star_names.get(node.module or "") if not node.level else None
        if self._scopes:
            self.error(node, "import * only allowed at module level")
        elif names is None and (node.module or "") not in ALLOWED_MODULES:
            self.error(node, not_available(node.module or ""))
        elif names is None:  # a module compiled without its names (a test's own compile)
            self.error(
                node,
                f'"from {node.module} import *" is not available in the sandbox: '
                f"import the names the program uses (from {node.module} import a, b)",
            )
        else:
            spelled = ast.ImportFrom(
                module=node.module, names=[ast.alias(name=name) for name in names], level=0
            )
            return self.visit_ImportFrom(ast.copy_location(spelled, node))
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        """``total: float = 0.0`` is ``total = 0.0``: annotations are never evaluated (they
        would run ``typing``'s code). In a class body a field's annotation is kept as a
        string, which ``typing.NamedTuple`` reads and nothing evaluates."""
        if self._scopes and self._scopes[-1] == "class" and isinstance(node.target, ast.Name):
            text = ast.Constant(ast.unparse(node.annotation)[:200])
            ast.copy_location(text, node.annotation)
            node.annotation = text
            node.target = self.visit(node.target)
            if node.value is not None:
                node.value = self.visit(node.value)
            return node
        if node.value is None:
            return self.visit(ast.copy_location(ast.Pass(), node))
        plain = ast.Assign(targets=[node.target], value=node.value)
        ast.copy_location(plain, node)
        return self.visit(plain)

    def _mangled(self, attr: str) -> str:
        """Python's own mangling of ``__x`` inside a class, which it applies to attribute
        nodes but not to the string we pass to ``_getattr_``."""
        owner = self._classes[-1].lstrip("_") if self._classes else ""
        if attr.startswith("__") and not attr.endswith("__") and owner:
            return f"_{owner}{attr}"
        return attr

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        attr = node.attr
        if attr in SUPER_DUNDERS and _is_super_call(node.value) and isinstance(node.ctx, ast.Load):
            # ``super`` is only a name: ``_super_attr_`` checks at run time that it gave a
            # real super object bound to the program's own object.
            call = ast.Call(
                func=ast.Name("_super_attr_", ast.Load()),
                args=[self.visit(node.value), ast.Constant(attr)],
                keywords=[],
            )
            copy_locations(call, node)
            return call
        readable = attr in READABLE_DUNDERS or attr in OWN_DUNDERS or attr in ALLOWED_DUNDER_METHODS
        if (readable and isinstance(node.ctx, ast.Load)) or is_private_name(attr):
            # RestrictedPython refuses every "_" name; these go through the same hooks as any
            # attribute, and the run-time guard decides (private: the program's objects only).
            node = self.node_contents_visit(node)
            if isinstance(node.ctx, ast.Load):
                new: ast.expr = ast.Call(
                    func=ast.Name("_getattr_", ast.Load()),
                    args=[node.value, ast.Constant(self._mangled(attr))],
                    keywords=[],
                )
                copy_locations(new, node)
                return new
            write = ast.Call(func=ast.Name("_write_", ast.Load()), args=[node.value], keywords=[])
            copy_locations(write, node.value)
            node.value = write
            return node
        if attr in ALLOWED_DUNDER_METHODS:  # read: on the program's own objects (above)
            self.error(
                node,
                f'"{attr}" cannot be set or deleted in the sandbox: define it in the class '
                "body (a class's special methods are fixed when it is made)",
            )
            return self.node_contents_visit(node)
        return super().visit_Attribute(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        """``except X`` matches through ``_catch_(X)``: a stand-in (the program's
        ``UnicodeDecodeError``, checked when it is made) is its real class there; ``as e``
        passes ``_caught_(e)`` first."""
        node = cast(ast.ExceptHandler, super().visit_ExceptHandler(node))
        if node.type is not None:
            call = ast.Call(func=ast.Name("_catch_", ast.Load()), args=[node.type], keywords=[])
            copy_locations(call, node.type)
            node.type = call
        if node.name is not None:  # ``as e``: its texts measured first (see Classes.caught)
            measured = ast.Call(
                func=ast.Name("_caught_", ast.Load()),
                args=[ast.Name(node.name, ast.Load())],
                keywords=[],
            )
            check = ast.Expr(measured)
            copy_locations(check, node)
            node.body.insert(0, check)
        return node

    def guard_iter(self, node: ast.For | ast.comprehension) -> Any:
        """A ``for`` loop or a comprehension, iterating as Python does. RestrictedPython
        wraps what it iterates in ``_getiter_`` and each item of a tuple target in
        ``_iter_unpack_sequence_``, for a policy that guards iteration; the sandbox's
        ``_getiter_`` was ``iter`` itself, so the wrappers guarded nothing. They cost a third
        of a BFS loop's time (differential pass FW), and a tuple target's items were listed
        whole where Python reads as many as the target takes."""
        return self.node_contents_visit(node)

    def protect_unpack_sequence(  # type: ignore[override]  # any expression serves there
        self, target: ast.Tuple, value: ast.expr
    ) -> ast.expr:
        """``a, b = value`` unpacks as Python does (see :meth:`guard_iter`): RestrictedPython's
        ``_unpack_sequence_`` listed ``value`` whole first, so ``a, b = itertools.count()``
        ran to the time limit where CPython raises ``ValueError`` at once."""
        return value

    def visit_comprehension(self, node: ast.comprehension) -> Any:
        """``async for`` in a generator expression is refused as every other async construct
        is (RestrictedPython lets this one through): nothing could await it, and the
        awaitables of an async generator were one more kind of object with a ``throw``."""
        if node.is_async:
            self.error(node.target, "async comprehensions are not allowed in the sandbox")
        return super().visit_comprehension(node)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        """Allow ``nonlocal`` (RestrictedPython refuses it): it only rebinds a local of the
        enclosing function, and stores to ``_`` names are refused anyway."""
        for name in node.names:
            self.check_name(node, name)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self._left_operand = node.left  # visited first: see visit
        node = self.node_contents_visit(node)
        hook = _CUSTOM_HOOKS.get(type(node.op))
        if (
            hook is None
            or (hook in ("_add_", "_sub_") and not _is_checked_sum(node))
            or (hook == "_floordiv_" and _is_int_literal(node.right))
        ):
            return node
        if hook == "_add_" and _is_text_literal(node.left) != _is_text_literal(node.right):
            # ``s + "literal"``: Python's own ``+``, which CPython grows in place, after a
            # check that ``s`` has room for the literal (``Arithmetic.room``)
            if _is_text_literal(node.right):
                node.left = _room_for(node.left, node.right, literal_first=False)
            else:
                node.right = _room_for(node.right, node.left, literal_first=True)
            return node
        call = ast.Call(func=ast.Name(hook, ast.Load()), args=[node.left, node.right], keywords=[])
        # placed as the operator was; its operands are placed already and not walked again
        # (RestrictedPython's copy_locations fixes the whole subtree: a chain of 400 sums
        # took 2.6 s to compile, quadratic)
        ast.copy_location(call.func, node)
        return ast.copy_location(call, node)

    def _sized_display(self, node: ast.List | ast.Tuple | ast.Set) -> Any:
        """``[*l, *l, *l]``: a display that unpacks two iterables or more may make many
        times the largest of them in one expression (red-team pass BM: 36M items from a 9M
        list), so what it made goes through ``_sized_``, as a sum does; one ``*l`` copies
        ``l``, and each other item adds one."""
        node = self.node_contents_visit(node)
        starred = sum(isinstance(item, ast.Starred) for item in node.elts)
        if starred < 2 or isinstance(getattr(node, "ctx", None), ast.Store):  # a set has none
            return node
        call = ast.Call(func=ast.Name("_sized_", ast.Load()), args=[node], keywords=[])
        copy_locations(call, node)
        return call

    visit_List = visit_Tuple = _sized_display

    def visit_Set(self, node: ast.Set) -> Any:
        """A set display, as :meth:`_sized_display`, through ``_set_made_`` unless it holds
        only constants (which CPython folds, ``x in {1, 2}``): a set a special method makes
        is its own to change (``visited = {start}`` in a ``__repr__``, see
        ``standins.Classes.made_set``)."""
        new = self._sized_display(node)
        if all(isinstance(item, ast.Constant) for item in node.elts):
            return new
        return self._set_made(new, node)

    def visit_SetComp(self, node: ast.SetComp) -> Any:
        return self._set_made(super().visit_SetComp(node), node)

    @staticmethod
    def _set_made(new: Any, node: ast.expr) -> Any:
        call = ast.Call(func=ast.Name("_set_made_", ast.Load()), args=[new], keywords=[])
        copy_locations(call, node)
        return call

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        """``x[a:b] = v`` writes through ``_write_slice_``, which counts what a list or a
        bytearray grows by (``b[0:0] = iterator`` made 150M items in one statement)."""
        assigned_slice = isinstance(node.ctx, ast.Store) and isinstance(node.slice, ast.Slice)
        if not isinstance(node.ctx, ast.Load) and any(
            isinstance(part, ast.Yield | ast.YieldFrom | ast.Await) for part in ast.walk(node.slice)
        ):
            # ``c[(yield)] = v``: Python calls _write_(c) before it works out the key, and a
            # generator suspended there stored later, unguarded, in the middle of a comparison
            # (red-team pass DO: an item CPython was comparing freed). The write guard decides
            # when it is called: nothing may come between it and the store.
            self.error(node, "an item store or deletion cannot yield while it works out its key")
            return node
        new = super().visit_Subscript(node)
        if assigned_slice and isinstance(new, ast.Subscript) and isinstance(new.value, ast.Call):
            name = ast.Name("_write_slice_", ast.Load())
            copy_locations(name, node)
            new.value.func = name
        return new

    def visit_Assign(self, node: ast.Assign) -> Any:
        """``x, y = p = f()``: ``f()`` once, its value given to each target from the left, as
        CPython does. RestrictedPython splits a chained assignment with a tuple target into
        one statement per target, right-most first, each running ``f()`` again (pass EI:
        ``x, y = p = next(it)`` took two items)."""
        if len(node.targets) < 2 or not any(isinstance(t, ast.Tuple) for t in node.targets):
            return super().visit_Assign(node)
        value = self.visit(node.value)
        held = self.gen_tmp_name()
        keep = ast.Assign(targets=[ast.Name(held, ast.Store())], value=value)
        statements: list[ast.stmt] = [keep]
        for target in node.targets:
            target = self.visit(target)
            given: ast.expr = ast.Name(held, ast.Load())
            if isinstance(target, ast.Tuple):
                given = self.protect_unpack_sequence(target, given)
            statements.append(ast.Assign(targets=[target], value=given))
        statements.append(ast.Delete(targets=[ast.Name(held, ast.Del())]))
        for statement in statements:
            copy_locations(statement, node)
        return statements

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        target = node.target
        if isinstance(target, ast.Name):
            if _counts_by_a_number(node):
                return self.node_contents_visit(node)  # the name checked as a store is
            if isinstance(node.op, ast.Add) and _is_text_literal(node.value):
                # ``s += "literal"``: Python's own ``+=`` (grown in place), after a check that
                # ``s`` has room for it (``Arithmetic.adding``; the in-place hook copied ``s``
                # at every step: a loop of 100k took 190 ms, differential pass FT)
                node = self.node_contents_visit(node)
                read = ast.Name(target.id, ast.Load())
                call = ast.Call(
                    func=ast.Name("_adding_", ast.Load()), args=[read, node.value], keywords=[]
                )
                node.value = ast.copy_location(call, node.value)
                return node
            return super().visit_AugAssign(node)
        op = ast.Constant(_IOP[type(node.op)])
        if isinstance(target, ast.Attribute):
            private = is_private_name(target.attr)
            if (target.attr.startswith("_") and not private) or target.attr in DENIED_ATTRIBUTES:
                self.error(node, f'"{target.attr}" is an invalid attribute name.')
                return node
            obj = self.visit(target.value)
            key: ast.expr = ast.Constant(self._mangled(target.attr))
            hook = "_aug_attr_"
        elif isinstance(target, ast.Subscript):
            obj = self.visit(target.value)
            sl = target.slice
            if isinstance(sl, ast.Slice):
                parts = [
                    self.visit(p) if p is not None else ast.Constant(None)
                    for p in (sl.lower, sl.upper, sl.step)
                ]
                # the builtin slice, whatever the program calls ``slice`` (a local
                # ``slice = arr[i:j]`` was called here: red-team pass DT)
                key = ast.Call(func=ast.Name("_aug_slice_", ast.Load()), args=parts, keywords=[])
            else:
                key = self.visit(sl)
            hook = "_aug_item_"
        else:  # pragma: no cover - the grammar allows nothing else
            self.error(node, "Unsupported augmented assignment target.")
            return node
        # the target read first, then the value, as CPython does (policy.Guards.aug_item)
        reader = hook.replace("_aug_", "_aug_read_")
        target_read = ast.Call(func=ast.Name(reader, ast.Load()), args=[obj, key], keywords=[])
        value = self.visit(node.value)
        call = ast.Call(func=ast.Name(hook, ast.Load()), args=[target_read, op, value], keywords=[])
        new = ast.Expr(value=call)
        copy_locations(new, node)
        return new


def _bind(node: ast.stmt, target: str, hook: str, args: list[str]) -> ast.stmt:
    """``target = hook("arg", ...)``, where ``node`` was."""
    call = ast.Call(
        func=ast.Name(hook, ast.Load()), args=[ast.Constant(a) for a in args], keywords=[]
    )
    assign = ast.Assign(targets=[ast.Name(target, ast.Store())], value=call)
    return ast.copy_location(assign, node)


_IOP = {
    ast.Add: "+=",
    ast.Sub: "-=",
    ast.Mult: "*=",
    ast.Div: "/=",
    ast.Mod: "%=",
    ast.Pow: "**=",
    ast.LShift: "<<=",
    ast.RShift: ">>=",
    ast.BitOr: "|=",
    ast.BitXor: "^=",
    ast.BitAnd: "&=",
    ast.FloorDiv: "//=",
    ast.MatMult: "@=",
}


MAX_ZERO_FIXES = 64
_LEADING_ZEROS = "leading zeros in decimal integer literals"
_ZERO_LITERAL = re.compile(r"0[0-9_]*[0-9]")
_NEWLINE = re.compile(r"\r\n|\r|\n")  # the line ends Python counts, no others


def _parse(source: str) -> ast.Module:
    """``ast.parse``, reading ``09`` as ``9`` (see the module docstring)."""
    for _ in range(MAX_ZERO_FIXES):
        try:
            return ast.parse(source, FILENAME, "exec")
        except SyntaxError as exc:
            fixed = _without_leading_zeros(source, exc)
            if fixed is None:
                raise
            source = fixed
    return ast.parse(source, FILENAME, "exec")


def _without_leading_zeros(source: str, exc: SyntaxError) -> str | None:
    if _LEADING_ZEROS not in (exc.msg or "") or not exc.lineno or not exc.offset:
        return None
    starts = [0, *(m.end() for m in _NEWLINE.finditer(source))]
    if exc.lineno > len(starts):
        return None
    line = starts[exc.lineno - 1]
    # The tokenizer's offset counts the line's UTF-8 bytes, not its characters: after
    # ``s = "ééé"`` the literal is further left than the offset says (red-team pass CT).
    before = source[line : line + exc.offset].encode("utf-8")[: exc.offset - 1]
    at = line + len(before.decode("utf-8", "ignore"))
    literal = _ZERO_LITERAL.match(source, at)
    if literal is None:
        return None
    return source[:at] + str(int(literal.group().replace("_", ""))) + source[literal.end() :]


def _located(exc: SyntaxError) -> str:
    """A syntax error's message, after its line when it has one (a NUL byte has none: it
    read "line None: ...", pass FS)."""
    return exc.msg if exc.lineno is None else f"line {exc.lineno}: {exc.msg}"


SandboxTransformer.passed_through = _leaves_passed_through(SandboxTransformer)


def compile_program(
    source: str,
    max_nesting: int,
    max_bits: int = 1 << 20,
    star_names: Mapping[str, tuple[str, ...]] | None = None,
) -> types.CodeType:
    """Parse, check and compile one program (``from m import *`` binds ``star_names[m]``).
    Raises :class:`CompileRefused`."""
    try:
        tree = _parse(source)
    except SyntaxError as exc:
        raise CompileRefused("SyntaxError", _located(exc)) from None
    except ValueError as exc:  # e.g. null bytes in the source
        raise CompileRefused("SyntaxError", str(exc)) from None
    except (RecursionError, MemoryError, OverflowError) as exc:
        raise CompileRefused(
            "SyntaxError", f"program too deeply nested or too large to parse ({exc})", "nesting"
        ) from None
    errors: list[str] = []
    warnings: list[str] = []
    used_names: dict[str, bool] = {}
    try:
        transformer = SandboxTransformer(errors, warnings, used_names)
        transformer.max_bits = max_bits
        transformer.max_depth = max_nesting
        transformer.star_names = star_names or {}
        docstring = _docstring(tree)
        tree = place_missing(transformer.visit(tree))  # once, what a hook left
        _first_again(tree.body, docstring)
        if errors:
            if transformer.oversized_literal:
                raise CompileRefused("OverflowError", "; ".join(errors[:5]), "int_size")
            raise CompileRefused("SecurityError", "; ".join(errors[:5]))
        return compile(tree, FILENAME, "exec", dont_inherit=True)
    except _TooDeep:
        raise CompileRefused(
            "SyntaxError",
            f"program nested deeper than {max_nesting} levels, or a chain of more than "
            f"{max_nesting * SPINE_PER_LEVEL} operators",
            "nesting",
        ) from None
    except (RecursionError, MemoryError) as exc:
        raise CompileRefused(
            "SyntaxError", f"program too complex to compile ({type(exc).__name__})", "nesting"
        ) from None
    except SyntaxError as exc:  # e.g. 'return' outside function, found by the compiler
        raise CompileRefused("SyntaxError", _located(exc)) from None
