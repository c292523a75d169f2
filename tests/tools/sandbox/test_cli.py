"""The operator CLI (``python -m tools.sandbox``) and the configuration defaults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tools.sandbox import ExecutionResult, SandboxConfig


def test_config_defaults() -> None:
    config = SandboxConfig()
    assert (config.timeout_s, config.memory_mb, config.max_output_bytes) == (5.0, 512, 64 * 1024)
    assert config.seccomp and config.landlock


def test_cli_prints_json(tmp_path: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("def solution():\n    return 7 * 6\n")
    out = subprocess.run(
        [sys.executable, "-m", "tools.sandbox", str(program)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["value"] == 42 and data["layers"]["seccomp"] is True
    assert ExecutionResult(ok=True, value=42, value_repr="42").observation() == "result: 42"
