"""The template: a pre-initialised interpreter that forks one fresh child per run.

Started by ``pool.py`` as a fresh interpreter (``python -S -s -P``, never forked from the
service, so it holds no secret) with an empty environment in an empty directory, and a random
hash seed of its own. It never runs a program and never reads one:

1. **Namespaces** (where the kernel allows them): it unshares new user, PID, network, IPC and
   UTS namespaces and forks; the forked process, PID 1 of the new PID namespace, carries on as
   the template, and the first process stays behind as its keeper (killing the keeper kills
   the template, and with it every run, through ``PR_SET_PDEATHSIG`` and the namespace).
2. **Preparation**: it imports every module a program can reach (every codec included, so a
   run never needs to open a file), runs a fixed warm-up program of its own, builds the
   confinement once (a Landlock ruleset, a compiled seccomp filter, the rlimits, the uid),
   and freezes its heap for the collector. A first child probes which layers this kernel
   enforces; the template reports them with its ``ready`` message.
3. **Serving**, one run at a time: a child forked in advance has confined itself and waits on
   its request pipe. The service's request header names the run and its deadline; the
   program's bytes move from the service's pipe to the child's with ``splice``, so they never
   enter the template's memory. The child compiles, runs, writes one reply into a pipe large
   enough to hold it, closes it and exits. The template waits for that close (or the deadline,
   or the child's death), checks the frame's length against what the pipe holds, and moves
   the reply to the service with ``splice`` again, behind a header of its own. Then it kills
   and reaps the child and forks the next one.

So no state survives a run: every program starts in a process nobody ran code in before, and
the only process that lives longer has never executed or even held a program's text.
"""

from __future__ import annotations

import array
import collections
import contextlib
import fcntl
import gc
import json
import os
import select
import signal
import sys
import termios
import time
from dataclasses import dataclass
from typing import Any

from tools.sandbox import confine, libc
from tools.sandbox.protocol import HEADER, ProtocolError, encode, read_frame_fd, write_frame_fd

MAX_ERROR_CHARS = 2000
REQUEST_HEADER_CAP = 4096
SPARES = 2  # children forked ahead, each confined and warm, waiting for a run


@dataclass
class _Child:
    pid: int
    request_w: int
    reply_r: int

    def close(self) -> None:
        for fd in (self.request_w, self.reply_r):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.request_w = self.reply_r = -1


class Template:
    """Prepared once; then :meth:`serve` forks one child per request until the pipe closes."""

    def __init__(self, config: dict[str, Any], request_fd: int, reply_fd: int) -> None:
        from tools.sandbox import child, warmup  # heavy: after the namespace step

        self.config = config
        self.request_fd = request_fd
        self.reply_fd = reply_fd
        self.runner = child.Runner(config)
        self.serve_one_run = child.serve_one_run
        warmup.prepare(self.runner)
        self.confinement = confine.Confinement.build(config)
        self.pid = os.getpid()
        self.timeout_cap = float(config["timeout_s"])
        self.frame_cap = self.runner.reply_cap
        gc.collect()
        gc.freeze()  # never scanned again: the children's collections stay cheap

    # -- children ------------------------------------------------------------------------

    def _fork(self) -> _Child:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        with contextlib.suppress(OSError):  # else the default size; the reply cap allows for it
            fcntl.fcntl(reply_w, fcntl.F_SETPIPE_SZ, self.frame_cap)
        pid = libc.fork_without_hooks()
        if pid == 0:  # the child: never returns
            keep = (request_r, reply_w)

            def confine_child() -> None:
                libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() != self.pid:
                    raise RuntimeError("the template is gone")
                self.confinement.isolate_descriptors(keep)
                self.confinement.apply()

            self.serve_one_run(self.runner, request_r, reply_w, confine_child)
        os.close(request_r)
        os.close(reply_w)
        return _Child(pid, request_w, reply_r)

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
        """Fork the first runs' children, say ``ready``, then serve until the pipe closes.

        ``SPARES`` children wait, confined and warm, so that back-to-back runs do not wait
        for a fork; a used child is killed at once and reaped later, off the reply's path.
        """
        spares = collections.deque(self._fork() for _ in range(SPARES))
        dying: list[_Child] = []
        write_frame_fd(self.reply_fd, encode(ready, REQUEST_HEADER_CAP))
        try:
            while True:
                dying = _reap_while_idle(dying, self.request_fd)
                request = read_frame_fd(self.request_fd, REQUEST_HEADER_CAP)
                run = spares.popleft()
                reply = self._run(run, request)
                write_frame_fd(self.reply_fd, encode(reply["header"], REQUEST_HEADER_CAP))
                if reply["size"]:
                    _splice_exactly(run.reply_r, self.reply_fd, reply["size"])
                _kill(run)
                dying.append(run)
                spares.append(self._fork())
        except (ProtocolError, OSError):
            pass  # the service closed the pipe (or spoke nonsense): nothing left to do
        finally:
            for child in (*spares, *dying):
                _reap(child)

    def _run(self, run: _Child, request: dict[str, Any]) -> dict[str, Any]:
        run_id = request.get("id")
        size = request.get("size")
        timeout = request.get("timeout_s")
        if type(run_id) is not str or type(size) is not int or size < 0:
            raise SystemExit(3)  # the service never sends this: stop rather than guess
        limit = float(timeout) if isinstance(timeout, (int, float)) else self.timeout_cap
        if not 0 < limit <= self.timeout_cap:
            limit = self.timeout_cap
        deadline = time.monotonic() + limit
        moved = _splice_up_to(self.request_fd, run.request_w, size)
        if moved < size:  # the child died before reading: its status will say why; the rest
            _splice_exactly(self.request_fd, self.confinement.devnull, size - moved)  # goes
        os.close(run.request_w)
        run.request_w = -1
        outcome = _wait_for_close(run.reply_r, self.request_fd, deadline)
        if outcome == "cancelled":  # the service closed our pipe: it is discarding us
            _reap(run)
            raise SystemExit(0)
        if outcome == "timeout":
            _reap(run)
            return _header(run_id, "timeout")
        try:
            (length,) = HEADER.unpack(os.read(run.reply_r, HEADER.size).ljust(HEADER.size, b"\0"))
            available = _readable_bytes(run.reply_r)
        except OSError:
            length, available = -1, -2
        if 0 < length <= self.frame_cap and available == length:
            return _header(run_id, "done", size=length)
        signum, exit_code = _reap(run, grace_s=0.2)
        return _header(run_id, "crashed", signum=signum, exit_code=exit_code)


def _header(
    run_id: str,
    status: str,
    size: int = 0,
    signum: int | None = None,
    exit_code: int | None = None,
) -> dict[str, Any]:
    header = {"id": run_id, "status": status, "size": size, "signal": signum, "exit": exit_code}
    return {"header": header, "size": size}


def _wait_for_close(fd: int, request_fd: int, deadline: float) -> str:
    """Wait until every writer of the pipe ``fd`` has closed it (``"closed"``), the deadline
    passes (``"timeout"``), or the service's pipe says something mid-run (``"cancelled"``: it
    never sends a request before the last one was answered, so that is its end of file)."""
    poller = select.poll()
    poller.register(fd, 0)  # no POLLIN: only the hang-up (always reported) wakes us for it
    poller.register(request_fd, select.POLLIN)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        for ready_fd, _events in poller.poll(max(1, int(remaining * 1000) + 1)):
            return "cancelled" if ready_fd == request_fd else "closed"


def _readable_bytes(fd: int) -> int:
    buffer = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buffer, True)
    return buffer[0]


def _splice_up_to(source: int, target: int, size: int) -> int:
    """Move up to ``size`` bytes between pipes; stop early if the target's reader is gone."""
    moved = 0
    while moved < size:
        try:
            step = os.splice(source, target, size - moved)
        except OSError:  # EPIPE: nobody reads the target any more
            return moved
        if step == 0:
            raise OSError("the service's pipe closed")
        moved += step
    return moved


def _splice_exactly(source: int, target: int, size: int) -> None:
    """Move ``size`` bytes between pipes inside the kernel."""
    while size > 0:
        moved = os.splice(source, target, size)
        if moved == 0:
            raise OSError("pipe closed early")
        size -= moved


def _signal_child(pid: int) -> None:
    """SIGKILL one child. Never a pid <= 0: kill(0) is the process group, kill(-1) every
    process this user may signal."""
    if pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _kill(run: _Child) -> None:
    """Close the template's ends of a used child's pipes and kill it, without waiting (a
    child already reaped, pid -1, is left alone)."""
    run.close()
    _signal_child(run.pid)


def _reap_while_idle(dying: list[_Child], request_fd: int) -> list[_Child]:
    """Reap killed children as they exit, until a request arrives; the ones left."""
    dying = [child for child in dying if not _reaped(child)]
    while dying:
        poller = select.poll()
        poller.register(request_fd, select.POLLIN)
        if poller.poll(5):
            return dying  # a request waits: serve it first, reap after
        dying = [child for child in dying if not _reaped(child)]
    return dying


def _reaped(run: _Child) -> bool:
    """Reap a killed child if it has exited; True once it is gone."""
    if run.pid <= 0:
        return True
    try:
        pid, _status = os.waitpid(run.pid, os.WNOHANG)
    except ChildProcessError:
        pid = run.pid
    if pid == 0:
        return False
    run.pid = -1
    return True


def _reap(run: _Child, grace_s: float = 0.0) -> tuple[int | None, int | None]:
    """Kill the child if it still runs, wait for it; the signal or exit code that ended it.

    ``grace_s``: a child that closed its pipe by dying may not have finished exiting yet;
    waiting a moment lets its status say why it died rather than that it was killed.
    """
    run.close()
    if run.pid <= 0:
        return None, None
    if grace_s:
        _wait_exit(run.pid, grace_s)
    pid, status = os.waitpid(run.pid, os.WNOHANG)
    if pid == 0:
        _signal_child(run.pid)
        _, status = os.waitpid(run.pid, 0)
    run.pid = -1
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status), None
    return None, os.WEXITSTATUS(status)


def _wait_exit(pid: int, timeout_s: float) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(int(timeout_s * 1000))
    finally:
        os.close(pidfd)


def _take_protocol_fds() -> tuple[int, int]:
    """Move the protocol pipes off fds 0/1 so that nothing else writes on them."""
    request_fd, reply_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    return request_fd, reply_fd


def main() -> None:
    config = json.loads(sys.argv[1])
    request_fd, reply_fd = _take_protocol_fds()
    namespaces = False
    if config.get("namespaces", True):
        namespaces = confine.enter_namespaces(int(config["run_uid"]), (request_fd, reply_fd))
    try:
        config["in_namespaces"] = namespaces
        template = Template(config, request_fd, reply_fd)
        layers = template.probe_layers()
        layers.update(namespaces=namespaces)
    except Exception as exc:  # tell the service why, then give up
        failed = {"ready": False, "error": f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]}
        write_frame_fd(reply_fd, encode(failed, 65536))
        raise SystemExit(2) from None
    template.serve({"ready": True, "layers": layers})
    os._exit(0)
