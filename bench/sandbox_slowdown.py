"""How much slower a loop runs under the sandbox's language layer than in plain CPython.

Every attribute read, subscript, ``+=``, ``*`` and method call of a program goes through a
guard; this prints what that costs on loops an LLM writes, with the same program run by
plain ``exec`` in this process and in the sandbox (its own ``duration_ms``: the program's
run in the child, not the process around it). Median of ``--repeat`` runs each.

Usage: ``python bench/sandbox_slowdown.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.sandbox import Sandbox, SandboxConfig

PROGRAMS = {
    "total += i (300k)": "total = 0\nfor i in range(300000):\n    total += i\nresult = total",
    "total = total + i (300k)": (
        "total = 0\nfor i in range(300000):\n    total = total + i\nresult = total"
    ),
    "d = d - a[i % n] (300k)": (
        "a = list(range(1000))\nd = 0\nfor i in range(300000):\n    d = d - a[i % 1000]\nresult = d"
    ),
    "out.append(i) (300k)": (
        "out = []\nfor i in range(300000):\n    out.append(i)\nresult = len(out)"
    ),
    "f'n={i}' and str(i) (100k)": (
        "n = 0\nfor i in range(100000):\n    n += len(f'n={i}') + len(str(i))\nresult = n"
    ),
    "d[k] = i (300k)": "d = {}\nfor i in range(300000):\n    d[i & 1023] = i\nresult = len(d)",
    "d[k] += 1 (300k)": (
        "d = dict.fromkeys(range(1024), 0)\nfor i in range(300000):\n    d[i & 1023] += 1\n"
        "result = d[0]"
    ),
    "a.n += i (300k)": (
        "class A:\n    pass\na = A()\na.n = 0\nfor i in range(300000):\n    a.n += i\nresult = a.n"
    ),
    "a.x = i (300k)": (
        "class A:\n    pass\na = A()\na.x = 0\nfor i in range(300000):\n    a.x = i\nresult = a.x"
    ),
    "(t * 31 + i) % p (300k)": (
        "t = 0\nfor i in range(300000):\n    t = (t * 31 + i) % 1000003\nresult = t"
    ),
    "s + arr[i % n] (300k)": (
        "arr = list(range(1000))\ns = 0\nfor i in range(300000):\n    s = s + arr[i % 1000]\n"
        "result = s"
    ),
    "sum(i * i for ...) (300k)": "result = sum(i * i for i in range(300000))",
    "[i * 2 for ...] (300k)": "result = len([i * 2 for i in range(300000)])",
    "a method call (200k)": (
        "class A:\n    def f(self, x):\n        return x + 1\na = A()\ns = 0\n"
        "for i in range(200000):\n    s = a.f(s)\nresult = s"
    ),
    "self.x += a; self.l.append (100k)": (
        "class Account:\n    def __init__(self):\n        self.balance = 0\n"
        "        self.history = []\n    def deposit(self, amount):\n"
        "        self.balance += amount\n        self.history.append(amount)\n"
        "        return self.balance\nacc = Account()\ntotal = 0\n"
        "for i in range(100000):\n    total += acc.deposit(i % 7)\nresult = total"
    ),
    "p.x * p.x + p.y * p.y (100k)": (
        "class P:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n"
        "ps = [P(i, i + 1) for i in range(1000)]\ns = 0\nfor i in range(100000):\n"
        "    p = ps[i % 1000]\n    s += p.x * p.x + p.y * p.y\nresult = s"
    ),
    "sort by a custom __lt__ (20k)": (
        "import random\nrandom.seed(1)\nclass K:\n    def __init__(self, v):\n"
        "        self.v = v\n    def __lt__(self, other):\n        return self.v < other.v\n"
        "xs = [K(random.random()) for i in range(20000)]\nxs.sort()\nresult = 1"
    ),
    "l[2:4] = [i, i] (100k)": (
        "l = [0] * 10\nfor i in range(100000):\n    l[2:4] = [i, i]\nresult = l[2]"
    ),
    "Fraction sum (20k)": (
        "from fractions import Fraction as F\ns = F(0)\nfor i in range(1, 20001):\n"
        "    s += F(1, i % 50 + 1)\nresult = str(s)[:10]"
    ),
    "q.append(i); q.popleft() (100k)": (
        "from collections import deque\nq = deque([0])\nt = 0\nfor i in range(100000):\n"
        "    q.append(i)\n    t += q.popleft()\nresult = t"
    ),
    "seen.add(i % 1000) (300k)": (
        "seen = set()\nfor i in range(300000):\n    seen.add(i % 1000)\nresult = len(seen)"
    ),
    "d.setdefault(k, []).append(i) (100k)": (
        "d = {}\nfor i in range(100000):\n    d.setdefault(i % 97, []).append(i)\nresult = len(d)"
    ),
    "i ** 2 (200k)": "c = 0\nfor i in range(200000):\n    c += i ** 2\nresult = c",
    "a vector class's p + v * 0.01 (30k)": (
        "class V:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n"
        "    def __add__(self, o):\n        return V(self.x + o.x, self.y + o.y)\n"
        "    def __mul__(self, k):\n        return V(self.x * k, self.y * k)\n"
        "p, v = V(0.0, 0.0), V(1.0, 0.5)\nfor i in range(30000):\n    p = p + v * 0.01\n"
        "result = p.x"
    ),
    "a property over self._r (100k)": (
        "class C:\n    def __init__(self, r):\n        self._r = r\n    @property\n"
        "    def r(self):\n        return self._r\n    @r.setter\n    def r(self, v):\n"
        "        self._r = v\nc = C(1)\nt = 0\nfor i in range(100000):\n"
        "    c.r = i % 10\n    t += c.r\nresult = t"
    ),
    "a counting decorator's calls (100k)": (
        "import functools\ndef counted(f):\n    @functools.wraps(f)\n    def w(*a):\n"
        "        w.n += 1\n        return f(*a)\n    w.n = 0\n    return w\n"
        "@counted\ndef sq(x):\n    return x * x\n"
        "result = sum(sq(i) for i in range(100000)) + sq.n"
    ),
    "re.sub(r'(\\w+)', r'[\\1]') (100k words)": (
        "import re\nresult = len(re.sub(r'(\\w+)', r'[\\1]', 'ab cd ' * 50000))"
    ),
    "'x={} y={:>5}!'.format(i, i * 2) (100k)": (
        "out = 0\nfor i in range(100000):\n    out += len('x={} y={:>5}!'.format(i, i * 2))\n"
        "result = out"
    ),
    "'x=%d y=%5d!' % (i, i * 2) (100k)": (
        "out = 0\nfor i in range(100000):\n    out += len('x=%d y=%5d!' % (i, i * 2))\nresult = out"
    ),
    "re.sub(r'\\s+', ' ') (150k runs of spaces)": (
        "import re\ntext = ' lorem  ipsum\\tdolor ' * 50000\n"
        "result = len(re.sub(r'\\s+', ' ', text)) + len(re.compile('o').sub('0', text))"
    ),
}


def plain_ms(code: str) -> float:
    started = time.perf_counter()
    exec(compile(code, "<bench>", "exec"), {"__name__": "__bench__"})
    return (time.perf_counter() - started) * 1000


async def main(repeat: int) -> None:
    print(f"{'program':32} {'CPython ms':>11} {'sandbox ms':>11} {'slower':>7}")
    async with Sandbox(SandboxConfig(workers=1, timeout_s=30)) as box:
        for name, code in PROGRAMS.items():
            plain = statistics.median(plain_ms(code) for _ in range(repeat))
            runs = []
            for _ in range(repeat):
                result = await box.run(code)
                if not result.ok:
                    raise SystemExit(f"{name}: {result.error_kind}: {result.error}")
                runs.append(result.duration_ms)
            boxed = statistics.median(runs)
            print(f"{name:32} {plain:11.1f} {boxed:11.1f} {boxed / plain:6.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main(parser.parse_args().repeat))
