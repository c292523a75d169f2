"""The service side of the sandbox: templates that fork, and the runs, each in its own child.

Templates are ``asyncio`` subprocesses running a fresh interpreter (``python -S -s -P -c``),
not ``multiprocessing`` children: nothing of the service's memory (keys, requests) is
inherited as a fork would, nothing is ever pickled, and the event loop does all the waiting
without a helper thread. A template prepares itself once (~0.3 s, paid ahead of time: templates
start in advance and are replaced in the background), then keeps children ready and hands
over each one's pipe ends on a control socket (see ``template.py``).

A run takes a ready child, tells its template ``start`` (which arms the deadline and forks the
next child), writes the program straight into the child's request pipe and reads its reply
straight from its reply pipe, then says ``done``. The template kills a child at its deadline
and reports how each child ended, which is how a run without a reply is told apart (timeout,
crash, CPU limit). The pool keeps a guard deadline of its own (the run's plus a grace period)
and replaces a template that misses one, dies, or says anything malformed; a run's reply is
size-capped JSON, checked field by field, and the decision to replace a template never rests
on what a run wrote.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
import json
import logging
import math
import os
import re
import signal
import socket
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from tools.sandbox.protocol import HEADER, ProtocolError, decode, reply_frame_cap
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
_BOOTSTRAP = (  # the pure-Python lru_cache first: see tools/sandbox_lru.py
    f"import sys; sys.path[:0] = {_IMPORT_PATH!r}; import tools.sandbox_lru as lru; lru.install()"
    "; from tools.sandbox.template import main; main()"
)
# The whole environment of a template: no keys, no service settings, and no PYTHONHASHSEED,
# so that every template draws a random hash seed of its own.
TEMPLATE_ENV = {"LC_ALL": "C.UTF-8"}
LAYER_NAMES = (*REQUIRED_LAYERS, *OPTIONAL_LAYERS)
# The limits a run's own reply may name; the rest (the clock, the CPU, a full queue) are the
# pool's findings, never a run's word.
_POOL_LIMITS = frozenset({"time", "cpu", "busy"})
_RUN_LIMITS = frozenset(get_args(Limit)) - _POOL_LIMITS
_MAX_ERROR_CHARS = 4000
_MESSAGE_CAP = 4096
_GRACE_S = 2.0  # the template kills a late child itself; this is for a template gone wrong
_ENDED_WAIT_S = 2.0  # how long a run without a reply waits to learn how its child ended
_ENDED_SOON_S = 0.1  # ... before it stops a child that is still running
_DELIVERY_ATTEMPTS = 3  # children tried for one run when each was gone before it read the program
_MAX_JSON_INT_DIGITS = 400
_MAX_JSON_INT_BITS = int(_MAX_JSON_INT_DIGITS * 3.3219280948873626) + 1
_REPLY_FIELDS = frozenset({"ok", "value", "value_repr", "stdout", "error_kind", "error", "limit"})
_FREE_WAKEUPS = 64  # reads of a reply before each further one waits (see _read_until_eof)
_TRICKLE_PAUSE_S = 0.01
_MAX_VALUE_ITEMS = 10_000  # items of the lists and dicts of an answer (values.to_json_safe)
_MAX_VALUE_DEPTH = 33  # levels of an answer, the top one included
# An answer's strings: an item or a dict's key and value each; and the reply's own fields.
_MAX_REPLY_QUOTES = 2 * (2 * _MAX_VALUE_ITEMS + 2 * len(_REPLY_FIELDS))
# Outside strings: a comma per item or field, a bracket or brace per container.
_MAX_REPLY_TOKENS = 2 * _MAX_VALUE_ITEMS + 2 * len(_REPLY_FIELDS)
# A JSON string, or from a quote to the end of the body when it is never closed: a match
# starts at every quote and never backtracks (possessive), so taking the strings out is
# linear. A pattern that could fail at a quote rescanned the rest of the body from each
# one: a 60 KB reply of one quote and 20,000 escaped ones held the service's event loop
# for 18 s, one at the reply cap for hours (red-team pass CW).
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_STOP_TIMEOUT_S = 3.0
_POOL_KINDS = frozenset({"Timeout", "SandboxBusy", "WorkerCrashed", "Crashed"})


#: Whose program a run is (the service sets it for each of its runs: the client's API key or
#: address). When every worker is busy, waiting programs are served one owner at a time in
#: turn, and an owner with nothing waiting is never refused for a queue the others filled:
#: one client's hundred programs cannot keep another's one waiting behind them.
OWNER: contextvars.ContextVar[str | None] = contextvars.ContextVar("sandbox_owner", default=None)


class _FairSlots:
    """``slots`` slots, of which one owner holds ``per_owner`` at most; waiters queue per
    owner and are served round-robin by owner, each while it holds fewer than its share.

    The share leaves room for others: an owner whose programs all run to their time limit
    held every slot, and every other owner's program waited ~5 s for one (red-team pass DB).
    """

    def __init__(self, slots: int, per_owner: int) -> None:
        self._free = slots
        self._per_owner = per_owner
        self._held: collections.Counter[str | None] = collections.Counter()
        self._queues: dict[str | None, collections.deque[asyncio.Future[None]]] = {}
        self._turns: collections.deque[str | None] = collections.deque()  # owners waiting
        self.waiting = 0

    def full_for(self, owner: str | None, queue_size: int) -> bool:
        """No slot for this owner now, and no room to wait: the queue holds ``queue_size``
        already and this owner has its share of the places (the queue's size over the owners
        waiting, this one counted). One owner that filled the queue had left a newcomer one
        place: 7 of another client's 8 PAL samples were refused as busy (pass DB). So the
        places in all stay under twice the queue's size."""
        if self._can_take(owner) and not self.waiting:
            return False
        if self.waiting < queue_size:
            return False
        if queue_size == 0 or self.waiting >= 2 * queue_size:
            return True  # (a place for each newcomer was a place for each of 40 owners: DD)
        queue = self._queues.get(owner)
        owners = len(self._queues) + (queue is None)
        return len(queue or ()) >= max(1, queue_size // owners)

    def _can_take(self, owner: str | None) -> bool:
        return self._free > 0 and self._held[owner] < self._per_owner

    async def acquire(self, owner: str | None) -> None:
        if self._can_take(owner) and not self.waiting:
            self._take(owner)
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(owner)
        if queue is None:
            queue = self._queues[owner] = collections.deque()
            self._turns.append(owner)
        queue.append(granted)
        self.waiting += 1
        self._hand_out()  # a free slot that the owners ahead may not take is this one's
        try:
            await granted
        except BaseException:  # a timeout, a cancellation: out of the queue, or the slot back
            if granted.done() and not granted.cancelled():
                self.release(owner)
            else:
                self._forget(owner, granted)
            raise

    def release(self, owner: str | None) -> None:
        """``owner``'s slot is free: it goes to the next owner in turn under its share."""
        self._held[owner] -= 1
        if self._held[owner] <= 0:
            del self._held[owner]
        self._free += 1
        self._hand_out()

    def _take(self, owner: str | None) -> None:
        self._free -= 1
        self._held[owner] += 1

    def _hand_out(self) -> None:
        """Free slots to the waiting owners, in turn, skipping those holding their share."""
        for owner in list(self._turns):  # bounded by the owners waiting (the queue's size)
            if self._free == 0:
                return
            if not self._can_take(owner):
                continue  # it keeps its place in the turns
            queue = self._queues[owner]
            while queue:
                granted = queue.popleft()
                self.waiting -= 1
                if not granted.done():  # (one given up is skipped)
                    self._take(owner)
                    granted.set_result(None)
                    break
            self._turns.remove(owner)
            if queue:
                self._turns.append(owner)  # its next program waits for its next turn
            else:
                del self._queues[owner]

    def _forget(self, owner: str | None, granted: asyncio.Future[None]) -> None:
        queue = self._queues.get(owner)
        if queue is None or granted not in queue:
            return
        queue.remove(granted)
        self.waiting -= 1
        if not queue:
            del self._queues[owner]
            self._turns.remove(owner)


class SandboxStartError(RuntimeError):
    """The sandbox could not start (deployment problem, not a program's doing)."""


def _failure(
    kind: str, message: str, limit: Limit | None = None, ms: float = 0.0
) -> ExecutionResult:
    return ExecutionResult(ok=False, error_kind=kind, error=message, limit=limit, duration_ms=ms)


@dataclass(eq=False)
class _ReadyChild:
    """A child confined and waiting for its program; the service holds its pipe ends."""

    template: _Template
    id: int
    request_w: int
    reply_r: int

    def close(self) -> None:
        for fd in (self.request_w, self.reply_r):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.request_w = self.reply_r = -1


class _Template:
    """One template process, its control socket, and what it has said."""

    def __init__(
        self, process: asyncio.subprocess.Process, control: socket.socket, sandbox: Sandbox
    ) -> None:
        self.process = process
        self.control = control
        self.sandbox = sandbox
        self.layers: dict[str, bool] = {}
        self.started_runs = 0
        self.in_flight = 0
        self.alive = True
        self.retiring = False
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.watched: dict[int, asyncio.Future[dict[str, Any] | None]] = {}

    # -- messages ------------------------------------------------------------------------

    def on_readable(self) -> None:
        """Read every pending control message (event-loop callback)."""
        while self.alive:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.control, _MESSAGE_CAP, 2)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self.gone("its control socket closed")
                return
            try:
                self._dispatch(decode(data), fds)
            except (ProtocolError, KeyError, TypeError, ValueError) as exc:
                for fd in fds:
                    os.close(fd)
                logger.error("sandbox template sent a bad message: %s", exc)
                self.gone("it sent a bad message")
                return

    def _dispatch(self, message: dict[str, Any], fds: list[int]) -> None:
        if "child" in message:
            if len(fds) != 2 or type(message["child"]) is not int:
                raise ValueError("a child comes with exactly two descriptors")
            self.sandbox.offer(_ReadyChild(self, message["child"], fds[0], fds[1]))
            return
        for fd in fds:
            os.close(fd)
        if "ended" in message:
            waiter = self.watched.pop(message["ended"], None)
            if waiter is None:  # a spare died before its run: its pipes lead nowhere now
                ended = message["ended"]
                self.sandbox.drop_ready(lambda child: child.template is self and child.id == ended)
            elif not waiter.done():
                waiter.set_result(message)
        elif "ready" in message and not self.ready.done():
            self.ready.set_result(message)
        else:
            raise ValueError(f"unexpected message {sorted(message)}")

    def send(self, message: dict[str, Any]) -> None:
        """A control message; a template that cannot take one is treated as gone."""
        try:
            self.control.send(json.dumps(message).encode())
        except OSError as exc:
            self.gone(f"it stopped reading ({exc})")

    def watch(self, child_id: int) -> asyncio.Future[dict[str, Any] | None]:
        waiter: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self.watched[child_id] = waiter
        return waiter

    def gone(self, why: str) -> None:
        """The template can no longer be used: stop listening and let the pool replace it."""
        if not self.alive:
            return
        self.alive = False
        if not self.sandbox.closed:
            logger.warning("sandbox template %s: %s", self.process.pid, why)
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.control.fileno())
        for waiter in self.watched.values():
            if not waiter.done():
                waiter.set_result(None)
        self.watched.clear()
        if not self.ready.done():
            self.ready.set_exception(ProtocolError(f"template not ready: {why}"))
        self.sandbox.template_gone(self)

    # -- process -------------------------------------------------------------------------

    def kill(self) -> None:
        """The last resort, for a template that did not stop: every process of its group."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def finish(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Close the control socket, which makes the template kill and reap its children and
        exit (each process of the chain reaps the one below); kill it if it does not."""
        self.gone("stopped")
        with contextlib.suppress(OSError):
            self.control.close()
        try:
            async with asyncio.timeout(timeout_s):
                await self.process.wait()
        except TimeoutError:
            self.kill()
            await self.process.wait()


class Sandbox:
    """Runs untrusted Python programs, each in a fresh, confined process.

    ``await run(code)`` never raises for anything the code does; it returns an
    :class:`ExecutionResult`. Safe to call concurrently from many tasks; one owner
    (``OWNER``) runs at most ``config.workers`` programs at once, and all owners together one
    more.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._ready: collections.deque[_ReadyChild] = collections.deque()
        self._offered = asyncio.Event()
        # One owner runs ``workers`` programs at once; one slot more is for the others.
        workers = max(1, self.config.workers)
        self._slots = _FairSlots(workers + 1, per_owner=workers)
        self._templates: set[_Template] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # replacements, template shutdowns
        self._started = False
        self.closed = False
        self._start_lock = asyncio.Lock()
        self._layers: dict[str, bool] = dict.fromkeys(LAYER_NAMES, False)
        self._reply_cap = reply_frame_cap(self.config.max_output_bytes)
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

    # -- start and stop ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the templates (idempotent). Raises :class:`SandboxStartError` if none start,
        or if a required layer is missing and ``allow_weak`` is not set."""
        async with self._start_lock:
            if self._started or self.closed:
                return
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
            self._started = True
        logger.info("sandbox started: %d templates, layers %s", len(templates), self._layers)
        for name in OPTIONAL_LAYERS:
            if not self._layers[name]:
                logger.warning("optional sandbox layer %s is not available here", name)
        if missing:
            logger.warning("SANDBOX_ALLOW_WEAK: running without %s", ", ".join(missing))

    async def _abort_start(self) -> None:
        self.closed = True
        await asyncio.gather(*(t.finish() for t in self._templates), return_exceptions=True)
        self._templates.clear()
        self.drop_ready(lambda child: True)

    async def _spawn(self) -> _Template:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The template's working directory is removed as soon as it has started in it: nothing
        # can be made there, and a service killed outright leaves nothing behind.
        workdir = tempfile.mkdtemp(prefix="reactpal-sandbox-")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-S",
                "-s",
                "-P",
                "-c",
                _BOOTSTRAP,
                self._template_args,
                str(theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env=TEMPLATE_ENV,
                cwd=workdir,
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
            os.rmdir(workdir)
        ours.setblocking(False)
        template = _Template(process, ours, self)
        self._templates.add(template)
        asyncio.get_running_loop().add_reader(ours.fileno(), template.on_readable)
        try:
            async with asyncio.timeout(self.config.start_timeout_s):
                ready = await template.ready
            layers = ready.get("layers")
            if ready.get("ready") is not True or not isinstance(layers, dict):
                raise ProtocolError(f"template not ready: {str(ready.get('error'))[:500]}")
            template.layers = {str(k): v is True for k, v in layers.items()}
            template.layers.update(restrictedpython=True, process=True)
        except (TimeoutError, ProtocolError, OSError) as exc:
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

    def offer(self, child: _ReadyChild) -> None:
        """A template handed over a ready child."""
        if self.closed or not child.template.alive or child.template.retiring:
            child.close()
            return
        self._ready.append(child)
        self._offered.set()

    def template_gone(self, template: _Template) -> None:
        """A template died, misbehaved or was stopped: forget it and its ready children."""
        if template not in self._templates:
            return
        self._templates.discard(template)
        self.drop_ready(lambda child: child.template is template)
        self._track(template.finish())
        if not self.closed and self._started and not template.retiring:
            self._replace()

    def _retire(self, template: _Template) -> None:
        """Use no more of this template's children; stop it once its runs are over."""
        if template.retiring:
            return
        template.retiring = True
        self.drop_ready(lambda child: child.template is template)
        if not self.closed:
            self._replace()
        if template.in_flight == 0:
            template.gone("retired")

    def drop_ready(self, which: Any) -> None:
        keep: collections.deque[_ReadyChild] = collections.deque()
        for child in self._ready:
            if which(child):
                child.close()
            else:
                keep.append(child)
        self._ready = keep

    def _replace(self) -> None:
        self._track(self._replace_template())

    async def _replace_template(self) -> None:
        delay = 0.1
        while not self.closed:
            try:
                template = await self._spawn()
            except SandboxStartError as exc:
                logger.error("could not replace a sandbox template: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if self.closed:
                await template.finish()
            return

    def _track(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop every template (and so every run)."""
        if self.closed:
            return
        self.closed = True
        self._offered.set()  # wake the waiting runs: they find the sandbox closed
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        templates = list(self._templates)
        self.drop_ready(lambda child: True)
        await asyncio.gather(*(t.finish() for t in templates), return_exceptions=True)
        self._templates.clear()

    # -- runs ------------------------------------------------------------------------------

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
        if self.closed:
            return _failure("WorkerCrashed", "the sandbox is closed")
        try:
            await self.start()
        except SandboxStartError as exc:
            return _failure("WorkerCrashed", f"the sandbox could not start: {exc}")
        busy = _failure("SandboxBusy", "the sandbox is busy; try again shortly", "busy")
        owner = OWNER.get()
        if self._slots.full_for(owner, self.config.queue_size):
            return dataclasses.replace(busy, duration_ms=_ms(started))
        try:  # queued for one of the ``workers`` slots, in its owner's turn
            async with asyncio.timeout(self.config.queue_wait_s):
                await self._slots.acquire(owner)
        except TimeoutError:
            return dataclasses.replace(busy, duration_ms=_ms(started))
        try:
            # A child that died before it read the program (killed from outside while it
            # waited) never ran it: the program goes to the next one, a bounded number of times.
            for _ in range(_DELIVERY_ATTEMPTS):
                try:
                    async with asyncio.timeout(self.config.queue_wait_s):
                        child = await self._take_child()  # normally ready: templates fork ahead
                except TimeoutError:
                    return dataclasses.replace(busy, duration_ms=_ms(started))
                if child is None:
                    return _failure("WorkerCrashed", "the sandbox is closed")
                result = await self._run_in(child, source, limit_s)
                if result is not None:
                    return result
            return _failure("WorkerCrashed", "the sandbox failed; try again", None, _ms(started))
        except Exception:  # a bug of ours, never the program's doing: contain it
            logger.exception("sandbox run failed")
            return _failure("WorkerCrashed", "the sandbox failed", None, _ms(started))
        finally:
            self._slots.release(owner)

    async def _take_child(self) -> _ReadyChild | None:
        while not self.closed:
            while self._ready:
                child = self._ready.popleft()
                if child.template.alive and not child.template.retiring:
                    return child
                child.close()
            self._offered.clear()
            await self._offered.wait()
        return None

    async def _run_in(
        self, child: _ReadyChild, source: bytes, limit_s: float
    ) -> ExecutionResult | None:
        """The run's result; None when the child was gone before it had the whole program
        (so it never ran it)."""
        template = child.template
        template.in_flight += 1
        template.started_runs += 1
        ended = template.watch(child.id)
        sent = time.perf_counter()
        try:
            template.send({"start": child.id, "timeout_s": limit_s})
            try:
                async with asyncio.timeout(limit_s + _GRACE_S):
                    try:
                        await _write_all(child.request_w, source)
                    except BrokenPipeError:
                        return None  # it reads until EOF before compiling: nothing ran
                    os.close(child.request_w)
                    child.request_w = -1
                    data = await _read_until_eof(child.reply_r, self._reply_cap)
            except TimeoutError:
                logger.error("sandbox template missed a run's deadline; replacing it")
                template.gone("it missed a run's deadline")
                return _failure(
                    "Timeout", f"the program ran longer than {limit_s:g} s", "time", _ms(sent)
                )
            except (BrokenPipeError, ProtocolError):
                data = b""  # the child died before reading, or wrote past the cap
            result = self._result(data, sent)
            if result is None:  # no usable reply: how did the child end?
                # asyncio.wait, not a timeout around ``await ended``: that would cancel the
                # future, and its result() would raise CancelledError out of run(). A child
                # that has not ended is stopped first: it closed its reply and went on (a
                # program out of the language layer could), and waiting 2 s to call that the
                # sandbox's failure held a slot and blamed the sandbox (red-team pass DX).
                await asyncio.wait((ended,), timeout=_ENDED_SOON_S)
                stopped = not ended.done()
                if stopped:
                    template.send({"done": child.id})
                    await asyncio.wait((ended,), timeout=_ENDED_WAIT_S)
                how = ended.result() if ended.done() and not ended.cancelled() else None
                if stopped and how is not None and how.get("dropped") is True:  # by "done"
                    return _failure(
                        "Crashed",
                        "the program's process closed its reply and went on; it was stopped",
                        None,
                        _ms(sent),
                    )
                result = self._ended(how, limit_s, sent)
            return result
        finally:
            template.watched.pop(child.id, None)
            child.close()
            template.send({"done": child.id})
            template.in_flight -= 1
            if template.started_runs >= self.config.runs_per_template:
                self._retire(template)  # a new template, a new hash seed
            elif template.retiring and template.in_flight == 0:
                template.gone("retired")

    def _result(self, data: bytes, sent: float) -> ExecutionResult | None:
        """The run's own reply, if it wrote one complete frame; None otherwise."""
        if len(data) < HEADER.size:
            return None
        (size,) = HEADER.unpack(data[: HEADER.size])
        if size != len(data) - HEADER.size or size == 0:
            return None
        try:
            _check_shape(data[HEADER.size :])
            reply = decode(data[HEADER.size :], None)  # numbers: checked by parse_reply
            return parse_reply(reply, _ms(sent), self.config.max_output_bytes)
        except ProtocolError as exc:
            logger.warning("sandbox run sent a bad reply: %s", exc)
            return _failure("Crashed", "the program's reply was malformed", None, _ms(sent))

    def _ended(self, ended: dict[str, Any] | None, limit_s: float, sent: float) -> ExecutionResult:
        """The result of a run without a usable reply, from how its child ended."""
        if ended is None:
            return _failure("WorkerCrashed", "the sandbox failed; try again", None, _ms(sent))
        if ended.get("timeout") is True:
            return _failure(
                "Timeout", f"the program ran longer than {limit_s:g} s", "time", _ms(sent)
            )
        signum, exit_code = ended.get("signal"), ended.get("exit")
        if signum == signal.SIGXCPU:
            return _failure("Timeout", "the program's CPU time limit was reached", "cpu", _ms(sent))
        how = f"exit {exit_code}"
        if isinstance(signum, int):
            with contextlib.suppress(ValueError):
                how = signal.Signals(signum).name
            if signum == signal.SIGSEGV:  # what the program can do about it
                how += ": usually C code recursing into a value nested too deeply"
        return _failure("Crashed", f"the program crashed its interpreter ({how})", None, _ms(sent))


async def _write_all(fd: int, data: bytes) -> None:
    """Write everything to a pipe without blocking the event loop."""
    os.set_blocking(fd, False)
    view = memoryview(data)
    loop = asyncio.get_running_loop()
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(fd, writable.set_result, None)
            try:
                await writable
            finally:
                loop.remove_writer(fd)


async def _read_until_eof(fd: int, cap: int) -> bytes:
    """Everything a pipe delivers until its writer closes it; ProtocolError past ``cap``.

    A reply comes in a few reads (the pipe's size at a time). A child that broke out of the
    language layer could write it a byte at a time, waking the service's one thread for each
    (2 s of its CPU a run, red-team pass BQ): past ``_FREE_WAKEUPS`` reads, the pipe is
    looked at again only after ``_TRICKLE_PAUSE_S``, so what trickles in meanwhile comes in
    one read."""
    os.set_blocking(fd, False)
    loop = asyncio.get_running_loop()
    data = bytearray()
    wakeups = 0
    paused: asyncio.TimerHandle | None = None
    finished: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        nonlocal wakeups, paused
        wakeups += 1
        while not finished.done():
            try:
                chunk = os.read(fd, 1 << 17)
            except BlockingIOError:
                break
            except OSError as exc:
                finished.set_exception(exc)
                return
            if not chunk:
                finished.set_result(None)
                return
            if len(data) + len(chunk) > cap:
                finished.set_exception(ProtocolError(f"reply larger than {cap} bytes"))
                return
            data.extend(chunk)
        if wakeups >= _FREE_WAKEUPS and not finished.done():
            loop.remove_reader(fd)
            paused = loop.call_later(_TRICKLE_PAUSE_S, loop.add_reader, fd, readable)

    loop.add_reader(fd, readable)
    try:
        await finished
    finally:
        if paused is not None:
            paused.cancel()
        loop.remove_reader(fd)
    return bytes(data)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def parse_reply(reply: dict[str, Any], duration_ms: float, max_output: int) -> ExecutionResult:
    """Check a run's reply field by field and build the result. Raises ProtocolError."""
    unknown = reply.keys() - _REPLY_FIELDS
    if unknown:  # nothing the service would not look at (a megabyte of it cost time)
        raise ProtocolError(f"unknown reply field {sorted(unknown)[0][:40]!r}")
    ok = reply.get("ok")
    stdout = reply.get("stdout", "")
    kind, error, limit = reply.get("error_kind"), reply.get("error"), reply.get("limit")
    value_repr = reply.get("value_repr")
    if not isinstance(ok, bool) or not isinstance(stdout, str) or len(stdout) > max_output:
        raise ProtocolError("bad ok/stdout field")
    if not _optional_str(kind, 100) or not _optional_str(error, _MAX_ERROR_CHARS):
        raise ProtocolError("bad error field")
    if kind is not None and not all(part.isidentifier() for part in kind.split(".")):
        raise ProtocolError("an error kind is a Python name")  # "Timeout " passed for Timeout
    if not _optional_str(value_repr, max_output + 3) or (
        limit is not None and limit not in _RUN_LIMITS
    ):
        raise ProtocolError("bad value_repr/limit field")
    if not ok and kind is None:
        raise ProtocolError("failure without an error kind")
    if kind in _POOL_KINDS:  # only the pool says these; a run never does
        raise ProtocolError(f"a run claimed the error kind {kind!r}")
    if ok:
        _check_value(reply.get("value"), max_output)
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


def _check_shape(body: bytes) -> None:
    """Refuse, before parsing, a reply with more strings or containers than a run's answer
    can hold (``_check_value``): a child that broke out of the language layer could send a
    megabyte of ``[[0]],``, which the service's one thread would spend 160 ms building and
    freeing (red-team pass BQ). Counted at C speed: quotes first (an escaped one is not
    counted, so each string counts at least once), then, outside the strings, commas,
    brackets and braces."""
    if body.count(b'"') - body.count(b'\\"') > _MAX_REPLY_QUOTES:
        raise ProtocolError("reply holds more strings than an answer can")
    if _tokens(body) <= _MAX_REPLY_TOKENS:
        return  # within bounds even if none of them is in a string: the usual reply
    if _tokens(_JSON_STRING.sub(b"", body)) > _MAX_REPLY_TOKENS:
        raise ProtocolError("reply holds more items than an answer can")


def _tokens(body: bytes) -> int:
    return body.count(b",") + body.count(b"[") + body.count(b"{")


def _check_value(value: Any, max_output: int) -> None:
    """The answer as ``values.to_json_safe`` builds it: JSON data at most 32 deep, 10,000
    items and ``max_output`` characters of text. A run that broke out of the language layer
    could write anything here; the agents format and vote on it. Walked a level at a time,
    one test of its type an item (an answer of 10,000 empty lists took 10 ms, pass BM)."""
    budget, text = _MAX_VALUE_ITEMS, 0
    level: list[Any] = [value]
    for _ in range(_MAX_VALUE_DEPTH):
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is str:
                text += len(item)
            elif kind is list or kind is dict:
                budget -= len(item)
                if budget < 0:
                    raise ProtocolError("value larger than a run can return")
                if kind is dict:
                    text += sum(map(len, item))
                    below += item.values()
                else:
                    below += item
            elif kind is int:  # parsed at C speed (see protocol.decode): checked here
                if item.bit_length() > _MAX_JSON_INT_BITS:
                    raise ProtocolError("value holds an integer too long to return")
            elif kind is float:
                if not math.isfinite(item):
                    raise ProtocolError("value holds a non-finite number")
            elif item is not None and kind is not bool:
                raise ProtocolError(f"value holds a {kind.__name__}")
        if text > max_output:
            raise ProtocolError("value larger than a run can return")
        if not below:
            return
        level = below
    raise ProtocolError("value nested too deeply")


def _optional_str(value: Any, max_len: int) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= max_len)
