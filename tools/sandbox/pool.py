"""The service side of the sandbox: a pool of templates, each forking one child per run.

Templates are ``asyncio`` subprocesses running a fresh interpreter (``python -S -s -P -c``),
not ``multiprocessing`` children: nothing of the service's memory (keys, requests) is
inherited as a fork would, nothing is ever pickled, and the event loop reads replies and kills
templates without a helper thread. Each template prepares itself once (~0.3 s, paid ahead of
time: templates start in advance and are replaced in the background) and then serves runs one
at a time, each in a new child process (see ``template.py``); the service never talks to a
child.

For each run the pool hands the program to an idle template and waits for its answer: the
template enforces the run's deadline by killing the child, so a ``while True`` costs a child,
not a template. The pool keeps its own guard deadline (the run's plus a grace period) and kills
the template if it ever overruns, dies, answers out of turn or sends a malformed frame, and
when the caller is cancelled. Nothing a template relays is trusted: frames are size-capped
JSON, checked field by field, and must echo the request's random id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
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
from tools.sandbox.result import (
    OPTIONAL_LAYERS,
    REQUIRED_LAYERS,
    ExecutionResult,
    Limit,
    SandboxConfig,
)

logger = logging.getLogger("tools.sandbox")

# Templates run with -S (no site: ~40 ms less per start) and get exactly the import path they
# need: this package's root and the site-packages holding RestrictedPython and friends.
_SITE_PACKAGES = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
_IMPORT_PATH = [str(Path(__file__).resolve().parents[2]), *sorted(_SITE_PACKAGES)]
_BOOTSTRAP = (
    f"import sys; sys.path[:0] = {_IMPORT_PATH!r}; from tools.sandbox.template import main; main()"
)
# The whole environment of a template: no keys, no service settings, and no PYTHONHASHSEED,
# so that every template draws a random hash seed of its own.
TEMPLATE_ENV = {"LC_ALL": "C.UTF-8"}
LAYER_NAMES = (*REQUIRED_LAYERS, *OPTIONAL_LAYERS)
_LIMITS = frozenset(get_args(Limit))
_MAX_ERROR_CHARS = 4000
_HEADER_CAP = 4096
_GRACE_S = 2.0  # the template kills a late child itself; this is for a template gone wrong
_EXIT_CONFINEMENT_FAILED = 121  # tools.sandbox.child.EXIT_CONFINEMENT_FAILED
_MAX_JSON_INT_DIGITS = 400
_STOP_TIMEOUT_S = 3.0
_POOL_KINDS = frozenset({"Timeout", "SandboxBusy", "WorkerCrashed", "Crashed"})


class SandboxStartError(RuntimeError):
    """The sandbox could not start (deployment problem, not a program's doing)."""


def _failure(
    kind: str, message: str, limit: Limit | None = None, ms: float = 0.0
) -> ExecutionResult:
    return ExecutionResult(ok=False, error_kind=kind, error=message, limit=limit, duration_ms=ms)


class _Template:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.layers: dict[str, bool] = {}
        self.runs = 0

    async def read_frame(self, max_bytes: int) -> dict[str, Any]:
        assert self.process.stdout is not None
        (size,) = HEADER.unpack(await self.process.stdout.readexactly(HEADER.size))
        if size > max_bytes:
            raise ProtocolError(f"template frame of {size} bytes exceeds the cap")
        return decode(await self.process.stdout.readexactly(size))

    async def read_body(self, size: int) -> bytes:
        assert self.process.stdout is not None
        return await self.process.stdout.readexactly(size)

    async def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        await self.process.stdin.drain()

    def stop(self) -> None:
        """Ask the template to stop: the end of its pipe makes it kill its run and exit, and
        each process of the chain reaps the one below (no zombie left to anybody's init)."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()

    def kill(self) -> None:
        """The last resort, for a template that did not stop: every process of its group."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def finish(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Stop the template and wait for it; kill it if it does not stop in time."""
        self.stop()
        try:
            async with asyncio.timeout(timeout_s):
                await self.process.wait()
        except TimeoutError:
            self.kill()
            await self.process.wait()


class Sandbox:
    """Runs untrusted Python programs, each in a fresh, confined process.

    ``await run(code)`` never raises for anything the code does; it returns an
    :class:`ExecutionResult`. Safe to call concurrently from many tasks.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._idle: asyncio.Queue[_Template | None] = asyncio.Queue()
        self._templates: set[_Template] = set()
        self._spawning: set[asyncio.Task[None]] = set()  # replacements being started
        self._reaping: set[asyncio.Task[None]] = set()  # killed templates being waited for
        self._waiting = 0
        self._started = False
        self._closed = False
        self._start_lock = asyncio.Lock()
        self._workdir: str | None = None
        self._layers: dict[str, bool] = dict.fromkeys(LAYER_NAMES, False)
        self._reply_cap = 10 * self.config.max_output_bytes + 65536
        self._template_args = json.dumps(dataclasses.asdict(self.config))

    @property
    def layers(self) -> dict[str, bool]:
        """Which protection layers are active (all False until started)."""
        return dict(self._layers)

    @property
    def missing_layers(self) -> list[str]:
        """Required layers this system does not provide (empty unless ``allow_weak``)."""
        return [name for name in REQUIRED_LAYERS if not self._layers.get(name)]

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the templates (idempotent). Raises :class:`SandboxStartError` if none start,
        or if a required layer is missing and ``allow_weak`` is not set."""
        async with self._start_lock:
            if self._started or self._closed:
                return
            self._workdir = tempfile.mkdtemp(prefix="reactpal-sandbox-")
            results = await asyncio.gather(
                *(self._spawn() for _ in range(max(1, self.config.workers))),
                return_exceptions=True,
            )
            templates = [t for t in results if isinstance(t, _Template)]
            if not templates:
                await self._abort_start()
                raise SandboxStartError(f"no sandbox template could start: {results[0]}")
            self._layers = {name: bool(templates[0].layers.get(name)) for name in LAYER_NAMES}
            missing = self.missing_layers
            if missing and not self.config.allow_weak:
                await self._abort_start()
                raise SandboxStartError(
                    f"the sandbox layer(s) {', '.join(missing)} are not available on this "
                    "system, so LLM-written code would run with less isolation than designed. "
                    "Run on a Linux kernel with seccomp and Landlock (5.13+) enabled, or set "
                    "SANDBOX_ALLOW_WEAK=true to accept the weaker sandbox."
                )
            for _failed in range(len(results) - len(templates)):
                self._replace()
            for template in templates:
                self._idle.put_nowait(template)
            self._started = True
        logger.info("sandbox started: %d templates, layers %s", len(templates), self._layers)
        for name in OPTIONAL_LAYERS:
            if not self._layers[name]:
                logger.warning("optional sandbox layer %s is not available here", name)
        if missing:
            logger.warning("SANDBOX_ALLOW_WEAK: running without %s", ", ".join(missing))

    async def _abort_start(self) -> None:
        await asyncio.gather(*(t.finish() for t in self._templates), return_exceptions=True)
        self._templates.clear()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    async def run(self, code: str, timeout_s: float | None = None) -> ExecutionResult:
        """Run one program and return its result (the PAL answer, stdout, or the failure)."""
        started = time.perf_counter()
        if not isinstance(code, str):
            return _failure("TypeError", "code must be a str")
        try:
            source = code.encode("utf-8")
        except UnicodeEncodeError:
            return _failure("SyntaxError", "the program contains invalid characters")
        if len(source) > self.config.max_code_bytes:
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
        template = await self._acquire()
        if template is None:
            message = "the sandbox is busy; try again shortly"
            return _failure("SandboxBusy", message, "busy", _ms(started))
        try:
            return await self._run_on(template, source, limit_s)
        except Exception:  # a bug of ours, never the program's doing: contain it
            logger.exception("sandbox run failed")
            self._discard(template)
            return _failure("WorkerCrashed", "the sandbox failed", None, _ms(started))

    async def _run_on(self, template: _Template, source: bytes, limit_s: float) -> ExecutionResult:
        request_id = secrets.token_hex(8)
        header = encode({"id": request_id, "size": len(source), "timeout_s": limit_s}, _HEADER_CAP)
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(limit_s + _GRACE_S):
                await template.send(header + source)
                reply = await template.read_frame(_HEADER_CAP)
                status, size = reply.get("status"), reply.get("size")
                if reply.get("id") != request_id or type(size) is not int:
                    raise ProtocolError("reply does not answer this request")
                if status == "done" and 0 < size <= self._reply_cap:
                    body = decode(await template.read_body(size), _MAX_JSON_INT_DIGITS)
                elif size != 0:
                    raise ProtocolError(f"bad reply size {size} for status {status!r}")
        except TimeoutError:
            logger.error("sandbox template overran a run's deadline; replacing it")
            self._discard(template)
            return _failure(
                "Timeout", f"the program ran longer than {limit_s:g} s", "time", _ms(sent)
            )
        except asyncio.CancelledError:
            self._discard(template)
            raise
        except (ProtocolError, OSError, EOFError, asyncio.IncompleteReadError) as exc:
            return await self._template_died(template, exc, sent)
        result = self._result(reply, body if status == "done" else None, limit_s, sent)
        template.runs += 1
        # Decided on what the template reported, never on what a run wrote in its reply.
        healthy = status in ("done", "timeout", "crashed") and (
            reply.get("exit") != _EXIT_CONFINEMENT_FAILED
        )
        if not healthy or template.runs >= self.config.runs_per_template:
            self._discard(template)  # a new template, a new hash seed
        else:
            self._idle.put_nowait(template)
        return result

    def _result(
        self, reply: dict[str, Any], body: dict[str, Any] | None, limit_s: float, sent: float
    ) -> ExecutionResult:
        status = reply.get("status")
        if body is not None:
            try:
                return parse_reply(body, _ms(sent), self.config.max_output_bytes)
            except ProtocolError as exc:
                logger.warning("sandbox run sent a bad reply: %s", exc)
                return _failure("Crashed", "the program's reply was malformed", None, _ms(sent))
        if status == "timeout":
            return _failure(
                "Timeout", f"the program ran longer than {limit_s:g} s", "time", _ms(sent)
            )
        if status != "crashed":
            return _failure("WorkerCrashed", "the sandbox failed", None, _ms(sent))
        signum, exit_code = reply.get("signal"), reply.get("exit")
        if signum == signal.SIGXCPU:
            return _failure("Timeout", "the program's CPU time limit was reached", "cpu", _ms(sent))
        if exit_code == _EXIT_CONFINEMENT_FAILED:
            logger.error("a sandbox run could not apply its confinement; it did not run")
            return _failure("WorkerCrashed", "the sandbox could not confine the run", None)
        how = f"exit {exit_code}"
        if isinstance(signum, int):
            with contextlib.suppress(ValueError):
                how = signal.Signals(signum).name  # SIGSEGV: usually a C stack overflow
        return _failure("Crashed", f"the program crashed its interpreter ({how})", None, _ms(sent))

    async def _template_died(
        self, template: _Template, exc: BaseException, sent: float
    ) -> ExecutionResult:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await template.process.wait()
        code = template.process.returncode
        self._discard(template)
        logger.warning("sandbox template failed (exit %s): %s", code, exc)
        return _failure("WorkerCrashed", "the sandbox failed; try again", None, _ms(sent))

    async def _acquire(self) -> _Template | None:
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

    async def _spawn(self) -> _Template:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-S",
            "-s",
            "-P",
            "-c",
            _BOOTSTRAP,
            self._template_args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=TEMPLATE_ENV,
            cwd=self._workdir,
            start_new_session=True,
        )
        template = _Template(process)
        self._templates.add(template)
        try:
            async with asyncio.timeout(self.config.start_timeout_s):
                ready = await template.read_frame(65536)
            layers = ready.get("layers")
            if ready.get("ready") is not True or not isinstance(layers, dict):
                raise ProtocolError(f"template not ready: {str(ready.get('error'))[:500]}")
            template.layers = {str(k): v is True for k, v in layers.items()}
            template.layers.update(restrictedpython=True, process=True)
        except (TimeoutError, ProtocolError, OSError, asyncio.IncompleteReadError) as exc:
            self._templates.discard(template)
            await template.finish()
            raise SandboxStartError(
                f"template failed to start ({type(exc).__name__}: {exc})"
            ) from exc
        except BaseException:  # cancelled while starting: never leave the process behind
            self._templates.discard(template)
            await asyncio.shield(template.finish())
            raise
        return template

    def _discard(self, template: _Template) -> None:
        """Stop a template (whatever state it is in), reap it and start a replacement."""
        template.stop()
        if template not in self._templates:
            return  # already discarded: one replacement per template
        self._templates.discard(template)
        self._track(self._reaping, template.finish())
        if not self._closed:
            self._replace()

    def _replace(self) -> None:
        self._track(self._spawning, self._replace_template())

    async def _replace_template(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                template = await self._spawn()
            except SandboxStartError as exc:
                logger.error("could not replace a sandbox template: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if self._closed:
                await template.finish()
                return
            self._idle.put_nowait(template)
            return

    @staticmethod
    def _track(tasks: set[asyncio.Task[None]], coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def aclose(self) -> None:
        """Kill every template (and so every run) and remove the working directory."""
        if self._closed:
            return
        self._closed = True
        for _ in range(self._waiting):
            self._idle.put_nowait(None)
        for task in list(self._spawning):
            task.cancel()
        await asyncio.gather(*self._spawning, return_exceptions=True)
        templates = list(self._templates)
        await asyncio.gather(
            *(t.finish() for t in templates), *self._reaping, return_exceptions=True
        )
        self._templates.clear()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def parse_reply(reply: dict[str, Any], duration_ms: float, max_output: int) -> ExecutionResult:
    """Check a run's reply field by field and build the result. Raises ProtocolError."""
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
    if kind in _POOL_KINDS:  # only the pool says these; a run never does
        raise ProtocolError(f"a run claimed the error kind {kind!r}")
    try:  # lone surrogates (JSON "\\ud800") would break every later encoder of this text
        json.dumps(reply, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"reply is not valid text ({type(exc).__name__})") from None
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
