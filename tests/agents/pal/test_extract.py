"""Program extraction from the completions real models write."""

from __future__ import annotations

import pytest

from agents.pal.extract import extract_program, zero_padded_decimals

PROGRAM = (
    "def solution():\n"
    '    """Olga has 3 boxes of 4 pens. How many pens?"""\n'
    "    boxes = 3\n"
    "    pens_per_box = 4\n"
    "    result = boxes * pens_per_box\n"
    "    return result\n"
)


def program_of(completion: str) -> str:
    extraction = extract_program(completion)
    assert extraction is not None, completion
    return extraction.program


def run(program: str) -> object:
    """Our own scripted programs only: plain exec is fine for checking the extracted text."""
    namespace: dict[str, object] = {}
    exec(compile(program, "<test>", "exec"), namespace)
    solution = namespace["solution"]
    assert callable(solution)
    return solution()


@pytest.mark.parametrize(
    "completion",
    [
        PROGRAM,
        f"```python\n{PROGRAM}```",
        f"```\n{PROGRAM}```",
        f"```py\n{PROGRAM}```\n",
        f"``` Python\n{PROGRAM}```",
        f"~~~python\n{PROGRAM}~~~",
        f"Sure! Here is the program:\n\n```python\n{PROGRAM}```\n\nIt returns 12.",
        f"Here is the solution:\n{PROGRAM}\nIt multiplies boxes by pens. The answer is 12.",
        f"# solution in Python:\n\n\n{PROGRAM}\n\n\n\n\nQ: Next question here?\n\n# solution"
        "in Python:\n\n\ndef solution():\n    return 99\n",
        f"{PROGRAM}\n\nQuestion: Tim has 5 apples. How many?\ndef solution():\n    return 5\n",
        f"{PROGRAM}\n\ndef solution():\n    return 99\n",
        f"```python\n{PROGRAM}",  # unclosed fence (cut by max_tokens or a stop sequence)
    ],
    ids=[
        "bare",
        "fenced-python",
        "fenced-untagged",
        "fenced-py",
        "fenced-spaced-tag",
        "tilde-fence",
        "prose-around-fence",
        "prose-around-bare",
        "run-on-Q",
        "run-on-Question",
        "second-solution",
        "unclosed-fence",
    ],
)
def test_the_first_complete_program_is_extracted(completion: str) -> None:
    program = program_of(completion)
    assert run(program) == 12
    assert program.count("def solution") == 1
    assert "99" not in program and "Next question" not in program


def test_crlf_line_endings() -> None:
    completion = f"Here you go:\r\n```python\r\n{PROGRAM}```\r\nDone.".replace("\n", "\r\n")
    completion = completion.replace("\r\r\n", "\r\n")
    program = program_of(completion)
    assert "\r" not in program
    assert run(program) == 12


def test_two_code_blocks_take_the_first_program() -> None:
    completion = (
        f"```python\n{PROGRAM}```\n\nTo run it:\n\n```python\nprint(solution())\n```\n"
        "```text\n12\n```"
    )
    assert program_of(completion) == PROGRAM


def test_a_block_in_another_language_is_skipped() -> None:
    completion = f"```bash\npython solve.py\n```\n```python\n{PROGRAM}```"
    assert program_of(completion) == PROGRAM


def test_output_only_block_before_the_program_is_skipped() -> None:
    completion = f"The answer:\n```\n12\n```\nbecause\n```python\n{PROGRAM}```"
    assert program_of(completion) == PROGRAM


def test_body_only_completion_is_wrapped_in_solution() -> None:
    body = "    boxes = 3\n    pens = 4\n    result = boxes * pens\n    return result\n"
    program = program_of(body)
    assert program.startswith("def solution():\n")
    assert run(program) == 12


def test_body_only_with_docstring_and_run_on() -> None:
    body = (
        '    """Olga has 3 boxes."""\n    boxes = 3\n    result = boxes * 4\n    return result\n'
        "\n\n\n\nQ: Another question?\n\n# solution in Python:\n"
    )
    assert run(program_of(body)) == 12


def test_body_only_whose_first_line_lost_its_indentation() -> None:
    body = "boxes = 3\n    pens_per_box = 4\n    result = boxes * pens_per_box\n    return result"
    assert run(program_of(body)) == 12


def test_top_level_program_without_solution_is_kept_whole() -> None:
    completion = "total = 0\nfor i in range(4):\n    total += i\nresult = total\n"
    program = program_of(completion)
    namespace: dict[str, object] = {}
    exec(program, namespace)
    assert namespace["result"] == 6


def test_helper_function_and_top_level_call_are_not_mistaken_for_a_body() -> None:
    completion = "def area(w, h):\n    return w * h\n\nresult = area(3, 4)\n"
    assert program_of(completion) == completion


def test_a_syntax_error_is_returned_as_written_for_the_sandbox_to_report() -> None:
    completion = "```python\ndef solution():\n    result = (3 * 4\n    return result\n```"
    program = program_of(completion)
    assert program == "def solution():\n    result = (3 * 4\n    return result\n"


def test_code_with_an_indented_bracket_closing_is_not_cut() -> None:
    completion = (
        "def solution():\n    prices = [\n        3,\n        4,\n    ]\n    return sum(prices)\n"
        "\nThe total is 7."
    )
    assert run(program_of(completion)) == 7


def test_prose_before_is_the_preamble() -> None:
    extraction = extract_program(f"I multiply boxes by pens.\n```python\n{PROGRAM}```")
    assert extraction is not None
    assert extraction.preamble == "I multiply boxes by pens."
    assert extract_program(PROGRAM) == extraction.__class__(PROGRAM, "")


@pytest.mark.parametrize(
    "completion",
    ["", "   \n", "The answer is 12.", "I cannot write a program for this.", "```\n12\n```"],
)
def test_no_program(completion: str) -> None:
    assert extract_program(completion) is None


def test_huge_completion_is_bounded() -> None:
    completion = PROGRAM + "x = 1\n" * 100_000
    program = program_of(completion)
    assert len(program) <= 64 * 1024


def test_a_statement_continued_at_column_zero_is_not_prose() -> None:
    completion = "total = (1 +\n2)\nresult = total * 4\n\nThe answer is 12."
    program = program_of(completion)
    assert program == "total = (1 +\n2)\nresult = total * 4\n"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("d = date(1989, 11, 09)\n", "d = date(1989, 11, 9)\n"),
        ("x = [007, 010, 00012]\n", "x = [7, 10, 12]\n"),
        ("a = 09; b = 08 + 1\n", "a = 9; b = 8 + 1\n"),
        # Untouched: valid literals, strings, comments, and f-strings (one token in 3.11).
        ("y = 0x0F + 00 + 1e05 + 0.5 + 09.5 + 0\n", None),
        ("s = \"09\" + '007'  # 09\n", None),
        ('f = f"{2023}-{11:02d}"\n', None),
    ],
)
def test_zero_padded_decimals_are_read_as_decimals(code: str, expected: str | None) -> None:
    """Issue 15: the embedded models write ISO dates as date(1989, 11, 09), a SyntaxError."""
    assert zero_padded_decimals(code) == (expected or code)
    compile(expected or code, "<test>", "exec")


def test_a_date_program_with_leading_zeros_is_extracted_runnable() -> None:
    completion = (
        "```python\nfrom datetime import date\ndef solution():\n"
        "    return (date(1989, 11, 09) - date(1969, 07, 20)).days\n```"
    )
    extraction = extract_program(completion)
    assert extraction is not None
    assert "date(1989, 11, 9) - date(1969, 7, 20)" in extraction.program
    compile(extraction.program, "<test>", "exec")
