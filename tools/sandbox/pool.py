"""The service side of the sandbox: a pool of pre-started worker processes.

Workers are ``asyncio`` subprocesses running a fresh interpreter (``python -s -P -c``), not
``multiprocessing`` children: nothing of the service's memory (keys, requests) is inherited
as a fork would, nothing is ever pickled (``multiprocessing`` pickles on its own pipes), and
the event loop reads replies and kills workers without a helper thread. The start-up cost
(~0.2 s) is paid ahead of time: workers are started in advance and replaced in the background.

For each run the pool hands the program to an idle worker and waits at most the time limit;
a worker that overruns, dies, sends a malformed or oversized frame, or whose caller was
cancelled is killed and replaced. Nothing a worker sends is trusted: frames are size-capped
JSON, checked field by field, and must echo the request's random id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import shutil
import signal
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any, get_args

from tools.sandbox.protocol import HEADER, ProtocolError, decode, encode
from tools.sandbox.result import ExecutionResult, Limit, SandboxConfig

logger = logging.getLogger("tools.sandbox")

# Workers run with -S (no site: ~40 ms less per start) and get exactly the import path they
# need: this package's root and the site-packages holding RestrictedPython and friends.
_SITE_PACKAGES = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
_IMPORT_PATH = [str(Path(__file__).resolve().parents[2]), *sorted(_SITE_PACKAGES)]
_BOOTSTRAP = (
    f"import sys; sys.path[:0] = {_IMPORT_PATH!r}; from tools.sandbox.worker import main; main()"
)
# The whole environment of a worker: no keys, no service settings. A fixed hash seed makes
# set and dict-of-str iteration order, hence answers, reproducible across workers.
WORKER_ENV = {"PYTHONHASHSEED": "0", "LC_ALL": "C.UTF-8"}
LAYER_NAMES = ("restrictedpython", "process", "rlimits", "seccomp", "landlock")
_LIMITS = frozenset(get_args(Limit))
_MAX_ERROR_CHARS = 4000


class SandboxStartError(RuntimeError):
    """A worker could not be started (deployment problem, not a program's doing)."""


def _failure(
    kind: str, message: str, limit: Limit | None = None, ms: float = 0.0
) -> ExecutionResult:
    return ExecutionResult(ok=False, error_kind=kind, error=message, limit=limit, duration_ms=ms)


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process, layers: dict[str, bool]) -> None:
        self.process = process
        self.layers = layers
        self.runs = 0

    async def read_frame(self, max_bytes: int) -> dict[str, Any]:
        assert self.process.stdout is not None
        (size,) = HEADER.unpack(await self.process.stdout.readexactly(HEADER.size))
        if size > max_bytes:
            raise ProtocolError(f"worker frame of {size} bytes exceeds the cap")
        return decode(await self.process.stdout.readexactly(size))

    async def call(self, frame: bytes, max_bytes: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.runs += 1
        self.process.stdin.write(frame)
        await self.process.stdin.drain()
        return await self.read_frame(max_bytes)

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


class Sandbox:
    """Runs untrusted Python programs in a pool of hardened worker processes.

    ``await run(code)`` never raises for anything the code does; it returns an
    :class:`ExecutionResult`. Safe to call concurrently from many tasks.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._idle: asyncio.Queue[_Worker | None] = asyncio.Queue()
        self._workers: set[_Worker] = set()
        self._spawning: set[asyncio.Task[None]] = set()  # replacements being started
        self._reaping: set[asyncio.Task[None]] = set()  # killed workers being waited for
        self._waiting = 0
        self._started = False
        self._closed = False
        self._start_lock = asyncio.Lock()
        self._workdir: str | None = None
        self._layers: dict[str, bool] = dict.fromkeys(LAYER_NAMES, False)
        self._reply_cap = 8 * self.config.max_output_bytes + 65536
        worker_config = dataclasses.asdict(self.config)
        self._worker_args = json.dumps(worker_config)

    @property
    def layers(self) -> dict[str, bool]:
        """Which protection layers are active (all False until started)."""
        return dict(self._layers)

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the workers (idempotent). Raises :class:`SandboxStartError` if none start."""
        async with self._start_lock:
            if self._started or self._closed:
                return
            self._workdir = tempfile.mkdtemp(prefix="reactpal-sandbox-")
            results = await asyncio.gather(
                *(self._spawn() for _ in range(max(1, self.config.workers))),
                return_exceptions=True,
            )
            workers = [w for w in results if isinstance(w, _Worker)]
            if not workers:
                shutil.rmtree(self._workdir, ignore_errors=True)
                raise SandboxStartError(f"no sandbox worker could start: {results[0]!r}")
            for failed in range(len(results) - len(workers)):
                del failed
                self._replace()
            self._layers = {name: bool(workers[0].layers.get(name)) for name in LAYER_NAMES}
            for worker in workers:
                self._idle.put_nowait(worker)
            self._started = True
        logger.info("sandbox started: %d workers, layers %s", len(workers), self._layers)
        for name in ("seccomp", "landlock"):
            if getattr(self.config, name) and not self._layers[name]:
                logger.warning("sandbox layer %s is not available on this system", name)

    async def run(self, code: str, timeout_s: float | None = None) -> ExecutionResult:
        """Run one program and return its result (the PAL answer, stdout, or the failure)."""
        started = time.perf_counter()
        if not isinstance(code, str):
            return _failure("TypeError", "code must be a str")
        try:
            size = len(code.encode("utf-8"))
        except UnicodeEncodeError:
            return _failure("SyntaxError", "the program contains invalid characters")
        if size > self.config.max_code_bytes:
            return _failure(
                "CodeTooLarge", f"program larger than {self.config.max_code_bytes} bytes"
            )
        limit_s = self.config.timeout_s
        if timeout_s is not None:
            limit_s = max(0.001, min(float(timeout_s), limit_s))
        if self._closed:
            return _failure("WorkerCrashed", "the sandbox is closed")
        try:
            await self.start()
        except SandboxStartError as exc:
            return _failure("WorkerCrashed", f"the sandbox could not start: {exc}")
        worker = await self._acquire()
        if worker is None:
            message = "the sandbox is busy; try again shortly"
            return _failure("SandboxBusy", message, "busy", _ms(started))
        try:
            return await self._run_on(worker, code, limit_s, started)
        except Exception:  # a bug of ours, never the program's doing: contain it
            logger.exception("sandbox run failed")
            self._discard(worker)
            return _failure("WorkerCrashed", "the sandbox failed", None, _ms(started))

    async def _run_on(
        self, worker: _Worker, code: str, limit_s: float, started: float
    ) -> ExecutionResult:
        request_id = secrets.token_hex(8)
        # JSON escapes a control character as 6 bytes: the frame cap allows for the worst case.
        frame = encode({"id": request_id, "code": code}, request_frame_cap(self.config))
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(limit_s):
                reply = await worker.call(frame, self._reply_cap)
        except TimeoutError:
            self._discard(worker)
            return _failure(
                "Timeout", f"the program ran longer than {limit_s:g} s", "time", _ms(sent)
            )
        except asyncio.CancelledError:
            self._discard(worker)
            raise
        except (ProtocolError, OSError, EOFError, asyncio.IncompleteReadError) as exc:
            return await self._died(worker, exc, sent)
        try:
            result = parse_reply(reply, request_id, _ms(sent), self.config.max_output_bytes)
        except ProtocolError as exc:
            logger.warning("sandbox worker sent a bad reply: %s", exc)
            self._discard(worker)
            return _failure("WorkerCrashed", "the sandbox worker failed", None, _ms(sent))
        if reply.get("recycle") is not False or worker.runs >= self.config.runs_per_worker:
            self._discard(worker)
        else:
            self._idle.put_nowait(worker)
        return result

    async def _died(self, worker: _Worker, exc: BaseException, sent: float) -> ExecutionResult:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await worker.process.wait()
        code = worker.process.returncode
        self._discard(worker)
        if code == -signal.SIGXCPU:
            return _failure("Timeout", "the worker's CPU time limit was reached", "cpu", _ms(sent))
        how = f"exit {code}"
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                how = signal.Signals(-code).name  # SIGSEGV: usually a C stack overflow
        logger.warning("sandbox worker died (%s): %s", how, exc)
        return _failure("WorkerCrashed", f"the sandbox worker died ({how})", None, _ms(sent))

    async def _acquire(self) -> _Worker | None:
        if self._idle.empty() and self._waiting >= self.config.queue_size:
            return None
        self._waiting += 1
        try:
            async with asyncio.timeout(self.config.queue_wait_s):
                return await self._idle.get()
        except TimeoutError:
            return None
        finally:
            self._waiting -= 1

    async def _spawn(self) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-S",
            "-s",
            "-P",
            "-c",
            _BOOTSTRAP,
            self._worker_args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=WORKER_ENV,
            cwd=self._workdir,
            start_new_session=True,
        )
        worker = _Worker(process, {})
        try:
            async with asyncio.timeout(self.config.start_timeout_s):
                ready = await worker.read_frame(self._reply_cap)
            layers = ready.get("layers")
            if ready.get("ready") is not True or not isinstance(layers, dict):
                raise ProtocolError(f"worker not ready: {str(ready.get('error'))[:500]}")
            worker.layers = {str(k): v is True for k, v in layers.items()}
        except (TimeoutError, ProtocolError, OSError, asyncio.IncompleteReadError) as exc:
            worker.kill()
            await process.wait()
            raise SandboxStartError(
                f"worker failed to start ({type(exc).__name__}: {exc})"
            ) from exc
        except BaseException:  # cancelled while starting: never leave the process behind
            worker.kill()
            await asyncio.shield(process.wait())
            raise
        self._workers.add(worker)
        return worker

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker (whatever state it is in), reap it and start a replacement."""
        worker.kill()
        if worker not in self._workers:
            return  # already discarded: one replacement per worker
        self._workers.discard(worker)
        self._track(self._reaping, worker.process.wait())
        if not self._closed:
            self._replace()

    def _replace(self) -> None:
        self._track(self._spawning, self._replace_worker())

    async def _replace_worker(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                worker = await self._spawn()
            except SandboxStartError as exc:
                logger.error("could not replace a sandbox worker: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if self._closed:
                worker.kill()
                await worker.process.wait()
                return
            self._idle.put_nowait(worker)
            return

    @staticmethod
    def _track(tasks: set[asyncio.Task[None]], coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def aclose(self) -> None:
        """Kill every worker and remove the working directory."""
        if self._closed:
            return
        self._closed = True
        for _ in range(self._waiting):
            self._idle.put_nowait(None)
        for task in list(self._spawning):
            task.cancel()
        await asyncio.gather(*self._spawning, return_exceptions=True)
        workers = list(self._workers)
        for worker in workers:
            worker.kill()
        await asyncio.gather(
            *(w.process.wait() for w in workers), *self._reaping, return_exceptions=True
        )
        self._workers.clear()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)


def request_frame_cap(config: SandboxConfig) -> int:
    """The largest request frame: ``max_code_bytes`` of source, every byte JSON-escaped."""
    return config.max_code_bytes * 6 + 1024


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def parse_reply(
    reply: dict[str, Any], request_id: str, duration_ms: float, max_output: int
) -> ExecutionResult:
    """Check a worker's reply field by field and build the result. Raises ProtocolError."""
    if reply.get("id") != request_id:
        raise ProtocolError("reply does not answer this request")
    ok = reply.get("ok")
    stdout = reply.get("stdout", "")
    kind, error, limit = reply.get("error_kind"), reply.get("error"), reply.get("limit")
    value_repr = reply.get("value_repr")
    if not isinstance(ok, bool) or not isinstance(stdout, str) or len(stdout) > max_output:
        raise ProtocolError("bad ok/stdout field")
    if not _optional_str(kind, 100) or not _optional_str(error, _MAX_ERROR_CHARS):
        raise ProtocolError("bad error field")
    if not _optional_str(value_repr, max_output + 3) or (
        limit is not None and limit not in _LIMITS
    ):
        raise ProtocolError("bad value_repr/limit field")
    if not ok and kind is None:
        raise ProtocolError("failure without an error kind")
    return ExecutionResult(
        ok=ok,
        value=reply.get("value") if ok else None,
        value_repr=value_repr if ok else None,
        stdout=stdout,
        error_kind=None if ok else kind,
        error=None if ok else error,
        duration_ms=duration_ms,
        limit=limit,
    )


def _optional_str(value: Any, max_len: int) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= max_len)
