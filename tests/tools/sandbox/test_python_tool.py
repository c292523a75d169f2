"""The ``python`` action: the Tool protocol, observations, and busy -> ToolUnavailable."""

from __future__ import annotations

import asyncio

import pytest

from tools.base import Tool, ToolError, ToolUnavailable
from tools.python_tool import PythonTool
from tools.sandbox import Sandbox, SandboxConfig


async def test_python_tool_runs_programs_and_reports_errors() -> None:
    async with Sandbox(SandboxConfig(workers=1, timeout_s=2.0)) as sandbox:
        tool = PythonTool(sandbox)
        assert isinstance(tool, Tool)
        assert (tool.name, tool.input_hint) == ("python", "code")
        assert "\n" not in tool.description
        assert await tool.run("print(6 * 7)") == "42"
        assert await tool.run("```python\nresult = 2 ** 10\n```") == "result: 1024"
        # What it printed, and nothing more (pass EZ: "laptcaer\nresult: 'laptcaer'", and the
        # 1.5B model answered 'laptcaer' in quotes; a variable named result shown as output)
        reversed_ = await tool.run('print("reactpal"[::-1])')
        assert (reversed_, reversed_.result) == ("laptcaer", "laptcaer")
        counted = await tool.run('result = "a-b-c".split("-")\nprint(len(result))')
        assert (counted, counted.result) == ("3", "3")
        assert await tool.run("x = 1 / 0") == "ZeroDivisionError: division by zero (line 1)"
        used = await tool.run("import os\nprint(os.getcwd())")
        assert used.startswith("ModuleNotFoundError: module 'os'") and used.endswith("(line 2)")
        with pytest.raises(ToolError):
            await tool.run("   ")
        # A small model's date, as it writes it (issue 12): 09 is read as 9.
        dates = "from datetime import date\nprint((date(1989, 11, 09) - date(1969, 07, 20)).days)"
        assert await tool.run(dates) == "7417"
        # A bare expression prints nothing: what to write instead (pass EZ: the 1.5B model,
        # shown "(no output)", guessed the count)
        silent = await tool.run('len("Observation: done")')
        assert silent.startswith("(no output") and "print() what you need" in silent
        assert await tool.run("print(total)") == (  # made by an earlier step's program
            "NameError: name 'total' is not defined (line 1)\n(each program runs on its own: "
            "nothing an earlier one defined is kept; define it)"
        )


async def test_python_tool_busy_is_unavailable() -> None:
    async with Sandbox(SandboxConfig(workers=1, queue_size=0, timeout_s=1.0)) as sandbox:
        tool = PythonTool(sandbox)
        outcomes = await asyncio.gather(
            tool.run("while True:\n    pass"), tool.run("result = 1"), return_exceptions=True
        )
        assert any(isinstance(o, ToolUnavailable) for o in outcomes)
        assert all(isinstance(o, (str, ToolError)) for o in outcomes)
