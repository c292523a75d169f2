"""One run in one process: the code a child executes between its fork and its exit.

The template forks a child for every run (``template.py``). The child isolates its
descriptors, applies its confinement, then reads the program from its request pipe until EOF,
compiles it (nothing compiled survives: the process exits after this one program), runs it and
writes one length-prefixed JSON reply on its reply pipe. Nothing in here may ever return to the
template's loop: :func:`serve_one_run` ends in ``os._exit`` whatever happens.

The reply cannot be turned against the parent: everything in it is built from exact builtin
types by code that catches everything (lone surrogates, lying ``__len__``/``__repr__``/
``__str__``, recursion, memory errors); whatever still goes wrong becomes a small fixed
failure reply. A reply is never larger than the frame the service reads
(``protocol.reply_frame_cap``); it may be larger than the pipe holds, and then writing it
waits for the service to read, within the run's deadline (the child is killed at it).
"""

from __future__ import annotations

import contextlib
import decimal
import dis
import gc
import json
import mmap
import os
import select
import sys
from collections.abc import Callable
from types import FunctionType, TracebackType
from typing import Any, NamedTuple, NoReturn

from tools.sandbox import compiler, policy, values
from tools.sandbox.limits import Arithmetic, bound_fractions
from tools.sandbox.modules import FRAMES_PER_CALL, MAX_RECURSION, ModuleRegistry, stack_depth
from tools.sandbox.protocol import HEADER, reply_frame_cap
from tools.sandbox.standins import Classes

MAX_ERROR_CHARS = 2000
# CPython's two wordings for C code that failed without an exception (a failed allocation
# some of its code does not report): "f returned NULL without setting an exception", and the
# eval loop's own (namedtuple's compile under the memory limit, pass CO).
_NULL_WITHOUT_ERROR = (
    "returned NULL without setting an exception",
    "error return without exception set",
)
# Error kinds only the sandbox reports: a program's exception class of that name is reported
# as "Exception" (its name stays in the message).
RESERVED_KINDS = frozenset(
    "Timeout SandboxBusy WorkerCrashed Crashed CodeTooLarge OutputLimit MemoryLimit "  # noqa: SIM905
    "SecurityError".split(" ")
)
EXIT_REPLIED = 0
EXIT_CONFINEMENT_FAILED = 121
EXIT_INTERNAL_ERROR = 122
_FALLBACK = b'{"ok":false,"error_kind":"OutputLimit","error":"the reply could not be built","limit":"output","stdout":""}'  # noqa: E501
_OUT_OF_MEMORY = (
    b'{"ok":false,"error_kind":"MemoryLimit","error":"out of memory","limit":"memory","stdout":""}'
)
# Held while a program runs and let go before its failure is described: a program that
# still holds all the memory it could get (a chain of closures its frame keeps) left nothing
# to describe it with, and its run ended as a crash (red-team pass ER). Address space
# only (the memory limit is RLIMIT_AS): a mapping never touched, so it costs no page (a
# ``bytes`` of that size was memset by malloc: 13 ms of CPU a run).
RESERVE_BYTES = 8 * 1024 * 1024


PREWARM = """
import math
def solution():
    values = [3, 4.5, 6]
    total = 0
    for value in values:
        total += value * 2
    print(f"{total:.2f}", round(math.sqrt(total), 3))
    return total / len(values)
"""


_EXIT_CODE = vars(SystemExit)["code"]  # the slot: a subclass's property cannot answer


def _succeeded(exit: SystemExit) -> bool:
    """``sys.exit()``, ``sys.exit(0)``, ``exit(None)``: a script's successful end (the
    code read from the exception's own slot, compared by exact type)."""
    code = _EXIT_CODE.__get__(exit)
    return code is None or code is False or (type(code) is int and code == 0)


def _has_answer(
    namespace: dict[str, Any], sink: policy.PrintSink, calls: policy.SolutionCalls
) -> bool:
    """Something ``_answer`` can answer with: a ``solution``, ``result`` or ``answer``, or
    printed output."""
    if calls.bare is not None or calls.given is not None or sink.size > 0:
        return True
    return "solution" in namespace or "result" in namespace or "answer" in namespace


def _needs_arguments(func: Any) -> bool:
    """A plain function with a parameter that has no default (read from the function's own
    C fields: nothing of the program's runs)."""
    if type(func) is not FunctionType:
        return False
    code = func.__code__
    positional = code.co_argcount - len(func.__defaults__ or ())
    keywords = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    defaults = func.__kwdefaults__ or {}
    return positional > 0 or any(name not in defaults for name in keywords)


class Prepared(NamedTuple):
    """A run's own state, made before its program (``Runner.prepare``)."""

    sink: policy.PrintSink
    calls: policy.SolutionCalls
    namespace: dict[str, Any]


class Runner:
    """Compiles and runs one program under the language layer (built once, in the template)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.max_output = int(config["max_output_bytes"])
        self.max_code_bytes = int(config["max_code_bytes"])
        self.reply_cap = reply_frame_cap(self.max_output)
        self.arith = Arithmetic(int(config["max_int_digits"]), int(config["max_sequence_items"]))
        bound_fractions(self.arith)
        self.classes = Classes(self.arith)
        self.guards = policy.Guards(self.arith, self.classes)
        self.modules = ModuleRegistry(self.guards)
        self.star_names = self.modules.star_names()
        self.hooks = policy.make_hooks(self.guards, self.modules.importer)
        self.max_nesting = int(config["max_nesting"])
        self.recursion_limit = int(config["recursion_limit"])
        self.default_recursion = sys.getrecursionlimit()
        self._namespace: dict[str, Any] | None = None  # the running program's globals
        self._prepared: Prepared | None = None  # see prepare
        self._reserve: mmap.mmap | None = None  # see RESERVE_BYTES
        sys.set_int_max_str_digits(max(int(config["max_int_digits"]), 640))
        sys.dont_write_bytecode = True

    def compile(self, code: str) -> Any:
        sys.setrecursionlimit(max(self.default_recursion, 3000))
        try:
            return compiler.compile_program(
                code, self.max_nesting, self.arith.max_bits, self.star_names
            )
        finally:
            sys.setrecursionlimit(self.default_recursion)

    def prepare(self) -> Prepared:
        """Make the next run's own state (its output, module state, globals, a new random
        seed) before its program arrives: a child does it while it waits, off the run's
        latency (0.14 ms of a 1.7 ms warm run, measured inside the child). Only a run's
        child may call it: state made in the template would be every child's, seed and all.
        """
        sink = policy.PrintSink(self.max_output)
        self.classes.reset()
        self.modules.new_run(sink)
        calls = policy.SolutionCalls()
        self._prepared = Prepared(sink, calls, policy.make_globals(self.hooks, sink, calls))
        return self._prepared

    def run(self, code: str) -> dict[str, Any]:
        """Run one program in the state ``prepare`` made (made now if it was not); the
        reply. Never raises for what the code does."""
        try:
            code_obj = self.compile(code)
        except compiler.CompileRefused as exc:
            self._prepared = None
            return failure(exc.kind, str(exc), exc.limit)
        sink, calls, namespace = self._prepared or self.prepare()
        self._prepared = None  # one run's state serves one run
        self._namespace = namespace
        reply: dict[str, Any]
        self.guards.run_depth = stack_depth()
        sys.setrecursionlimit(self.guards.run_depth + self.recursion_limit * FRAMES_PER_CALL + 20)
        self._reserve = mmap.mmap(-1, RESERVE_BYTES, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        try:
            try:
                exec(code_obj, namespace)
            except SystemExit as exc:  # sys.exit(main()) after printing the answer: as a
                # script does, the run ends well and keeps it; an exit with nothing to answer
                # is the error it was (it ends the run, never the process: attack corpus)
                if not _succeeded(exc) or not _has_answer(namespace, sink, calls):
                    raise
            reply = self._answer(namespace, sink, calls)
        except BaseException as exc:  # the program's own SystemExit, KeyboardInterrupt ...
            self._release_reserve()
            reply = describe_within_memory(exc, namespace)
        finally:
            self._release_reserve()
            sys.setrecursionlimit(self.default_recursion)
        if sink.overflowed and reply.get("limit") is None:
            reply = failure("OutputLimit", sink.limit_message(), "output")
        elif sink.truncated and reply.get("ok") and reply.get("limit") is None:
            reply["limit"] = "output"  # it answered; its output was cut
        try:
            reply["stdout"] = sink.text()
        except MemoryError:  # the program still holds the memory (red-team pass AZ): let it go
            self.release_program()
            try:
                reply["stdout"] = sink.text()
            except MemoryError:
                reply = failure("MemoryLimit", "out of memory", "memory")
                reply["stdout"] = ""
        return reply

    def _release_reserve(self) -> None:
        reserve, self._reserve = self._reserve, None
        if reserve is not None:
            reserve.close()  # unmapped now, not when the collector (off in a run) gets to it

    def release_program(self) -> None:
        """Let go of what the finished program still holds (its globals, and the cycles among
        its objects, which no collector ran on during the run): the reply needs memory."""
        self._release_reserve()
        namespace, self._namespace = self._namespace, None
        if namespace is not None:
            namespace.clear()
        gc.collect()

    def _answer(
        self, namespace: dict[str, Any], sink: policy.PrintSink, calls: policy.SolutionCalls
    ) -> dict[str, Any]:
        """The PAL answer: solution() -> result -> answer -> last printed line. What the
        program's own last ``solution()`` answered is not asked again (its side effects would
        run twice, and one that raised would fail the run the program went on from), and a
        ``solution`` that needs arguments answers what the program's own last call of it with
        some did (``print(solution(25))``). A ``solution`` that answered None (it printed its
        answer instead) leaves the answer to the rest, and ``result`` or ``answer`` holding
        None or a function is no answer (a placeholder, a helper named so)."""
        solution = namespace.get("solution")
        value: Any = None
        if calls.bare is not None:
            value = calls.bare[0]
        elif calls.given is not None and _needs_arguments(solution):
            value = calls.given[0]
        elif callable(solution) and not calls.raised:
            value = solution()
        if value is None:
            found = self._answer_from(namespace, sink)
            if found is None:
                return {"ok": True, "value": None, "value_repr": None}
            (value,) = found
        # The answer's own __repr__ runs for its JSON form, then again for value_repr: what
        # it prints is kept once, the second time (it was in the output twice, pass FR)
        sink.muted = True
        try:
            safe = values.to_json_safe(value, self.max_output)
            if len(json.dumps(safe, ensure_ascii=False)) > self.max_output:
                raise values.ValueTooLarge(f"result larger than {self.max_output} bytes")
        except values.ValueTooLarge as exc:
            return failure("OutputLimit", str(exc), "output")
        except OverflowError:  # the sandbox's own len() of a result: range(2 ** 70)
            return failure("OutputLimit", "result too large to return", "output")
        finally:
            sink.muted = False
        return {
            "ok": True,
            "value": safe,
            "value_repr": values.bounded_repr(value, self.max_output),
        }

    def _answer_from(self, namespace: dict[str, Any], sink: policy.PrintSink) -> tuple[Any] | None:
        """The answer of a program whose ``solution`` gave none: its ``result``, else its
        ``answer`` (neither None nor a function), else its last printed line; None when
        there is none."""
        for name in ("result", "answer"):
            if name in namespace:
                value = namespace[name]
                if value is not None and not callable(value):
                    return (value,)
        try:
            text = sink.text()
        except MemoryError:  # the program still holds its memory (red-team pass AZ): let it go
            self.release_program()
            text = sink.text()
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines or not sink.last_line_whole:  # a cut line is no answer
            return None
        return (values.parse_printed(lines[-1]),)

    def prewarm(self) -> None:
        """Run a small program of our own while waiting for the real one: on this kind of
        machine a first write to each page costs ~3.5 us after a fork, and the pages a
        typical program writes are now written before its request arrives."""
        self.reply_frame(self.run(PREWARM))

    def reply_frame(self, reply: dict[str, Any]) -> bytes:
        """The encoded reply, never larger than ``reply_frame_cap``; never raises. Out of memory,
        what the program holds is let go and the reply encoded again, else it is a
        ``MemoryLimit`` (red-team pass AZ: a program's answer came back as an OutputLimit)."""
        try:
            try:
                body = encode_reply(reply)
            except MemoryError:
                self.release_program()
                body = encode_reply(reply)
            if len(body) + HEADER.size > self.reply_cap:
                body = self._small_failure(reply, "reply too large to return")
        except MemoryError:
            try:
                body = self._small_failure(reply, "out of memory", "MemoryLimit", "memory")
            except BaseException:
                body = _FALLBACK
        except BaseException:
            try:
                body = self._small_failure(reply, "the reply could not be built")
            except BaseException:
                body = _FALLBACK
        return HEADER.pack(len(body)) + body

    def _small_failure(
        self, reply: dict[str, Any], message: str, kind: str = "OutputLimit", limit: str = "output"
    ) -> bytes:
        small = failure(kind, message, limit)
        stdout = reply.get("stdout", "")
        small["stdout"] = clean_text(stdout[: self.max_output // 8]) if type(stdout) is str else ""
        return encode_reply(small)


clean_text = values.clean_text


def encode_reply(reply: dict[str, Any]) -> bytes:
    """JSON of a reply built by this module (exact builtin types only, checked again by the
    service); strings are cleaned of lone surrogates first."""
    cleaned = {
        key: clean_text(value) if type(value) is str else value for key, value in reply.items()
    }
    if cleaned.get("value") is not None:
        cleaned["value"] = values.clean_strings(cleaned["value"])
    return json.dumps(cleaned, ensure_ascii=False, allow_nan=False).encode("utf-8")


def failure(kind: str, message: str, limit: str | None = None) -> dict[str, Any]:
    return {"ok": False, "error_kind": kind, "error": message[:MAX_ERROR_CHARS], "limit": limit}


def _user_line(exc: BaseException) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == policy.FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _message(exc: BaseException) -> str:
    """``str(exc)``, contained: a program's exception may lie in ``__str__``."""
    try:
        text = str(exc)
        if type(text) is not str:
            text = str.__str__(text)
        return text[:MAX_ERROR_CHARS]
    except BaseException:
        return "(unprintable message)"


# Builtins a program does not get, and the rule each absence stands for: a NameError for
# them says so, so that a model (and its user) reads a rule, not a bug to retry.
WITHHELD = {
    "open": "file access is not available in the sandbox",
    "exec": "running code from text is not available in the sandbox",
    "eval": "running code from text is not available in the sandbox",
    "compile": "compiling code from text is not available in the sandbox",
    "__import__": "only 'import <module>' of the allowed modules works in the sandbox",
    "breakpoint": "there is no debugger in the sandbox",
    "globals": "introspection is not available in the sandbox",
    "locals": "introspection is not available in the sandbox",
    "exit": "a program ends by returning; there is no exit() in the sandbox",
    "quit": "a program ends by returning; there is no quit() in the sandbox",
    "help": "there is no interactive help in the sandbox",
}


# The exceptions only the sandbox's own code raises, to report a limit or a refusal.
_SANDBOX_RAISED: tuple[type[BaseException], ...] = (
    policy.OutputLimit,
    policy.IntSizeLimit,
    policy.SizeLimit,
    policy.SandboxSecurityError,
)
_SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__))
# Where code hands the interpreter an exception object of its choosing: a raise statement, and
# a generator or coroutine resumed by throw() at its yield or await, or before its start.
_PROGRAM_RAISE_OPS = frozenset(
    dis.opmap[name]
    for name in ("RAISE_VARARGS", "RERAISE", "YIELD_VALUE", "SEND", "RETURN_GENERATOR")
)


def _innermost(exc: BaseException) -> TracebackType | None:
    tb = exc.__traceback__
    for _ in range(100_000):  # bounded: a traceback is a chain, never a cycle
        if tb is None or tb.tb_next is None:
            return tb
        tb = tb.tb_next
    return None


def _raised_in_sandbox_code(exc: BaseException) -> bool:
    """Raised by a ``raise`` in ``tools/sandbox``, not by the program or a library."""
    tb = _innermost(exc)
    return tb is not None and os.path.dirname(tb.tb_frame.f_code.co_filename) == _SANDBOX_DIR


def _raised_by_code(exc: BaseException) -> bool:
    """Python code raised this exception object (``raise MemoryError``), or it was thrown
    into a generator at its ``yield`` (a library's, as ``heapq.merge(...).throw(...)``):
    the program's object, not the interpreter running out of memory or stack."""
    if exc.__traceback__ is None:  # every raise in a program's frame leaves one, which it
        return False  # cannot strip: none is the interpreter failing to allocate it (pass CO)
    tb = _innermost(exc)
    if tb is None:  # longer than the walk: re-raised 100,000 times over, by code (pass CQ)
        return True
    code = tb.tb_frame.f_code
    return 0 <= tb.tb_lasti < len(code.co_code) and code.co_code[tb.tb_lasti] in _PROGRAM_RAISE_OPS


_RECURSION_MESSAGE = (
    "maximum recursion depth exceeded: the program's calls nested deeper than its recursion "
    f"limit (sys.setrecursionlimit(n) raises it, up to {MAX_RECURSION}; a loop goes deeper)"
)


_DECIMAL_RANGE = (
    "a Decimal result past the sandbox's exponent range (its Emin and Emax are minus and plus "
    "its integer digit limit, 10,000 by default, unless the program sets them; CPython's are "
    "-999999 and 999999)"
)


def describe(exc: BaseException) -> dict[str, Any]:
    """A failure reply for an exception raised by (or on behalf of) the program."""
    message = _message(exc)
    if type(exc) is NameError and type(exc.name) is str and exc.name in WITHHELD:
        message = f"{message}: {WITHHELD[exc.name]}"
    if not message and isinstance(exc, MemoryError):
        message = "out of memory"
    try:
        line = _user_line(exc)
    except BaseException:
        line = None
    if line is not None:
        message = f"{message} (line {line})" if message else f"line {line}"
    # Exact types: a program may subclass these classes, and what it raises must not pass for
    # a limit the sandbox enforced; nor may an instance it made (or threw into a generator),
    # should it ever get hold of a class: a sandbox limit is raised by the sandbox's code.
    kind = type(exc)
    if any(kind is cls for cls in _SANDBOX_RAISED) and not _raised_in_sandbox_code(exc):
        return failure("Exception", f"{kind.__name__}: {message}")
    if (kind is MemoryError or kind is RecursionError) and _raised_by_code(exc):
        return failure(kind.__name__, message)  # raised or thrown by code: no limit was hit
    if kind is policy.OutputLimit:
        return failure("OutputLimit", message, "output")
    if kind is policy.IntSizeLimit:
        return failure("OverflowError", message, "int_size")
    if kind is MemoryError or kind is policy.SizeLimit:
        return failure("MemoryLimit", message, "memory")
    if (
        kind is SystemError
        and any(wording in message for wording in _NULL_WITHOUT_ERROR)
        and not _raised_by_code(exc)
    ):
        # What some C code of CPython's (deque's) raises when an allocation fails under the
        # memory limit: out of memory, not a bug of the program's. (A program that raises it
        # itself gains nothing: it could run out of memory as easily.)
        return failure("MemoryLimit", f"out of memory ({message})", "memory")
    if kind is RecursionError:
        # CPython names where it noticed ("in comparison", "in __instancecheck__": the
        # sandbox's own checks), which tells a program's author nothing: what to change does
        where = "" if line is None else f" (line {line})"
        return failure("RecursionError", _RECURSION_MESSAGE + where, "recursion")
    if kind is policy.SandboxSecurityError:
        return failure("SecurityError", message)
    if kind is decimal.Underflow or kind is decimal.Overflow:
        # trapped in every context whose exponent range is the sandbox's (Classes.new_context)
        message = f"{message}: {_DECIMAL_RANGE}"
    name = str.__str__(kind.__name__)[:100]
    if name in RESERVED_KINDS:  # a program's class named like a sandbox outcome
        return failure("Exception", f"{name}: {message}")
    return failure(name, message)


def describe_within_memory(exc: BaseException, namespace: dict[str, Any]) -> dict[str, Any]:
    """:func:`describe`, also when the program still holds the memory it ran out of (its
    globals, its frames' locals): describing failed with a ``MemoryError`` of its own, and the
    run ended as a crash of its process (red-team pass AV). Then what the program holds is let
    go first, and if even that is not enough the reply is a fixed one."""
    try:
        return describe(exc)
    except MemoryError:
        pass
    try:
        line = _user_line(exc)
    except BaseException:
        line = None
    namespace.clear()
    tb = exc.__traceback__
    for _ in range(100_000):  # bounded: a traceback is a chain
        if tb is None:
            break
        with contextlib.suppress(RuntimeError):  # the running frame refuses
            tb.tb_frame.clear()  # the program's locals
        tb = tb.tb_next
    try:
        return describe(exc)
    except MemoryError:
        where = "" if line is None else f" (line {line})"
        return failure("MemoryLimit", f"out of memory{where}", "memory")


def program_waiting(fd: int) -> bool:
    """Whether the program is already in the pipe. A child whose program waits skips the
    warm-up: under load the warm-up is ~3 ms of CPU a run (210 against 300 runs/s), and it
    only pays when it runs while nothing waits (warm p50 1.5 ms against 3.1 without it)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:  # no poll in this filter: warm up, as ever
        return False


def read_program(fd: int, max_bytes: int) -> str | dict[str, Any]:
    """The program, read until EOF; a failure reply when it is too large or not UTF-8."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            return failure("CodeTooLarge", f"program larger than {max_bytes} bytes")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        return failure("SyntaxError", "the program is not valid UTF-8")


def serve_one_run(
    runner: Runner, request_fd: int, reply_fd: int, confine: Callable[[], None]
) -> NoReturn:
    """The whole life of a run's child after ``fork``: confine, read, run, reply, exit."""
    status = EXIT_INTERNAL_ERROR
    try:
        try:
            confine()
        except BaseException:
            status = EXIT_CONFINEMENT_FAILED
            raise
        # No cyclic collection in a run: the collector runs whatever finalizers (a generator's
        # finally) at any allocation, also where CPython 3.11 holds an item it does not own in
        # the middle of a comparison, where the program's code must not run uncounted (see
        # Classes.keep_contents). A run is one short program; its cycles go with its process.
        gc.disable()
        if not program_waiting(request_fd):  # idle: write the pages a run writes, now
            runner.prewarm()
        runner.prepare()
        program = read_program(request_fd, runner.max_code_bytes)
        try:
            reply = runner.run(program) if isinstance(program, str) else program
            frame = runner.reply_frame(reply)
        except MemoryError:  # even past the reserve: the reply made before the fork
            frame = HEADER.pack(len(_OUT_OF_MEMORY)) + _OUT_OF_MEMORY
        view = memoryview(frame)
        while view:
            view = view[os.write(reply_fd, view) :]
        os.close(reply_fd)
        status = EXIT_REPLIED
    finally:
        os._exit(status)
