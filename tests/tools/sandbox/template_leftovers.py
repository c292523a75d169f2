"""Test helper, run as a script: what a run's child inherits of the template's records.

Runs the real ``Template.serve`` loop (its forks, its reaping, its replacements) in a process
of its own, with the run itself replaced by a reporter: each child waits for its request and,
given ``report``, answers which ``_Child`` records (the template's note of each run: pid,
slot, deadline) it can reach through the collector and through its own stack, and what the
``Template`` object still counts. Playing the service, this script starts a run on the first
spare and leaves it running (another owner's run, with a deadline), ends a run on the second
spare, so that the template forks a replacement from its serving loop, and asks that
replacement for its report. Prints the report as one JSON object. The language layer is not
involved: this is what a program that got out of it would find.

Usage: ``python tests/tools/sandbox/template_leftovers.py`` from the project root.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
import sys
from typing import Any

sys.path.insert(0, os.getcwd())

from tools.sandbox import confine, template


def _report(request_r: int, reply_w: int, confine: Any) -> None:
    """The run's child, given ``report``: what it can reach of the template's records."""
    for fd in map(int, os.listdir("/proc/self/fd")):  # as its confinement would
        if fd > 2 and fd not in (request_r, reply_w):
            with contextlib.suppress(OSError):  # the listing's own descriptor
                os.close(fd)
    request = b""
    while chunk := os.read(request_r, 4096):
        request += chunk
    if request == b"end":
        os.write(reply_w, str(os.getpid()).encode())
    if request == b"report":
        on_stack = []
        frame = sys._getframe()
        while frame is not None:
            on_stack += [
                f"{frame.f_code.co_name}.{name}"
                for name, value in frame.f_locals.items()
                if isinstance(value, template._Child)
                or (isinstance(value, list) and any(isinstance(v, template._Child) for v in value))
            ]
            frame = frame.f_back
        templates = [obj for obj in gc.get_objects() if type(obj) is template.Template]
        answer = {
            "records": sorted(obj.id for obj in gc.get_objects() if type(obj) is template._Child),
            "on_stack": on_stack,
            "template": [{"children": sorted(t.children), "next_id": t.next_id} for t in templates],
            "pid": os.getpid(),
        }
        os.write(reply_w, json.dumps(answer).encode())
    os._exit(0)


def _serve(control: socket.socket) -> None:
    namespaces = confine.enter_namespaces(65534, (control.fileno(),))  # as the template's
    tpl = template.Template.__new__(template.Template)
    tpl.config = {}
    tpl.control = control
    tpl.runner = None
    tpl.serve_one_run = lambda runner, request_r, reply_w, confine: _report(
        request_r, reply_w, confine
    )
    tpl.confinement = None
    tpl.pids = confine.PidScatter.open(namespaces)
    tpl.pid = os.getpid()
    tpl.timeout_cap = 30.0
    tpl.next_id = 0
    tpl.spare_deaths = 0
    tpl.children = {}
    tpl.serve({"ready": True})


def _receive(control: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _, _ = socket.recv_fds(control, 4096, 2)
    return json.loads(data), fds


def _ask(pipes: list[int], request: bytes) -> bytes:
    request_w, reply_r = pipes
    os.write(request_w, request)
    os.close(request_w)
    answer = b""
    while chunk := os.read(reply_r, 65536):
        answer += chunk
    os.close(reply_r)
    return answer


def main() -> None:
    service, template_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    service.settimeout(20)
    pid = os.fork()
    if pid == 0:
        service.close()
        try:
            _serve(template_end)
        finally:
            os._exit(0)
    template_end.close()
    spares: dict[int, list[int]] = {}
    while len(spares) < template.SPARES:
        message, fds = _receive(service)
        spares[message["child"]] = fds
    assert _receive(service)[0] == {"ready": True}
    (running, running_pipes), (ending, ending_pipes) = spares.items()
    service.send(json.dumps({"start": running, "timeout_s": 25}).encode())  # left running
    service.send(json.dumps({"start": ending, "timeout_s": 5}).encode())
    ended = int(_ask(ending_pipes, b"end"))  # it exits: the template forks its replacement
    replacement = None
    while replacement is None:
        message, fds = _receive(service)
        if "child" in message:
            replacement = fds
    report = json.loads(_ask(replacement, b"report"))
    # where the replacement's pid lies after the pid of the run before it: 1 when they count up
    report["pid_step"] = report.pop("pid") - ended
    print(json.dumps(report))
    service.close()  # the template kills its children and ends
    os.close(running_pipes[0])
    os.close(running_pipes[1])
    os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
