"""Program extraction: the first complete Python program in a messy completion.

What real models return, and what happens to it:

- fenced code (```` ```python ````, ```` ```py ````, a bare ```` ``` ````, an unclosed fence):
  the first block that holds a program; blocks tagged as another language (``text``, ``bash``,
  ``output``...) are skipped;
- bare code with prose before or after it: the prose is dropped;
- a completion that runs on into the next few-shot exemplar (``Q:``, ``Question:``,
  ``# solution in Python``, a second top-level ``def solution``): cut there;
- only the body of ``def solution():`` (the prompt ended with the ``def`` line): wrapped in it;
- CRLF or CR line endings.

Extraction never executes anything (it only compiles to check syntax), and it repairs one
thing only: a decimal literal with leading zeros (``date(1989, 11, 09)``, what small models
write for ISO dates) is never valid Python 3, so reading it as the decimal it spells cannot
change a valid program (``zero_padded_decimals``). Any other syntax error is returned as
written, so the sandbox reports it and the model gets to fix it.
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass

MAX_COMPLETION_CHARS = 64 * 1024  # beyond this a completion is truncated before extraction

_FENCE = re.compile(
    r"^[ \t]*(?:```|~~~)[ \t]*(?P<tag>[\w+#.-]*)[^\n]*\n"  # the opening fence and its tag
    r"(?P<code>.*?)"
    r"(?:^[ \t]*(?:```|~~~)[ \t]*$|\Z)",  # the closing fence, or the end (an unclosed block)
    re.MULTILINE | re.DOTALL,
)
_PYTHON_TAGS = frozenset({"", "python", "python3", "py", "py3", "python2", "ipython", "pycon"})
# A line where the next few-shot exemplar begins (real Codex completions run on like this).
_RUN_ON = re.compile(
    r"^\s*(?:#+\s*)?(?:Q|Question|Problem)\s*\d*\s*:|^\s*#\s*solution in python", re.I
)
_TOP_LEVEL_SOLUTION = re.compile(r"^(?:async\s+)?def\s+solution\s*\(")
# The first line of a program: a statement keyword, an import, a decorator, a comment, an
# assignment or a call. Prose ("Here is the program:", "Sure!") does not match.
_CODE_START = re.compile(
    r"""^\s*(?:
        (?:async\s+)?def\s+\w+\s*\( | class\s+\w+ | import\s+\w | from\s+[\w.]+\s+import\b
        | @\w | \#
        | (?:for|while|if|elif|with|try)\b[^\n]*:[ \t]*(?:\#[^\n]*)?$
        | (?:return|print|assert|raise)\b
        | [A-Za-z_][\w.]*(?:\[[^\]\n]*\])?\s*(?:[-+*/%]|//|\*\*)?=(?!=)
        | [A-Za-z_][\w.]*\s*,\s*[A-Za-z_][\w.,\s]*=(?!=)
        | [A-Za-z_][\w.]*\s*:\s*[\w\[\], .|]+=(?!=)
        | [A-Za-z_][\w.]*\(
    )""",
    re.VERBOSE,
)
_RETURN = re.compile(r"^[ \t]+return\b", re.MULTILINE)  # indented; \s+ spanned blank lines
_MAX_CUT_ATTEMPTS = 50  # compiles tried while looking for where trailing prose starts


@dataclass(frozen=True, slots=True)
class Extraction:
    program: str  # always ends with a newline
    preamble: str  # prose before the code ("" when none): the model's thought, if any


def extract_program(completion: str) -> Extraction | None:
    """The first complete program in ``completion``, or None when it holds no code at all."""
    text = completion[:MAX_COMPLETION_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    blocks = [m for m in _FENCE.finditer(text) if m.group("tag").lower() in _PYTHON_TAGS]
    if blocks:
        cleaned = [(m, _clean(m.group("code"))) for m in blocks]
        usable = [(m, code) for m, code in cleaned if code is not None]
        if usable:
            match, code = next(((m, c) for m, c in usable if _compiles(c)), usable[0])
            return Extraction(zero_padded_decimals(code), _prose(text[: match.start()]))
    lines = text.split("\n")
    start = _code_start(lines)
    if start is None:
        return None
    program = _clean("\n".join(lines[start:]))
    if program is None:
        return None
    return Extraction(zero_padded_decimals(program), _prose("\n".join(lines[:start])))


def _clean(code: str) -> str | None:
    """One candidate program: drop prose around it, cut a run-on, wrap a bare body."""
    lines = code.expandtabs(4).split("\n")
    start = _code_start(lines)
    if start is None:
        return None
    lines = _cut_run_on(lines[start:])
    lines = _wrap_body(lines) if _is_body_only(lines) else _cut_trailing_prose(lines)
    program = "\n".join(line.rstrip() for line in lines).strip("\n")
    return program + "\n" if program.strip() else None


def _code_start(lines: list[str]) -> int | None:
    return next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)


def _cut_run_on(lines: list[str]) -> list[str]:
    seen_code = False
    seen_solution = False
    for i, line in enumerate(lines):
        if seen_code and _RUN_ON.match(line) and not line.startswith((" ", "\t")):
            return lines[:i]
        if _TOP_LEVEL_SOLUTION.match(line):
            if seen_solution:  # a second solution(): the next exemplar's answer
                return lines[:i]
            seen_solution = True
        if line.strip() and not line.lstrip().startswith("#"):
            seen_code = True
    return lines


def _is_body_only(lines: list[str]) -> bool:
    """The completion continued a prompt that ended with ``def solution():``."""
    code = [line for line in lines if line.strip()]
    if not code or any(_TOP_LEVEL_SOLUTION.match(line) for line in code):
        return False
    joined = "\n".join(lines)
    if not _RETURN.search(joined) and not code[0].startswith((" ", "\t")):
        return False
    # The first line may have lost its indentation (a backend stripped the completion).
    return code[0].startswith((" ", "\t")) or (
        len(code) > 1 and code[1].startswith((" ", "\t")) and not code[0].rstrip().endswith(":")
    )


def _wrap_body(lines: list[str]) -> list[str]:
    body: list[str] = []
    indent: str | None = None
    for i, line in enumerate(lines):
        if not line.strip():
            body.append("")
            continue
        if i > 0 and not line.startswith((" ", "\t")) and body:
            break  # back at column 0: the body is over (prose or a call follows)
        if indent is None and line.startswith((" ", "\t")):
            indent = line[: len(line) - len(line.lstrip())]
        body.append(line)
    if body and not body[0].startswith((" ", "\t")):
        body[0] = (indent or "    ") + body[0]
    dedented = textwrap.dedent("\n".join(body)).strip("\n")
    return ["def solution():", *textwrap.indent(dedented, "    ").split("\n")]


def _cut_trailing_prose(lines: list[str]) -> list[str]:
    """Cut at the first column-0 line that reads as prose where the code above compiles."""
    if _compiles("\n".join(lines)):
        return lines
    attempts = 0
    for i, line in enumerate(lines):
        if i == 0 or not _looks_like_prose(line):
            continue
        if _compiles("\n".join(lines[:i])):
            return lines[:i]
        attempts += 1
        if attempts >= _MAX_CUT_ATTEMPTS:
            break
    return lines


def _looks_like_prose(line: str) -> bool:
    """A column-0 line that is no statement and does not open or close a multi-line one."""
    if not line.strip() or line.startswith((" ", "\t")) or line.rstrip().endswith(("\\", ":")):
        return False
    if line.lstrip().startswith((")", "]", "}", '"', "'")):
        return False
    opened = sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")
    return opened <= 0 and not _parses(line)


def _parses(line: str) -> bool:
    stripped = line.strip()
    if stripped.endswith(":"):  # a compound statement's header: parse it with a body
        stripped += " pass"
    try:
        tree = ast.parse(stripped)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    # A lone word or number ("Output", "Explanation") is prose, not a statement.
    return not (
        len(tree.body) == 1
        and isinstance(tree.body[0], ast.Expr)
        and isinstance(tree.body[0].value, ast.Name | ast.Constant)
    )


def zero_padded_decimals(code: str) -> str:
    """``code`` with each zero-padded decimal integer (``09``, ``007``) written without its
    zeros. Python's tokenizer reads ``09`` as ``0`` then ``9``, touching: such runs of number
    tokens are the only thing rewritten; strings, comments, ``0x0F``, ``00`` and ``09.5`` are
    left as they are. Code that does not tokenize is returned unchanged."""
    if not re.search(r"(?<![\w.])0\d", code):  # the common case: nothing to do
        return code
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return code
    edits: list[tuple[tuple[int, int], tuple[int, int], str]] = []
    i = 0
    while i < len(tokens):
        first, j = tokens[i], i
        if first.type == tokenize.NUMBER and re.fullmatch(r"0+", first.string):
            while (
                j + 1 < len(tokens)
                and tokens[j + 1].type == tokenize.NUMBER
                and tokens[j + 1].start == tokens[j].end
                and re.fullmatch(r"\d+", tokens[j + 1].string)
            ):
                j += 1
            if j > i:
                digits = "".join(token.string for token in tokens[i : j + 1])
                edits.append((first.start, tokens[j].end, str(int(digits))))
        i = j + 1
    lines = code.splitlines(keepends=True)
    for (row, col), (_, end_col), text in reversed(edits):  # a literal is on one line
        line = lines[row - 1]
        lines[row - 1] = line[:col] + text + line[end_col:]
    return "".join(lines)


def _compiles(code: str) -> bool:
    try:
        compile(code, "<pal>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _prose(text: str) -> str:
    return re.sub(r"[ \t]+\n", "\n", text).strip()
