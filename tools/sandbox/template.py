"""The template: a pre-initialised interpreter that forks one fresh child per run.

Started by ``pool.py`` as a fresh interpreter (``python -S -s -P``, never forked from the
service, so it holds no secret) with an empty environment in an empty directory, and a random
hash seed of its own. It never runs a program and never sees one:

1. **Namespaces** (where the kernel allows them): new user, PID, network, IPC and UTS
   namespaces (``confine.enter_namespaces``); the template is PID 1 of its PID namespace and
   dies with its keeper, taking every run with it.
2. **Preparation**: it imports every module a program can reach (every codec included, so a
   run never needs to open a file), runs a fixed warm-up program of its own, builds the
   confinement once (a Landlock ruleset, a compiled seccomp filter, the rlimits, the uids),
   and freezes its heap for the collector. A first child probes which layers this kernel
   enforces; the template reports them in its ``ready`` message.
3. **Serving**: it keeps ``SPARES`` children ready. Each is forked with two pipes, confines
   itself, runs a warm-up program of ours (so that the pages a program writes are already
   its own) and waits on its request pipe. The template hands the service the child's ends
   of those pipes (``SCM_RIGHTS`` over the control socket) and closes its own: the service
   writes the program straight to the child and reads the reply straight from it; the
   template is not on that path and never holds a program or a reply.

   The template's part is the process's life: on ``start`` it arms the run's deadline; at
   the deadline it kills the child; on ``done`` (the service has its reply, or gave up) it
   kills it; when a child exits it reaps it (``pidfd``), reports how it ended (``ended``:
   signal, exit status, whether the deadline killed it) and forks its replacement.

Control messages (JSON, one per ``SOCK_SEQPACKET`` datagram):
``{"ready", "layers"}``, ``{"child", id}`` + 2 descriptors, ``{"ended", id, signal, exit,
timeout}`` from the template; ``{"start", id, timeout_s}``, ``{"done", id}`` from the service.

So no state survives a run: every program starts in a process nobody ran code in before, and
the only process that lives longer has never executed a program or even held its text.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import time
import typing
from dataclasses import dataclass
from typing import Any

from tools.sandbox import confine, libc

MAX_ERROR_CHARS = 2000
MESSAGE_CAP = 4096
EXIT_CONFINEMENT_FAILED = 121  # child.EXIT_CONFINEMENT_FAILED
MAX_SPARE_DEATHS = 10  # spares in a row that died before their run: something is wrong
SPARES = 2  # children forked ahead, each confined and warm, waiting for a run
MAX_MESSAGES_PER_POLL = 1000  # bounded: exits and deadlines are looked at in between


@dataclass(eq=False)
class _Child:
    id: int
    pid: int
    pidfd: int
    slot: int  # its number among the live children: it picks the child's uid
    started: bool = False
    deadline: float | None = None
    timed_out: bool = False
    killed: bool = False
    dropped: bool = False  # killed because the service gave up on it ("done") while it ran

    def kill(self) -> None:
        """SIGKILL it, once. Never a pid <= 0: kill(-1) is every process of this user."""
        if not self.killed and self.pid > 0:
            self.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class Template:
    """Prepared once; then :meth:`serve` keeps children ready until the control socket
    closes."""

    def __init__(self, config: dict[str, Any], control: socket.socket) -> None:
        from tools.sandbox import child, warmup  # heavy: after the namespace step

        self.config = config
        self.control = control
        self.runner = child.Runner(config)
        self.serve_one_run = child.serve_one_run
        warmup.prepare(self.runner)
        self.confinement = confine.Confinement.build(config)
        self.pids = confine.PidScatter.open(bool(config.get("in_namespaces")))
        self.pid = os.getpid()
        self.timeout_cap = float(config["timeout_s"])
        self.next_id = 0
        self.spare_deaths = 0
        self.children: dict[int, _Child] = {}
        for clear in typing._cleanups:  # type: ignore[attr-defined]
            clear()  # typing's caches: no key of the template's for a program's key to meet
        gc.collect()
        gc.freeze()  # never scanned again: the children's collections stay cheap

    # -- children ------------------------------------------------------------------------

    def _fork(self) -> _Child:
        """Fork a child for one run and hand its pipe ends to the service.

        Called only where no frame on the stack holds another run's ``_Child`` (``serve``
        forks replacements after it has handled a poll's events), and the child forgets the
        template's own records first: a run's process inherits the template's whole stack and
        heap, and a run out of the language layer read, through ``self``, each other run's
        pid, slot and deadline (its start and its time limit) and how many runs came before
        (red-team pass EW)."""
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()  # their default size: both ends read and write in turns
        slot = self._free_slot()
        self.pids.scatter()  # no pid tells a run how many came before it (pass GN)
        pid = libc.fork_without_hooks()
        if pid == 0:  # the child: never returns
            self._forget_the_runs()
            keep = (request_r, reply_w)

            def confine_child() -> None:
                libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() != self.pid:
                    raise RuntimeError("the template is gone")
                self.confinement.isolate_descriptors(keep)
                self.confinement.apply(slot)

            self.serve_one_run(self.runner, request_r, reply_w, confine_child)
        os.close(request_r)
        os.close(reply_w)
        self.next_id += 1
        run = _Child(self.next_id, pid, os.pidfd_open(pid), slot)
        self.children[run.id] = run
        try:
            self._send({"child": run.id}, (request_w, reply_r))
        finally:
            os.close(request_w)  # the service holds them now; the template never will again
            os.close(reply_r)
        return run

    def _free_slot(self) -> int:
        taken = {run.slot for run in self.children.values()}
        return next(n for n in range(len(taken) + 1) if n not in taken)

    def _forget_the_runs(self) -> None:
        """In a run's child: nothing of the other runs (their children, their count)."""
        self.children = {}
        self.next_id = 0
        self.spare_deaths = 0

    def probe_layers(self) -> dict[str, bool]:
        """Fork one child that tries every layer and reports which ones took effect."""
        reply_r, reply_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
                self.confinement.isolate_descriptors((reply_w,))
                layers = self.confinement.probe()
                os.write(reply_w, json.dumps(layers).encode())
                status = 0
            finally:
                os._exit(status)
        os.close(reply_w)
        try:
            data = b""
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                chunk = os.read(reply_r, 65536)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(reply_r)
            os.waitpid(pid, 0)
        layers = {str(k): v is True for k, v in json.loads(data or b"{}").items()}
        self.confinement.require(layers)  # every child from now on must apply these
        return layers

    # -- serving -------------------------------------------------------------------------

    def serve(self, ready: dict[str, Any]) -> None:
        """Fork the first ``SPARES`` children, say ``ready``, and run the children's lives until
        the service closes the control socket; then kill and reap every child."""
        try:
            for _ in range(SPARES):
                self._fork()
            self._send(ready)
            while True:
                replacements = 0
                for event in self._wait():
                    if event == "control":
                        if not self._on_messages():
                            return
                    else:
                        self._on_exit(event)
                        replacements += 1  # forked below, once the events are handled
                event = None  # no ended run's record on this frame when a child is forked
                self._enforce_deadlines()
                for _ in range(replacements):
                    self._fork()
        except OSError:
            return  # the service is gone
        finally:
            for run in list(self.children.values()):
                run.kill()
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(run.pid, 0)
                os.close(run.pidfd)

    def _wait(self) -> list[Any]:
        """Block until a control message, a child's exit, or the next deadline."""
        poller = select.poll()
        poller.register(self.control.fileno(), select.POLLIN)
        by_fd = {}
        for run in self.children.values():
            poller.register(run.pidfd, select.POLLIN)
            by_fd[run.pidfd] = run
        deadlines = [r.deadline for r in self.children.values() if r.deadline and not r.killed]
        timeout = -1
        if deadlines:
            timeout = max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)
        events: list[Any] = []
        for fd, _mask in poller.poll(timeout):
            events.append("control" if fd == self.control.fileno() else by_fd[fd])
        return events

    def _on_messages(self) -> bool:
        """Handle every pending control message, before any exit of the same poll: a run's
        "start" is sent before its program, so a program that kills its child at once is
        never taken for a spare dying on its own (ten of those in a row end the template,
        and every run on it). False when the service closed the socket."""
        for _ in range(MAX_MESSAGES_PER_POLL):
            try:
                data = self.control.recv(MESSAGE_CAP, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            if not data:
                return False
            self._on_message(data)
        return True

    def _on_message(self, data: bytes) -> None:
        message = json.loads(data)
        run = self.children.get(message.get("start") or message.get("done") or 0)
        if run is None:
            return  # a child that already ended: the service has its "ended"
        if "start" in message and not run.started:
            run.started = True
            timeout = message.get("timeout_s")
            limit = float(timeout) if isinstance(timeout, (int, float)) else self.timeout_cap
            run.deadline = time.monotonic() + min(max(limit, 0.001), self.timeout_cap)
            # Its replacement is forked when it ends, not now: forking and warming a child
            # (~3 ms of CPU) beside a run on 2 cores took the core the service needed for
            # the reply (warm p50 1.5-1.8 ms, p90 2.7; forked at the end: 1.35-1.45, 1.6).
        elif "done" in message:
            run.dropped = not run.killed
            run.kill()

    def _on_exit(self, run: _Child) -> None:
        """Reap a child that exited and tell the service how; ``serve`` then forks its
        replacement (a template whose spares keep dying gives up instead)."""
        _, status = os.waitpid(run.pid, 0)
        os.close(run.pidfd)
        del self.children[run.id]
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        self._send(
            {
                "ended": run.id,
                "signal": signum,
                "exit": exit_code,
                "timeout": run.timed_out,
                "dropped": run.dropped,
            }
        )
        if run.started:
            self.spare_deaths = 0  # replaced now that the run is over
            return
        # A child the service never started: dropped by it (its pipe closed, or "done"), or
        # dead on its own, which is a fault of this template when it repeats.
        if exit_code == EXIT_CONFINEMENT_FAILED:
            raise SystemExit(3)  # this template cannot confine runs: let it be replaced
        if not run.killed and exit_code != 0:
            self.spare_deaths += 1
            if self.spare_deaths >= MAX_SPARE_DEATHS:
                raise SystemExit(3)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for run in self.children.values():
            if run.deadline is not None and now >= run.deadline and not run.killed:
                run.timed_out = True
                run.kill()

    def _send(self, message: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
        data = json.dumps(message).encode()
        if fds:
            socket.send_fds(self.control, [data], list(fds))
        else:
            self.control.send(data)


def _reexec_with_room_for_the_stack() -> None:
    """Start again, once, with RLIMIT_STACK at a run's stack size: the kernel places the
    process's memory maps below the stack by that limit at exec, and only by it (an 8 MiB
    limit then, with the stack's random offset at its largest, leaves a run ~9 MiB to grow)."""
    stack = confine.stack_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft != resource.RLIM_INFINITY and soft < stack:
        resource.setrlimit(resource.RLIMIT_STACK, (stack, hard))
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def main() -> None:
    _reexec_with_room_for_the_stack()
    config = json.loads(sys.argv[1])
    control_fd = int(sys.argv[2])
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    confine.first_to_go_when_memory_runs_out()
    namespaces = False
    if config.get("namespaces", True):
        namespaces = confine.enter_namespaces(int(config["run_uid"]), (control_fd,))
    control = socket.socket(fileno=control_fd)
    control.setblocking(True)
    try:
        config["in_namespaces"] = namespaces
        template = Template(config, control)
        layers = template.probe_layers()
        layers.update(namespaces=namespaces)
    except Exception as exc:  # tell the service why, then give up
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        with contextlib.suppress(OSError):
            control.send(json.dumps({"ready": False, "error": error}).encode())
        raise SystemExit(2) from None
    template.serve({"ready": True, "layers": layers})
    os._exit(0)
