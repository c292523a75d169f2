"""The worker process: compiles and runs one program at a time, under every layer.

Started by ``pool.py`` as a fresh interpreter (never forked from the service, so it holds no
secrets) with an empty environment in an empty directory. At start it imports everything a
program may use, runs a warm-up program (so lazily loaded stdlib parts are in memory), freezes
the heap for the garbage collector, then applies the OS layer (``oslayer.py``) and says it is
ready. After that it reads requests and writes replies as length-prefixed JSON (``protocol.py``)
on two private descriptors; the program's own stdout/stdin are ``/dev/null``.

Between runs nothing survives: each run has a fresh namespace and builtins, fresh ``random``
and ``decimal`` state, and the run's garbage (with any finalizer the program left behind) is
collected before the reply is sent, inside the run's time limit. After anything suspicious the
worker asks to be recycled and exits.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

from tools.sandbox import compiler, policy, values
from tools.sandbox.modules import ModuleRegistry
from tools.sandbox.oslayer import harden_process
from tools.sandbox.protocol import ProtocolError, encode, read_frame_fd, write_frame_fd

COMPILE_CACHE_SIZE = 128
MAX_ERROR_CHARS = 2000

_WARM_UP = """
import datetime, statistics, decimal, fractions, re, json, random, calendar, math, string
import collections, itertools, functools, heapq, bisect, operator, cmath
d = datetime.datetime.strptime("03/15/2023", "%m/%d/%Y").strftime("%A %B %d")
s = statistics.pstdev([1, 2, 3]) + statistics.mean([1, 2]) + statistics.median([3, 1])
x = decimal.Decimal("1.15").quantize(decimal.Decimal("0.1"), rounding=decimal.ROUND_HALF_UP)
f = fractions.Fraction("0.75") + fractions.Fraction(1, 3)
m = re.findall(r"\\d+", "a1b22") + re.sub(r"(?P<x>a)", r"\\g<x>", "abc").split("b")
j = json.loads(json.dumps({"a": [1, 2.5]}))
c = collections.Counter("hello").most_common(1)
print(f"{s:.2f} {x!r}", "{:>5}".format(1), "%5.2f" % 1.5, "x".encode("utf-8").decode("ascii"))
class A:
    def __init__(self):
        self.v = 2 ** 10
a = A()
a.v += 1
def solution():
    return [d, s, x, f, m, j, c, random.random(), a.v, math.comb(5, 2), 7 * 6]
"""


class Runner:
    """Compiles and runs programs under the language layer, one at a time."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.max_output = int(config["max_output_bytes"])
        self.frame_cap = 8 * self.max_output + 65536
        self.arith = policy.Arithmetic(
            int(config["max_int_digits"]), int(config["max_sequence_items"])
        )
        self.modules = ModuleRegistry(self.arith)
        self.builtins = policy.make_builtins(self.arith, self.modules.new_run())
        self.cache: dict[str, Any] = {}
        self.default_recursion = sys.getrecursionlimit()
        sys.set_int_max_str_digits(max(int(config["max_int_digits"]), 640))
        sys.dont_write_bytecode = True

    def compile(self, code: str) -> Any:
        cached = self.cache.get(code)
        if cached is None:
            sys.setrecursionlimit(max(self.default_recursion, 3000))
            try:
                cached = compiler.compile_program(code, int(self.config["max_nesting"]))
            finally:
                sys.setrecursionlimit(self.default_recursion)
            if len(self.cache) >= COMPILE_CACHE_SIZE:
                self.cache.pop(next(iter(self.cache)))
            self.cache[code] = cached
        return cached

    def run(self, code: str) -> dict[str, Any]:
        """Run one program; the reply without its id. Never raises for what the code does."""
        try:
            code_obj = self.compile(code)
        except compiler.CompileRefused as exc:
            return _failure(exc.kind, str(exc), exc.limit)
        sink = policy.PrintSink(self.max_output)
        builtins = dict(self.builtins, __import__=self.modules.new_run())
        namespace = policy.make_globals(builtins, self.arith, sink)
        reply: dict[str, Any]
        sys.setrecursionlimit(_depth() + int(self.config["recursion_limit"]) + 20)
        try:
            exec(code_obj, namespace)
            reply = self._answer(namespace, sink)
        except BaseException as exc:  # the program's own SystemExit, KeyboardInterrupt ...
            reply = _describe(exc)
        finally:
            sys.setrecursionlimit(self.default_recursion)
        if sink.overflowed and reply.get("limit") is None:
            reply = _failure("OutputLimit", f"output exceeds {self.max_output} bytes", "output")
        reply["stdout"] = sink.text()
        namespace.clear()
        gc.collect()  # run leftover finalizers now, inside this run's time limit
        return reply

    def _answer(self, namespace: dict[str, Any], sink: policy.PrintSink) -> dict[str, Any]:
        """The PAL answer: solution() -> result -> answer -> last printed line."""
        solution = namespace.get("solution")
        if callable(solution):
            value = solution()
        elif "result" in namespace:
            value = namespace["result"]
        elif "answer" in namespace:
            value = namespace["answer"]
        else:
            lines = [line for line in sink.text().splitlines() if line.strip()]
            if not lines:
                return {"ok": True, "value": None, "value_repr": None}
            value = values.parse_printed(lines[-1])
        try:
            safe = values.to_json_safe(value)
            if len(json.dumps(safe, ensure_ascii=False)) > self.max_output:
                raise values.ValueTooLarge(f"result larger than {self.max_output} bytes")
        except values.ValueTooLarge as exc:
            return _failure("OutputLimit", str(exc), "output")
        return {
            "ok": True,
            "value": safe,
            "value_repr": values.bounded_repr(value, self.max_output),
        }

    def reply_frame(self, reply: dict[str, Any]) -> bytes:
        """Encode a reply, shrinking it rather than exceeding the frame cap."""
        try:
            return encode(reply, self.frame_cap)
        except (ProtocolError, ValueError, TypeError):
            small = _failure("OutputLimit", "reply too large to return", "output")
            small.update(
                id=reply.get("id"),
                recycle=True,
                stdout=str(reply.get("stdout", ""))[: self.max_output // 8],
            )
            return encode(small, self.frame_cap)


def _depth() -> int:
    frame: Any = sys._getframe()
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def _failure(kind: str, message: str, limit: str | None = None) -> dict[str, Any]:
    return {"ok": False, "error_kind": kind, "error": message[:MAX_ERROR_CHARS], "limit": limit}


def _user_line(exc: BaseException) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == policy.FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: BaseException) -> dict[str, Any]:
    """A failure reply for an exception raised by (or on behalf of) the program."""
    try:
        message = str(exc)
    except BaseException:
        message = "(unprintable message)"
    if not message and isinstance(exc, MemoryError):
        message = "out of memory"
    line = _user_line(exc)
    if line is not None:
        message = f"{message} (line {line})" if message else f"line {line}"
    suspicious = not isinstance(exc, Exception) or isinstance(exc, policy.SandboxSecurityError)
    if isinstance(exc, policy.OutputLimit):
        reply = _failure("OutputLimit", message, "output")
    elif isinstance(exc, policy.IntSizeLimit):
        reply = _failure("OverflowError", message, "int_size")
    elif isinstance(exc, MemoryError):
        reply = _failure("MemoryLimit", message, "memory")
        suspicious = True
    elif isinstance(exc, RecursionError):
        reply = _failure("RecursionError", message, "recursion")
    elif isinstance(exc, policy.SandboxSecurityError):
        reply = _failure("SecurityError", message)
    else:
        reply = _failure(type(exc).__name__[:100], message)
    reply["recycle"] = suspicious
    return reply


def _take_protocol_fds() -> tuple[int, int]:
    """Move the protocol pipes off fds 0/1 so nothing the program does can write on them."""
    request_fd, reply_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    return request_fd, reply_fd


def prepare(config: dict[str, Any]) -> tuple[Runner, dict[str, bool]]:
    """Everything before the first request: imports, warm-up, OS layer."""
    runner = Runner(config)
    warm = runner.run(_WARM_UP)
    if not warm.get("ok"):
        raise RuntimeError(f"sandbox warm-up failed: {warm}")
    gc.collect()
    gc.freeze()  # start-up objects are never scanned again: per-run collections stay cheap
    layers = harden_process(
        int(config["memory_mb"]),
        int(config["cpu_s"]),
        bool(config["seccomp"]),
        bool(config["landlock"]),
    )
    layers.update(restrictedpython=True, process=True)
    return runner, layers


def main() -> None:
    config = json.loads(sys.argv[1])
    request_fd, reply_fd = _take_protocol_fds()
    try:
        runner, layers = prepare(config)
    except Exception as exc:  # tell the service why, then give up
        failed = {"ready": False, "error": f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]}
        write_frame_fd(reply_fd, encode(failed, 65536))
        raise SystemExit(2) from None
    write_frame_fd(reply_fd, encode({"ready": True, "layers": layers}, runner.frame_cap))
    cpu_budget = float(config["cpu_s"]) - float(config["timeout_s"]) - 1.0
    while True:
        try:
            request = read_frame_fd(request_fd, int(config["max_code_bytes"]) * 6 + 1024)
        except (ProtocolError, OSError):
            os._exit(0)
        code = request.get("code")
        reply = runner.run(code) if isinstance(code, str) else _failure("TypeError", "no code")
        reply["id"] = request.get("id")
        reply.setdefault("recycle", False)
        if time.process_time() > cpu_budget:
            reply["recycle"] = True  # before RLIMIT_CPU could stop an innocent program
        write_frame_fd(reply_fd, runner.reply_frame(reply))
        if reply.get("recycle"):
            os._exit(0)


def os_layer_probe(config: dict[str, Any]) -> dict[str, str]:
    """Test-only: apply the OS layer, then try forbidden operations in *plain* Python.

    Bypasses the language layer on purpose, to check that the OS layer holds on its own.
    Reachable only by starting this module with ``--probe-os-layer``; never from a request.
    """
    import resource
    import socket
    import threading

    _, layers = prepare(config)
    probes: dict[str, Any] = {
        "socket": lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),
        "unix_socket": lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
        "fork": _probe_fork,
        "exec": lambda: os.execv("/bin/true", ["true"]),
        "thread": lambda: threading.Thread(target=lambda: None).start(),
        "read_passwd": lambda: _read("/etc/passwd"),
        "read_proc_environ": lambda: _read(f"/proc/{os.getppid()}/environ"),
        "list_root": lambda: os.listdir("/"),
        "write_tmp": lambda: _write(config["probe_write_path"]),
        "raise_rlimit_as": lambda: resource.setrlimit(
            resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        ),
        "kill_parent": lambda: os.kill(os.getppid(), 0),
        "chmod": lambda: os.chmod(config["probe_chmod_path"], 0o777),
    }
    results = {"layers": json.dumps(layers), "environ": json.dumps(sorted(os.environ))}
    for name, probe in probes.items():
        try:
            probe()
        except BaseException as exc:
            results[name] = f"blocked: {type(exc).__name__}: {exc}"
        else:
            results[name] = "ALLOWED"
    return results


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _write(path: str) -> None:
    with open(path, "w") as handle:
        handle.write("x")


def _probe_fork() -> None:
    if os.fork() == 0:  # only if the layer failed: the child must not run the other probes
        os._exit(0)


if __name__ == "__main__" and sys.argv[1:2] == ["--probe-os-layer"]:
    print(json.dumps(os_layer_probe(json.loads(sys.argv[2]))), flush=True)
    os._exit(0)
