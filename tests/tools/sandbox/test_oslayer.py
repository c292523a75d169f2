"""The OS layer on its own: plain Python (language layer bypassed) in a hardened worker.

Uses the worker's test-only ``--probe-os-layer`` entry point, which runs a fixed list of
forbidden operations after applying exactly the layers a real worker applies. It is a separate
process start, never reachable through the request protocol.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tools.sandbox import SandboxConfig
from tools.sandbox.oslayer import readable_paths
from tools.sandbox.pool import WORKER_ENV

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("probe")
    target = tmp / "chmod-me"
    target.write_text("canary")
    target.chmod(0o600)
    config = {
        **dataclasses.asdict(SandboxConfig()),
        "probe_write_path": str(tmp / "written"),
        "probe_chmod_path": str(target),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-s",
            "-P",
            "-m",
            "tools.sandbox.worker",
            "--probe-os-layer",
            json.dumps(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
        env={**WORKER_ENV, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    results: dict[str, str] = json.loads(out.stdout)
    assert not (tmp / "written").exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    return results


def test_all_layers_report_active(probe: dict[str, str]) -> None:
    layers = json.loads(probe["layers"])
    assert layers == {
        "rlimits": True,
        "landlock": True,
        "seccomp": True,
        "restrictedpython": True,
        "process": True,
    }


@pytest.mark.parametrize(
    "operation",
    [
        "socket",
        "unix_socket",
        "fork",
        "exec",
        "thread",
        "read_passwd",
        "read_proc_environ",
        "list_root",
        "write_tmp",
        "raise_rlimit_as",
        "kill_parent",
        "chmod",
    ],
)
def test_forbidden_operation_is_blocked(probe: dict[str, str], operation: str) -> None:
    assert probe[operation].startswith("blocked: "), probe[operation]
    # EPERM/EACCES surface as PermissionError; setrlimit maps EPERM to ValueError ("not
    # allowed to raise maximum limit": we run as root, so only seccomp can refuse it) and a
    # refused clone makes thread start fail with RuntimeError.
    expected = ("PermissionError", "not allowed to raise", "RuntimeError: can't start new thread")
    assert any(word in probe[operation] for word in expected), probe[operation]


def test_environment_is_empty(probe: dict[str, str]) -> None:
    assert set(json.loads(probe["environ"])) <= {*WORKER_ENV, "PYTHONPATH", "LC_CTYPE"}


def test_readable_paths_are_only_the_python_installation() -> None:
    paths = readable_paths()
    assert paths
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
    assert all(any(p == q or p.startswith(q + os.sep) for q in prefixes) for p in paths)
    assert str(ROOT) not in paths and "/etc" not in paths
