"""What the template does before it forks anything: import, warm up, and load every codec.

A child cannot open files (its seccomp filter refuses ``open`` and ``stat`` by path), so
everything a program can reach must already be in memory: the allowed modules and what they
import lazily from C (``_strptime``, ``unicodedata``), every codec of the ``encodings``
package (a program may call ``.encode("cp1252")``), and the code paths that compile, run and
answer, exercised once by a fixed program of the template's own.
"""

from __future__ import annotations

import codecs
import encodings
import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.sandbox.child import Runner

WARM_UP = """
import datetime, statistics, decimal, fractions, re, json, random, calendar, math, string
import collections, itertools, functools, heapq, bisect, operator, cmath
d = datetime.datetime.strptime("03/15/2023", "%m/%d/%Y").strftime("%A %B %d")
s = statistics.pstdev([1, 2, 3]) + statistics.mean([1, 2]) + statistics.median([3, 1])
x = decimal.Decimal("1.15").quantize(decimal.Decimal("0.1"), rounding=decimal.ROUND_HALF_UP)
f = fractions.Fraction("0.75") + fractions.Fraction(1, 3)
m = re.findall(r"\\d+", "a1b22") + re.sub(r"(?P<x>a)", r"\\g<x>", "abc").split("b")
j = json.loads(json.dumps({"a": [1, 2.5]}))
c = collections.Counter("hello").most_common(1)
print(f"{s:.2f} {x!r} {s:>8.3f}", "{:>5}".format(1), "%5.2f" % 1.5)
print("x".encode("utf-8").decode("ascii"), "a".ljust(3), "b\tc".expandtabs(4))
class A:
    def __init__(self):
        self.v = 2 ** 10
a = A()
a.v += 1
def solution():
    return [d, s, x, f, m, j, c, random.random(), a.v, math.comb(5, 2), 7 * 6, {1, 2}, (3,)]
"""


def preload_codecs() -> int:
    """Import and register every codec module of the stdlib; the number that loaded."""
    loaded = 0
    for info in pkgutil.iter_modules(encodings.__path__):
        try:
            module = importlib.import_module(f"encodings.{info.name}")
            entry = getattr(module, "getregentry", None)
            if entry is not None:
                codecs.lookup(entry().name)
                loaded += 1
        except (ImportError, LookupError, AttributeError):
            continue  # Windows-only codecs (mbcs, oem) and helper modules
    return loaded


def prepare(runner: Runner) -> None:
    """Everything before the first fork. Raises RuntimeError when the warm-up fails."""
    for name in ("_strptime", "unicodedata", "encodings.idna", "stringprep"):
        importlib.import_module(name)
    preload_codecs()
    for _ in range(3):  # specialised bytecode, filled caches: the children start warm
        reply = runner.run(WARM_UP)
        if not reply.get("ok"):
            raise RuntimeError(f"sandbox warm-up failed: {reply}")
        runner.reply_frame(reply)
