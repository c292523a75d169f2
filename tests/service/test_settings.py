"""Settings are read from the environment and refuse unsafe or contradictory values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.paths import default_model_cache_dir
from service.app import create_app
from service.settings import Settings
from tests.fakes import FakeOpenAI, make_llm
from tools.sandbox import Sandbox, SandboxConfig, SandboxStartError


def test_defaults_match_the_contract() -> None:
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.allowed_actions == ("python", "search", "finish")
    assert settings.search_provider == "duckduckgo"
    assert settings.llm_base_url is None
    assert settings.request_timeout_s == 120


def test_comma_separated_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_ACTIONS", " Python , finish ")
    monkeypatch.setenv("AGENT_API_KEYS", "a" * 16 + "," + "b" * 20)
    settings = Settings()
    assert settings.allowed_actions == ("python", "finish")
    assert [k.get_secret_value() for k in settings.agent_api_keys] == ["a" * 16, "b" * 20]
    assert "a" * 16 not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALLOWED_ACTIONS": "python"}, "must include 'finish'"),
        ({"SEARCH_PROVIDER": "searxng"}, "needs SEARXNG_URL"),
        ({"AGENT_API_KEYS": "short"}, "at least 16"),
        ({"PORT": "70000"}, "port"),
        ({"SEARCH_PROVIDER": "bing"}, "search_provider"),
        ({"DEFAULT_MAX_STEPS": "30", "MAX_STEPS_LIMIT": "10"}, "must not exceed"),
        ({"WORKERS": "2"}, "each worker would load the embedded model"),
        ({"RATE_LIMIT_STORAGE_URL": "redis-cluster.local"}, "memory:// or redis://"),
        ({"RATE_LIMIT": "sixty a minute"}, "not a rate"),
    ],
)
def test_bad_values_fail_fast(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "[::]", "reactpal.internal"])
def test_an_exposed_bind_without_keys_is_refused(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("HOST", host)
    with pytest.raises(ValidationError, match=r"AGENT_API_KEYS.*ALLOW_UNAUTHENTICATED=true"):
        Settings()
    monkeypatch.setenv("AGENT_API_KEYS", "k" * 16)
    assert Settings().host == host
    monkeypatch.delenv("AGENT_API_KEYS")
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED", "true")  # the operator accepts the risk
    assert Settings().host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_a_loopback_bind_needs_no_keys(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("HOST", host)
    assert Settings().host == host


def test_the_server_will_not_start_open_to_the_network(tmp_path: Path) -> None:
    """``python -m service`` with HOST=0.0.0.0 and no keys: exit 2 before binding, with a
    message that names both ways out."""
    started = subprocess.run(
        [sys.executable, "-m", "service"],
        env={"PATH": os.environ.get("PATH", ""), "DATA_DIR": str(tmp_path), "HOST": "0.0.0.0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 2, started
    for name in ("HOST=0.0.0.0", "AGENT_API_KEYS", "ALLOW_UNAUTHENTICATED=true"):
        assert name in started.stderr, started.stderr


CHECKOUT = Path(__file__).resolve().parents[2]


def test_default_paths_are_absolute_under_one_data_dir_whatever_the_cwd(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("DATA_DIR", "DATABASE_URL", "MODEL_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # a service started from anywhere finds the same files
    settings = Settings()
    assert settings.data_dir == CHECKOUT / "data"
    assert settings.database_url == f"sqlite+aiosqlite:///{CHECKOUT}/data/runs.db"
    assert settings.model_cache_dir == CHECKOUT / "data" / "models"
    assert settings.model_cache_dir == default_model_cache_dir()  # what `make model` fills


def test_data_dir_moves_every_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", "state")  # relative: resolved once, at start-up
    monkeypatch.setenv("LOCAL_MODEL_PATH", "my.gguf")
    settings = Settings()
    assert settings.data_dir == tmp_path / "state"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/state/runs.db"
    assert settings.model_cache_dir == tmp_path / "state" / "models"
    assert settings.local_model_path == tmp_path / "my.gguf"
    assert default_model_cache_dir() == tmp_path / "state" / "models"
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://db/reactpal")
    monkeypatch.setenv("MODEL_CACHE_DIR", "/opt/models")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://db/reactpal"
    assert settings.model_cache_dir == Path("/opt/models")


def test_empty_base_url_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_BASE_URL", "")
    assert Settings().llm_base_url is None


async def test_a_sandbox_missing_a_required_layer_stops_the_service(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/runs.db", llm_base_url=FakeOpenAI.base_url
    )
    weak = Sandbox(SandboxConfig(workers=1, seccomp=False))
    app = create_app(settings, llm=make_llm(FakeOpenAI([])), sandbox=weak)
    with pytest.raises(SandboxStartError, match=r"seccomp.*SANDBOX_ALLOW_WEAK=true"):
        async with app.router.lifespan_context(app):
            pass


def test_sandbox_allow_weak_reaches_the_sandbox() -> None:
    assert Settings().sandbox_config().allow_weak is False
    assert Settings(sandbox_allow_weak=True).sandbox_config().allow_weak is True


def test_allowed_hosts_is_a_comma_separated_list_and_empty_means_any(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().allowed_hosts == ()
    monkeypatch.setenv("ALLOWED_HOSTS", " API.Example.com , 127.0.0.1,*.example.org,[::1] ,")
    hosts = Settings().allowed_hosts
    assert hosts == ("api.example.com", "127.0.0.1", "*.example.org", "[::1]")


@pytest.mark.parametrize(
    "entry", ["localhost:8000", "https://api.example.com", "api.*.com", "*example.com", "a b"]
)
def test_an_allowed_hosts_entry_that_could_never_match_fails_fast(
    monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", f"localhost,{entry}")
    with pytest.raises(ValidationError, match="ALLOWED_HOSTS entry"):
        Settings()


def test_forwarded_allow_ips_takes_addresses_networks_or_a_star(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().forwarded_allow_ips == ()
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.244.0.0/16, 127.0.0.1,::1")
    assert Settings().forwarded_allow_ips == ("10.244.0.0/16", "127.0.0.1", "::1")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1,ingress.local")
    with pytest.raises(ValidationError, match=r"'ingress\.local' is not an address"):
        Settings()


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"AGENT_API_KEYS": "tooshortkey123"}, ["AGENT_API_KEYS", "at least 16 characters"]),
        ({"AGENT_API_KEYS": "tooshortkey123", "PORT": "eighty"}, ["PORT", "valid integer"]),
        ({"LLM_API_KEY": "sk-never-printed-0042", "MAX_STEPS_LIMIT": "x"}, ["MAX_STEPS_LIMIT"]),
    ],
)
def test_a_settings_error_names_the_variable_never_a_value(
    env: dict[str, str], names: list[str], tmp_path: Path
) -> None:
    """pydantic's own message repeats its input, API keys included (issue 15)."""
    started = subprocess.run(
        [sys.executable, "-m", "service"],
        env={"PATH": os.environ.get("PATH", ""), "DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 2, started
    said = started.stdout + started.stderr
    for name in names:
        assert name in said, said
    for secret in ("tooshortkey123", "sk-never-printed-0042", "eighty"):
        assert secret not in said, said


def test_the_readme_documents_every_setting() -> None:
    """Each setting is a row of the README's configuration table, so none is a secret knob."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = [line for line in readme.splitlines() if line.startswith("| `")]
    missing = [
        name.upper()
        for name in Settings.model_fields
        if not any(f"`{name.upper()}`" in row for row in table)
    ]
    assert missing == [], f"settings missing from the README's table: {missing}"
