"""The embedded model's warm states, kept on disk so that a restart does not prefill again.

A cold few-shot prompt costs ~28 s of prefill on 2 cores; the llama.cpp state after it (the
KV cache of its tokens: 16 MB for the 1,295-token PAL prompt, 10 MB for the 791-token ReAct
one) loads in 20-40 ms. ``LocalLLM.warm_up`` saves one state per warm-up prompt here and, at
the next start, loads it instead.

A state is valid only for the exact tokens, model file, llama.cpp build and context size it
was made with; loading another would not fail, it would make the model continue a prompt it
was never shown. So each file is named by, and carries, that key (:class:`StateKey`), and it
is loaded only when its key equals the one asked for, its size is what its header says, the
SHA-256 of its payload matches and its tokens are the prompt's. Anything else (another model
or prompt, a truncated or corrupt file) is ignored with a log line, never loaded.

Reading a file never runs code (no pickle): a fixed layout read with ``struct`` and ``json``::

    magic    8 bytes   b"RPWARM" + the format version (2 bytes, little-endian)
    length   4 bytes   little-endian: the JSON header's length (at most 64 KiB)
    header   JSON      {"key": {...}, "n_tokens": n, "state_bytes": m, "sha256": <payload's>}
    payload            n token ids (int32, little-endian), then m bytes of llama.cpp state

A file is written under a temporary name and renamed into place, so a reader (another worker
process) never sees half of one. The directory is bounded: after each write the least recently
used states (a load touches its file) are deleted until the total is within ``max_bytes``. A
directory that cannot be written (``/opt/models`` in the Docker image, read-only at run time)
only costs the persistence: the state stays in memory, and a log line says so.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import json
import os
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

FORMAT_VERSION = 1
_MAGIC = b"RPWARM" + struct.pack("<H", FORMAT_VERSION)
_LENGTH = struct.Struct("<I")
_MAX_HEADER = 64 * 1024
_SUFFIX = ".state"
_TEMP_PREFIX = ".tmp-"
_STALE_TEMP_S = 600.0  # a temporary file older than this was left by a writer that died


@dataclass(frozen=True, slots=True)
class WarmState:
    """What a warm prompt needs to be restored: its tokens and llama.cpp's state after them."""

    tokens: tuple[int, ...]
    state: bytes


@dataclass(frozen=True, slots=True)
class StateKey:
    """Everything a state depends on. ``model`` is the model file's SHA-256 (the packaged
    model's pinned hash) or its identity (``file_identity``); ``runtime`` is llama-cpp-python's
    version, which pins the llama.cpp it was built from and so the state's layout."""

    model: str
    runtime: str
    n_ctx: int
    tokens_sha256: str
    n_tokens: int
    format: int = FORMAT_VERSION

    @classmethod
    def of(cls, *, model: str, runtime: str, n_ctx: int, tokens: Sequence[int]) -> StateKey:
        digest = hashlib.sha256(_pack_tokens(tokens)).hexdigest()
        return cls(model, runtime, n_ctx, digest, len(tokens))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def filename(self) -> str:
        encoded = json.dumps(self.as_dict(), sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:32] + _SUFFIX


def file_identity(path: Path) -> str:
    """A model file's identity without hashing it (half a gigabyte costs seconds): its path,
    size and modification time. Replacing the file changes it; so does touching it, which only
    costs one prefill."""
    st = path.stat()
    return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


class WarmStore:
    """The states in one directory (created when first written)."""

    def __init__(self, directory: Path, *, max_bytes: int = 256 << 20) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def path_for(self, key: StateKey) -> Path:
        return self.directory / key.filename

    def load(self, key: StateKey, tokens: Sequence[int]) -> WarmState | None:
        """The state saved for ``key``, or None (logged) when there is none or it is not valid."""
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            log.info("no saved warm state", path=str(path), tokens=key.n_tokens)
            return None
        except OSError as exc:
            log.warning("warm state ignored", path=str(path), reason=f"unreadable: {exc}")
            return None
        try:
            state = _decode(data, key, tokens)
        except ValueError as exc:
            log.warning("warm state ignored", path=str(path), reason=str(exc))
            return None
        with contextlib.suppress(OSError):  # read-only: the LRU order is only a preference
            os.utime(path)
        return state

    def save(self, key: StateKey, state: WarmState) -> bool:
        """Write ``state`` for ``key`` atomically, then bound the directory; False (logged) when
        it cannot be written."""
        if key.n_tokens != len(state.tokens):
            raise ValueError("the state's tokens are not the key's")
        blob = _encode(key, state)
        if len(blob) > self.max_bytes:
            log.warning("warm state not saved", reason="larger than the bound", bytes=len(blob))
            return False
        path = self.path_for(key)
        temp: str | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.directory)
            # mkstemp's 0600 would hide it from the server's user when another user built it
            # (the Docker image's states are written as root): readable, like the model file.
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
            temp = None
        except OSError as exc:
            log.warning(
                "warm state kept in memory only",
                path=str(path),
                reason=f"cannot write: {exc}",
            )
            return False
        finally:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
        self._bound(keep=path)
        return True

    def _bound(self, keep: Path) -> None:
        """Delete the least recently used states (and temporary files writers left) until the
        directory holds at most ``max_bytes``; never ``keep``, the state just written."""
        now = time.time()
        entries: list[tuple[float, int, Path]] = []
        try:
            listing = list(self.directory.iterdir())
        except OSError:
            return
        for entry in listing:
            try:
                st = entry.stat()
            except OSError:
                continue
            if entry.name.startswith(_TEMP_PREFIX):
                if now - st.st_mtime > _STALE_TEMP_S:
                    with contextlib.suppress(OSError):
                        entry.unlink()
                continue
            if entry.suffix == _SUFFIX:
                entries.append((st.st_mtime, st.st_size, entry))
        total = sum(size for _, size, _ in entries)
        for _, size, entry in sorted(entries):
            if total <= self.max_bytes:
                break
            if entry == keep:
                continue
            try:
                entry.unlink()
            except OSError:
                continue
            total -= size
            log.info("warm state removed to stay within the bound", path=str(entry))


def _pack_tokens(tokens: Sequence[int]) -> bytes:
    packed = array.array("i", tokens)
    if packed.itemsize != 4:  # pragma: no cover - C int is 32 bits wherever llama.cpp runs
        raise ValueError("token ids need a 32-bit int")
    if sys.byteorder == "big":  # pragma: no cover
        packed.byteswap()
    return packed.tobytes()


def _unpack_tokens(data: bytes) -> tuple[int, ...]:
    packed = array.array("i")
    packed.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover
        packed.byteswap()
    return tuple(packed)


def _encode(key: StateKey, state: WarmState) -> bytes:
    payload = _pack_tokens(state.tokens) + state.state
    header = json.dumps(
        {
            "key": key.as_dict(),
            "n_tokens": len(state.tokens),
            "state_bytes": len(state.state),
            "sha256": hashlib.sha256(payload).hexdigest(),
        },
        sort_keys=True,
    ).encode()
    return _MAGIC + _LENGTH.pack(len(header)) + header + payload


def _decode(data: bytes, key: StateKey, tokens: Sequence[int]) -> WarmState:
    """The state in ``data``; ``ValueError`` saying why when it is not the one for ``key`` and
    ``tokens`` or is damaged."""
    start = len(_MAGIC) + _LENGTH.size
    if len(data) < start or not data.startswith(_MAGIC[:6]):
        raise ValueError("not a warm state file")
    if data[: len(_MAGIC)] != _MAGIC:
        raise ValueError("another format version")
    (length,) = _LENGTH.unpack_from(data, len(_MAGIC))
    if length > _MAX_HEADER or start + length > len(data):
        raise ValueError("truncated or corrupt header")
    try:
        header = json.loads(data[start : start + length])
        stored_key = header["key"]
        n_tokens = int(header["n_tokens"])
        state_bytes = int(header["state_bytes"])
        checksum = str(header["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"corrupt header: {exc!r}") from None
    if not isinstance(stored_key, dict):
        raise ValueError("corrupt header: the key is not an object")
    if stored_key != key.as_dict():
        different = sorted(k for k in key.as_dict() if stored_key.get(k) != key.as_dict()[k])
        raise ValueError(f"made for another {', '.join(different) or 'key'}")
    payload = memoryview(data)[start + length :]
    if n_tokens != key.n_tokens or len(payload) != 4 * n_tokens + state_bytes:
        raise ValueError(
            f"truncated or padded: {len(payload)} payload bytes, the header says "
            f"{4 * n_tokens + state_bytes}"
        )
    if hashlib.sha256(payload).hexdigest() != checksum:
        raise ValueError("checksum mismatch: the file is corrupt")
    stored_tokens = _unpack_tokens(bytes(payload[: 4 * n_tokens]))
    if stored_tokens != tuple(tokens):
        raise ValueError("its tokens are not the prompt's")
    return WarmState(tokens=stored_tokens, state=bytes(payload[4 * n_tokens :]))
