"""The attack classes an attack session found against the previous design (issue 8), each as
programs, and where an attack aimed at later users, the victim's program run right after it on
the same template. The corpora (``test_corpora.py``) hold the public attacks; these are the
classes a fresh attacker used, written so that a variant of the same class fails the same way.
"""

from __future__ import annotations

import asyncio
import decimal
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tools.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.asyncio(loop_scope="module")

FAST_S = 2.0  # a size guard answers at once; the limits of the process are the backstop


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def box() -> AsyncIterator[Sandbox]:
    # One template: every victim runs on the template that ran the attack before it.
    async with Sandbox(SandboxConfig(workers=1, timeout_s=3.0)) as sb:
        yield sb


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def roomy_box() -> AsyncIterator[Sandbox]:
    """For programs that build 10 million characters before a guard refuses them: on a slow
    hour of the test VM, re.compile of a 10 MB pattern alone took 2.3-3.4 s, which a 3 s
    limit turned into a Timeout instead of the memory limit the test is about."""
    async with Sandbox(SandboxConfig(workers=1, timeout_s=10.0)) as sb:
        yield sb


# -- 1. the language layer: every route to the real str.format, and what it would reach ----

SUB = "{0.__class__.__base__.__subclasses__}"  # the old escape's first step
LYING_KEY = (
    "import json\nclass K(str):\n    def __hash__(self):\n        return 12345\n"
    "    def __eq__(self, other):\n        return str(self) == other\n"
    # stands in for an encoder and a decoder class: it would run as either
    "class D:\n    def __init__(self, **options):\n        pass\n"
    "    def encode(self, value):\n        return 'ran'\n"
    "    def decode(self, text):\n        return 'ran'\n"
)
FORMAT_ESCAPES = {
    # A keyword named by a str subclass dodged the refusal of cls= (eighth red-team pass)
    "json_dumps_cls_by_a_lying_key": LYING_KEY + "result = json.dumps([1], **{K('cls'): D})",
    "json_loads_cls_by_a_lying_key": LYING_KEY + "result = json.loads('1', **{K('cls'): D})",
    "super_format": (
        "class S(str):\n    def go(self):\n        return super().format(1)\n"
        "result = S('" + SUB + "').go()"
    ),
    "super_format_map": (
        "class S(str):\n    def go(self):\n        return super().format_map({'a': 1})\n"
        "result = S('{a.__class__.__base__}').go()"
    ),
    "super_explicit": (
        "class S(str):\n    pass\ns = S('" + SUB + "')\nresult = super(S, s).format(1)"
    ),
    "unbound_str_format": "result = str.format('" + SUB + "', 1)",
    "type_of_str_format": "result = type('').format('" + SUB + "', 1)",
    "subclass_class_format": (
        "class S(str):\n    pass\nresult = S.format(S('{0.__globals__}'), len)"
    ),
    "getattr_super": (
        "class S(str):\n    def go(self):\n        return getattr(super(), 'format')(1)\n"
        "result = S('" + SUB + "').go()"
    ),
    "methodcaller": ("import operator\nresult = operator.methodcaller('format', 1)('" + SUB + "')"),
    "partial_format": (
        "import functools\nf = functools.partial(str.format, '" + SUB + "')\nresult = f(1)"
    ),
    "map_format": "result = list(map(str.format, ['" + SUB + "'], [1]))",
    "stored_bound_format": "f = '" + SUB + "'.format\nresult = f(1)",
    "nested_spec": "result = '{0:{1.__class__.__base__}}'.format(1, 2)",
    "format_map_mapping": "result = '{a.__class__.__base__}'.format_map({'a': 1})",
    "attributeerror_obj": (
        "try:\n    getattr(1, 'nope')\nexcept AttributeError as e:\n    result = e.obj"
    ),
    "attributeerror_obj_getattr": (
        "try:\n    (1).nope\nexcept AttributeError as e:\n    result = getattr(e, 'obj')"
    ),
    "exception_traceback": (
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    result = e.with_traceback(None)"
    ),
    "type_of_type": "T = type(type(1))\nresult = T('X', (), {})",
    "metaclass_subclass": "class M(type(type(1))):\n    pass\nresult = M",
    # type(int) is the program's type (a class's type), whose call with three arguments is
    # refused; with one it answers as type() does (FRIENDLY's type_of_a_class)
    "type_of_class_call": "result = type(type(1))('X', (), {})",
    "real_context_class": "import decimal\nresult = type(decimal.getcontext())(prec=10 ** 8)",
    "real_bytes_class": "result = type(b'')(10 ** 8)",
    "subclass_stand_in": "class B(bytes):\n    pass\nresult = B(10 ** 9)",
    "exception_group": "result = ExceptionGroup('x', [ValueError()])",
    "class_then_base": "result = (1).__class__.__base__",
    "class_then_call_type": "T = (1).__class__.__class__\nresult = T('X', (), {})",
    # found by the fourth red-team pass: wraps copied any object's __dict__
    "wraps_copies_object_dict": (
        "import functools\ndef f():\n    pass\nfunctools.wraps(object)(f)\n"
        "GA = f.__dict__['__getattribute__']\nresult = GA(functools.reduce, '__globals__')"
    ),
    "wraps_copies_stand_in_dict": (
        "import functools\ndef f():\n    pass\nfunctools.wraps(type)(f)\nresult = vars(f)['_real']"
    ),
    # pass CQ: astuple() read the field "format" raw on a subclass that added str as a base
    "dataclass_field_named_format_on_a_str_subclass": (
        "from dataclasses import dataclass, field, astuple\n@dataclass\nclass C:\n"
        "    format: object = field(default_factory=list)\nclass D(C, str):\n"
        "    def __init__(self, *a):\n        pass\n"
        "(f,) = astuple(D('" + SUB + "'))\nresult = f(1)"
    ),
    "dataclass_field_named_format_through_asdict": (
        "from dataclasses import dataclass, field, asdict\n@dataclass\nclass C:\n"
        "    format: object = field(default_factory=list)\nclass D(C, str):\n"
        "    def __init__(self, *a):\n        pass\n"
        "result = list(asdict(D('" + SUB + "')).values())[0](1)"
    ),
    "dataclass_field_named_format_through_replace": (
        "from dataclasses import dataclass, field, replace\n@dataclass\nclass C:\n"
        "    format: object = None\nclass D(C, str):\n"
        "    def __init__(self, *a, **k):\n        self.k = k\n"
        "result = replace(D('" + SUB + "')).k['format'](1)"
    ),
}


@pytest.mark.parametrize("name", sorted(FORMAT_ESCAPES))
async def test_language_escape_is_refused(box: Sandbox, name: str) -> None:
    res = await box.run(FORMAT_ESCAPES[name])
    assert not res.ok, res
    refused = ("SecurityError", "TypeError", "NameError", "OverflowError", "MemoryLimit")
    refused += ("KeyError",)  # a namespace that never held the internal it looks for
    assert res.error_kind in refused, res
    text = f"{res.error} {res.stdout}"
    for leak in ("<class 'int'>", "subclasses", "<built-in", "<function", "object at 0x"):
        assert leak not in text, res


# -- 2. no state survives a run: the attack, then the victim on the same template -----------

VICTIM = """
import collections, random, fractions, calendar, re, datetime, decimal, math
r = random.Random(7)
result = [
    collections.Counter('aab').most_common(1),
    r.randint(1, 10 ** 6),
    str(fractions.Fraction(355, 113).limit_denominator(10)),
    calendar.month_name[3],
    re.findall('a+', 'caaab'),
    re.sub('(a)', r'[\\1]', 'cab'),
    datetime.datetime.strptime('2024-03-15', '%Y-%m-%d').strftime('%d/%m/%Y'),
    str(decimal.Decimal(1) / 7),
    math.pi,
    sorted({'pear', 'apple', 'fig'}),
]
"""

POISONS = {
    "patch_counter": (
        "import collections\ncollections.Counter.most_common = lambda self, n=None: [('x', 9)]"
    ),
    "lying_metaclass": (
        "import collections\n"
        "class M(type(collections.Counter)):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __hash__(self):\n        return hash(collections.Counter)\n"
        "class C(metaclass=M):\n    pass"
    ),
    "patch_random": "import random\nrandom.Random.randint = lambda self, a, b: 4",
    "seed_random": "import random\nrandom.seed(1)\nresult = random.random()",
    "patch_fraction": "import fractions\nfractions.Fraction.limit_denominator = None",
    "patch_month_name": "import calendar\ncalendar.month_name[3] = 'Smarch'",
    "poison_re_cache": (
        "import re\n"
        "class K(str):\n"
        "    def __hash__(self):\n        return hash('a+')\n"
        "    def __eq__(self, other):\n        return True\n"
        "for i in range(300):\n    re.compile(K('b+'))\n"
        "result = re.findall(K('b+'), 'caaab')"
    ),
    "poison_strptime_cache": (
        "import datetime\n"
        "class K(str):\n"
        "    def __hash__(self):\n        return hash('%Y-%m-%d')\n"
        "    def __eq__(self, other):\n        return True\n"
        "result = datetime.datetime.strptime(K('%d-%Y-%m'), K('%d-%Y-%m'))"
    ),
    "decimal_context": (
        "import decimal\ndecimal.getcontext().prec = 3\ndecimal.DefaultContext.prec = 2"
    ),
    "finalizer_left_behind": (
        "def gen():\n    try:\n        yield 1\n    finally:\n        while True:\n"
        "            pass\n"
        "keep = [gen()]\nnext(keep[0])\nresult = 'left a finalizer'"
    ),
    "module_view_patch": "import math\nmath.pi = 3",
    "exception_class_patch": "ValueError.extra = 1",
    "recursion_limit_games": "def f(n):\n    return f(n + 1)\nf(0)",
    "memory_hog": "x = [0] * (10 ** 7)\ny = [x] * 10 ** 6",
}


@pytest.fixture(scope="module")
def baseline_victim() -> list[object]:
    return []


@pytest.mark.parametrize("name", sorted(POISONS))
async def test_no_attack_reaches_the_next_run(
    box: Sandbox, baseline_victim: list[object], name: str
) -> None:
    if not baseline_victim:
        first = await box.run(VICTIM)
        assert first.ok, first
        baseline_victim.append(first.value)
    await box.run(POISONS[name])
    victim = await box.run(VICTIM)
    assert victim.ok, victim
    assert victim.value == baseline_victim[0]


async def test_the_module_random_generator_differs_between_runs(box: Sandbox) -> None:
    # statistics uses the module's own generator, which every child inherits from the
    # template: each run re-seeds it.
    code = "import statistics\nresult = statistics.NormalDist().samples(3)"
    samples = [(await box.run(code)).value for _ in range(3)]
    assert len({tuple(s) for s in samples}) == 3, samples


async def test_each_template_has_its_own_hash_seed() -> None:
    async with Sandbox(SandboxConfig(workers=3)) as sb:
        # Ready children come from every template: nine runs reach all three.
        seeds = {(await sb.run("result = hash('reactpal')")).value for _ in range(9)}
    assert len(seeds) == 3  # three templates, three random seeds (the old design used 0)


# -- 3. size guards act on exact values, never on what the program's objects say -----------

LYING_INT = (
    "class I(int):\n"
    "    def __gt__(self, other):\n        return False\n"
    "    def __lt__(self, other):\n        return True\n"
    "    def bit_length(self):\n        return 1\n"
    "    def __index__(self):\n        return 1\n"
)
LYING_LIST = "class L(list):\n    def __len__(self):\n        return 1\n"
LONG_ZONE = (
    "import datetime\nclass TZ(datetime.tzinfo):\n    def tzname(self, dt):\n"
    "        return 'x' * 100000\n    def utcoffset(self, dt):\n        return None\n"
    "    def dst(self, dt):\n        return None\nd = datetime.datetime(2020, 1, 1, tzinfo=TZ())\n"
)
LYING_ITER = (  # empty as a list; forty million items through its __iter__
    "import itertools\nclass L(list):\n    def __iter__(self):\n"
    "        return itertools.repeat(255, 40_000_000)\n"
)
# Thirty-two fractions of 33,000-bit denominators that share no factor (limit: 33,220 bits).
FRACTIONS = (
    "import random\nfrom fractions import Fraction\n"
    "fs = [Fraction(1, random.getrandbits(33_000) | 1) for i in range(32)]\n"
)

SIZE_BOMBS = {
    "encode_namereplace": "result = ('\\ufbf9' * 1000000).encode('ascii', 'namereplace')",
    "encode_backslashreplace": (
        "result = ('\\U0010ffff' * 10 ** 7).encode('ascii', 'backslashreplace')"
    ),
    "encode_unbound": "result = str.encode('\\ufbf9' * 1000000, 'ascii', errors='namereplace')",
    # fifteenth pass: joins of many references, doubling by +=, formatting by %=
    "join_references": "s = 'x' * 10 ** 6\nresult = ''.join([s] * 300)",
    # pass BM: sums nest however they are written, and a display or a call unpacks many
    "sum_of_walruses": "s = 'x' * 9_000_000\nt = (c := (b := (a := s + s) + a) + b) + c",
    "sum_of_slices": "s = 'x' * 9_000_000\nt = ((s + s)[:] + (s + s)[:])[:]",
    "sum_of_conditionals": "s = 'x' * 9_000_000\nt = (s + s if 1 else 0) + (s + s if 1 else 0)",
    "sum_of_calls": "def f(x):\n    return x\ns = 'x' * 9_000_000\nt = f(f(s + s) + f(s + s))",
    "sum_by_statements": "s = 'x' * 9_000_000\na = s + s\nb = a + a",
    "sum_of_properties": (
        "class O:\n    s = 'x' * 6_000_000\n    @property\n    def p(self):\n"
        "        return self.s + self.s\no = O()\nt = o.p + o.p"
    ),
    "sum_by_reduce": (
        "import functools\nt = functools.reduce(lambda a, b: a + b, ['x' * 9_000_000] * 16)"
    ),
    "star_display_list": "l = [0] * 9_000_000\nt = [*l, *l, *l, *l]",
    "star_display_tuple_of_bytes": "b = b'x' * 9_000_000\nt = (*b, *b)",
    "star_display_set": "l = list(range(6_000_000))\nt = {*l, *[-x for x in l]}",
    "star_call": "l = [0] * 6_000_000\ndef f(*a):\n    return len(a)\nt = f(*l, *l)",
    "join_repeat": "import itertools\nresult = ''.join(itertools.repeat('x' * 10 ** 6, 300))",
    "join_long_separator": "result = ('y' * 1000).join([''] * 100000)",
    "join_bytes": "result = b''.join([b'x' * 10 ** 6] * 300)",
    "join_unbound": "s = 'x' * 10 ** 6\nresult = str.join('', [s] * 300)",
    "doubling_in_place": "x = [0]\nfor i in range(30):\n    x += x",
    "percent_in_place": "s = '%s' * 1500\ns %= (('x' * 100000,) * 1500)",
    # fourteenth pass: % with many fields of one long value
    "percent_mapping_fields": "result = '%(a)s' * 1500 % {'a': 'x' * 100000}",
    "percent_tuple_fields": "s = 'x' * 100000\nresult = ('%s' * 1500) % ((s,) * 1500)",
    "percent_bytes_mapping": "result = b'%(a)s' * 1500 % {b'a': b'x' * 100000}",
    "percent_repr_fields": "result = '%r' * 200 % (('x' * 100000,) * 200)",
    "percent_str_subclass_fields": (
        "class K(str):\n    def __str__(self):\n        return 'y' * 100000\n"
        "result = '%s' * 200 % ((K('a'),) * 200)"
    ),
    # fourteenth pass: a replacement that multiplies its input (the last two through a
    # Pattern's methods, which are builtin_method objects, not builtin_function_or_method)
    "re_sub_many_group_references": (
        "import re\nresult = re.sub('(a+)', '\\\\1' * 5000, 'a' * 20000)"
    ),
    "re_sub_bytes_template": "import re\nresult = re.sub(b'(a+)', b'\\\\1' * 5000, b'a' * 20000)",
    "re_sub_long_literal": "import re\nresult = re.sub('a', 'x' * 1500, 'a' * 100000)",
    "re_sub_function_answers": (
        "import re\nresult = re.sub('a', lambda m: 'x' * 1500, 'a' * 100000)"
    ),
    "match_expand": "import re\nresult = re.match('(a+)', 'a' * 20000).expand('\\\\1' * 5000)",
    "pattern_sub": "import re\nresult = re.compile('(a+)').sub('\\\\1' * 5000, 'a' * 20000)",
    "pattern_sub_unbound": (
        "import re\nresult = re.Pattern.sub(re.compile('(a+)'), '\\\\1' * 5000, 'a' * 20000)"
    ),
    "strftime_a_long_zone_name": LONG_ZONE + "result = d.strftime('%Z' * 150)",
    "strftime_a_long_zone_name_in_a_spec": LONG_ZONE + "result = f\"{d:{'%Z' * 150}}\"",
    # fourteenth pass: one call that outgrows its input many times
    "translate_to_long_values": "result = ('a' * 100000).translate({97: 'x' * 1500})",
    "translate_unbound": "result = str.translate('a' * 100000, {97: 'x' * 1500})",
    "json_long_separators": (
        "import json\nresult = json.dumps([0] * 3000000, separators=('x' * 60, ':'))"
    ),
    # twelfth red-team pass: the repeat count asked of __index__ after the bytes were made
    "repeat_by_an_index_object": (
        "class K:\n    def __index__(self):\n        return 300_000_000\nresult = b'x' * K()"
    ),
    "repeat_by_an_index_object_on_the_left": (
        "class K:\n    def __index__(self):\n        return 300_000_000\nresult = K() * 'ab'"
    ),
    # eleventh red-team pass: each field of an f-string within the limit, not their sum
    "fstring_many_fields": "w = 10 ** 7\nresult = f'" + "{1:>{w}}" * 20 + "'",
    "fstring_fields_and_text": "w = 6 * 10 ** 6\nresult = f'{1:>{w}} and {2:>{w}}'",
    # tenth red-team pass: the real class's classmethods built with the real constructor
    # found by the eighth red-team pass (2026-12-01)
    "fraction_subclass_by_keyword": (
        "import fractions\nclass H(fractions.Fraction):\n    pass\n"
        "result = H(numerator='1e30000000')"
    ),
    "normal_dist_samples": (
        "import statistics\nresult = statistics.NormalDist().samples(3 * 10 ** 8)"
    ),
    "normal_dist_samples_of_a_sum": (
        "import statistics\nresult = (statistics.NormalDist() + 1).samples(3 * 10 ** 8)"
    ),
    "normal_dist_samples_unbound": (
        "import statistics\nd = statistics.NormalDist()\n"
        "result = statistics.NormalDist.samples(d, 3 * 10 ** 8, seed=1)"
    ),
    "normal_dist_quantiles": (
        "import statistics\nresult = statistics.NormalDist().quantiles(n=3 * 10 ** 8)"
    ),
    "statistics_quantiles": (
        "import statistics\nresult = statistics.quantiles([1, 2, 3], n=3 * 10 ** 8)"
    ),
    # found by the sixth red-team pass: each field within the limit, not their sum
    "format_many_fields": "result = ('{0:>9999999}' * 10).format(1)",
    "format_map_many_fields": "result = ('{a:>9999999}' * 10).format_map({'a': 1})",
    "format_fields_that_lie_about_their_length": (
        "class S(str):\n    def __len__(self):\n        return 0\n"
        "class A:\n    def __format__(self, spec):\n        return S('x' * 9_000_000)\n"
        "result = ('{0}' * 12).format(A())"
    ),
    "strftime_width_in_a_spec": (
        "import datetime\nresult = format(datetime.date(2024, 1, 1), '%1270Y' * 40000)"
    ),
    "strftime_width": (
        "import datetime\nresult = datetime.date(2024, 1, 1).strftime('%1270Y' * 40000)"
    ),
    "strftime_unbound": (
        "import datetime\nd = datetime.datetime(2024, 1, 1)\n"
        "result = datetime.datetime.strftime(d, '%1270Y' * 40000)"
    ),
    "strftime_in_an_fstring": (
        "import datetime\nspec = '%1270Y' * 40000\nresult = f'{datetime.date(2024, 1, 1):{spec}}'"
    ),
    "json_indent_times_depth": (
        "import json\nx = 1\nfor i in range(1250):\n    x = [x]\n"
        "result = len(json.dumps(x, indent=64))"
    ),
    "combinations_length": (
        "import itertools\nresult = next(itertools.combinations_with_replacement('a', 30_000_000))"
    ),
    "permutations_length": (
        "import itertools\nresult = next(itertools.permutations('a', 30_000_000))"
    ),
    "product_repeat": "import itertools\nresult = next(itertools.product('a', repeat=30_000_000))",
    "random_sample": "import random\nresult = random.sample(range(10 ** 9), 40_000_000)",
    # found by the fifth red-team pass: three characters a byte in one call
    "hex_with_separator": "result = bytes(10_000_000).hex(':')",
    "hex_unbound": "result = bytes.hex(bytes(6_000_000))",
    "lying_int_exponent": LYING_INT + "result = 10 ** I(10 ** 6)",
    "lying_int_base": LYING_INT + "result = I(10 ** 5000) ** 5",
    "lying_int_mul": LYING_INT + "result = I(10 ** 6000) * I(10 ** 6000)",
    "lying_int_shift": LYING_INT + "result = 1 << I(10 ** 7)",
    "lying_int_repeat": LYING_INT + "result = 'ab' * I(10 ** 8)",
    "lying_len_repeat": LYING_LIST + "result = L([0] * 1000) * 10 ** 5",
    "lying_prec": LYING_INT + "import decimal\nresult = decimal.Context(prec=I(10 ** 8))",
    "lying_prec_write": LYING_INT + "import decimal\ndecimal.getcontext().prec = I(10 ** 8)",
    "fraction_exponent": "import fractions\nresult = 7 ** fractions.Fraction(10 ** 6)",
    "fraction_base": "import fractions\nresult = fractions.Fraction(3, 2) ** 10 ** 6",
    "fraction_square_loop": (
        "import fractions\nf = fractions.Fraction(3 ** 300, 2 ** 300)\n"
        "for i in range(40):\n    f = f * f"
    ),
    "fraction_string": "import fractions\nresult = fractions.Fraction('1e999999')",
    "decimal_huge_literal": "import decimal\nresult = int(decimal.Decimal('1e300000'))",
    "decimal_tuple": "import decimal\nresult = int(decimal.Decimal((0, (1,), 10 ** 6)))",
    "decimal_emax": "import decimal\ndecimal.getcontext().Emax = 10 ** 9",
    "decimal_context_emax": "import decimal\nresult = decimal.Context(Emax=10 ** 9)",
    "decimal_localcontext": "import decimal\nresult = decimal.localcontext(prec=10 ** 8)",
    "decimal_power": ("import decimal\nx = decimal.Decimal(10) ** (10 ** 6)\nresult = int(x)"),
    "decimal_create": (
        "import decimal\nresult = int(decimal.getcontext().create_decimal('1e999999'))"
    ),
    "context_class_from_type": (
        "import decimal\nresult = type(decimal.getcontext())(prec=10 ** 8)"
    ),
    "ljust": "result = 'a'.ljust(10 ** 8)",
    "center_unbound": "result = str.center('a', 10 ** 8)",
    "zfill": "result = '1'.zfill(10 ** 8)",
    "bytes_ljust": "result = b'a'.ljust(10 ** 8)",
    "format_width": "result = '{:>100000000}'.format(1)",
    "format_precision": "result = '{:.100000000f}'.format(1.5)",
    "format_builtin": "result = format(1, '100000000')",
    "fstring_width": "w = 10 ** 8\nresult = f'{1:>{w}}'",
    "fstring_literal_width": "result = f'{1:>100000000}'",
    "percent_width": "result = '%100000000d' % 1",
    "percent_star": "result = '%*d' % (10 ** 8, 1)",
    "percent_precision": "result = '%.100000000f' % 1.5",
    "expandtabs": "result = ('\\t' * 100).expandtabs(10 ** 6)",
    "replace": "result = ('a' * 10000).replace('a', 'b' * 10000)",
    "bytes_n": "result = bytes(10 ** 8)",
    "to_bytes": "result = (1).to_bytes(10 ** 8, 'big')",
    "factorial": "import math\nresult = math.factorial(10 ** 6)",
    "comb": "import math\nresult = math.comb(10 ** 6, 5 * 10 ** 5)",
    "perm": "import math\nresult = math.perm(10 ** 6, 10 ** 5)",
    "prod": "import math\nresult = math.prod([2 ** 9000] * 100)",
    "lcm": "import math\nresult = math.lcm(*range(1, 100000))",
    "json_indent": "import json\nresult = json.dumps([1], indent=10 ** 8)",
    "getrandbits": "import random\nresult = random.getrandbits(10 ** 9)",
    "random_class_getrandbits": "import random\nresult = random.Random().getrandbits(10 ** 9)",
    "randbytes": "import random\nresult = random.Random().randbytes(10 ** 8)",
    "hex_literal": "result = 0x" + "f" * 20000,
    "operator_pow": "import operator\nresult = operator.pow(10, 10 ** 7)",
    "operator_mod": "import operator\nresult = operator.mod('%100000000d', 1)",
    # found by the red-team pass on this design
    "fraction_string_underscores": "import fractions\nresult = fractions.Fraction('1e1_000_000')",
    "context_emax_none": (
        "import decimal\nC = decimal.Context(Emax=None)\nresult = int(C.create_decimal('7e100000'))"
    ),
    "fraction_division_squares": (
        "import fractions\nf = fractions.Fraction(10) ** 9999\n"
        "for i in range(6):\n    f = f / (1 / f)"
    ),
    "fraction_inplace_division": (
        "import fractions\nf = fractions.Fraction(10) ** 9999\nfor i in range(6):\n    f /= 1 / f"
    ),
    "int_from_bytes": "result = int.from_bytes(b'\\xff' * 10 ** 7, 'big')",
    "getrandbits_subclass_attribute": (
        "import random\nclass R(random.Random):\n    max_bits = 10 ** 9\n"
        "result = R().getrandbits(10 ** 8)"
    ),
    "statistics_squares": (
        "import statistics\nv = 10 ** 3000\n"
        "for i in range(4):\n    v = statistics.pvariance([v, -v])"
    ),
    "percent_nested_key": "result = '%((a)s)200000000s' % {'(a)s': 'x'}",
    # found by the second red-team pass
    "int_base_16": "result = int('f' * 10 ** 7, 16)",
    "int_base_2_through_type": "result = type(5)('1' * 9 * 10 ** 6, 2)",
    "int_subclass_base_16": "class Money(int):\n    pass\nresult = Money('f' * 10 ** 7, 16)",
    "floordiv_fraction_squares": (
        "import fractions\nn = 10 ** 3000\n"
        "for i in range(6):\n    n = n // fractions.Fraction(1, n)"
    ),
    "fraction_of_fractions": (
        "import fractions\nf = fractions.Fraction(10 ** 3000, 7)\n"
        "F = fractions.Fraction\n"
        "for i in range(6):\n    f = F(f, F(f.denominator, f.numerator))"
    ),
    "operator_truediv": (
        "import fractions, operator\nf = fractions.Fraction(10) ** 3000\n"
        "for i in range(6):\n    f = operator.truediv(f, operator.truediv(1, f))"
    ),
    "fraction_modulo": (
        "import fractions\nf = fractions.Fraction(10 ** 3000, 7)\n"
        "for i in range(20):\n    f = f % fractions.Fraction(1, f.denominator + 1)"
    ),
    "round_fraction": "import fractions\nresult = round(fractions.Fraction(1, 3), 10 ** 6)",
    # pass FC: a float, a Decimal and an int to digits >= 0 take any digits; these still build
    # 10 ** digits, through int's own __round__ or Fraction's borrowed by a program's class
    "round_int_to_negative_digits": "result = round(7, -10 ** 7)",
    "round_borrowing_fractions": (
        "import fractions\nclass F:\n    numerator, denominator = 1, 3\n"
        "    def __round__(self, n):\n        return fractions.Fraction.__round__(self, n)\n"
        "result = round(F(), 10 ** 7)"
    ),
    "round_fraction_subclass": (
        "import fractions\nclass F(fractions.Fraction):\n    pass\nresult = round(F(1, 3), 10 ** 7)"
    ),
    "divmod_fraction": (
        "import fractions\nn = 10 ** 3000\nfor i in range(6):\n"
        "    n = divmod(n, fractions.Fraction(1, n))[0]"
    ),
    # found by the third red-team pass
    "localcontext_lying_keyword": (
        "import decimal\nclass S(str):\n    n = [0]\n    def __eq__(self, other):\n"
        "        self.n[0] += 1\n        return self.n[0] > 6\n"
        "    def __hash__(self):\n        return hash('Emax')\n"
        "with decimal.localcontext(**{S('Emax'): 999999999}):\n"
        "    result = int(decimal.Decimal(10) ** 200000).bit_length()"
    ),
    "context_lying_keyword": (
        "import decimal\nclass S(str):\n    def __eq__(self, other):\n        return False\n"
        "    def __hash__(self):\n        return hash('prec')\n"
        "result = decimal.Context(**{S('prec'): 50000000})"
    ),
    "bytes_source_keyword": "result = len(bytes(source=200_000_000))",
    "json_deep_indent": "import json\nresult = json.dumps([[[[[1]]]]], indent=3_000_000)",
    # found by the fourth red-team pass
    "random_choices_k": "import random\nresult = len(random.choices([1, 2], k=30_000_000))",
    "upper_expands": "result = len(('\\ufb03' * 10_000_000).upper())",
    "upper_unbound": "result = len(str.upper('\\ufb03' * 10_000_000))",
    "bytes_of_an_iterator": (
        "import itertools\nresult = len(bytes(itertools.repeat(65, 30_000_000)))"
    ),
    "fraction_subclass_text": (
        "import fractions\nclass Half(fractions.Fraction):\n    pass\nresult = Half('1e999999')"
    ),
    "json_separators": (
        "import json\nresult = json.dumps([0] * 100, separators=('x' * 10 ** 6, ':'))"
    ),
    # sixteenth pass: a list subclass is read by C through its __iter__, not its length
    "from_bytes_of_a_list_subclass": LYING_ITER + "result = int.from_bytes(L(), 'big')",
    "bytes_of_a_list_subclass": LYING_ITER + "result = len(bytes(L()))",
    "iadd_of_a_list_subclass": LYING_ITER + "x = []\nx += L()\nresult = len(x)",
    # a bytes template too
    "re_sub_bytes": ("import re\nresult = len(re.sub(b'', b'x' * 1000, b'a' * 120_000))"),
    "pattern_sub_bytes": (
        "import re\nresult = len(re.compile(b'a').sub(b'x' * 1000, b'a' * 120_000))"
    ),
    "expand_bytes": (
        "import re\nm = re.match(b'(.*)', b'q' * 1000)\nresult = len(m.expand(b'\\\\1' * 120_000))"
    ),
    # fields without a specification, and + in one expression
    "fstring_plain_fields": "s = 'x' * 10 ** 7\nresult = len(f'{s}{s}{s}{s}{s}{s}{s}{s}{s}{s}')",
    "plus_chain": "s = 'x' * 10 ** 7\nresult = len(s + s + s + s + s + s + s + s + s + s)",
    # seventeenth pass: a stand-in bounded through a method the program may override
    "randbytes_with_an_own_getrandbits": (
        "import random\nclass R(random.Random):\n    def getrandbits(self, k):\n"
        "        return 0\nresult = len(R().randbytes(200_000_000))"
    ),
    "operator_iadd_of_a_list_subclass": (
        LYING_ITER + "import operator\nresult = len(operator.iadd([], L()))"
    ),
    "operator_add_chain": (
        "import functools, operator\ns = 'x' * 5_000_000\n"
        "result = len(functools.reduce(operator.add, [s] * 8))"
    ),
    # pass R: C adds after a start whose __add__ answers its operand, or in accumulate
    "sum_after_a_start_that_answers_its_operand": (
        "class Z:\n    def __add__(self, other):\n        return other\n"
        "s = 'x' * 10_000_000\nresult = len(sum([s] * 20, Z()))"
    ),
    "accumulate_strings": (
        "import itertools, collections\ns = 'x' * 10_000_000\n"
        "result = len(collections.deque(itertools.accumulate([s] * 12), maxlen=1)[0])"
    ),
    "encode_iso2022": "result = len(('\\u0391\\u00e9' * 3_000_000).encode('iso2022_jp_2'))",
    "fstring_fields_whose_text_lies_about_its_length": (
        "S = 'x' * 5_000_000\nclass L(str):\n    def __len__(self):\n        return 0\n"
        "class F:\n    def __format__(self, spec):\n        return L(S)\nf = F()\n"
        "result = len(f'{f}{f}{f}{f}{f}{f}{f}{f}{f}{f}{f}{f}')"
    ),
    "encode_utf7_alias": "result = len(('\\u20ac' * 3_000_000).encode('unicode-1-1-utf-7'))",
    # pass W: a sum of fractions multiplies their denominators, wherever it is added
    "fraction_sums_in_pairs": (
        FRACTIONS + "while len(fs) > 1:\n"
        "    fs = [fs[i] + fs[i + 1] for i in range(0, len(fs), 2)]\n"
        "result = fs[0].denominator.bit_length()"
    ),
    "fraction_differences_by_operator": (
        FRACTIONS + "import operator\nwhile len(fs) > 1:\n"
        "    fs = [operator.sub(fs[i], fs[i + 1]) for i in range(0, len(fs), 2)]\n"
        "result = fs[0].denominator.bit_length()"
    ),
    "fraction_sum_builtin": FRACTIONS + "result = sum(fs).denominator.bit_length()",
    "fraction_mean_in_statistics": (
        FRACTIONS + "import statistics\nresult = statistics.mean(fs).denominator.bit_length()"
    ),
    "fraction_added_in_place_to_an_attribute": (
        FRACTIONS + "class B:\n    pass\nb = B()\nb.v = 0\nfor f in fs:\n    b.v += f\n"
        "result = b.v.denominator.bit_length()"
    ),
    # pass W: a list or deque grown in place by what C reads from an iterator
    "list_slice_from_an_iterator": (
        "import itertools\nl = [1, 2, 3]\nl[1:2] = itertools.repeat(0, 50_000_000)\nresult = len(l)"
    ),
    "list_extend_unbound": (
        "import itertools\nl = []\nlist.extend(l, itertools.repeat(1, 50_000_000))\nresult = len(l)"
    ),
    "list_subclass_extend_through_super": (
        "import itertools\nclass L(list):\n    def extend(self, items):\n"
        "        super().extend(items)\nl = L()\nl.extend(itertools.repeat(1, 50_000_000))\n"
        "result = len(l)"
    ),
    "list_slice_from_a_list_subclass": (LYING_ITER + "l = []\nl[0:0] = L()\nresult = len(l)"),
    # pass Y: the same growth by an augmented slice, +=, super(), and an int ** Fraction
    "list_slice_multiplied_in_place": (
        "l = [0]\nfor i in range(3):\n    l[0:1] *= 9_000_000\nresult = len(l)"
    ),
    "deque_added_an_iterator": (
        "import collections, itertools\nd = collections.deque()\n"
        "d += itertools.repeat(1, 30_000_000)\nresult = len(d)"
    ),
    "list_subclass_setitem_through_super": (
        "import itertools\nclass L(list):\n    def grow(self, items):\n"
        "        super().__setitem__(slice(0, 0), items)\nl = L()\n"
        "l.grow(itertools.repeat(1, 30_000_000))\nresult = len(l)"
    ),
    "bytes_of_a_long_list": ("l = [120] * 10_000_000\nl.append(1)\nresult = len(bytes(l))"),
    # pass AA: a subnormal of the bounded decimal context, and its top, as exact ints
    "decimal_subnormal_ratio": (
        "import decimal\ndecimal.getcontext().prec = 10000\n"
        "d = decimal.Decimal('1E-10000') / decimal.Decimal('1E+9999')\n"
        "result = d.as_integer_ratio()[1].bit_length()"
    ),
    "decimal_subnormal_ratio_unbound": (
        "import decimal\ndecimal.getcontext().prec = 10000\n"
        "d = decimal.Decimal('1E-10000') / decimal.Decimal('1E+9999')\n"
        "result = decimal.Decimal.as_integer_ratio(d)[1].bit_length()"
    ),
    "decimal_floor_at_the_top": (
        "import decimal, math\nx = decimal.Decimal('9.999999999999999999999999999E+10000')\n"
        "result = math.floor(x).bit_length()"
    ),
    # pass AB: library code multiplies what the program's own objects answer
    # pass AC: a guard that read a subclass's maxlen, re.escape, repr/ascii, int(Decimal)
    "deque_subclass_that_says_it_keeps_five": (
        "import collections, itertools\nclass D(collections.deque):\n    maxlen = 5\n"
        "d = D()\nd.extend(itertools.repeat(0, 30_000_000))\nresult = len(d)"
    ),
    "deque_subclass_that_says_it_keeps_five_added_to": (
        "import collections, itertools\nclass D(collections.deque):\n    maxlen = 5\n"
        "d = D()\nd += itertools.repeat(0, 30_000_000)\nresult = len(d)"
    ),
    "re_escape_doubling": (
        "import re\ns = '.' * 10_000_000\nfor i in range(3):\n    s = re.escape(s)\nresult = len(s)"
    ),
    "ascii_of_astral_characters": "result = len(ascii(chr(0x10FFFF) * 10_000_000))",
    "repr_of_repr_of_backslashes": (
        "t = '\\\\' * 5_000_000\nfor i in range(4):\n    t = repr(t)\nresult = len(t)"
    ),
    "int_of_a_decimal_at_the_top_of_its_range": (
        "import decimal\nresult = int(decimal.Decimal('9.' + '9' * 9999 + 'E+10000')).bit_length()"
    ),
    # pass AG: past 2**50 the log-gammas of n and n - k are one float (a bound of 0 bits)
    "comb_of_a_huge_n": "import math\nresult = math.comb(10**22, 300_000).bit_length()",
    "perm_of_a_huge_n": "import math\nresult = math.perm(10**22, 300_000).bit_length()",
    "int_to_a_negative_fraction": (
        "from fractions import Fraction\nresult = 3 ** Fraction(-30_000_000)"
    ),
    "deque_extendleft": (
        "import itertools, collections\nd = collections.deque()\n"
        "d.extendleft(itertools.repeat(1, 50_000_000))\nresult = len(d)"
    ),
    # pass AJ: a conversion measured under one spelling and not under another
    "bytes_of_text_with_namereplace": (
        "s = chr(0x1FBA9) * 1_000_000\nresult = len(bytes(s, 'ascii', 'namereplace'))"
    ),
    "bytes_of_text_with_namereplace_by_keyword": (
        "s = chr(0x1FBA9) * 1_000_000\nresult = len(bytes(s, 'ascii', errors='namereplace'))"
    ),
    "bytes_of_text_unicode_escaped": (
        "result = len(bytes(chr(0x10FFFF) * 5_000_000, encoding='unicode_escape'))"
    ),
    "fstring_of_one_ascii_field": "s = chr(0x10FFFF) * 9_000_000\nresult = len(f'{s!a}')",
    "fstring_of_one_repr_field_of_bytes": "b = bytes([255]) * 9_000_000\nresult = len(f'{b!r}')",
    "fstring_of_a_repr_of_a_repr": (
        "t = '\\\\' * 5_000_000\nfor i in range(3):\n    t = f'{t!r}'\nresult = len(t)"
    ),
    "bytes_decoded_with_backslashreplace": (
        "b = bytes([255]) * 10_000_000\nresult = len(b.decode('utf-8', 'backslashreplace'))"
    ),
    "bytes_decoded_unbound": (
        "b = bytes([255]) * 10_000_000\nresult = len(bytes.decode(b, errors='backslashreplace'))"
    ),
    "str_of_bytes_decoded_with_backslashreplace": (
        "b = bytes([255]) * 10_000_000\nresult = len(str(b, 'utf-8', 'backslashreplace'))"
    ),
    "str_subclass_of_bytes_decoded": (
        "class S(str):\n    pass\nb = bytes([255]) * 10_000_000\n"
        "result = len(S(b, errors='backslashreplace'))"
    ),
    "str_of_bytes": "result = len(str(bytes([255]) * 9_000_000))",
    # pass AL: format() and an f-string of one plain field are str() of what they are given
    "fstring_of_one_plain_field": "s = 'x' * 9_000_000\nresult = len(f'{[[s] * 5] * 5}')",
    "fstring_of_one_plain_field_doubled": (
        "t = '\\\\' * 5_000_000\nfor i in range(3):\n    t = f'{[t]}'\nresult = len(t)"
    ),
    "format_of_a_list": "s = 'x' * 9_000_000\nresult = len(format([s] * 5))",
    "format_through_a_partial": (
        "import functools\ns = chr(0x10FFFF) * 9_000_000\n"
        "result = len(functools.partial(format, [s])())"
    ),
    "capwords_of_dotted_capitals": (
        "import string\nresult = len(string.capwords('x' + '\u0130' * 9_999_999))"
    ),
    # pass AK: the same conversions through super()
    "list_repr_through_super": (
        "class L(list):\n    def big(self):\n        return super().__repr__()\n"
        "s = 'x' * 9_000_000\nresult = len(L([s] * 10).big())"
    ),
    "str_repr_through_super": (
        "class S(str):\n    def big(self):\n        return super().__repr__()\n"
        "result = len(S(chr(0x10FFFF) * 9_000_000).big())"
    ),
    "dict_str_through_super": (
        "class D(dict):\n    def big(self):\n        return super().__str__()\n"
        "s = 'x' * 9_000_000\nresult = len(D({i: s for i in range(10)}).big())"
    ),
}

# An object whose __index__ answers small the first time and huge afterwards.
FLIP = (
    "import itertools, statistics\n"
    "class N:\n    calls = 0\n    def __index__(self):\n        N.calls += 1\n"
    "        return SMALL if N.calls == 1 else BIG\n"
)
TOCTOU = {
    "replace_count": ("('a' * 10 ** 7).replace('a', 'b' * 20, N())", 0, -1),
    "expandtabs": ("('\\t' * 200).expandtabs(N())", 1, 10**6),
    "to_bytes": ("(1).to_bytes(N(), 'big')", 1, 3 * 10**8),
    "bytes": ("bytes(N())", 1, 3 * 10**8),
    "ljust": ("'a'.ljust(N())", 1, 3 * 10**8),
    "combinations_r": ("next(itertools.combinations_with_replacement('a', N()))", 1, 3 * 10**7),
    "normaldist_samples": ("statistics.NormalDist().samples(N())", 1, 10**7 + 1),
    "normaldist_quantiles": ("statistics.NormalDist().quantiles(N())", 2, 10**7),
    "statistics_quantiles": ("statistics.quantiles([1, 2], n=N())", 2, 10**7),
}


@pytest.mark.parametrize("name", sorted(TOCTOU))
async def test_an_index_is_asked_once(box: Sandbox, name: str) -> None:
    call, small, big = TOCTOU[name]
    code = FLIP.replace("SMALL", str(small)).replace("BIG", str(big)) + f"x = {call}\n"
    res = await box.run(code + "result = len(x)")
    assert res.ok, res
    assert res.value <= 10**7, f"{name} built {res.value} items through a lying __index__"


# super(C, x) with C not the program's own searches past it: past a stand-in, to the methods
# it checks (refused since the eighth red-team pass; the size guards were the earlier answer).
SUPER_PAST_STAND_INS = {
    "getrandbits_unbound_through_super": (
        "import random\nclass R(random.Random):\n    pass\n"
        "raw = super(random.Random, R).getrandbits\n"
        "result = raw(random.Random(1), 50_000_000).bit_length()"
    ),
    "getrandbits_through_super": (
        "import random\nclass R(random.Random):\n    pass\nrng = R()\n"
        "result = super(random.Random, rng).getrandbits(10 ** 8)"
    ),
    "super_past_the_random_stand_in_choices": (
        "import random\nclass R(random.Random):\n    pass\n"
        "result = super(random.Random, R()).choices([1], k=4 * 10 ** 8)"
    ),
    "super_past_the_random_stand_in_sample": (
        "import random\nclass R(random.Random):\n    pass\n"
        "result = super(random.Random, R()).sample(range(10 ** 9), 4 * 10 ** 8)"
    ),
}


# A library's method read from a class takes any object as self; given a class, its
# self.__class__(...) is the real type (ninth red-team pass: collections.Counter.copy(C) was
# the real type, and with it any class, metaclass, the real int and decimal.Context).
REAL_TYPE_ROUTES = {
    # eleventh red-team pass: a typed key holds type(arg); a hash collision then hands the
    # real type to the program's __eq__ (the general answer: test_policy's
    # test_a_program_method_never_gets_an_internal_class_or_frame)
    "lru_cache_typed": "import functools\n@functools.lru_cache(maxsize=None, typed=True)\n"
    "def f(x):\n    return x\nresult = f(1)",
    "counter_copy_of_a_class": "import collections\nclass C:\n    pass\n"
    "result = collections.Counter.copy(C)",
    "chainmap_new_child_of_a_class": "import collections\nclass C:\n    pass\nC.maps = []\n"
    "result = collections.ChainMap.new_child(C, 1)",
    "chainmap_parents_getter": "import collections\nclass C:\n    pass\nC.maps = [1, 2]\n"
    "result = collections.ChainMap.parents.fget(C)",
    "methodcaller_on_a_class": "import collections, operator\nclass C:\n    pass\n"
    "result = operator.methodcaller('copy', C)(collections.Counter)",
    "getattr_on_a_class": "import collections\nclass C:\n    pass\n"
    "result = getattr(collections.Counter, 'copy')(C)",
    "own_subclass_method_of_a_class": "import collections\nclass D(collections.Counter):\n"
    "    pass\nclass C:\n    pass\nresult = D.copy(C)",
    "super_of_a_class_on_a_class": "import collections\nclass D(collections.Counter):\n"
    "    pass\nclass C:\n    pass\nresult = super(D, D).copy(C)",
    # pass V: what a holder holds, and raw descriptors, which a helper applied to anything
    "partial_of_a_library_function": "import functools, statistics\n"
    "result = functools.partial(statistics.mean).func",
    "raw_getset_descriptor": "result = AttributeError.obj",
    "raw_member_descriptor": "result = int.numerator",
    "library_property_function": "import fractions\nresult = fractions.Fraction.numerator.fget",
}

# Pass Z: a classmethod of a library property put on the program's class after its class
# statement ran ChainMap.parents' getter with the class as self: type(*C.maps[1:]).
LATE_CLASSMETHOD = (
    "import collections\nclass C:\n    pass\nC.maps = [0, 5]\n"
    "C.x = classmethod(collections.ChainMap.parents)\nI = C.x\n"
    "result = I('f' * 30000, 16).bit_length()"
)


async def test_a_wrapped_method_takes_an_instance_of_the_programs_class(box: Sandbox) -> None:
    """Pass AA: the contained ``__exit__`` read from ``vars(C)`` and called with the class
    bound its classmethod to ``type(C)``: the real ``type``. CPython calls it with an
    instance, and so may the program, nothing else."""
    refused = await box.run(
        "class C:\n    __slots__ = ()\n    __exit__ = classmethod(lambda cls, *a: cls)\n"
        "T = vars(C)['__exit__'](C, 0, 0, 0)\nresult = repr(T)"
    )  # the wrapper of a classmethod is not the program's function: vars(C) leaves it out
    assert (refused.ok, refused.error_kind) in ((False, "SecurityError"), (False, "KeyError"))
    plain = await box.run(
        "class C:\n    def __exit__(self, *a):\n        return type(self)\n"
        "result = repr(vars(C)['__exit__'](C, 0, 0, 0))"
    )
    assert (plain.ok, plain.error_kind) == (False, "SecurityError"), plain
    also = await box.run(
        "import functools\nclass C:\n    __slots__ = ()\n"
        "    __eq__ = functools.cache(lambda self, other: False)\n"
        "result = vars(C)['__eq__'](5, 6)"
    )  # called with something else than an instance: refused, or not handed out at all
    assert (also.ok, also.error_kind) in ((False, "SecurityError"), (False, "KeyError")), also
    # A bounded cache is a function of the program's (caches.py) that binds nothing: called
    # with anything, it calls the program's function with it, as a plain function would.
    bounded = await box.run(
        "import functools\nclass C:\n    __slots__ = ()\n"
        "    __eq__ = functools.lru_cache(lambda self, other: (self, other))\n"
        "    __ne__ = lambda self, other: (self, other)\n"
        "result = [vars(C)['__eq__'](5, 6), vars(C)['__ne__'](5, 6)]"
    )
    assert bounded.ok and bounded.value == [[5, 6], [5, 6]], bounded
    fine = await box.run(
        "class C:\n    def __enter__(self):\n        return self\n"
        "    __exit__ = classmethod(lambda cls, *a: False)\n"
        "with C() as c:\n    x = type(c).__name__\nresult = x"
    )
    assert fine.value == "C", fine


async def test_a_programs_method_is_never_handed_a_number_past_the_limit(box: Sandbox) -> None:
    """Pass AB: ``statistics`` squares what ``as_integer_ratio`` answered and adds a
    program's object to the square: its ``__radd__`` got twice the int limit, six rounds
    made 2M bits. Whatever library code hands a program's method is measured first."""
    res = await box.run(
        "import statistics\ngot = []\nclass W:\n    def __radd__(self, other):\n"
        "        got.append(other)\n        return 0\n"
        "class P:\n    def __radd__(self, other):\n        return 0\n"
        "    def __mul__(self, other):\n        return W()\n"
        "class R:\n    def __init__(self, n):\n        self.n = n\n"
        "    def as_integer_ratio(self):\n        return (self.n, 1)\n"
        "try:\n    statistics.variance([R(3 ** 20000), R(P()), R(1)])\nexcept Exception:\n"
        "    pass\nresult = max([g.bit_length() for g in got] or [0])"
    )
    assert res.ok and res.value < 33_220, res


WEIGHED = "class W:\n    def __radd__(self, other):\n        return 1\n"


@pytest.mark.parametrize(
    "code",
    [
        WEIGHED + "import random\n"
        "result = random.choices([1] * 8, weights=['x' * 9_000_000] * 7 + [W()])",
        WEIGHED + "import random\n"
        "result = random.sample([1] * 8, 1, counts=['x' * 9_000_000] * 7 + [W()])",
    ],
)
async def test_random_weights_and_counts_are_numbers(box: Sandbox, code: str) -> None:
    """Pass AB: random.py adds weights up in C; seven 9M strings made 63M characters."""
    res = await box.run(code)
    assert (res.ok, res.error_kind) == (False, "TypeError"), res
    ok = await box.run(
        "import random\nfrom fractions import Fraction\nrandom.seed(1)\n"
        "result = [len(random.choices('ab', weights=[1, Fraction(1, 2)], k=3)), "
        "len(random.sample(range(3), 2, counts=[1, 2, 3])), random.randint(1, 1)]"
    )
    assert ok.value == [3, 2, 1], ok


async def test_a_classmethod_wraps_a_function_only(box: Sandbox) -> None:
    for code in (
        LATE_CLASSMETHOD,
        LATE_CLASSMETHOD.replace("C.x = ", "setattr(C, 'x', ", 1).replace(
            ".parents)", ".parents))", 1
        ),
    ):
        res = await box.run(code)
        assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    ok = await box.run(
        "class C:\n    n = 2\n    @classmethod\n    def twice(cls, x):\n"
        "        return cls.n * x\nC.thrice = classmethod(lambda cls, x: 3 * x)\n"
        "result = [C.twice(4), C().thrice(5)]"
    )
    assert ok.value == [8, 15], ok


# Pass V, in three lines: the helper behind a number subclass's parts, read as fget.func.
PINNED_PART_HELPER = (
    "class N(float):\n    pass\n"
    "T = N.as_integer_ratio.fget.func(classmethod(lambda c: c), N)()\n"
    "result = repr(T('X', (), {'__getattr__': lambda s, n: n}))"
)


async def test_a_class_with_its_own_setitem_gets_the_slice_as_written(box: Sandbox) -> None:
    """Pass Y: counting a slice's growth rewrote the slice and the items a program's own
    ``__setitem__`` was given; it decides for itself (its ``super()`` call is counted)."""
    res = await box.run(
        "seen = []\nclass L(list):\n    def __setitem__(self, key, value):\n"
        "        seen.append((key.start, key.stop, key.step, type(value).__name__))\n"
        "        super().__setitem__(key, value)\n"
        "l = L([1, 2, 3])\nl[-1:] = (x for x in [9])\nl[5:1] = []\nl[::-1] = [7, 8, 9]\n"
        "result = [seen, list(l)]"
    )
    assert res.value == [
        [[-1, None, None, "generator"], [5, 1, None, "list"], [None, None, -1, "list"]],
        [9, 8, 7],
    ], res


@pytest.mark.parametrize(
    ("code", "kind", "value_length"),
    [
        ("raise ValueError('\\ud800' * 1340)", "ValueError", None),
        ("print('kept')\nresult = '\\ud800' * 30000", None, 30000),
        ("import json\nresult = json.loads('\"' + '\\\\ud83d' * 30000 + '\"')", None, 30000),
    ],
)
async def test_lone_surrogates_come_back_one_for_one(
    box: Sandbox, code: str, kind: str | None, value_length: int | None
) -> None:
    """Pass AD: a reply's lone surrogates were cleaned three for one after the child had
    measured it, and the parent refused what it measured again: Crashed, stdout lost."""
    res = await box.run(code)
    assert res.error_kind == kind, res
    if value_length is not None:
        assert res.ok and len(res.value) == value_length and set(res.value) == {"\ufffd"}, res
        assert "kept" in res.stdout or "print" not in code


async def test_a_result_too_large_to_measure_is_an_output_limit(box: Sandbox) -> None:
    """Pass V: the reply's own ``len()`` of ``range(2 ** 70)`` raised ``OverflowError``, which
    came back as if the program had raised it."""
    res = await box.run("result = {'r': range(2 ** 70)}")
    assert (res.ok, res.error_kind, res.limit) == (False, "OutputLimit", "output"), res


async def test_a_number_subclass_hands_out_no_helper(box: Sandbox) -> None:
    res = await box.run(PINNED_PART_HELPER)
    assert not res.ok and "class" not in (res.value_repr or ""), res
    ok = await box.run("class N(float):\n    pass\nresult = N(2.5).as_integer_ratio()")
    assert ok.value == [5, 2], ok


@pytest.mark.parametrize("name", sorted(REAL_TYPE_ROUTES))
async def test_no_route_to_the_real_type(box: Sandbox, name: str) -> None:
    res = await box.run(REAL_TYPE_ROUTES[name])
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res


# A comparison whose left item empties its container and answers NotImplemented (METHOD is
# how its class defines the method), then the right operand's reflected method keeps what it
# is handed; the freed memory is reused by a thousand more of the same class.
AFTER_FREE = (
    "import collections\nclass A:\n    def __init__(self):\n        self.tag = 'a'\n"
    "METHOD\n        c.clear()\n        return NotImplemented\n"
    "class B:\n    def __gt__(self, other):\n        got.append(other)\n"
    "        return NotImplemented\n    def __eq__(self, other):\n"
    "        got.append(other)\n        return NotImplemented\n"
    "got = []\nc = CONTAINER\ntry:\n    COMPARE\n"
    "except (TypeError, ValueError, RuntimeError):\n    pass\n"
    "filler = [A() for i in range(2000)]\n"
    "result = [type(got[0]).__name__, got[0].tag, any(got[0] is f for f in filler)]"
)

# Pass AQ: the same without NotImplemented: the item is a tuple; X.__eq__ empties the container
# (freeing the tuple and Y) and answers; CPython goes on comparing in the freed tuple and calls
# Y.__eq__ on the freed Y, which keeps itself.
FREED_TUPLE = (
    "import collections\nclass X:\n    calls = 0\n    def __eq__(self, other):\n"
    "        X.calls += 1\n        if X.calls < FIRST:\n            return False\n"
    "        EMPTY\n        return True\n    def __hash__(self):\n        return 1\n"
    "class Y:\n    def __init__(self):\n        self.tag = 'y'\n"
    "    def __eq__(self, other):\n        got.append(self)\n        return True\n"
    "    def __hash__(self):\n        return 1\n"
    "got = []\nc = CONTAINER\nCOMPARE\n"
    "filler = [Y() for i in range(2000)]\n"
    "result = [type(got[0]).__name__, got[0].tag, any(got[0] is f for f in filler)]"
)


def after_free(method: str, container: str, compare: str) -> str:
    """AFTER_FREE with its blanks filled."""
    return (
        AFTER_FREE.replace("METHOD", method)
        .replace("CONTAINER", container)
        .replace("COMPARE", compare)
    )


def freed_tuple(first: int, empty: str, container: str, compare: str, classes: str = "") -> str:
    """FREED_TUPLE with its blanks filled (``classes``: more of them, before the container)."""
    return (
        FREED_TUPLE.replace("FIRST", str(first))
        .replace("EMPTY", empty)
        .replace("got = []\n", "got = []\n" + classes)
        .replace("CONTAINER", container)
        .replace("COMPARE", compare)
    )


SIGNAL_DICTS = Path(__file__).with_name("signal_dicts.txt").read_text(encoding="utf-8")


async def test_a_contexts_traps_and_flags_outlive_it_safely(box: Sandbox) -> None:
    """Red-team pass GS: ``t = decimal.Context().traps``, the context dropped, read and wrote
    freed memory (CPython 3.11's SignalDict, upstream gh-146011): repr showed every trap set,
    an item store flipped a bit of a tuple's item pointer, and from there the program read
    any byte of the process and wrote an object pointer anywhere. Every context whose traps or
    flags a run was handed is kept to the run's end."""
    res = await box.run(SIGNAL_DICTS)
    assert res.ok, res
    assert res.value and set(res.value.values()) == {True}, res.value


# Red-team pass AM: CPython 3.11's UnicodeDecodeError.__str__ reads the byte at object + start
# unchecked (gh-123378); with start and object the program's, that read any byte of the process
# (the real type's address and name came out). Each way of getting such an error is refused,
# and so is writing any field a library class defines on the program's own instance.
MEMORY_READS = {
    "subclass_with_its_fields_written": (
        "class U(UnicodeDecodeError):\n    pass\nu = U('utf-8', b'AB', 0, 1, 'r')\n"
        "u.start, u.end = -24, -23\nresult = str(u)",
        "SecurityError",
    ),
    "made_with_a_negative_start": (
        "result = str(UnicodeDecodeError('utf-8', b'AB', -24, -23, 'r'))",
        "ValueError",
    ),
    "made_past_the_end": (
        "result = str(UnicodeDecodeError('utf-8', b'AB', 4096, 4097, 'r'))",
        "ValueError",
    ),
    "made_by_the_class_of_a_caught_error": (
        "try:\n    b'\\xff'.decode()\nexcept UnicodeDecodeError as e:\n    C = type(e)\n"
        "result = str(C('utf-8', b'AB', -24, -23, 'r'))",
        "ValueError",
    ),
    "a_caught_error_written": (
        "try:\n    b'\\xff'.decode()\nexcept UnicodeDecodeError as e:\n    e.start = -24\n"
        "    result = str(e)",
        "SecurityError",
    ),
    "encode_error_made_with_a_negative_start": (
        "result = str(UnicodeEncodeError('ascii', 'ab', -5, -4, 'r'))",
        "ValueError",
    ),
    "translate_error_made_with_a_negative_start": (
        "result = str(UnicodeTranslateError('ab', -5, -4, 'r'))",
        "ValueError",
    ),
    # pass AN: CPython 3.11 measures an extended slice, runs the program's __iter__, then
    # writes where the slice was (gh-120384): past the end of the list __iter__ emptied, or
    # regrew small to put its own objects there (a read and write of any byte, then os)
    "an_extended_slice_whose_items_empty_the_list": (
        "class Evil:\n    def __init__(self, lst):\n        self.lst = lst\n"
        "    def __iter__(self):\n        yield from self.lst\n        self.lst.clear()\n"
        "lst = list(range(10))\nlst[::-1] = Evil(lst)\nresult = 'survived'",
        "ValueError",
    ),
    "an_extended_slice_whose_items_regrow_the_list_small": (
        "class Evil:\n    def __init__(self, lst):\n        self.lst = lst\n"
        "    def __iter__(self):\n        n = len(self.lst)\n        self.lst.clear()\n"
        "        self.lst.append(0)\n        return iter([bytes(8)] * (n // 2))\n"
        "lst = list(range(40))\nlst[::2] = Evil(lst)\nresult = len(lst)",
        "ValueError",
    ),
    "an_extended_slice_through_super": (
        "class L(list):\n    def put(self, key, items):\n        super().__setitem__(key, items)\n"
        "class Evil:\n    def __init__(self, lst):\n        self.lst = lst\n"
        "    def __iter__(self):\n        yield from list(self.lst)\n        self.lst.clear()\n"
        "lst = L(range(10))\nlst.put(slice(None, None, -1), Evil(lst))\nresult = 'survived'",
        "ValueError",
    ),
    # pass AP: CPython 3.11 held no reference to a container's item it compared; a method
    # that emptied the container and answered NotImplemented freed it, and the other
    # operand's reflected method received the freed object (read and write of any byte)
    "a_list_comparison_that_frees_its_item": (
        after_free("    def __lt__(self, other):", "[A()]", "c < [B()]"),
        "SecurityError",
    ),
    "a_deque_index_that_frees_its_item": (
        after_free("    def __eq__(self, other):", "collections.deque([A()])", "c.index(B())"),
        "SecurityError",
    ),
    "a_static_special_method_that_frees_its_item": (
        after_free(
            "    @staticmethod\n    def __eq__(other):", "collections.deque([A()])", "c.index(B())"
        ),
        "SecurityError",
    ),
    "a_deque_index_that_frees_a_tuple_it_compares": (
        freed_tuple(1, "c.clear()", "collections.deque([(X(), Y())])", "c.index((0, 0))"),
        "SecurityError",
    ),
    "a_list_comparison_that_frees_a_tuple_it_compares": (
        freed_tuple(2, "del c[:]", "[(X(), Y())]", "c < [(0, 0)]"),
        "SecurityError",
    ),
    "an_ordered_dict_comparison_that_frees_a_key": (
        freed_tuple(
            1,
            "c.popitem()",
            "collections.OrderedDict([((X(), Y()), 1)])",
            "c == collections.OrderedDict([((Y(), Y()), 1)])",
        ),
        "SecurityError",
    ),
    "a_heap_pop_that_frees_a_tuple_it_compares": (
        freed_tuple(2, "import heapq\n        heapq.heappop(c)", "[(X(), Y())]", "c < [(0, 0)]"),
        "SecurityError",
    ),
    "a_list_comparison_emptied_by_del": (
        freed_tuple(2, "del c[0]", "[(X(), Y())]", "c < [(0, 0)]"),
        "SecurityError",
    ),
    "a_deque_index_emptied_by_the_answers_bool": (
        freed_tuple(
            1,
            "return R()",
            "collections.deque([(X(), Y())])",
            "c.index((0, 0))",
            "class R:\n    def __bool__(self):\n        c.clear()\n        return True\n",
        ),
        "SecurityError",
    ),
    # pass AS: a ChainMap changes its first map in the library's code; datetime's C
    # comparison calls a program's tzinfo in the middle of list < list
    "a_list_comparison_emptied_through_a_chainmap": (
        freed_tuple(2, "collections.ChainMap(c).clear()", "[(X(), Y())]", "c < [(0, 0)]"),
        "SecurityError",
    ),
    "a_dict_emptied_through_a_chainmap_pop": (
        "import collections\nd = {1: 2}\nclass K:\n    def __eq__(self, other):\n"
        "        collections.ChainMap.pop(collections.ChainMap(d), 1)\n        return True\n"
        "result = K() == 0",
        "SecurityError",
    ),
    "a_list_comparison_emptied_by_a_tzinfo": (
        "import datetime\nclass Z(datetime.tzinfo):\n    def utcoffset(self, dt):\n"
        "        right.clear()\n        return datetime.timedelta(0)\n"
        "left = [datetime.datetime(2020, 1, 1, tzinfo=Z())]\n"
        "right = [datetime.datetime(2020, 1, 2, tzinfo=Z())]\nresult = left < right",
        "SecurityError",
    ),
    # pass AT: an inherited library comparison (Counter.__eq__ reads the program's
    # __getitem__), and a generator answered by __eq__ whose finally ran once C dropped it
    "an_ordered_dict_emptied_under_an_inherited_comparison": (
        "import collections\nclass KC(collections.Counter):\n"
        "    def __hash__(self):\n        return 1\n"
        "    def __getitem__(self, k):\n        od.clear()\n        return 0\n"
        "od = collections.OrderedDict([(KC(x=1), 1), (3, 3)])\n"
        "result = od == collections.OrderedDict([(KC(x=1), 1), (3, 3)])",
        "SecurityError",
    ),
    "a_list_comparison_emptied_unbound": (
        freed_tuple(2, "list.clear(c)", "[(X(), Y())]", "c < [(0, 0)]"),
        "SecurityError",
    ),
    "a_list_subclass_comparison_emptied_through_super": (
        freed_tuple(
            2,
            "c.drop()",
            "L([(X(), Y())])",
            "c < [(0, 0)]",
            "class L(list):\n    def drop(self):\n        super().__delitem__(0)\n",
        ),
        "SecurityError",
    ),
    # pass BC: written on the program's class after it was made, it shadows the slot for
    # every instance: Decimal's comparison read it (the program's property, uncounted) in the
    # middle of deque.index, which emptied the deque and read the freed Decimal
    "a_library_slot_shadowed_on_the_class": (
        "from fractions import Fraction\nclass F(Fraction):\n    pass\nf = F(1, 2)\n"
        "F._numerator = property(lambda self: 1)\nresult = f.numerator",
        "SecurityError",
    ),
    "a_library_slot_shadowed_on_the_class_by_setattr": (
        "from fractions import Fraction\nclass F(Fraction):\n    pass\n"
        "setattr(F, '_denominator', 7)\nresult = F(1, 2).denominator",
        "SecurityError",
    ),
    "another_library_field_written": (
        "class E(AttributeError):\n    pass\ne = E('x')\ne.obj = [1]\nresult = 1",
        "SecurityError",
    ),
    "a_library_field_deleted": (
        "class E(SyntaxError):\n    pass\ne = E('x')\ndel e.lineno\nresult = str(e)",
        "SecurityError",
    ),
}


@pytest.mark.parametrize("name", sorted(MEMORY_READS))
async def test_no_read_or_write_of_the_process_memory(box: Sandbox, name: str) -> None:
    code, kind = MEMORY_READS[name]
    res = await box.run(code)
    assert (res.ok, res.error_kind) == (False, kind), res


# Pass AU, then pass AX: CPython 3.11's bytearray code reads its buffer pointer, runs the
# program's code (an __index__ for find's bounds or an item store's key, a str subclass's
# __len__ as hex's separator, a library's x[j] = ... or key in m on its behalf) and goes on
# with the pointer after that code resized the bytearray. A program never holds one.
BYTEARRAY_WITHHELD = {
    "made": "result = bytearray(b'a' * 64)",
    "made_empty": "result = bytearray()",
    "from_hex": "result = bytearray.fromhex('00ff')",
    "a_method_of_the_class": "f = bytearray.find\nresult = 1",
    "through_type": "t = type(b'')\nresult = bytearray(t(b'x'))",
    "a_store_through_the_freed_buffer": (  # pass AU's first step, as it was written
        "ba = bytearray(b'a' * 32)\n"
        "class I:\n    def __index__(self):\n        ba.extend(b'x' * 100000)\n        return 0\n"
        "ba[I()] = 66\nresult = (ba[0], len(ba))"
    ),
    "a_chainmap_store": (  # pass AX: library code stores into it with the program's key
        "import collections\nba = bytearray(b'a' * 100)\ncm = collections.ChainMap(ba)\n"
        "class I:\n    def __index__(self):\n        ba.extend(b'x' * 100000)\n        return 5\n"
        "cm[I()] = 65\nresult = ba[5]"
    ),
}


@pytest.mark.parametrize("name", sorted(BYTEARRAY_WITHHELD))
async def test_a_program_never_holds_a_bytearray(box: Sandbox, name: str) -> None:
    res = await box.run(BYTEARRAY_WITHHELD[name])
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert "bytearray is not available in the sandbox" in (res.error or ""), res


async def test_what_a_bytearray_did_bytes_and_lists_do(box: Sandbox) -> None:
    """The sieve a bytearray is used for, with a list; bytes for the rest."""
    code = (
        "n = 100\nsieve = [1] * (n + 1)\nsieve[0:2] = [0, 0]\n"
        "for i in range(2, 11):\n    if sieve[i]:\n"
        "        sieve[i * i::i] = [0] * len(range(i * i, n + 1, i))\n"
        "b = bytes(sieve)\n"
        "result = ([i for i in range(n + 1) if sieve[i]][:8], b.count(1), isinstance(b, bytearray))"
    )
    res = await box.run(code)
    assert res.ok and res.value == [[2, 3, 5, 7, 11, 13, 17, 19], 25, False], res


# Pass AW: CPython 3.11's C iterators that the program's code advances again from inside
# their own call (islice skipping to its start, zip_longest, the __getitem__ iterator of
# iter(obj), iter(callable, sentinel)) free or drop what they hold; a program holds them behind
# a generator, which will not run while it runs.
_REENTERS = (
    "state = {'inner': 0, 'n': 0}\n"
    "class It:\n    def __iter__(self):\n        return self\n"
    "    def __next__(self):\n        state['n'] += 1\n        if state['inner']:\n"
    "            raise StopIteration\n        if state['n'] == 1:\n            state['inner'] = 1\n"
    "            try:\n                next(it)\n"
    "            except StopIteration:\n                pass\n"
    "            state['inner'] = 0\n        return 1\n"
)
ITERATOR_REENTRIES = {
    "islice_skipping_to_its_start": _REENTERS
    + "import itertools\nit = itertools.islice(It(), 5, None)\n"
    "result = next(it)",
    "zip_longest": _REENTERS + "import itertools\nit = itertools.zip_longest(It(), It())\n"
    "result = next(it)",
    # pass BB: a library's own chain of starmaps, re-entered, freed a starmap still running
    "counter_elements": (
        "from collections import Counter\nstate = [0]\n"
        "class I:\n    def __iter__(self):\n        return self\n    def __next__(self):\n"
        "        state[0] += 1\n        if state[0] == 1:\n            try:\n"
        "                next(e)\n            except StopIteration:\n                pass\n"
        "            return ('x', 3)\n        raise StopIteration\n"
        "it = I()\nclass C(Counter):\n    def items(self):\n        return it\n"
        "e = C(a=1).elements()\nresult = list(e)"
    ),
    "chain_from_iterable": _REENTERS
    + "import itertools\nit = itertools.chain.from_iterable([It()])\n"
    "result = next(it)",
    "a_getitem_iterator": (
        "state = {'inner': 0}\n"
        "class S:\n    def __getitem__(self, i):\n        if i == 0:\n            return 0\n"
        "        if not state['inner']:\n            state['inner'] = 1\n            try:\n"
        "                next(it)\n            except StopIteration:\n                pass\n"
        "        raise IndexError(i)\n"
        "it = iter(S())\nnext(it)\nresult = next(it, 'end')"
    ),
    "a_getitem_iterator_inside_enumerate": (
        "state = {'inner': 0}\n"
        "class S:\n    def __getitem__(self, i):\n        if i == 0:\n            return 0\n"
        "        if not state['inner']:\n            state['inner'] = 1\n            try:\n"
        "                next(it)\n            except StopIteration:\n                pass\n"
        "        raise IndexError(i)\n"
        "it = enumerate(S())\nnext(it)\nresult = next(it, 'end')"
    ),
    "a_callable_iterator": (
        "state = {'inner': 0}\n"
        "def f():\n    if not state['inner']:\n        state['inner'] = 1\n        next(it, None)\n"
        "    return 1\n"
        "it = iter(f, 0)\nresult = next(it)"
    ),
}


@pytest.mark.parametrize("name", sorted(ITERATOR_REENTRIES))
async def test_an_iterator_is_never_advanced_from_inside_its_own_call(
    box: Sandbox, name: str
) -> None:
    res = await box.run(ITERATOR_REENTRIES[name])
    assert (res.ok, res.error_kind) == (False, "ValueError"), res
    assert "generator already executing" in (res.error or ""), res


async def test_groupby_frees_no_key_a_group_compares(box: Sandbox) -> None:
    """Pass AW: a C group compared a key tuple that the parent, advanced by the key's own
    ``__eq__``, had freed: the tuple's second item came from freed memory (an ``int`` or a
    ``_grouper`` where a ``K`` was; a SIGBUS with a spray). ``groupby`` is Python's now."""
    code = (
        "import itertools\nstate = {'mode': 0, 'n': 0, 'others': []}\n"
        "class K:\n    def __init__(self, v):\n        self.v = v\n"
        "    def __eq__(self, other):\n        m = state['mode']\n        if m == 1:\n"
        "            state['mode'] = 2\n            next(gb)\n            state['mode'] = 3\n"
        "            return True\n        if m == 2:\n            state['n'] += 1\n"
        "            return state['n'] <= 2\n        if m == 3:\n"
        "            state['others'].append(type(other).__name__)\n        return True\n"
        "    __hash__ = None\n"
        "gb = itertools.groupby(range(100), lambda x: (K(x), K(x)))\nk, g = next(gb)\n"
        "state['mode'] = 1\ntry:\n    next(g)\n    next(g)\nexcept (StopIteration, ValueError):\n"
        "    pass\nresult = state['others']"
    )
    res = await box.run(code)
    assert res.ok, res
    assert set(res.value) <= {"K"}, res


async def test_itertools_and_iter_work_as_ever(box: Sandbox) -> None:
    code = (
        "import itertools\n"
        "class S:\n    def __getitem__(self, i):\n        if i < 3:\n            return i * 10\n"
        "        raise IndexError(i)\n"
        "a, b = itertools.tee(range(3))\n"
        "groups = [(k, len(list(g))) for k, g in itertools.groupby('aabbbc')]\n"
        "gb = itertools.groupby([1, 1, 2])\nk1, g1 = next(gb)\nk2, g2 = next(gb)\n"
        "result = [list(itertools.islice(itertools.count(5), 3)),"
        " list(itertools.chain.from_iterable([[1], [2, 3]])),"
        " list(itertools.zip_longest('ab', 'c', fillvalue='-')), list(a), list(b), groups,"
        " list(g1), list(g2), list(S()), list(iter(S())), next(iter(S())),"
        " list(iter([4, 5].pop, 4)), len(list(itertools.product('ab', repeat=3))),"
        " list(itertools.accumulate([1, 2, 3])), list(itertools.pairwise('abc'))]"
    )
    res = await box.run(code)
    assert res.ok, res
    assert res.value == [
        [5, 6, 7],
        [1, 2, 3],
        [["a", "c"], ["b", "-"]],
        [0, 1, 2],
        [0, 1, 2],
        [["a", 2], ["b", 3], ["c", 1]],
        [],
        [2],
        [0, 10, 20],
        [0, 10, 20],
        0,
        [5],
        8,
        [1, 3, 6],
        [["a", "b"], ["b", "c"]],
    ], res


async def test_deque_index_asks_its_bounds_first(box: Sandbox) -> None:
    """Pass AW: ``deque.index`` read the deque's first block, then asked ``__index__`` for
    its bounds; an ``__index__`` that rotated the deque freed that block, and CPython
    answered from it (0 here, where the deque's 0 is at 50)."""
    code = (
        "import collections\nd = collections.deque(range(200))\n"
        "class I:\n    def __index__(self):\n        d.rotate(-150)\n        return 0\n"
        "result = (d.index(0, I()), collections.deque.index(d, 0, I()), list(d).index(0))"
    )
    res = await box.run(code)
    assert res.ok and res.value == [50, 100, 100], res  # (each __index__ rotates again)


async def test_nothing_leaves_a_container_while_its_index_is_asked(box: Sandbox) -> None:
    code = (
        "import collections\nd = collections.deque(range(200))\n"
        "class I:\n    def __index__(self):\n        d.clear()\n        return 0\n"
        "result = d.index(0, I())"
    )
    res = await box.run(code)
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert "cannot lose items" in (res.error or "") and "__index__" in (res.error or ""), res


# Pass AY: three more CPython 3.11 memory bugs reached from inside the policy, and a removal
# the comparison guard did not see.
_OD_KEYS_ADD = (
    "from collections import OrderedDict\nod = OrderedDict()\narmed = [False]\n"
    "class K:\n    def __init__(self, n):\n        self.n = n\n    def __hash__(self):\n"
    "        return 1\n    def __eq__(self, other):\n        if armed[0]:\n"
    "            armed[0] = False\n            for i in range(200):\n                ADD\n"
    "        return self is other\n"
    "od[K(1)] = 1\nod[K(2)] = 2\nod['a'] = 3\narmed[0] = True\n"
    "for i in range(10):\n    od['b%d' % i] = i\nresult = len(od)"
)
# Pass CZ: CPython 3.11's set_add_entry keeps a free slot (a popped key's) across the
# comparison of two keys of one hash; a key's __eq__ that added the same key filled it first,
# the outer add filled it again: len() one too high, and freeing the set walked past its table.
_SET_REENTERED = (
    "box = []\nclass D:\n    def __hash__(self):\n        return 0\n"
    "class T:\n    def __init__(self):\n        self.n = 0\n"
    "    def __hash__(self):\n        return 0\n    def __eq__(self, other):\n"
    "        if self.n < 1:\n            self.n += 1\n            INNER\n        return False\n"
    "s = set()\nbox.append(s)\nadd = s.add\ns.add(D())\ns.add(D())\ns.pop()\nOUTER\n"
    "result = [len(s), len(list(s))]"
)
# The same in a __repr__ that made the set: its own set, which it may change (pass DY), but
# not from the __eq__ that its own add calls, which is another call.
_SET_REENTERED_IN_A_REPR = _SET_REENTERED.replace(
    "s = set()\nbox.append(s)\nadd = s.add\ns.add(D())\ns.add(D())\ns.pop()\nOUTER\n"
    "result = [len(s), len(list(s))]",
    "class R:\n    def __repr__(self):\n        s = set()\n        box.append(s)\n"
    "        s.add(D())\n        s.add(D())\n        s.pop()\n        OUTER\n"
    "        return str(len(s))\nresult = repr(R())",
)
COMPARING_CHANGES = {
    **{
        f"a_set_gains_its_key_{how}": _SET_REENTERED.replace("INNER", inner).replace("OUTER", outer)
        for how, inner, outer in [
            ("in_its_own_add", "box[0].add(self)", "s.add(T())"),
            ("in_its_own_update", "box[0].update([self])", "s.update([T()])"),
            ("by_an_add_read_before", "add(self)", "s.add(T())"),
            ("by_the_unbound_add", "set.add(box[0], self)", "set.add(s, T())"),
            ("by_an_in_place_union", "box[0] |= {self}", "s |= {T()}"),
        ]
    },
    **{
        f"a_set_a_repr_made_gains_its_key_{how}": _SET_REENTERED_IN_A_REPR.replace(
            "INNER", inner
        ).replace("OUTER", outer)
        for how, inner, outer in [
            ("in_its_own_add", "box[0].add(self)", "s.add(T())"),
            ("by_an_in_place_union", "box[0] |= {self}", "s |= {T()}"),
        ]
    },
    "a_set_a_repr_made_by_a_display_gains_its_key_in_its_own_add": _SET_REENTERED_IN_A_REPR.replace(
        "INNER", "box[0].add(self)"
    )
    .replace("OUTER", "s.add(T())")
    .replace(
        "s = set()\n        box.append(s)\n        s.add(D())\n        s.add(D())\n",
        "s = {D(), D()}\n        box.append(s)\n",
    ),
    # resizing its node index looks each key up; a key's __eq__ that added keys made CPython
    # write past the end of the index (SIGSEGV)
    "an_ordered_dict_gains_keys": _OD_KEYS_ADD.replace("ADD", "od['x%d' % i] = i"),
    "an_ordered_dict_gains_keys_by_setdefault": _OD_KEYS_ADD.replace(
        "ADD", "od.setdefault('x%d' % i, i)"
    ),
    "an_ordered_dict_gains_keys_by_update": _OD_KEYS_ADD.replace("ADD", "od.update(x=i)"),
    # pass DF: a library's Python method of the program's container (Counter.update of an
    # "ordered counter", the recipe in collections' docs) set keys through the C slot
    **{
        f"an_ordered_counter_gains_keys_by_{how}": _OD_KEYS_ADD.replace(
            "od = OrderedDict()",
            "from collections import Counter\nclass OC(Counter, OrderedDict):\n"
            "    def grow(self, k):\n        super().update(k)\nod = OC()",
        ).replace("ADD", add)
        for how, add in [
            ("update", "od.update(['x%d' % i])"),
            ("subtract", "od.subtract(['x%d' % i])"),
            ("the_unbound_update", "Counter.update(od, ['x%d' % i])"),
            ("super_update", "od.grow(['x%d' % i])"),
        ]
    },
    # pass DH: a library's Python code (random.shuffle) writes x[i] = ... through the C slot
    # of a subclass with a __missing__ (or of a ChainMap over the OrderedDict), whose reads of
    # missing keys succeed: its stores added keys in the middle of the resize (SIGSEGV)
    "an_ordered_dict_gains_keys_by_a_library_s_store": _OD_KEYS_ADD.replace(
        "od = OrderedDict()",
        "import random\nclass OD(OrderedDict):\n    def __missing__(self, k):\n        return 0\n"
        "od = OD()",
    ).replace(
        "for i in range(200):\n                ADD",
        "while len(od) < 3000:\n                random.shuffle(od)",
    ),
    "an_ordered_dict_gains_keys_by_a_library_s_store_in_a_plain_chain_map": _OD_KEYS_ADD.replace(
        "od = OrderedDict()",
        "import random\nfrom collections import ChainMap\nclass D(dict):\n"
        "    def __missing__(self, k):\n        return 0\nod = OrderedDict()\n"
        "cm = ChainMap(od, D())",
    ).replace(
        "for i in range(200):\n                ADD",
        "while len(od) < 3000:\n                random.shuffle(cm)",
    ),
    "an_ordered_dict_gains_keys_by_a_library_s_store_in_a_chain_map": _OD_KEYS_ADD.replace(
        "od = OrderedDict()",
        "import random\nfrom collections import ChainMap\nclass CM(ChainMap):\n"
        "    def __missing__(self, k):\n        return 0\nod = OrderedDict()\ncm = CM(od)",
    ).replace(
        "for i in range(200):\n                ADD",
        "while len(od) < 3000:\n                random.shuffle(cm)",
    ),
    # pass DJ: ChainMap's own Python code changes the maps it is given or copies
    "an_ordered_dict_gains_keys_by_a_chain_map_s_new_child": _OD_KEYS_ADD.replace(
        "od = OrderedDict()",
        "from collections import ChainMap\nod = OrderedDict()\ncm = ChainMap()\n"
        "kw = {'x%d' % i: i for i in range(3000)}",
    ).replace("for i in range(200):\n                ADD", "cm.new_child(od, **kw)"),
    "an_ordered_dict_gains_keys_by_a_chain_map_s_or": _OD_KEYS_ADD.replace(
        "od = OrderedDict()",
        "from collections import ChainMap\nclass CM(ChainMap):\n    def copy(self):\n"
        "        return self\nod = OrderedDict()\ncm = CM(od)\n"
        "kw = {'x%d' % i: i for i in range(3000)}",
    ).replace("for i in range(200):\n                ADD", "cm | kw"),
    "a_set_gains_its_key_by_a_chain_map_s_new_child": (
        "from collections import ChainMap\ncm = ChainMap()\nbox = []\nclass D:\n"
        "    def __hash__(self):\n        return 0\nclass T(str):\n    def __hash__(self):\n"
        "        return 0\n    def __eq__(self, other):\n        if box[1] < 1:\n"
        "            box[1] += 1\n            cm.new_child(box[0], **{self: 1})\n"
        "        return False\ns = set()\nbox.append(s)\nbox.append(0)\ns.add(D())\n"
        "s.add(D())\ns.pop()\ns.add(T('k'))\nresult = [len(s), len(list(s))]"
    ),
    # pass BB: the answer of __eq__ has no __bool__; its __len__ runs after __eq__ returned
    "an_ordered_dict_gains_keys_in_an_answers_len": (
        "from collections import OrderedDict\nod = OrderedDict()\narmed = [False]\n"
        "class L:\n    def __len__(self):\n        if armed[0]:\n            armed[0] = False\n"
        "            for i in range(200):\n                od['x%d' % i] = i\n        return 0\n"
        "class K:\n    def __init__(self, n):\n        self.n = n\n    def __hash__(self):\n"
        "        return 1\n    def __eq__(self, other):\n        return L()\n"
        "od[K(1)] = 1\nod[K(2)] = 2\nod['a'] = 3\narmed[0] = True\n"
        "for i in range(10):\n    od['b%d' % i] = i\nresult = len(od)"
    ),
    "ordered_dicts_emptied_in_an_answers_len": (
        "from collections import OrderedDict\ncalls = [0]\n"
        "class L:\n    def __len__(self):\n        calls[0] += 1\n        if calls[0] == 3:\n"
        "            a.clear()\n            b.clear()\n        return 1\n"
        "class K:\n    def __init__(self, n):\n        self.n = n\n    def __hash__(self):\n"
        "        return self.n\n    def __eq__(self, other):\n        return L()\n"
        "a = OrderedDict([(K(0), 0), (K(1), 1)])\nb = OrderedDict([(K(0), 0), (K(1), 1)])\n"
        "result = a == b"
    ),
    # pass BA: code of the program's that a C or library comparison runs, not a dunder
    "a_list_emptied_by_a_cmp_to_key_function": (
        "from functools import cmp_to_key\nstate = {'n': 0}\n"
        "def cmp(a, b):\n    state['n'] += 1\n    if state['n'] == 2:\n        left.clear()\n"
        "        return 0\n    return 1\n"
        "K = cmp_to_key(cmp)\nleft = [(K('a'), K('b'))]\nright = [(K('c'), K('d'))]\n"
        "result = left < right"
    ),
    "a_deque_emptied_by_an_iter_that_chainmap_eq_reads": (
        "from collections import ChainMap, deque\nstate = {'armed': False}\n"
        "class A:\n    def __eq__(self, other):\n        return True\n"
        "class M(dict):\n    def __iter__(self):\n        if state['armed']:\n"
        "            state['armed'] = False\n            dq.clear()\n        return iter(['a'])\n"
        "dq = deque([(ChainMap(M(a=1)), A())])\nprobe = (ChainMap(M(a=1)), A())\n"
        "state['armed'] = True\nresult = dq.index(probe)"
    ),
    # pass BC: an OrderedDict reordered in a comparison changes too
    "an_ordered_dict_reordered": _OD_KEYS_ADD.replace("ADD", "od.move_to_end('a')"),
    # pass BE: what a builtin container's comparison asks of a subclass
    "a_deque_emptied_by_a_set_subclasss_contains": (
        "from collections import deque\n"
        "class SS(set):\n    def __contains__(self, k):\n        outer.clear()\n"
        "        return True\n"
        "outer = deque([{1: 2}.keys()])\nresult = outer.index(SS({5}))"
    ),
    # pass BF: a library's __bool__ or __hash__ that the program's class inherits, and
    # typing's comparisons, read the program's properties in the middle of a comparison
    "a_deque_emptied_by_an_inherited_chainmap_bool": (
        "import collections\nclass Ans(collections.ChainMap):\n    def __init__(self):\n"
        "        pass\n    @property\n    def maps(self):\n        d.clear()\n"
        "        return [1]\n"
        "class K:\n    def __eq__(self, other):\n        return Ans()\n"
        "d = collections.deque([K()])\nresult = d.index(0)"
    ),
    # pass BH: a library's own Python comparison or __len__, run straight from C
    "a_deque_emptied_by_a_library_views_len": (
        "import collections\narmed = []\n"
        "class P:\n    def __iter__(self):\n        if armed:\n            d.clear()\n"
        "        return iter([1, 2])\n"
        "class K:\n    def __eq__(self, other):\n        return collections.ChainMap(P()).keys()\n"
        "d = collections.deque([K(), 5])\narmed.append(1)\nresult = d.index(0)"
    ),
    # super().__init__() of a list, deque or set empties it first
    "a_deque_emptied_by_its_init": (
        "from collections import deque\nclass D(deque):\n    def wipe(self):\n"
        "        super().__init__()\n"
        "class X:\n    def __init__(self, n):\n        self.n = n\n"
        "    def __eq__(self, other):\n        if self.n == 0:\n            d.wipe()\n"
        "        return False\n"
        "d = D([X(0), X(1)])\nresult = d.index(5)"
    ),
    # pass BO: list's repr hands an item on holding no reference; a slice's (or a generic
    # alias's, or a defaultdict's) repr read its fields after its start's __repr__ emptied
    # the list: the slice freed and refilled, then the real os
    **{
        f"a_list_emptied_in_{name}": (
            "keep = []\nclass A:\n"
            f"    def {method}(self, *spec):\n        L.clear()\n"
            "        keep.append(float('7.75'))\n        return 'A'\n"
            f"x = float('1.25') + 0.0\nL = [{made}]\nx = None\nresult = {rendered}"
        )
        for name, method, made, rendered in [
            ("a_slices_repr", "__repr__", "slice(A(), x, None)", "repr(L)"),
            ("a_generic_alias_repr", "__repr__", "list[A(), x]", "repr(L)"),
            ("a_slices_str", "__repr__", "slice(A(), x, None)", "str(L)"),
            ("an_f_string", "__repr__", "slice(A(), x, None)", "f'{L}'"),
            ("print", "__repr__", "slice(A(), x, None)", "print(L)"),
            ("a_str", "__str__", "A()", "str(L[0])"),
            ("a_format", "__format__", "A()", "format(L[0], '')"),
        ]
    },
    # pass BS: C code a class inherits to write itself out calls its plain methods
    "a_list_emptied_in_an_ordered_dict_subclass_items": (
        "import collections\nkeep = []\nclass B:\n    __slots__ = ('a', 'b', 'c', 'd', 'e', 'f')\n"
        "    def __repr__(self):\n        return 'B'\n"
        "class O(collections.OrderedDict):\n    def items(self):\n        victim.clear()\n"
        "        for i in range(300):\n            keep.append(B())\n        return [(1, 2)]\n"
        "victim = [slice(O(a=1), B(), B())]\nresult = repr(victim)"
    ),
    "a_list_emptied_in_a_date_subclass_isoformat": (
        "import datetime\nclass D(datetime.date):\n    def isoformat(self):\n"
        "        victim.clear()\n        return 'D'\n"
        "victim = [D(2020, 1, 1)]\nresult = str(victim[0])"
    ),
    "a_list_emptied_in_a_defaultdict_factorys_repr": (
        "import collections\nclass A:\n    def __repr__(self):\n        L.clear()\n"
        "        return 'A'\ndef fac():\n    return 0\nd = collections.defaultdict(fac)\n"
        "d[1] = A()\nL = [d]\nd = None\nresult = repr(L)"
    ),
}


@pytest.mark.parametrize("name", sorted(COMPARING_CHANGES))
async def test_what_a_comparison_may_not_change(box: Sandbox, name: str) -> None:
    res = await box.run(COMPARING_CHANGES[name])
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert "while the program's comparison" in (res.error or ""), res


# Pass BE: a deque's C comparison (and a dict view's against a set) iterates a subclass
# through its __iter__, whose generator's body ran uncounted in the middle of deque.index;
# a tzinfo method written on the instance ran uncounted from datetime's comparison.
UNCOUNTED_HOOKS = {
    "a_deque_subclass_iter": (
        "from collections import deque\nclass DS(deque):\n    def __iter__(self):\n"
        "        yield 1\nresult = 1",
        "cannot define __iter__",
    ),
    "a_set_subclass_iter_set_later": (
        "class SS(set):\n    pass\nsetattr(SS, '__iter__', lambda self: iter([]))\nresult = 1",
        "'__iter__' is not allowed",
    ),
    "a_tzinfo_method_on_its_instance": (
        "from datetime import tzinfo, timedelta\nclass TZ(tzinfo):\n"
        "    def utcoffset(self, dt):\n        return timedelta(0)\n"
        "tz = TZ()\ntz.utcoffset = lambda dt: timedelta(0)\nresult = 1",
        "cannot be shadowed on its instance",
    ),
}


@pytest.mark.parametrize("name", sorted(UNCOUNTED_HOOKS))
async def test_no_hook_runs_uncounted_in_a_comparison(box: Sandbox, name: str) -> None:
    code, message = UNCOUNTED_HOOKS[name]
    res = await box.run(code)
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert message in (res.error or ""), res


@pytest.mark.parametrize("form", ["property(off)", "functools.lru_cache(maxsize=0)(off2)"])
async def test_a_tzinfo_method_in_any_form_is_counted(box: Sandbox, form: str) -> None:
    """Pass BJ: ``utcoffset`` as a property (or an ``lru_cache``) ran the program's code
    uncounted from datetime's comparison: ``d.clear()`` emptied the deque under
    ``deque.index`` (or, with OrderedDicts, a SIGSEGV)."""
    code = (
        "import collections, functools\nfrom datetime import datetime, tzinfo, timedelta\n"
        "log = []\n"
        "def off(self):\n    log.append(len(d))\n    d.clear()\n"
        "    return lambda dt: timedelta(0)\n"
        "def off2(self, dt):\n    log.append(len(d))\n    d.clear()\n    return timedelta(0)\n"
        f"class TZ(tzinfo):\n    utcoffset = {form}\n"
        "a = datetime(2020, 1, 1, tzinfo=TZ())\nb = datetime(2020, 1, 1, tzinfo=TZ())\n"
        "d = collections.deque([a])\ntry:\n    d.index(b)\nexcept Exception as e:\n"
        "    kind = type(e).__name__\nresult = (kind, len(d), log[:1])"
    )
    res = await box.run(code)
    assert res.ok and res.value == ["SandboxSecurityError", 1, [1]], res


async def test_no_class_is_registered_under_an_abc(box: Sandbox) -> None:
    """Pass BL: ``F.register(W)`` on the program's ``Fraction`` subclass made ``W`` pass for a
    ``numbers.Rational``; ``Decimal``'s C comparison then read ``W().numerator``, a property
    that emptied the deque under ``deque.index`` (a SIGSEGV with a fake Decimal)."""
    code = (
        "from collections import deque\nfrom decimal import Decimal\n"
        "from fractions import Fraction\nd = deque()\n"
        "class F(Fraction):\n    pass\n"
        "class W:\n    @property\n    def numerator(self):\n        d.clear()\n        return 1\n"
        "    denominator = 1\n"
        "F.register(W)\nd.extend([Decimal(1), Decimal(2)])\nresult = (d.index(W()), len(d))"
    )
    res = await box.run(code)
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert "'register'" in (res.error or ""), res


async def test_a_tzinfo_works_as_ever(box: Sandbox) -> None:
    code = (
        "from datetime import datetime, tzinfo, timedelta, timezone\n"
        "class EST(tzinfo):\n    def utcoffset(self, dt):\n        return timedelta(hours=-5)\n"
        "    def dst(self, dt):\n        return timedelta(0)\n"
        "    def tzname(self, dt):\n        return 'EST'\n"
        "a = datetime(2020, 1, 1, 12, tzinfo=EST())\n"
        "result = [a.isoformat(), a.strftime('%H:%M %Z'), a.astimezone(timezone.utc).hour,"
        " a == datetime(2020, 1, 1, 17, tzinfo=timezone.utc), str(a.utcoffset())]"
    )
    res = await box.run(code)
    assert res.ok and res.value == [
        "2020-01-01T12:00:00-05:00",
        "12:00 EST",
        17,
        True,
        "-1 day, 19:00:00",
    ], res
    res = await box.run(code.replace("a = datetime", "setattr(EST, 'dst', None)\na = datetime"))
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res


async def test_a_tzinfo_method_in_its_instances_dict_is_not_the_one_called(box: Sandbox) -> None:
    code = (
        "from datetime import datetime, tzinfo, timedelta, timezone\ncalls = []\n"
        "class TZ(tzinfo):\n    def utcoffset(self, dt):\n        return timedelta(0)\n"
        "tz = TZ()\ntry:\n    vars(tz)['utcoffset'] = lambda dt: calls.append(1)\n"
        "except Exception as e:\n    calls.append(str(e))\n"
        "a = datetime(2020, 1, 1, tzinfo=tz)\n"
        "result = (a == datetime(2020, 1, 1, tzinfo=timezone.utc), calls)"
    )
    res = await box.run(code)  # the instance's dict is read-only too (pass BZ)
    assert res.ok and res.value == [
        True,
        ["'mappingproxy' object does not support item assignment"],  # CPython's (pass FS)
    ], res


# Pass BG: super().__init__() called again on a program's defaultdict or staticmethod subclass
# replaced the factory (the function) that C was still calling through a pointer it does not
# own: a freed partial read (SIGSEGV), or the default came from a float made afterwards.
_REINIT_FROM_NEXT = (
    "hold = []\nclass It:\n    def __iter__(self):\n        return self\n"
    "    def __next__(self):\n        obj.reset()\n        hold.append(float('7.25'))\n"
    "        raise StopIteration\n"
)
REINITS = {
    "a_defaultdict_factory_running": (
        "import collections, functools\nclass D(collections.defaultdict):\n"
        "    def reset(self):\n        super().__init__(None)\n"
        "class K:\n    def __eq__(self, o):\n        obj.reset()\n        return False\n"
        "obj = D(functools.partial([1, 2, 3].count, K()))\nresult = obj[0]",
        0,
    ),
    "a_defaultdict_default_from_next": (
        "import collections, functools\nclass D(collections.defaultdict):\n"
        "    def reset(self):\n        super().__init__(None)\n"
        + _REINIT_FROM_NEXT
        + "obj = D(functools.partial(next, It(), float('2.5')))\nx = obj[0]\n"
        "result = (x, x is hold[0])",
        [2.5, False],
    ),
    # pass BI: super().__init__ stored, then called to install a factory, then again from
    # inside it
    "a_stored_init_of_a_defaultdict": (
        "import collections, functools\nclass D(collections.defaultdict):\n"
        "    def grab(self):\n        self.init = super().__init__\n"
        "class K:\n    def __eq__(self, o):\n        obj.init(None)\n        return False\n"
        "obj = D(None)\nobj.grab()\nobj.init(functools.partial([1, 2, 3].count, K()))\n"
        "result = obj[0]",
        0,
    ),
    "a_stored_init_of_a_property": (
        "import functools\nclass P(property):\n    def grab(self):\n"
        "        self.init = super().__init__\n"
        "class C:\n    def __eq__(self, o):\n        prop.init(None)\n        return False\n"
        "prop = P(None)\nprop.grab()\nprop.init(functools.partial([1, 2, 3].count))\n"
        "C.x = prop\nresult = C().x",
        0,
    ),
    "a_staticmethod_called": (
        "import functools\nclass S(staticmethod):\n    def reset(self):\n"
        "        super().__init__(None)\n"
        + _REINIT_FROM_NEXT
        + "obj = S(functools.partial(next, It(), float('2.5')))\nx = obj()\n"
        "result = (x, x is hold[0])",
        [2.5, False],
    ),
}


@pytest.mark.parametrize("name", sorted(REINITS))
async def test_a_reinit_frees_nothing_c_is_running(box: Sandbox, name: str) -> None:
    code, expected = REINITS[name]
    res = await box.run(code)
    assert res.ok and res.value == expected, res


async def test_a_comparison_may_still_add_to_a_plain_dict_or_list(box: Sandbox) -> None:
    code = (
        "seen = {}\ncalls = []\n"
        "class K:\n    def __init__(self, v):\n        self.v = v\n"
        "    def __lt__(self, other):\n        seen.setdefault(self.v, 0)\n"
        "        calls.append(1)\n        return self.v < other.v\n"
        "xs = sorted([K(3), K(1), K(2)])\n"
        "result = ([x.v for x in xs], sorted(seen), len(calls) > 0)"
    )
    res = await box.run(code)
    assert res.ok and res.value == [[1, 2, 3], [1, 2], True], res  # as CPython answers


async def test_an_exception_keeps_its_fields_while_they_are_formatted(box: Sandbox) -> None:
    """Pass AY: ``OSError.__str__`` formats ``errno``, ``strerror`` and ``filename`` holding
    no reference to them; ``errno``'s ``__str__`` assigned ``filename``, freeing it, and
    CPython read the freed text (another object's, or a SIGSEGV)."""
    code = (
        "class E(OSError):\n    pass\nclass F(OSError):\n"
        "    def __str__(self):\n        return 'F: ' + super().__str__()\n"
        "keep = []\n"
        "class S:\n    def __init__(self, i):\n        self.i = i\n"
        "    def __str__(self):\n        errors[self.i].filename = None\n"
        "        for i in range(3):\n            keep.append('secret-replacement-%d' % i)\n"
        "        return '1'\n"
        "errors = [E(S(0), 'strerror', 'original-filename--%d' % 7),"
        " F(S(1), 'strerror', 'original-filename--%d' % 8)]\n"
        "result = [str(e) for e in errors]"
    )
    res = await box.run(code)
    assert res.ok, res
    assert res.value == [
        "[Errno 1] strerror: 'original-filename--7'",
        "F: [Errno 1] strerror: 'original-filename--8'",
    ], res


async def test_an_ordered_dict_subclass_is_copied_from_its_keys(box: Sandbox) -> None:
    """Pass AY: ``copy()`` of a subclass walked its nodes while calling the class's
    ``__getitem__``, which cleared it: CPython read a freed node (a SIGSEGV)."""
    code = (
        "from collections import OrderedDict\n"
        "class O(OrderedDict):\n    def __getitem__(self, key):\n"
        "        value = OrderedDict.get(self, key)\n        self.clear()\n"
        "        spray.extend([10 ** 6 + i for i in range(200)])\n        return value\n"
        "class LRU(OrderedDict):\n    def __getitem__(self, key):\n"
        "        value = super().__getitem__(key)\n        self.move_to_end(key)\n"
        "        return value\n"
        "spray = []\no = O((f'key{i}', i) for i in range(20))\nc = o.copy()\n"
        "o2 = O((f'k{i}', i) for i in range(3))\nc2 = OrderedDict.copy(o2)\n"
        "lru = LRU(a=1, b=2)\nlru['a']\n"
        "result = (len(c), list(c)[:2], list(c2.items()), list(lru.copy().items()))"
    )
    res = await box.run(code)
    assert res.ok, res
    assert res.value == [
        20,
        ["key0", "key1"],
        [["k0", 0], ["k1", None], ["k2", None]],
        [["b", 2], ["a", 1]],
    ], res


async def test_what_a_comparison_answers_is_freed_only_after_the_run(box: Sandbox) -> None:
    """Pass AT: ``__eq__`` answered a suspended generator; when C dropped the answer, in the
    middle of an OrderedDict comparison, its ``finally`` emptied the dicts, uncounted. An
    answer that is not a plain value is kept for the rest of the run."""
    code = (
        "import collections\nclass St:\n    pass\nst = St()\nst.phase = 0\n"
        "def g():\n    try:\n        yield 1\n    finally:\n        if st.phase == 1:\n"
        "            st.phase = 2\n            st.a.clear()\n"
        "class K:\n    def __init__(self, h):\n        self.h = h\n"
        "    def __hash__(self):\n        return self.h\n"
        "    def __eq__(self, other):\n        if st.phase == 0:\n"
        "            return self is other\n"
        "        it = g()\n        next(it)\n        return it\n"
        "st.a = collections.OrderedDict([(K(7), 1), (K(8), 1)])\n"
        "st.b = collections.OrderedDict([(K(7), 1), (K(8), 1)])\n"
        "st.phase = 1\nr = st.a == st.b\nresult = [r, st.phase, len(st.a)]"
    )
    res = await box.run(code)
    assert res.value == [True, 1, 2], res


async def test_no_cyclic_collection_runs_a_programs_code_in_a_run(box: Sandbox) -> None:
    """A generator in a reference cycle is finalized by the cyclic collector at whatever
    allocation comes next, also in the middle of a C comparison: in a run, it is not."""
    code = (
        "def g():\n    try:\n        yield 1\n    finally:\n        print('finalized')\n"
        "class Node:\n    pass\nfor i in range(50):\n    n = Node()\n    n.me = n\n"
        "    n.gen = g()\n    next(n.gen)\n"
        "junk = [[i] for i in range(200000)]\nresult = len(junk)"
    )
    res = await box.run(code)
    assert (res.value, res.stdout) == (200000, ""), res


# A class defines no private name a library base of it has, in its body, its __slots__ or
# later: the library's code reads those trusting its own code set them. NormalDist's __eq__
# and __hash__ read a program's _mu property in the middle of a comparison (passes BF, BH,
# then counted); a Protocol's _is_runtime_protocol made isinstance call the real hasattr and
# getattr with any name (pass BN).
LIBRARY_NAMES_REDEFINED = {
    "ordered_dicts_emptied_by_an_inherited_normaldist_hash": (
        "import statistics, typing, collections\narmed = []\n"
        "class N(statistics.NormalDist):\n    @property\n    def _mu(self):\n"
        "        if armed:\n            od1.clear()\n            return 1.0\n"
        "        return self.m\n"
        "    @_mu.setter\n    def _mu(self, v):\n        self.m = v\n"
        "X = typing.Literal[N(1, 1)]\nY = typing.Literal[N(2, 1)]\nZ = typing.Literal[N(3, 1)]\n"
        "od1 = collections.OrderedDict([(X, 0), (Y, 0), (Z, 0)])\n"
        "od2 = collections.OrderedDict([(Y, 0), (Z, 0), (X, 0)])\narmed.append(1)\n"
        "result = od1 == od2"
    ),
    "a_deque_emptied_by_a_library_normaldist_eq": (
        "import statistics, collections\narmed = []\n"
        "class N(statistics.NormalDist):\n    def __init__(self):\n        pass\n"
        "    def __eq__(self, other):\n        return NotImplemented\n"
        "    @property\n    def _mu(self):\n        if armed:\n            d.clear()\n"
        "        return 0.0\n    @property\n    def _sigma(self):\n        return 1.0\n"
        "d = collections.deque([statistics.NormalDist(0, 1), 1, 2])\narmed.append(1)\n"
        "result = d.index(N())"
    ),
    "a_protocols_switch": (
        "import typing\nclass P(typing.Protocol):\n    _is_runtime_protocol = True\n"
        "    _numerator = None\nresult = isinstance(1, P)"
    ),
    "a_protocols_switch_set_later": (
        "import typing\nclass P(typing.Protocol):\n    x = 1\n"
        "P._is_runtime_protocol = True\nresult = isinstance(1, P)"
    ),
    "a_protocols_switch_as_a_slot": (
        "import typing\nclass P(typing.Protocol):\n    __slots__ = ('_is_protocol',)\nresult = 1"
    ),
    # pass BP: a slot comes before the base's property, and the program may set it
    "a_fractions_numerator_as_a_slot": (
        "import fractions\nclass F(fractions.Fraction):\n"
        "    __slots__ = ('numerator', 'denominator')\nf = F(1)\nf.numerator = 30000000\n"
        "f.denominator = 1\nresult = fractions.Fraction(3) ** f"
    ),
    "a_complexs_parts_as_slots": "class B(complex):\n    __slots__ = ('real', 'imag')\nresult = 1",
    "a_randoms_method": (
        "import random\nclass R(random.Random):\n    def _randbelow(self, n):\n"
        "        return 0\nresult = R().randrange(10)"
    ),
}


@pytest.mark.parametrize("name", sorted(LIBRARY_NAMES_REDEFINED))
async def test_a_class_redefines_no_private_name_of_a_library_base(box: Sandbox, name: str) -> None:
    res = await box.run(LIBRARY_NAMES_REDEFINED[name])
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert "cannot be redefined" in (res.error or ""), res


async def test_slots_are_read_once(box: Sandbox) -> None:
    """Pass BV: a tuple subclass's ``__iter__`` answered harmless names to the check, then
    ``numerator`` to ``type()``; what was checked is now what the class gets."""
    code = (
        "import fractions\nn = [0]\nclass T(tuple):\n    def __iter__(self):\n"
        "        n[0] += 1\n        if n[0] == 1:\n            return iter(('aa', 'bb'))\n"
        "        return iter(('numerator', 'denominator'))\n"
        "class F(fractions.Fraction):\n    __slots__ = T(('x',))\nf = F(1)\n"
        "f.numerator = 30_000_000\nresult = fractions.Fraction(3) ** f"
    )
    res = await box.run(code)
    # the slot was never made: the write meets the number's own part, which refuses it
    assert (res.ok, res.error) == (False, "a number's parts are its class's own (line 12)"), res


async def test_a_slot_names_no_special_attribute(box: Sandbox) -> None:
    res = await box.run(
        "import typing\nclass Q(typing.Protocol):\n    __slots__ = ('__globals__',)\nresult = 1"
    )
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert "cannot be a slot" in (res.error or ""), res


async def test_a_regex_flag_holds_nothing_of_the_programs(box: Sandbox) -> None:
    """Pass BN: ``re.I | x`` with an int subclass ran enum's code on the program's objects,
    which stored one in ``RegexFlag``'s value map; ``re.I | 0`` then answered with it."""
    code = (
        "import re\nclass G2(int):\n    def __hash__(self):\n        return 987654321\n"
        "    def __eq__(self, o):\n        return self is o\n"
        "calls = [0]\nclass G(int):\n    def __hash__(self):\n        return hash(2)\n"
        "    def __eq__(self, o):\n        calls[0] += 1\n        return calls[0] > 1\n"
        "    def __and__(self, o):\n        return 0\n"
        "    def __rand__(self, o):\n        return 0\n"
        "    def __radd__(self, o):\n        return G2(2)\n"
        "class F(int):\n    def __ror__(self, o):\n        return G(2)\n"
        "before = repr(re.I | 0)\nre.I | F(0)\n"
        "result = [before, repr(re.I | 0), type(re.I | 0) is int]"
    )
    res = await box.run(code)
    assert res.value == ["2", "2", True], res


async def test_protocols_slots_and_regex_flags_work_as_ever(box: Sandbox) -> None:
    code = (
        "import typing, re\nclass P(typing.Protocol):\n"
        "    def area(self) -> float: ...\n"
        "class Sq:\n    __slots__ = ('side', '_cache', '__dict__')\n"
        "    def __init__(self, side):\n        self.side = side\n        self._cache = None\n"
        "    def area(self):\n        return float(self.side ** 2)\n"
        "class F(int):\n    def __or__(self, other):\n        return 4\n"
        "def area(s: P) -> float:\n        return s.area()\n"
        "result = [area(Sq(2)), Sq(3).area(), re.I | re.M,\n"
        "          re.findall('a.', 'AB\\nac', re.I | re.S), re.compile('a', F(2)).flags & 2,\n"
        "          re.findall('a', 'aA', re.NOFLAG)]"
    )
    res = await box.run(code)
    assert res.value == [4.0, 9.0, 10, ["AB", "ac"], 2, ["a"]], res


# Pass BR: library Python code adds and multiplies what the program stored, unmeasured:
# random.gauss computed mu + gauss_next * sigma, and Counter added counts that were strings.
LIBRARY_ARITHMETIC = {
    "gauss_next_by_setstate": (
        "import random\nr = random.Random(1)\nst = r.getstate()\ny = 10 ** 9999\n"
        "for i in range(8):\n    r.setstate((3, st[1], y))\n    y = r.gauss(0, y)\n"
        "result = y.bit_length()",
        "SecurityError",
    ),
    "gauss_next_of_a_subclass": (
        "import random\nclass R(random.Random):\n    def __init__(self):\n"
        "        super().__init__(1)\n        self.gauss_next = 'x' * 9_000_000\n"
        "result = len(R().gauss('', 20))",
        "TypeError",
    ),
    "gauss_next_as_a_property": (
        "import random\nclass R(random.Random):\n    @property\n    def gauss_next(self):\n"
        "        return 10 ** 9999\n    @gauss_next.setter\n    def gauss_next(self, v):\n"
        "        pass\nresult = R(1).gauss(0, 10 ** 9999).bit_length()",
        "TypeError",
    ),
    # pass BV: the program's __rmul__ answered a sequence, which random.py joined to mu
    "gauss_of_a_sequence": (
        "import random\ns = ['x' * 5_000_000]\nclass P:\n    def __rmul__(self, o):\n"
        "        return s[0]\nr = random.Random(1)\nfor i in range(4):\n"
        "    s[0] = r.gauss(s[0], P())\nresult = len(s[0])",
        "TypeError",
    ),
    "normalvariate_of_a_sequence": (
        "import random\ns = [[0] * 5_000_000]\nclass P:\n    def __rmul__(self, o):\n"
        "        return s[0]\nfor i in range(3):\n    s[0] = random.normalvariate(s[0], P())\n"
        "result = len(s[0])",
        "TypeError",
    ),
    # pass AB, then BW: random.py computes with what a subclass's random() or an
    # instance's _randbelow answers: a float, and no method shadowed on an instance
    "random_randrange_of_an_own_randbelow": (
        "import random\nclass R(random.Random):\n    pass\nr = R()\nx = 3 ** 20000\n"
        "r._randbelow = lambda n: x\nresult = r.randrange(0, 1, x).bit_length()",
        "SecurityError",
    ),
    "random_uniform_of_an_own_random": (
        "import random\nclass R(random.Random):\n    def random(self):\n        return X\n"
        "X = 3 ** 20000\nresult = R().uniform(0, X).bit_length()",
        "TypeError",
    ),
    "counter_update_of_strings": (
        "import collections\nc = collections.Counter()\nc['a'] = 'x' * 9_000_000\n"
        "for i in range(3):\n    c.update({'a': c['a']})\nresult = len(c['a'])",
        "TypeError",
    ),
    "counter_plus_counter_of_lists": (
        "import collections\nc = collections.Counter()\nc['a'] = [0] * 6_000_000\n"
        "result = len((c + c)['a'])",
        "TypeError",
    ),
    "counter_iadd_of_bytes": (
        "import collections\nc = collections.Counter()\nc['a'] = b'x' * 6_000_000\n"
        "c += collections.Counter(a=c['a'])\nresult = len(c['a'])",
        "TypeError",
    ),
    "counter_total_of_strings": (
        "import collections\nclass Y:\n    def __radd__(self, o):\n        return 'y'\n"
        "c = collections.Counter({'a': Y(), **{str(i): 'x' * 9_000_000 for i in range(11)}})\n"
        "result = len(c.total())",
        "TypeError",
    ),
}

# Pass CN: library code (calendar, statistics, fractions in Python; itertools.count in C)
# did arithmetic with what the program's objects answered, unguarded: 302M characters from
# calendar.timegm, 90M from count, a 25M-item deque held from statistics.quantiles.
LIBRARY_ARITHMETIC.update(
    {
        "timegm_of_a_day_that_adds_a_string": (
            "import calendar\ns = 'x' * 3500\nclass P:\n    def __sub__(self, other):\n"
            "        return s\nclass Z:\n    def __radd__(self, other):\n        return P()\n"
            "result = len(calendar.timegm((2024, 1, Z(), '', '', '')))",
            "TypeError",
        ),
        "isleap_of_a_format_string": (
            "import calendar\nresult = calendar.isleap('%200000000d')",
            "TypeError",
        ),
        "count_of_a_str_subclass": (
            "import itertools\nclass S(str):\n    def __float__(self):\n        return 0.0\n"
            "c = itertools.count(S('x' * 9_000_000), S('x' * 9_000_000))\n"
            "for i in range(10):\n    v = next(c)\nresult = len(v)",
            "TypeError",
        ),
        "count_of_a_list_subclass": (
            "import itertools\nclass L(list):\n    def __index__(self):\n        return 0\n"
            "l = L([0] * 2_000_000)\nc = itertools.count(l, l)\n"
            "for i in range(8):\n    v = next(c)\nresult = len(v)",
            "TypeError",
        ),
        "statistics_mean_of_ratios_that_are_strings": (
            "import statistics\nS = 'x' * 9_000_000\nclass Z:\n"
            "    def __radd__(self, other):\n        return S\nclass A:\n"
            "    def __init__(self, v):\n        self.v = v\n"
            "    def as_integer_ratio(self):\n        return (self.v, 1)\n"
            "result = statistics.mean([A(Z())] + [A(S)] * 14)",
            "TypeError",
        ),
        "statistics_quantiles_held_as_self": (
            "import statistics, collections\nheld = []\nclass D(collections.deque):\n"
            "    def __truediv__(self, n):\n        held.append(self)\n        return 1.0\n"
            "class X:\n    def __init__(self, k):\n        self.k = k\n"
            "    def __lt__(self, o):\n        return self.k < o.k\n"
            "    def __mul__(self, n):\n        return D(range(25))\n"
            "statistics.quantiles([X(1), X(2)], n=1_000_000, method='inclusive')\n"
            "result = len(held[0])",
            "TypeError",
        ),
        "statistics_of_classes": (  # it converted its result with type(C), the real type
            "import statistics\nclass C:\n    @classmethod\n"
            "    def as_integer_ratio(cls):\n        return (1, 1)\n"
            "result = statistics.mean([C, C])",
            "TypeError",
        ),
        "dataclass_init_of_a_subclass_with_a_library_base": (  # pass CP: 2.1M bits
            "from dataclasses import dataclass, field\nfrom statistics import NormalDist\n"
            "box = [10**9999]\n@dataclass\nclass C:\n"
            "    _mu: object = field(default_factory=lambda: 0.0)\n"
            "    _sigma: object = field(default_factory=lambda: box[0])\n"
            "class D(C, NormalDist):\n    pass\nfor i in range(6):\n"
            "    box[0] = D().variance\nresult = box[0].bit_length()",
            "TypeError",
        ),
        "normal_dist_from_samples_of_ratios_that_are_strings": (  # pass CQ
            "import statistics\nS = 'x' * 9_000_000\nclass Z:\n"
            "    def __radd__(self, other):\n        return S\nclass A:\n"
            "    def __init__(self, v):\n        self.v = v\n"
            "    def as_integer_ratio(self):\n        return (self.v, 1)\n"
            "result = statistics.NormalDist.from_samples([A(Z())] + [A(S)] * 14)",
            "TypeError",
        ),
        "statistics_weights_and_parameters": (
            "import statistics\nclass N:\n    pass\nresult = statistics.pvariance([1, 2], N())",
            "TypeError",
        ),
        "limit_denominator_of_lying_comparisons": (
            "import fractions\nS = 'x' * 100\nclass P2:\n    def __floordiv__(self, o):\n"
            "        return S\nclass P:\n    def __ge__(self, o):\n        return False\n"
            "    def __lt__(self, o):\n        return o >= 2\n    def __sub__(self, o):\n"
            "        return P2()\n"
            "result = fractions.Fraction(2000001, 2).limit_denominator(P())",
            "TypeError",
        ),
        "limit_denominator_unbound": (
            "from fractions import Fraction\nclass P:\n    def __ge__(self, o):\n"
            "        return False\nresult = Fraction.limit_denominator(Fraction(1, 3), P())",
            "TypeError",
        ),
    }
)
SIZE_BOMBS.update(
    {
        "deque_whose_maxlen_is_past_the_limit": (
            "import collections, itertools\nd = collections.deque([], maxlen=10**9)\n"
            "d.extend(itertools.repeat(0, 55_000_000))\nresult = len(d)"
        ),
        "deque_whose_maxlen_is_past_the_limit_added_to": (
            "import collections, itertools\nd = collections.deque([], maxlen=10**9)\n"
            "d += itertools.repeat(0, 55_000_000)\nresult = len(d)"
        ),
    }
)


@pytest.mark.parametrize("name", sorted(LIBRARY_ARITHMETIC))
async def test_library_arithmetic_takes_numbers_only(box: Sandbox, name: str) -> None:
    code, kind = LIBRARY_ARITHMETIC[name]
    res = await box.run(code)
    assert (res.ok, res.error_kind) == (False, kind), res


async def test_limit_denominator_takes_an_int_before_it_computes(box: Sandbox) -> None:
    """Pass CN: fractions.py's arithmetic with a bound whose comparisons lie multiplied a
    100-character string a million times before its TypeError; the bound is an exact int
    (its ``__index__``), asked before anything is computed."""
    res = await box.run(LIBRARY_ARITHMETIC["limit_denominator_of_lying_comparisons"][0])
    assert res.error is not None and "cannot be interpreted as an integer" in res.error, res
    res = await box.run(
        "from fractions import Fraction\nresult = str(Fraction(355, 113).limit_denominator(True))"
    )
    assert res.value == "3", res


async def test_statistics_reads_a_number_subclass_by_its_value(box: Sandbox) -> None:
    """Pass CQ: statistics subtracted the program's int subclasses, whose ``__sub__`` answered
    a 5M-character string, and multiplied it (100M characters) before its TypeError. It is
    given their values: none of the program's code runs in statistics' arithmetic."""
    res = await box.run(
        "import statistics\nS = 'x' * 5_000_000\nclass I(int):\n    def __sub__(self, o):\n"
        "        return S\nclass J(int):\n    def __sub__(self, o):\n        return 20\n"
        "result = [statistics.covariance([I(1), I(2)], [J(1), J(2)]),"
        " statistics.mean([I(2), I(4)]), type(statistics.median([I(1), I(2), I(3)])).__name__]"
    )
    assert res.value == [0.5, 3, "int"], res
    code = LIBRARY_ARITHMETIC["normal_dist_from_samples_of_ratios_that_are_strings"][0]
    res = await box.run(code)  # refused before statistics' own sum ran
    assert res.error is not None and "takes numbers" in res.error, res


async def test_output_cut_when_memory_is_short_stays_within_the_limit(box: Sandbox) -> None:
    """Pass FL: a write that crossed the limit while the program held nearly all memory
    marked the output as cut, then ran out of memory trimming it: 73,744 characters kept
    against 65,536, the service refused the reply, and the run came back as Crashed."""
    res = await box.run(
        "import sys\nw = sys.stdout.write\nw('x' * 65535)\nhold = []\n"
        "for size in (1 << 24, 1 << 20, 1 << 16, 1 << 12, 1 << 9):\n    while True:\n"
        "        try:\n            hold.append(bytes(size))\n        except MemoryError:\n"
        "            break\nfails = 0\nwhile True:\n    try:\n        w('yy')\n        break\n"
        "    except MemoryError:\n        fails += 1\n        hold.pop()\nhold = None\n"
        "for i in range(200):\n    print('tail line', i)\nresult = 'kept'"
    )
    assert (res.ok, res.value, res.limit) == (True, "kept", "output"), res
    assert len(res.stdout.encode()) <= box.config.max_output_bytes
    assert res.stdout.startswith("xxx") and res.stdout.endswith("tail line 199\n"), res


async def test_a_last_line_the_cut_began_in_is_no_answer(box: Sandbox) -> None:
    """Pass FL: a printed list longer than the output's kept end, read as the PAL answer,
    was a fragment of it (``', 1635, 1636, ...'``); now there is no printed answer."""
    res = await box.run("print('working\\n' * 9000)\nprint(list(range(30000)))")
    assert (res.ok, res.value, res.limit) == (True, None, "output"), res
    res = await box.run("print('working\\n' * 9000)\nprint(12345)")
    assert (res.ok, res.value) == (True, 12345), res


async def test_what_stderr_is_given_is_bounded_as_stdout_is(box: Sandbox) -> None:
    """Pass CQ: print(file=sys.stderr) made 150M characters and dropped them unmeasured."""
    res = await box.run(
        "import sys\ns = 'x' * 10_000_000\nprint(*([s] * 15), file=sys.stderr)\nresult = 1"
    )
    assert (res.ok, res.limit) == (False, "output"), res
    # pass CR: stderr's own limit, caught, let the run go on; it counts in the run's output
    res = await box.run(
        "import sys\ns = 'x' * 10_000_000\ntry:\n    print(*([s] * 15), file=sys.stderr)\n"
        "except Exception:\n    pass\nresult = 'done'"
    )
    assert (res.ok, res.limit, res.stdout) == (False, "output", ""), res


async def test_a_class_s_vars_hold_none_of_the_sandbox_s_pinned_descriptors(box: Sandbox) -> None:
    """Pass CS: vars() of a tzinfo or Fraction subclass handed out the sandbox's pinned
    descriptors; put in another class, one gave the raw tzinfo.utcoffset, another Fraction's
    as_integer_ratio bound to a non-Fraction. They are left out, as library machinery is."""
    res = await box.run(
        "import datetime, fractions\nclass TZ(datetime.tzinfo):\n    pass\n"
        "class F(fractions.Fraction):\n    pass\n"
        "result = ['utcoffset' in vars(TZ), 'as_integer_ratio' in vars(F),"
        " 'numerator' in vars(F), F(1, 2).as_integer_ratio()]"
    )
    assert res.value == [False, False, False, [1, 2]], res


async def test_a_changing_method_read_before_a_comparison_still_asks_at_its_call(
    box: Sandbox,
) -> None:
    """The wrappers of the last container's changing methods are kept and handed out again
    (510219e): one read before a comparison began, the same object read again, checks at
    its call, so emptying the deque ``deque.index`` walks, or the list ``==`` walks, from a
    program's ``__eq__`` is refused as when it is read there (red-team pass GE)."""
    res = await box.run(
        "from collections import deque\nq = deque()\nclear = q.clear\nout = []\n"
        "class A:\n    def __eq__(self, other):\n        try:\n            clear()\n"
        "        except Exception as e:\n            out.append(type(e).__name__)\n"
        "        return False\n"
        "for i in range(3):\n    q.append(A())\n"
        "out.append(q.clear is clear)\n"
        "try:\n    q.index(0)\nexcept ValueError:\n    out.append('not found')\n"
        "l = [1]\nempty = l.clear\n"
        "class B:\n    def __eq__(self, other):\n        try:\n            empty()\n"
        "        except Exception as e:\n            out.append(type(e).__name__)\n"
        "        return True\n"
        "l = [B(), B()]\nempty = l.clear\nout.append(l.clear is empty)\n"
        "out.append(l == [B(), B()])\nresult = out + [len(q), len(l)]"
    )
    assert res.value == [
        True,
        *["SandboxSecurityError"] * 3,
        "not found",
        True,
        "SandboxSecurityError",
        "SandboxSecurityError",
        True,
        3,
        2,
    ], res


async def test_a_number_s_part_read_from_its_class_is_the_base_s(box: Sandbox) -> None:
    """Pass CY: read from the class (not from vars()), a Fraction subclass's part was the
    sandbox's pinned descriptor itself; put in another class, it bound Fraction's
    as_integer_ratio to any object. Read from the class, it is what Fraction's own is there:
    a library method that takes instances of the class."""
    res = await box.run(
        "from fractions import Fraction\nclass F(Fraction):\n    pass\n"
        "ratio = F.as_integer_ratio\nclass G:\n    q = ratio\ng = G()\n"
        "g._numerator = 'any'\ng._denominator = 'thing'\nresult = g.q()"
    )
    assert res.error_kind == "SecurityError" and "instances of F only" in (res.error or ""), res
    res = await box.run(
        "from fractions import Fraction\nclass F(Fraction):\n    pass\n"
        "result = [F.as_integer_ratio(F(3, 4)), F(6, 8).as_integer_ratio()]"
    )
    assert res.value == [[3, 4], [3, 4]], res


async def test_a_library_method_read_from_a_class_ignores_what_its_abc_registered(
    box: Sandbox,
) -> None:
    """Pass FQ: the check that a library method read from a class is given an instance of
    it asked ``issubclass``, which the program's ABC answers for any class it registered:
    ``C.most_common(z)`` ran Counter's code on a foreign object. It walks the exact MRO by
    identity now; ``isinstance`` still answers as CPython's does."""
    res = await box.run(
        "import collections, collections.abc\n"
        "class C(collections.Counter, collections.abc.Hashable):\n"
        "    def __hash__(self):\n        return 1\n"
        "class Z:\n    pass\n"
        "C.register(Z)\nz = Z()\nout = [isinstance(z, C)]\n"
        "for f in (lambda: C.most_common(z), lambda: C.update(z, [1])):\n"
        "    try:\n        out.append(f())\n"
        "    except Exception as e:\n        out.append(str(e))\n"
        "result = out + [C.most_common(C('aab'))]"
    )
    assert res.value == [
        True,
        "C.most_common applies to instances of C only",
        "C.update applies to instances of C only",
        [["a", 2], ["b", 1]],
    ], res


# Pass CN: an item per group per match, counted once made (the memory limit bounds the
# making, which takes a second or two: no fail-fast guard, so no timing asserted here).
SPLITS_COUNTED = {
    "re_split_by_many_empty_groups": (
        "import re\nresult = len(re.split('()' * 44 + 'x', 'x' * 1_000_000))"
    ),
    "pattern_split_bound": (
        "import re\np = re.compile('()' * 44 + 'x')\nresult = len(p.split('x' * 1_000_000))"
    ),
    "pattern_split_unbound": (
        "import re\np = re.compile('()' * 44 + 'x')\n"
        "result = len(re.Pattern.split(p, 'x' * 1_000_000))"
    ),
}


@pytest.mark.parametrize("name", sorted(SPLITS_COUNTED))
async def test_a_split_by_many_groups_is_counted(box: Sandbox, name: str) -> None:
    res = await box.run(SPLITS_COUNTED[name])
    assert (res.ok, res.limit) == (False, "memory"), res


async def test_a_counter_count_is_checked_before_it_grows(box: Sandbox) -> None:
    """Pass BV: ``c += d`` checked the count it added, not the one it added to: a list
    count grew by 40M items before the next comparison refused it."""
    code = (
        "import collections, itertools\nc = collections.Counter()\nc['a'] = [0]\n"
        "try:\n    c += collections.Counter(a=itertools.repeat(7, 40_000_000))\n"
        "except TypeError as e:\n    error = str(e)\nresult = [len(c['a']), error]"
    )
    res = await box.run(code)
    assert res.value == [1, "a Counter's counts are numbers in the sandbox"], res


# Pass CA: an int doubled by adding it to itself in a loop reached 400,000 bits (12 times the
# digit limit) with ok=True; every spelling of adding or subtracting two ints is checked.
_DOUBLE = "x = 1\nfor i in range(40_000):\n    {}\nresult = x.bit_length()"
_COUNTER = "from collections import Counter\nc = Counter(a=1)\n" + _DOUBLE.replace(
    "result = x", "result = c['a']"
)
INT_GROWTH = {
    "sum": _DOUBLE.format("x = x + x"),
    "difference": _DOUBLE.format("x = x - (0 - x)"),
    "in_place_sum": _DOUBLE.format("x += x"),
    "in_place_difference": _DOUBLE.format("x -= -x"),
    "builtin_sum": _DOUBLE.format("x = sum([x, x])"),
    "builtin_sum_past_a_subclass": "class I(int):\n    pass\n"
    + _DOUBLE.format("x = sum([I(0), x, x])"),
    "operator_add": "import operator\n" + _DOUBLE.format("x = operator.add(x, x)"),
    "operator_sub": "import operator\n" + _DOUBLE.format("x = operator.sub(x, -x)"),
    "operator_iadd": "import operator\n" + _DOUBLE.format("x = operator.iadd(x, x)"),
    "accumulate": "import itertools\nlast = [1]\ndef g():\n    while True:\n"
    "        yield last[0]\nfor t in itertools.islice(itertools.accumulate(g()), 40_000):\n"
    "    last[0] = t\nresult = last[0].bit_length()",
    "counter_sum": _COUNTER.format("c = c + c"),
    "counter_update": _COUNTER.format("c.update(c)"),
    "counter_in_place_sum": _COUNTER.format("c += c"),
    "counter_total": "from collections import Counter\n"
    + _DOUBLE.format("x = Counter(a=x, b=x).total()"),
    "counter_subtract": _COUNTER.format("c.subtract({'a': -c['a']})"),
    "counter_difference": _COUNTER.format("c = c - Counter(a=-c['a'])"),
    "counter_in_place_difference": _COUNTER.format("c -= Counter(a=-c['a'])"),
}


@pytest.mark.parametrize("name", sorted(INT_GROWTH))
async def test_an_int_grown_by_adding_stops_at_the_digit_limit(box: Sandbox, name: str) -> None:
    res = await box.run(INT_GROWTH[name])
    assert (res.ok, res.limit) == (False, "int_size"), res
    assert "exceed 10000 digits" in (res.error or ""), res
    assert "pow(a, b, m) or % at each step" in (res.error or ""), res  # what to write instead


async def test_sums_and_differences_below_the_limit_are_python_s() -> None:
    """The checks refuse only what passes the limit: the largest int within it still adds."""
    async with Sandbox(SandboxConfig(workers=1, max_int_digits=100)) as small:
        res = await small.run(
            "from collections import Counter\nx = int('9' * 100)\nz = -x\n"
            "c = Counter(a=x)\nc.subtract({'a': 1})\nc.update({'b': 1})\n"
            "result = [x - x + x == x, z - z + z == z, sum([x, 0]) == x, c.total() == x]"
        )
        assert res.value == [True, True, True, True], res
        over = await small.run("x = int('9' * 100)\nresult = x + x")
        assert over.limit == "int_size", over


# Pass BW: C and library code write a value's repr into an exception's message, unmeasured:
# the program read it from e.args or e.msg (100-200M characters).
CAUGHT_MESSAGES = {
    "list_index": "s = '\\U000e0000' * 100\ntry:\n    [].index([s] * 200_000)\n"
    "except ValueError as e:\n    m = e.args[0]\nresult = len(m)",
    "float": "try:\n    float('\\U000e0000' * 10_000_000)\nexcept ValueError as e:\n"
    "    m = e.args[0]\nresult = len(m)",
    "regex_group_name": "import re\ntry:\n    re.compile('(?P<' + '\\x01' * 3_000_000 + '>x)')\n"
    "except re.error as e:\n    m = e.msg\nresult = len(m)",
    "an_exit": "class C:\n    def __enter__(self):\n        return self\n"
    "    def __exit__(self, t, v, tb):\n        self.m = v.args[0]\n        return True\n"
    "c = C()\nwith c:\n    [].index(['\\U000e0000' * 100] * 200_000)\nresult = len(c.m)",
}


@pytest.mark.parametrize("name", sorted(CAUGHT_MESSAGES))
async def test_a_caught_exception_is_measured(roomy_box: Sandbox, name: str) -> None:
    res = await roomy_box.run(CAUGHT_MESSAGES[name])
    assert (res.ok, res.limit) == (False, "memory"), res
    assert "an exception's message" in (res.error or ""), res


async def test_caught_exceptions_work_as_ever(box: Sandbox) -> None:
    code = (
        "try:\n    int('x')\nexcept ValueError as e:\n    m = str(e)\n"
        "try:\n    {}['k' * 1000]\nexcept KeyError as e:\n    k = len(e.args[0])\n"
        "class E(Exception):\n    pass\ntry:\n    raise E('a', 2)\nexcept E as e:\n    a = e.args\n"
        "result = [m, k, a]"
    )
    res = await box.run(code)
    assert res.value == ["invalid literal for int() with base 10: 'x'", 1000, ["a", 2]], res


# Pass BU: a float compared with a negative int of 49 bits or more shifts what the int
# subclass's __neg__ answered as an int, unchecked: a string's bytes read as digits (SIGSEGV).
NEGATIONS = {
    "a_string": "class I(int):\n    def __neg__(self):\n        return 'x' * 10 ** 7\n",
    "a_list_in_a_sort": "class I(int):\n    def __neg__(self):\n        return [0] * 10 ** 6\n",
    "inherited_from_a_plain_class": (
        "class M:\n    def __neg__(self):\n        return b'\\xff' * 8\n"
        "class I(M, int):\n    pass\n"
    ),
}


@pytest.mark.parametrize("name", sorted(NEGATIONS))
async def test_an_int_subclass_negates_to_an_int(box: Sandbox, name: str) -> None:
    code = NEGATIONS[name] + (
        "w = I(-(2 ** 48 + 1))\nv = -(2.0 ** 48 + 0.5)\nresult = [v < w, v > w, sorted([w, v])]"
    )
    res = await box.run(code)
    assert (res.ok, res.error_kind) == (False, "TypeError"), res
    assert "__neg__ must answer an int" in (res.error or ""), res


# Pass BZ: a helper class of the program's, listed before the library base, put its names
# ahead of the library's: what the class body was refused, the helper defined.
HELPER_CLASSES = {
    "a_set_subclass_iter": (
        "L1 = [{1: 2, 3: 4}.keys()]\nclass M:\n    def __iter__(self):\n        L1.clear()\n"
        "        yield 1\nclass SS(M, set):\n    pass\nresult = L1 > [SS([1])]",
        "cannot define __iter__",
    ),
    "a_protocols_switch": (
        "import typing\nT = typing.TypeVar('T')\nclass A:\n    _is_protocol = True\n"
        "    _is_runtime_protocol = True\nclass M(A, typing.Generic[T]):\n    pass\n"
        "class P(M, typing.Protocol):\n    pass\nresult = isinstance(1, P)",
        "cannot be redefined",
    ),
    "a_fractions_parts": (
        "import fractions\nclass M:\n    @property\n    def numerator(self):\n"
        "        return 30_000_000\nclass F(M, fractions.Fraction):\n    pass\n"
        "result = fractions.Fraction(3) ** F(1)",
        "cannot be redefined",
    ),
    "a_counters_private_method": (
        "import collections\nclass M:\n    def _keep_positive(self):\n        return 'mine'\n"
        "class C(M, collections.Counter):\n    pass\nresult = C(a=1)._keep_positive()",
        "cannot be redefined",
    ),
    "a_random_answering_a_string": (
        "import random\nclass M:\n    def random(self):\n        return 'x'\n"
        "class R(M, random.Random):\n    pass\nresult = R(1).uniform(0, 20)",
        "must answer a float",
    ),
    # pass CB: the helper class (or the class) written after the class was made
    "a_fractions_private_part_later": (
        "from fractions import Fraction\nclass M:\n    pass\nclass F(M, Fraction):\n    pass\n"
        "M._numerator = property(lambda self: 1)\nresult = F(1, 2) == 0.5",
        "cannot be redefined",
    ),
    "a_fractions_numerator_later": (
        "from fractions import Fraction\nclass M:\n    pass\nclass F(M, Fraction):\n    pass\n"
        "M.numerator = property(lambda self: 30_000_000)\nresult = Fraction(3) ** F(1)",
        "cannot be redefined",
    ),
    "a_randoms_random_later": (
        "import random\nclass M:\n    pass\nclass R(M, random.Random):\n    pass\n"
        "M.random = lambda self: 'x'\nresult = R().uniform(0, 20)",
        "cannot be replaced",
    ),
    "a_randoms_getrandbits_on_the_class": (
        "import random\nclass R(random.Random):\n    pass\n"
        "R.getrandbits = lambda self, k: -3 ** 20000\nresult = R().randrange(10)",
        "cannot be replaced",
    ),
    "a_counters_private_method_later": (
        "import collections\nclass M:\n    pass\nclass C(M, collections.Counter):\n    pass\n"
        "M._keep_positive = lambda self: 'mine'\nresult = C(a=1)._keep_positive()",
        "cannot be redefined",
    ),
    "an_instance_dict_item": (
        "import random\nclass R(random.Random):\n    pass\nr = R(1)\n"
        "r.__dict__['random'] = lambda: 'x'\nresult = r.uniform(0, 20)",
        "does not support item assignment",
    ),
}


@pytest.mark.parametrize("name", sorted(HELPER_CLASSES))
async def test_a_helper_class_defines_nothing_its_subclass_may_not(box: Sandbox, name: str) -> None:
    code, message = HELPER_CLASSES[name]
    res = await box.run(code)
    assert not res.ok and message in (res.error or ""), res


# Pass BW: random.py computes with what a subclass's getrandbits(k) answers (randrange's
# rejection loop, randbytes, shuffle): an int of k bits, or the run stops there.
_OWN_BITS = (
    "import random\nclass R(random.Random):\n    def getrandbits(self, k):\n"
    "        return {}\nresult = R(1).{}"
)
RANDOM_BITS = {
    "negative": _OWN_BITS.format("-3 ** 20000", "randrange(10)"),
    "too_many_bits": _OWN_BITS.format("1 << (k + 1)", "randrange(10)"),
    "a_float": _OWN_BITS.format("0.5", "randrange(10)"),
    "a_string": _OWN_BITS.format("'x' * 9_000_000", "choice('abc')"),
    "an_int_subclass": "class I(int):\n    pass\n" + _OWN_BITS.format("I(1)", "randrange(10)"),
    "a_helper_class_before": (
        "import random\nclass M:\n    def getrandbits(self, k):\n        return -1\n"
        "class R(M, random.Random):\n    pass\nresult = R(1).choice([1, 2, 3])"
    ),
}


@pytest.mark.parametrize("name", sorted(RANDOM_BITS))
async def test_a_random_subclass_s_bits_are_an_int_of_k_bits(box: Sandbox, name: str) -> None:
    res = await box.run(RANDOM_BITS[name])
    assert (res.ok, res.error_kind) == (False, "TypeError"), res
    assert "getrandbits(k) must answer an int of k bits" in (res.error or ""), res


async def test_a_random_subclass_s_own_bits_still_draw(box: Sandbox) -> None:
    res = await box.run(
        "import random\nclass R(random.Random):\n    def getrandbits(self, k):\n"
        "        return super().getrandbits(k)\nr, q = R(5), random.Random(5)\n"
        "result = [r.randrange(1000) == q.randrange(1000), len(r.randbytes(3)), r.getrandbits(0)]"
    )
    assert res.value == [True, 3, 0], res


async def test_a_library_exception_s_classes_are_answered_as_type_answers(box: Sandbox) -> None:
    """Pass CJ: decimal's InvalidOperation holds [ConversionSyntax] in its args, a class no
    module view names, handed out as the class itself (the program subclassed it)."""
    res = await box.run(
        "import decimal\ntry:\n    decimal.Decimal('abc')\n"
        "except decimal.InvalidOperation as e:\n    c = e.args[0][0]\n"
        "result = [type(c).__name__, repr(c)]\nclass X(c):\n    pass"
    )
    assert res.error_kind == "SecurityError", res
    assert (res.error or "").startswith("a 'TypeToken' object cannot be subclassed"), res


# Pass CI: `from json import decoder` failed to read `decoder` from the module's view, and
# CPython then took the module "json.decoder" from sys.modules: the real module, and through
# its attributes (decoder.re.enum.sys) the real sys, os and builtins' eval.
SUBMODULES = {
    "json_decoder": "from json import decoder\nresult = decoder.re.enum.sys.version",
    "json_tool": "from json import tool\nresult = tool",
    "typing_re": "from typing import re\nresult = re.Pattern",
    "json_scanner_aliased": "from json import scanner as s\nresult = s",
    "two_names": "from json import dumps, encoder\nresult = encoder",
}


@pytest.mark.parametrize("name", sorted(SUBMODULES))
async def test_from_a_module_import_reads_its_view_only(box: Sandbox, name: str) -> None:
    res = await box.run(SUBMODULES[name])
    assert (res.ok, res.error_kind) == (False, "ImportError"), res
    assert "cannot import name" in (res.error or "") and "in the sandbox" in (res.error or "")


async def test_from_import_binds_what_the_view_has(box: Sandbox) -> None:
    res = await box.run(
        "from math import sqrt, pi as PI\nfrom collections import Counter\n"
        "from random import randint\nfrom decimal import Decimal\n"
        "result = [sqrt(4), PI > 3, Counter('aab').most_common(1), 1 <= randint(1, 2) <= 2,\n"
        "    str(Decimal('1.1') + 1)]"
    )
    assert res.value == [2.0, True, [["a", 2]], True, "2.1"], res


# Pass CG: sys.setrecursionlimit counted from where it was called, so asking again from deep
# in a recursion gave as much again: 300,000 levels past a cap of 10,000, then, through a C
# path that calls back (map), a C stack overflow.
RECURSION_RATCHETS = {
    "past_the_cap": (
        "import sys\ndef f(n):\n    if n % 5000 == 0:\n        sys.setrecursionlimit(10000)\n"
        "    return n if n == 300000 else f(n + 1)\nsys.setrecursionlimit(10000)\nresult = f(1)"
    ),
    # pass CI: a sort whose key sorts again: ~4.7 KB of C stack a frame, past 64 MiB
    "a_sort_s_key": (
        "import sys\nsys.setrecursionlimit(10000)\ndef f(n):\n    [n].sort(key=f)\nf(0)"
    ),
    "through_c": (
        "import sys\ndef f(n):\n    if n % 5000 == 0:\n        sys.setrecursionlimit(10000)\n"
        "    return list(map(f, [n + 1]))\nsys.setrecursionlimit(10000)\nresult = f(1)"
    ),
}


@pytest.mark.parametrize("name", sorted(RECURSION_RATCHETS))
async def test_a_recursion_limit_counts_from_where_the_program_starts(
    box: Sandbox, name: str
) -> None:
    res = await box.run(RECURSION_RATCHETS[name])
    assert (res.error_kind, res.limit) == ("RecursionError", "recursion"), res


# Pass CD: a library class ahead of the builtin among the bases brought its own Python
# __iter__ (typing.Sequence's calls the program's __getitem__; typing.Generator's, its send),
# which a dict view's comparison ran uncounted: L1 emptied mid-comparison, a freed view read.
_LIBRARY_ITER = (
    "import typing\nL1 = [{{1: 2, 3: 4}}.keys()]\nkeep = []\nclass SS({bases}):\n"
    "    def {method}(self, *args):\n        L1.clear()\n        for j in range(3000):\n"
    "            keep.append(b'ABCDEFGH' + bytes([j % 256]))\n        raise IndexError(0)\n"
    "    def throw(self, *args):\n        pass\n    def __len__(self):\n        return 0\n"
    "result = [L1 > [SS([1, 3])], len(L1), len(keep)]"
)
LIBRARY_ITERATORS = {
    "sequence_before_set": _LIBRARY_ITER.format(bases="typing.Sequence, set", method="__getitem__"),
    "sequence_before_frozenset": _LIBRARY_ITER.format(
        bases="typing.Sequence, frozenset", method="__getitem__"
    ),
    "generator_before_set": _LIBRARY_ITER.format(bases="typing.Generator, set", method="send"),
}


@pytest.mark.parametrize("name", sorted(LIBRARY_ITERATORS))
async def test_a_set_is_iterated_by_its_own_iter_whatever_comes_first(
    box: Sandbox, name: str
) -> None:
    res = await box.run(LIBRARY_ITERATORS[name])
    assert res.value == [True, 1, 0], res  # set's own __iter__: the program's code never ran


async def test_a_deque_subclass_after_a_library_sequence_iterates_its_items(box: Sandbox) -> None:
    res = await box.run(
        "import typing, collections\nclass D(typing.Sequence, collections.deque):\n"
        "    def __getitem__(self, i):\n        raise IndexError(i)\n    def __len__(self):\n"
        "        return 0\nresult = [list(D([1, 2])), 2 in D([1, 2])]"
    )
    assert res.value == [[1, 2], True], res


async def test_counters_and_gauss_work_as_ever(box: Sandbox) -> None:
    code = (
        "import collections, random\nc = collections.Counter('abracadabra')\n"
        "c.update({'a': 2}, z=1)\nd = c + collections.Counter('aab')\n"
        "c += collections.Counter('bb')\nr, r2 = random.Random(7), random.Random(7)\n"
        "g = [r.gauss(0, 1) for i in range(3)]\n"
        "result = [c.most_common(2), d['a'], c.total(), g == [r2.gauss() for i in range(3)],\n"
        "          collections.Counter(c) == c,\n"
        "          (collections.Counter(a=1.5) + collections.Counter(a=2))['a']]"
    )
    res = await box.run(code)
    assert res.value == [[["a", 7], ["b", 4]], 9, 16, True, True, 3.5], res


async def test_inherited_renderings_work_as_ever(box: Sandbox) -> None:
    code = (
        "import collections, datetime\nclass O(collections.OrderedDict):\n"
        "    def items(self):\n        l = list(super().items())\n"
        "        l.append(('c', 3))\n        return l\n"
        "class D(datetime.date):\n    pass\nclass E(ValueError):\n    pass\n"
        "class P:\n    pass\n"
        "result = [repr(O(a=1)), str(D(2020, 1, 2)), f'{D(2020, 1, 2):%Y}', str(E('x')),\n"
        "          repr(E('y')), repr(P()).startswith('<__main__.P'),\n"
        "          format(P(), '').startswith('<__main__.P')]"
    )
    res = await box.run(code)
    assert res.value == [
        "O([('a', 1), ('c', 3)])",
        "2020-01-02",
        "2020",
        "x",
        "E('y')",
        True,
        True,
    ], res


async def test_sums_displays_and_renderings_work_as_ever(box: Sandbox) -> None:
    """What the checks of pass BM and the counted renderings of pass BO leave alone: sums of
    small sequences and numbers, displays that unpack, a ``__repr__`` or ``__str__`` that
    builds what it answers in a list or dict of its own."""
    code = (
        "l = [1, 2]\ns = 'ab'\n"
        "class P:\n    def __init__(self, x):\n        self.x = x\n"
        "    def __repr__(self):\n        parts = [str(self.x)]\n        parts.append('!')\n"
        "        return ''.join(parts)\n"
        "    def __str__(self):\n        d = {'x': self.x}\n        d['y'] = 2\n"
        "        return str(sorted(d))\n"
        "    def __format__(self, spec):\n        return format(self.x, spec)\n"
        "def f(*a):\n    return len(a)\n"
        "result = [l + l + l, s + s + s, 1 + 2.5 + 3, (1, 2) + (3,), [*l, *l], (*s, *s),\n"
        "          sorted({*l, *l}), f(*l, *l), repr([P(1), slice(P(2), 3)]), str(P(4)),\n"
        "          f'{P(5):03d}', 6 * 7, 2.0 * 3, 3 * 0.5]"
    )
    res = await box.run(code)
    assert res.value == [
        [1, 2, 1, 2, 1, 2],
        "ababab",
        6.5,
        [1, 2, 3],
        [1, 2, 1, 2],
        ["a", "b", "a", "b"],
        [1, 2],
        4,
        "[1!, slice(2!, 3, None)]",
        "['x', 'y']",
        "005",
        42,
        6.0,
        1.5,
    ], res


# A store that replaces the item CPython is comparing frees it as a removal would (plain
# CPython: the Y that the other operand's __eq__ receives is a filler made later in its memory).
STORES_OF_THE_COMPARED_ITEM = {
    "list_comparison": freed_tuple(2, "c[0] = 0", "[(X(), Y())]", "c < [(0, 0)]"),
    "list_comparison_from_the_end": freed_tuple(2, "c[-1] = 0", "[(X(), Y())]", "c < [(0, 0)]"),
    "deque_index": freed_tuple(1, "c[0] = 0", "collections.deque([(X(), Y())])", "c.index((0, 0))"),
    "dict_comparison": freed_tuple(1, "c['k'] = 0", "{'k': (X(), Y())}", "c == {'k': (0, 0)}"),
    "list_comparison_by_the_programs_index": freed_tuple(  # the whole list kept
        2,
        "c[I()] = 0",
        "[(X(), Y())]",
        "c < [(0, 0)]",
        "class I:\n    def __index__(self):\n        return 0\n",
    ),
    # a full deque drops its first item as it grows; its maxlen read from its slot, not
    # from a subclass's maxlen = None (the whole deque kept)
    "full_deque_growing": freed_tuple(
        1,
        "c.append(0)",
        "D([(X(), Y())], maxlen=1)",
        "c.index((0, 0))",
        "class D(collections.deque):\n    maxlen = None\n",
    ),
    # += on a full deque drops its first item too (pass DT: += no longer refused as removing)
    "full_deque_added_to": freed_tuple(
        1,
        "global c\n        c += [0]",
        "collections.deque([(X(), Y())], maxlen=1)",
        "c.index((0, 0))",
    ),
    # What a special method stored itself is not kept when it replaces it (an accumulator in
    # a __repr__, pass DR), but only within that same call: a store made by an earlier call
    # at the same depth (A.__eq__, before list < list compared the tuple it stored) ...
    "stored_by_an_earlier_call": freed_tuple(
        2,
        "c[1] = 0",
        "[A(), 0]",
        "c < [A(), (0, 0)]",
        "class A:\n    def __eq__(self, other):\n        c[1] = (X(), Y())\n        return True\n",
    ),
    # ... or by the call that is running the comparison (a __repr__ that stored, then compared)
    "stored_by_the_calling_method": freed_tuple(
        2,
        "c[0] = 0",
        "[0]",
        "repr(R())",
        "class R:\n    def __repr__(self):\n        c[0] = (X(), Y())\n"
        "        c < [(0, 0)]\n        return 'R'\n",
    ),
    # ... nor one whose slot the call stored in, that now holds an item from before it
    "stored_slot_now_holding_an_earlier_item": freed_tuple(
        2,
        "c[1] = 7\n        c.reverse()\n        c[1] = 0",
        "[(X(), Y()), 5]",
        "c < [(0, 0), 5]",
    ),
    # only what a full deque drops is kept (a copy per call ran 20,000 appends in a __repr__
    # out of memory, pass DU): at its right end for appendleft, as many as an iterable of no
    # known length may bring (the whole deque)
    "full_deque_grown_at_its_left": freed_tuple(
        1, "c.appendleft(0)", "collections.deque([0, (X(), Y())], maxlen=2)", "c.index((0, 0))"
    ),
    "full_deque_added_to_from_a_generator": freed_tuple(
        1,
        "global c\n        c += (i for i in [0])",
        "collections.deque([(X(), Y())], maxlen=1)",
        "c.index((0, 0))",
    ),
    "dict_comparison_with_the_programs_key": freed_tuple(  # the whole dict kept
        1, "c[k] = 0", "{k: (X(), Y())}", "c == {k: (0, 0)}", "class K:\n    pass\nk = K()\n"
    ),
}

# Red-team pass DS: whether a deque's growth drops items was decided when its method was read;
# a subclass's __init__ then gave it a maxlen, and the method read before dropped the tuple
# deque.index was comparing with nothing kept (plain CPython: a filler in its memory, SIGSEGV).
_REINIT = "class D(collections.deque):\n    def reinit(self, n):\n        super().__init__([], n)\n"
METHODS_READ_BEFORE_A_MAXLEN = {
    name: freed_tuple(
        1,
        f"grow({argument})",
        "D()",
        f"grow = c.{name}\nc.reinit(1)\nc.append((X(), Y()))\nc.index((0, 0))",
        _REINIT,
    )
    for name, argument in (
        ("append", "None"),
        ("appendleft", "None"),
        ("extend", "[None]"),
        ("extendleft", "[None]"),
    )
}


# Red-team pass DV: a library class's property, put in the program's class, ran its getter on
# the program's object in the library's code: NormalDist.variance squared the program's
# _sigma unchecked (a 4M-bit int in seven reads). A property is read from a class only where
# the program's own class defines it.
_PLANT = "from statistics import NormalDist\n"
LIBRARY_PROPERTIES_PLANTED = {
    "in_a_class_body": _PLANT + "class Box:\n    variance = NormalDist.variance\n",
    "on_a_class_later": _PLANT + "class Box:\n    pass\nBox.variance = NormalDist.variance\n",
    "as_a_dataclass_default": _PLANT
    + "from dataclasses import dataclass, field\n@dataclass\nclass Box:\n"
    "    variance: object = field(default=NormalDist.variance)\n",
    "copied_by_its_setter": _PLANT + "def keep(self, v):\n    self._sigma = v\n"
    "class Box:\n    variance = NormalDist.variance.setter(keep)\n",
    "through_attrgetter": _PLANT + "import operator\nclass Box:\n"
    "    variance = operator.attrgetter('variance')(NormalDist)\n",
    "from_a_subclass": _PLANT
    + "class N(NormalDist):\n    pass\nclass Box:\n    variance = N.variance\n",
    # pass ED: an alias hands on what it lacks, and the checks had looked at the alias only
    "a_numbers_part_from_a_subclass": "from fractions import Fraction\n"
    "class F(Fraction):\n    pass\nclass Box:\n    variance = F.numerator\n",
    "through_an_alias": _PLANT
    + "import typing\nclass Box:\n    variance = typing.Annotated[NormalDist, 0].variance\n",
}


# Red-team pass DO: a generator suspended in the middle of an item store, after the write
# guard was called (outside any comparison) and before its key was worked out, stored later
# from the middle of a comparison (plain CPython: a freed type's name read, or SIGSEGV).
_SEND = "try:\n            pending.send(0)\n        except StopIteration:\n            pass"
GENERATOR_SUSPENDED_STORES = {
    name: freed_tuple(
        first,
        _SEND,
        container,
        f"pending = store()\nnext(pending)\n{compare}",
        f"def store():\n    {statement}\n",
    )
    for name, first, statement, container, compare in (
        ("store", 2, "c[(yield)] = 0", "[(X(), Y())]", "c < [(0, 0)]"),
        ("deque_store", 1, "c[(yield)] = 0", "collections.deque([(X(), Y())])", "c.index((0, 0))"),
        ("deletion", 2, "del c[(yield)]", "[(X(), Y())]", "c < [(0, 0)]"),
        ("slice_store", 2, "c[(yield):] = []", "[(X(), Y())]", "c < [(0, 0)]"),
        ("nested_key", 2, "c[[k for k in (yield)][0]] = 0", "[(X(), Y())]", "c < [(0, 0)]"),
    )
}


@pytest.mark.parametrize("name", sorted(LIBRARY_PROPERTIES_PLANTED))
async def test_a_library_property_cannot_be_planted(box: Sandbox, name: str) -> None:
    code = LIBRARY_PROPERTIES_PLANTED[name] + (
        "b = Box()\nb._sigma = 3 ** 20000\nfor i in range(7):\n    b._sigma = b.variance\n"
        "result = b._sigma.bit_length()"
    )
    res = await box.run(code)
    assert res.error_kind == "SecurityError", res
    assert "is a library class's property" in (res.error or ""), res


async def test_properties_work_as_ever(box: Sandbox) -> None:
    """The program's own properties, read from its classes, and a library's, read from its
    instances."""
    code = (
        "from fractions import Fraction\nfrom statistics import NormalDist\n"
        "class A:\n    @property\n    def x(self):\n        return 1\n"
        "class B(A):\n    @A.x.getter\n    def x(self):\n        return 2\n"
        "result = [B().x, type(A.x).__name__, Fraction(3, 4).numerator,\n"
        "          NormalDist(0, 3).variance]"
    )
    res = await box.run(code)
    assert res.value == [2, "property", 3, 9.0], res


@pytest.mark.parametrize("name", sorted(GENERATOR_SUSPENDED_STORES))
async def test_an_item_store_cannot_be_suspended_after_its_guard(box: Sandbox, name: str) -> None:
    res = await box.run(GENERATOR_SUSPENDED_STORES[name])
    assert res.error_kind == "SecurityError", res
    assert "cannot yield while it works out its key" in (res.error or ""), res


COMPARED_ITEM_FREED = {
    **STORES_OF_THE_COMPARED_ITEM,
    **{f"{name}_read_before_a_maxlen": code for name, code in METHODS_READ_BEFORE_A_MAXLEN.items()},
}


@pytest.mark.parametrize("name", sorted(COMPARED_ITEM_FREED))
async def test_what_frees_the_compared_item_keeps_it(box: Sandbox, name: str) -> None:
    """A store keeps only what it replaces (a copy of the whole container per store made a
    ``__repr__`` filling a 20,000-item memo run out of memory, red-team pass DN), a deque's
    growth what its maxlen drops, asked at the call (pass DS)."""
    res = await box.run(COMPARED_ITEM_FREED[name])
    assert res.value == ["Y", "y", False], res


async def test_a_deques_extend_is_counted_by_its_maxlen_at_the_call(box: Sandbox) -> None:
    """``extend`` read while the deque's maxlen kept it small was the uncounted C method for
    good: after ``__init__`` took the maxlen away, it added 30M items (pass DS)."""
    code = (
        "import collections, itertools\nclass D(collections.deque):\n"
        "    def reinit(self, n):\n        super().__init__([], n)\n"
        "c = D([], 5)\ngrow = c.extend\nc.reinit(None)\n"
        "grow(itertools.repeat(0, 30_000_000))\nresult = len(c)"
    )
    res = await box.run(code)
    assert res.error_kind == "MemoryLimit", res
    assert "items exceeds the sandbox limit" in (res.error or ""), res


async def test_methods_that_free_nothing_keep_nothing(box: Sandbox) -> None:
    """A dict's setdefault and a deque without a maxlen growing free nothing: a copy of the
    container per call ran a __repr__ that grouped 6,000 keys out of memory (pass DR)."""
    code = (
        "import collections\nnames = [f'n{i}' for i in range(6000)]\nclass Inventory:\n"
        "    def __repr__(self):\n        groups, order = {}, collections.deque()\n"
        "        for name in names:\n            groups.setdefault(name, []).append(name)\n"
        "            order.append(name)\n"
        "        return f'Inventory({len(groups)} kinds, {len(order)})'\n"
        "result = repr(Inventory())"
    )
    res = await box.run(code)
    assert res.value == "Inventory(6000 kinds, 6000)", res


async def test_stores_in_special_methods_cost_what_they_replace(box: Sandbox) -> None:
    code = (
        "memo = [0] * 20000\nbig = list(range(200000))\nclass Grid:\n"
        "    def __repr__(self):\n        for i in range(len(memo)):\n"
        "            memo[i] = i * i\n        return 'Grid(%d)' % memo[-1]\n"
        "    def __eq__(self, other):\n        for i in range(2000):\n"
        "            big[i] = -i\n        return True\n"
        "result = [repr(Grid()), Grid() == Grid(), big[1999]]"
    )
    res = await box.run(code)
    assert res.value == ["Grid(399960001)", True, -1999], res


async def test_an_accumulator_in_a_special_method_keeps_nothing(box: Sandbox) -> None:
    """What a special method stored itself and replaces again is not kept: a ``__repr__``
    adding 6,000 rows to ``out[0]`` and an ``__eq__`` adding 14,000 words to a dict entry
    kept every string they made and ran out of memory; CPython needs 12 MB (pass DR)."""
    code = (
        "class Report:\n    def __init__(self, rows):\n        self.rows = rows\n"
        "    def __repr__(self):\n        out = ['']\n"
        "        for i, r in enumerate(self.rows):\n"
        "            out[0] += 'row %05d: %s\\n' % (i, r)\n        return out[0]\n"
        "class Doc:\n    def __init__(self, words):\n        self.words = words\n"
        "    def __eq__(self, other):\n        seen = {'text': ''}\n"
        "        for w in self.words + other.words:\n            seen['text'] += w + ' '\n"
        "        return seen['text'].count('a') % 2 == 0\n"
        "result = [len(repr(Report(['x' * 40] * 6000))),\n"
        "          Doc(['alpha'] * 7000) == Doc(['beta'] * 7000)]"
    )
    res = await box.run(code)
    assert res.value == [312000, True], res


async def test_what_a_special_method_adds_costs_what_it_adds(box: Sandbox) -> None:
    """A dict's ``|=`` and ``update``, a deque with a ``maxlen`` growing and a list's ``*=``
    in a ``__repr__``: a copy of the whole container per call ran 20,000 of them out of
    memory, and ``l *= 2`` was refused as if it took items out (red-team passes DR, DU)."""
    code = (
        "import collections\nclass R:\n    def __repr__(self):\n        d = {}\n"
        "        q = collections.deque(maxlen=20000)\n        w = collections.deque(maxlen=3)\n"
        "        for i in range(20000):\n            d |= {i: i}\n            q += [i]\n"
        "            w.append(i)\n            d.update({-i: i}, k=i)\n        l = [1]\n"
        "        l *= 2\n        return str([len(d), len(q), list(w), l])\nresult = repr(R())"
    )
    res = await box.run(code)
    assert res.value == "[40000, 20000, [19997, 19998, 19999], [1, 1]]", res


async def test_a_special_method_changes_a_set_it_made(box: Sandbox) -> None:
    """A set made by the running ``__str__``, ``__len__``, ``__repr__`` or ``__eq__`` (empty,
    or by a display or comprehension) is its own to change: dropping duplicates with
    ``seen.add``, ``set.update`` to count, ``|=``, a BFS's ``visited = {start}`` were refused
    (differential pass DY). Another call's set still cannot change."""
    code = (
        "class Playlist:\n    def __init__(self, songs):\n        self.songs = songs\n"
        "    def __str__(self):\n        seen, out = set(), []\n        for s in self.songs:\n"
        "            if s not in seen:\n                seen.add(s)\n"
        "                out.append(s)\n"
        "        seen.discard('a')\n        return ', '.join(out)\n"
        "    def __len__(self):\n        users = set()\n        for r in self.songs:\n"
        "            users.update(r)\n        return len(users)\n"
        "    def __repr__(self):\n        allt = set()\n        for g in self.songs:\n"
        "            allt |= set(g)\n        return ','.join(sorted(allt))\n"
        "    def __eq__(self, other):\n        visited = {self.songs[0]}\n"
        "        more = {s for s in other.songs}\n        visited.add('x')\n        more.add('y')\n"
        "        return len(visited) + len(more) == 5\n"
        "p = Playlist(['ab', 'b', 'ab'])\nresult = [str(p), len(p), repr(p), p == p]"
    )
    res = await box.run(code)
    assert res.value == ["ab, b", 2, "a,b", True], res


async def test_what_a_special_method_made_is_not_kept_for_it(box: Sandbox) -> None:
    """The sets a call made, and the containers it stored into, are known by their address
    only: holding them kept every set a ``__str__``'s loop made (150,000 of 100 items) and
    ran it out of memory where CPython needs 12 MB (red-team pass DZ)."""
    code = (
        "class Sheet:\n    def __init__(self, rows):\n        self.rows = rows\n"
        "    def __str__(self):\n        distinct = 0\n        for row in self.rows:\n"
        "            distinct += len({*row})\n            cells = [0] * 100\n"
        "            cells[0] = row[0]\n            distinct += cells[0]\n"
        "        return str(distinct)\n"
        # a set of 77 items takes 8.4 KB: 70,000 of them held would be 590 MB
        "row = list(range(77))\nresult = str(Sheet([row] * 70000))"
    )
    res = await box.run(code)
    assert res.value == "5390000", res


async def test_the_keys_a_special_method_stored_under_are_not_kept(box: Sandbox) -> None:
    """A ``__repr__`` storing 6,000 keys of 105 KB, one to each fresh dict, ran out of
    memory where CPython needs 11 MB: the records held the keys (pass EB)."""
    code = (
        "class Doc:\n    def __repr__(self):\n        total = 0\n"
        "        for i in range(2500):\n            seen = {}\n"
        "            seen[('%07d' % i) * 36000, i] = i\n            total += len(seen)\n"
        "        return str(total)\nresult = repr(Doc())"
    )
    res = await box.run(code)
    assert res.value == "2500", res


async def test_containers_change_in_special_methods_as_ordinary_programs_need(
    box: Sandbox,
) -> None:
    """A container may not lose items while the program's comparison runs (pass AR), but
    it may gain them there, and anything goes in the other special methods (an LRU cache
    evicting in ``__setitem__``); what they take out is kept for the rest of the run."""
    code = (
        "import collections\nclass LRU:\n    def __init__(self, n):\n"
        "        self.n, self.d = n, collections.OrderedDict()\n"
        "    def __getitem__(self, k):\n        self.d.move_to_end(k)\n        return self.d[k]\n"
        "    def __setitem__(self, k, v):\n        self.d[k] = v\n"
        "        if len(self.d) > self.n:\n            self.d.popitem(last=False)\n"
        "    def __len__(self):\n        return len(self.d)\n"
        "seen = {}\nclass P:\n    def __init__(self, x):\n        self.x = x\n"
        "    def __eq__(self, other):\n        seen[self.x] = seen.get(self.x, 0) + 1\n"
        "        return isinstance(other, P) and self.x == other.x\n"
        "    def __hash__(self):\n        return hash(self.x)\n"
        "cache = LRU(2)\nfor k in 'abcab':\n    cache[k] = k.upper()\nstack = [1, 2, 3]\n"
        "stack.pop()\ndel stack[0]\n"
        "result = [list(cache.d.items()), cache['a'], P(1) == P(1), P(1) in [P(2), P(1)],\n"
        "          len({P(1), P(1)}), stack, seen[1] >= 2]"
    )
    res = await box.run(code)
    assert res.value == [[["a", "A"], ["b", "B"]], "A", True, True, 1, [2], True], res


async def test_an_exception_subclass_sets_the_fields_cpython_reads_as_any_object(
    box: Sandbox,
) -> None:
    code = (
        "class E(OSError):\n    def __init__(self, path):\n        super().__init__()\n"
        "        self.errno, self.strerror, self.filename = 2, 'missing', path\n"
        "class A(AttributeError):\n    pass\nclass S(StopIteration):\n    pass\n"
        "class K(Exception):\n    pass\n"
        "a, st, k = A('x'), S(), K('one')\na.name = 'f'\nst.value = 6\nk.args = (1, 2)\n"
        "result = [str(E('a.cfg')), a.name, st.value, k.args, str(k)]"
    )
    res = await box.run(code)
    assert res.value == ["[Errno 2] missing: 'a.cfg'", "f", 6, [1, 2], "(1, 2)"], res


async def test_unicode_errors_are_caught_and_made_as_in_cpython(box: Sandbox) -> None:
    code = (
        "out = []\ntry:\n    b'\\xff'.decode()\nexcept UnicodeDecodeError as e:\n"
        "    out.append([type(e).__name__, e.start, e.end, isinstance(e, UnicodeDecodeError),\n"
        "                type(e) is UnicodeDecodeError, issubclass(type(e), ValueError)])\n"
        "try:\n    '\u00e9'.encode('ascii')\nexcept (KeyError, UnicodeEncodeError) as e:\n"
        "    out.append(str(e))\n"
        "try:\n    raise UnicodeDecodeError('utf-8', b'ab', 0, 1, 'bad')\n"
        "except UnicodeError as e:\n    out.append(str(e))\n"
        "result = out"
    )
    res = await box.run(code)
    assert res.value == [
        ["UnicodeDecodeError", 0, 1, True, True, True],
        "'ascii' codec can't encode character '\\xe9' in position 0: ordinal not in range(128)",
        "'utf-8' codec can't decode byte 0x61 in position 0: bad",
    ], res


async def test_async_comprehensions_are_refused_as_all_async_code_is(box: Sandbox) -> None:
    """RestrictedPython refuses ``async def``, ``await``, ``async for`` and ``async with``,
    but not ``async for`` in a generator expression, which made a real async generator:
    its ``asend()`` awaitable's ``throw`` spoofed a memory limit (red-team pass CT)."""
    code = (
        "def solution():\n    g = (y for x in [] async for y in x)\n"
        "    try:\n        g.asend(None).send(None)\n    except StopAsyncIteration:\n"
        "        pass\n    g.asend(None).throw(MemoryError)\n"
    )
    res = await box.run(code)
    assert (res.error_kind, res.limit) == ("SecurityError", None), res
    assert "async comprehensions are not allowed" in (res.error or ""), res


async def test_generators_are_thrown_into_without_a_traceback(box: Sandbox) -> None:
    code = (
        "def g():\n    try:\n        yield 1\n    except ValueError as e:\n        yield str(e)\n"
        "x = g()\nnext(x)\nresult = x.throw(ValueError('in'))"
    )
    assert (await box.run(code)).value == "in"
    # a third argument is refused unless it is None (no traceback: as CPython takes it, pass
    # FE); the errors are CPython's, not the sandbox wrapper's
    code = (
        "def g():\n    try:\n        yield 1\n    except ValueError as e:\n        yield str(e)\n"
        "out = []\nfor args in ((ValueError, ValueError('x'), None), (ValueError, None, 1),"
        " (), (ValueError, None, None, None)):\n    x = g()\n    next(x)\n    try:\n"
        "        out.append(x.throw(*args))\n    except TypeError as e:\n"
        "        out.append(str(e))\nresult = out"
    )
    assert (await box.run(code)).value == [
        "x",
        "throw() third argument must be a traceback object",
        "throw expected at least 1 argument, got 0",
        "throw expected at most 3 arguments, got 4",
    ]


@pytest.mark.parametrize("name", sorted(SUPER_PAST_STAND_INS))
async def test_super_does_not_search_past_a_stand_in(box: Sandbox, name: str) -> None:
    res = await box.run(SUPER_PAST_STAND_INS[name])
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert "program's own classes" in (res.error or ""), res


# Refused by a guard that measures each of a million fields in Python before anything is
# made: not at once (1.4-2.1 s on a slow hour of the test VM, the same before and after the
# day's changes, past FAST_S one run in three), so no timing is asserted.
MEASURED_FIELD_BY_FIELD = {
    "percent_a_million_fields": "result = '%(a)s' * 1000000 % {'a': 'x' * 10}",
}


@pytest.mark.parametrize("name", sorted(MEASURED_FIELD_BY_FIELD))
async def test_a_million_fields_are_measured_before_they_are_made(
    roomy_box: Sandbox, name: str
) -> None:
    # a million fields are parsed before the guard refuses them; with two test suites on
    # the VM's 2 cores this failed once under ``box``'s 3 s, and passed alone
    res = await roomy_box.run(MEASURED_FIELD_BY_FIELD[name])
    assert (res.ok, res.limit) == (False, "memory"), res
    assert "items exceeds the sandbox limit" in (res.error or ""), res


# passes CZ and DA: C multiplies a range's step by a slice's step, unbounded (step squared)
SIZE_BOMBS.update(
    {
        "range_slice_squares_its_step": (
            "r = range(0, 1, 2 ** 33000 + 1)\nfor i in range(8):\n    r = r[::r.step]"
        ),
        "range_sliced_by_getitem": (
            "import operator\nr = range(0, 1, 10 ** 9999)\nfor i in range(3):\n"
            "    r = operator.getitem(r, slice(None, None, r.step))"
        ),
        "range_sliced_by_augmented_assignment": (  # r[k] += y read r[k] unvetted (pass DA)
            "box = []\nclass Y:\n    def __radd__(self, other):\n        box.append(other)\n"
            "        return 0\nr = range(0, 1, 10 ** 9999)\nfor i in range(6):\n    try:\n"
            "        r[::r.step] += Y()\n    except TypeError:\n        pass\n    r = box.pop()"
        ),
        "range_sliced_by_itemgetter": (
            "import operator\nr = range(0, 1, 10 ** 9999)\nfor i in range(3):\n"
            "    r = operator.itemgetter(slice(None, None, -r.step))(r)"
        ),
        # Pass FR: CPython grows a local ``s = s + "literal"`` in place, in linear time, and a
        # literal term was left unchecked (360M characters in 0.24 s); a string literal's sum
        # is checked now, as any sum with no number literal is
        "string_grown_in_place_by_a_literal": (
            "def solution():\n    s = ''\n    for i in range(300):\n"
            f"        s = s + '{'x' * 40_000}'\n    return len(s)\nresult = solution()"
        ),
        "string_grown_in_place_by_an_augmented_literal": (
            "def solution():\n    s = ''\n    for i in range(300):\n"
            f"        s += '{'x' * 40_000}'\n    return len(s)\nresult = solution()"
        ),
        "list_grown_by_an_augmented_string_literal": (
            "def solution():\n    s = []\n    for i in range(300):\n"
            f"        s += '{'x' * 40_000}'\n    return len(s)\nresult = solution()"
        ),
        "list_subclass_grown_by_an_augmented_string_literal": (
            "class L(list):\n    pass\ndef solution():\n    s = L()\n    for i in range(300):\n"
            f"        s += '{'x' * 40_000}'\n    return len(s)\nresult = solution()"
        ),
        "string_grown_by_a_literal_on_the_left": (
            "def solution():\n    s = ''\n    for i in range(300):\n"
            f"        s = '{'x' * 40_000}' + s\n    return len(s)\nresult = solution()"
        ),
        # Pass FR: plain codecs (at most four bytes a character) were left to the memory
        # limit, and they chain: utf-32, latin-1, utf-32 made 16 times the item limit
        "encodes_chained": (
            "s = 'a' * 3_000_000\n"
            "result = len(s.encode('utf-32').decode('latin-1').encode('utf-32'))"
        ),
        "encodes_chained_unbound_and_by_constructor": (
            "s = 'a' * 3_000_000\nb = bytes(s, 'utf-32')\nt = str(b, 'latin-1')\n"
            "result = len(str.encode(t, 'utf-32'))"
        ),
    }
)


# Pass GG: three makers of text counted only part of what they made, so one call at the item
# limit made twice it, with ok=true: re.sub counted its replacements, not the text kept
# between matches; str.format its fields, not its own text (which a field may carry into
# the next call's format: 6x in five calls); str.translate its table's answers, not the
# characters the table does not map
SIZE_BOMBS.update(
    {
        "re_sub_keeps_the_text_between_matches": (
            "import re\nresult = len(re.sub('z', 'b' * 1000, ('a' * 1000 + 'z') * 9_000))"
        ),
        "re_subn_by_a_function_keeps_the_text": (
            "import re\ns = ('a' * 99 + 'z') * 100_000\n"
            "result = re.subn('z', lambda m: 'z' + 'b' * 99, s)[1]"
        ),
        "pattern_sub_of_bytes_keeps_the_text": (
            "import re\nb = (b'a' * 99 + b'z') * 100_000\n"
            "result = len(re.compile(b'z').sub(b'z' + b'b' * 99, b))"
        ),
        "unbound_pattern_sub_keeps_the_text": (
            "import re\ns = ('a' * 99 + 'z') * 100_000\n"
            "result = len(re.Pattern.sub(re.compile('z'), 'z' + 'b' * 99, s))"
        ),
        "re_sub_keeps_the_text_after_the_last_match": (
            "import re\nresult = len(re.sub('^', 'b' * 9_000_000, 'a' * 9_000_000))"
        ),
        "format_makes_its_own_text": (
            "result = len(('a' * 9_999_000 + '{}').format('b' * 9_999_000))"
        ),
        "format_map_makes_its_own_text": (
            "result = len(('a' * 9_999_000 + '{x}').format_map({'x': 'b' * 9_999_000}))"
        ),
        "format_grown_by_its_own_fields": (
            "t = 'a' * 4_000_000 + '{}'\npiece = 'b' * 4_000_000 + '{}'\n"
            "for i in range(5):\n    t = t.format(piece)\nresult = len(t)"
        ),
        "translate_keeps_what_it_does_not_map": (
            "s = 'a' * 9_900_000 + 'z' * 990\nresult = len(s.translate({ord('z'): 'b' * 10_000}))"
        ),
        "translate_unbound_keeps_what_it_does_not_map": (
            "s = 'a' * 9_900_000 + 'z' * 990\n"
            "result = len(str.translate(s, {ord('z'): 'b' * 10_000}))"
        ),
    }
)


# Pass GH: C joins a partial's arguments with more when a partial is made from another and
# when one is called, and each step passed its own call's check: 2.1-2.7 times the limit
PARTIAL_GROWN = (
    "import functools\ndef f(*a):\n    return a\nl = (0,) * 3_500_000\n"
    "p = functools.partial(f, *l)\nfor i in range(3):\n"
)
SIZE_BOMBS.update(
    {
        "partial_of_a_partial": PARTIAL_GROWN + "    p = functools.partial(p, *l)\nr = len(p.args)",
        "partial_called_with_more": (
            "import functools\ndef f(*a):\n    return a\nl = (0,) * 6_000_000\n"
            "p = functools.partial(f, *l)\nresult = len(p(*l))"
        ),
        "partial_made_by_a_partial_of_partial": (
            "import functools\ndef f(*a):\n    return a\nl = (0,) * 6_000_000\n"
            "p = functools.partial(f, *l)\nq = functools.partial(functools.partial, p)\n"
            "result = len(q(*l).args)"
        ),
        "partial_by_its_type": PARTIAL_GROWN + "    p = type(p)(p, *l)\nr = len(p.args)",
        "partial_subclass": (
            "import functools\nclass P(functools.partial):\n    pass\n"
            "def f(*a):\n    return a\nl = (0,) * 3_500_000\np = P(f, *l)\n"
            "for i in range(3):\n    p = P(p, *l)\nresult = len(p())"
        ),
        "partial_called_by_starmap": (
            "import functools, itertools\ndef f(*a):\n    return len(a)\n"
            "l = (0,) * 6_000_000\np = functools.partial(f, *l)\n"
            "result = list(itertools.starmap(p, [l]))"
        ),
        # pass GK: functools.partial[int] was the real class's alias: called, and as a base
        "partial_alias_made_and_called": (
            "import functools\ndef f(*a):\n    return a\nA = functools.partial[int]\n"
            "l = (0,) * 6_000_000\nresult = len(A(A(f, *l), *l)())"
        ),
        "partial_subclass_of_an_alias": (
            "import functools\nclass S(functools.partial[int]):\n    pass\n"
            "def f(*a):\n    return a\nl = (0,) * 3_500_000\np = S(f, *l)\n"
            "for i in range(3):\n    p = S(p, *l)\nresult = len(p.args)"
        ),
        "partial_of_an_exception": (
            "import functools\nl = (0,) * 3_500_000\np = functools.partial(ValueError, *l)\n"
            "for i in range(3):\n    p = functools.partial(p, *l)\nresult = len(p().args)"
        ),
    }
)


@pytest.mark.parametrize("name", sorted(SIZE_BOMBS))
async def test_size_guards_fail_fast(box: Sandbox, name: str) -> None:
    started = time.perf_counter()
    res = await box.run(SIZE_BOMBS[name])
    elapsed = time.perf_counter() - started
    assert not res.ok, res
    # A guard's limit, or the run's bounded decimal context refusing to overflow its range.
    assert res.limit in ("int_size", "memory") or res.error_kind == "Overflow", res
    assert elapsed < FAST_S, f"{name} took {elapsed:.2f} s: {res}"


@pytest.mark.parametrize(
    "code",
    [
        # thirteenth pass: an __rmul__ that declines, then the repeat by __index__
        "class N:\n    def __rmul__(self, other):\n        return NotImplemented\n"
        "    def __index__(self):\n        return 10 ** 9\nresult = [0] * N()",
        "class N:\n    def __mul__(self, other):\n        return NotImplemented\n"
        "    def __index__(self):\n        return 10 ** 9\nresult = N() * [0]",
        "class N:\n    def __mul__(self, other):\n        return NotImplemented\n"
        "    def __rmul__(self, other):\n        return NotImplemented\n"
        "    def __index__(self):\n        return 10 ** 9\nx = [None]\nx *= N()",
    ],
)
async def test_a_declined_multiplication_is_checked_before_the_repeat(
    box: Sandbox, code: str
) -> None:
    res = await box.run(code)
    assert res.limit == "memory" and "1000000000 items exceeds" in (res.error or ""), res


async def test_doubling_in_place_stops_at_the_limit_not_at_memory(box: Sandbox) -> None:
    res = await box.run("x = [0]\nfor i in range(40):\n    x += x")
    assert res.limit == "memory" and "exceeds the sandbox limit" in (res.error or ""), res


@pytest.mark.parametrize(
    "code",
    [
        "result = '%(a)s' * 10000 % {'a': 'x' * 100000}",
        # a str subclass is as long as its __str__ says, not as its text
        "class K(str):\n    def __str__(self):\n        return 'y' * 100000\n"
        "result = '%s' * 200 % ((K('a'),) * 200)",
        # sixteenth pass: %b was measured as a number
        "B = b'x' * 5_000_000\nresult = len((b'%b' * 40) % ((B,) * 40))",
    ],
)
async def test_percent_formatting_is_measured_before_it_is_made(box: Sandbox, code: str) -> None:
    """A gigabyte cannot be made here: only the measure taken first says how long it was."""
    res = await box.run(code)
    assert res.limit == "memory" and "formatted string of" in (res.error or ""), res


@pytest.mark.parametrize(
    "code",
    [  # what the measure read is what the formatting writes: asked once
        "class M:\n    n = 0\n    def __getitem__(self, key):\n        M.n += 1\n"
        "        return '' if M.n <= 40 else 'y' * 5_000_000\n"
        "result = len('%(a)s' * 40 % M())",
        "class V:\n    n = 0\n    def __str__(self):\n        V.n += 1\n"
        "        return '' if V.n <= 40 else 'y' * 5_000_000\n"
        "result = len('%s' * 40 % ((V(),) * 40))",
        "class I:\n    n = 0\n    def __index__(self):\n        I.n += 1\n"
        "        return 1 if I.n <= 40 else 10 ** 300_000\n"
        "result = len('%x' * 40 % ((I(),) * 40))",
    ],
)
async def test_percent_formatting_reads_each_field_once(box: Sandbox, code: str) -> None:
    res = await box.run(code)
    assert res.ok and res.value <= 40, res


async def test_what_a_library_puts_in_a_class_later_stays_the_librarys(box: Sandbox) -> None:
    """Pass R: typing.Protocol copies a library base's __init__ into the program's class on
    its first instance; from vars(cls) it took any object as self (it wrote `maps` into the
    sandbox's own statistics.mean)."""
    res = await box.run(
        "import typing, collections\nclass P(typing.Protocol):\n    pass\n"
        "class Q(P, collections.ChainMap):\n    pass\nQ()\n"
        "result = ('__init__' in vars(Q), Q({'a': 1})['a'])"
    )
    assert res.value == [False, 1], res


NUMBER_PARTS_REDEFINED = {
    # seventeenth pass: Fraction's arithmetic reads b.numerator, the guards read the value
    "in_the_class_body": "class F(fractions.Fraction):\n"
    "    numerator = property(lambda self: 4_000_000)\n"
    "result = (fractions.Fraction(3) ** F(1)).numerator.bit_length()",
    "written_later": "class F(fractions.Fraction):\n    pass\n"
    "F.numerator = property(lambda self: 4_000_000)\n"
    "result = (fractions.Fraction(3) ** F(1)).numerator.bit_length()",
    "by_setattr": "class F(fractions.Fraction):\n    pass\n"
    "setattr(F, 'denominator', property(lambda self: 1))",
    "of_an_int": "class I(int):\n    numerator = property(lambda self: 4_000_000)\n"
    "result = (fractions.Fraction(3) ** I(1)).numerator.bit_length()",
    # earlier passes: Fraction.from_float/from_decimal read as_integer_ratio (bound to the
    # stand-in since; refused at the class now)
    "from_float_of_a_lying_float": "class X(float):\n    def as_integer_ratio(self):\n"
    "        return ('1e200000',)\nresult = fractions.Fraction.from_float(X(1.5))",
    "from_decimal_of_a_lying_decimal": "import decimal\nclass X(decimal.Decimal):\n"
    "    def as_integer_ratio(self):\n        return ('1e200000',)\n"
    "result = fractions.Fraction.from_decimal(X(1))",
}


@pytest.mark.parametrize("name", sorted(NUMBER_PARTS_REDEFINED))
async def test_a_number_class_answers_its_parts_as_its_value_does(box: Sandbox, name: str) -> None:
    res = await box.run("import fractions\n" + NUMBER_PARTS_REDEFINED[name])
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert "cannot be redefined" in (res.error or ""), res


async def test_library_code_meets_exact_text_and_honest_numbers(box: Sandbox) -> None:
    """Pass T: re.escape ran a str subclass's translate with re's own table (the program
    rewrote it: the next escape of 10M characters made 200M), capwords joined whatever a
    split answered (200M), and a float subclass's as_integer_ratio written into the
    instance's dict made Fraction(f) 7/3."""
    escape = await box.run(
        "import re\nseen = []\nclass S(str):\n    def translate(self, table):\n"
        "        seen.append(table)\n        return 'x'\n"
        "result = (re.escape(S('a.b')), len(seen))"
    )
    assert escape.value == ["a\\.b", 0], escape
    capwords = await box.run(
        "import string\nclass P:\n    def split(self, sep):\n        return [''] * 2_000_000\n"
        "result = len(string.capwords(P(), 'y' * 100))"
    )
    assert capwords.error_kind == "TypeError", capwords
    ratio = await box.run(
        "import fractions\nclass F(float):\n    pass\nf = F(0.5)\n"
        "try:\n    vars(f)['as_integer_ratio'] = lambda: (7, 3)\nexcept Exception:\n    pass\n"
        "f.note = 'kept'\nresult = (str(fractions.Fraction(f)), f.as_integer_ratio(), f.note)"
    )
    assert ratio.value == ["1/2", [1, 2], "kept"], ratio


async def test_a_number_class_keeps_its_own_arithmetic(box: Sandbox) -> None:
    res = await box.run(
        "import fractions\nclass Money(int):\n    def __add__(self, other):\n"
        "        return Money(int(self) + int(other))\n"
        "class Half(fractions.Fraction):\n    def half(self):\n        return self / 2\n"
        "result = (type(Money(3) + 4).__name__, str(Half(3).half()))"
    )
    assert res.value == ["Money", "3/2"], res


async def test_a_repeat_count_is_checked_before_the_repeat(box: Sandbox) -> None:
    """Asked of ``__index__`` once and checked, not found out from what was built: a list of a
    billion items cannot be built, so only the guard says how many it would have had."""
    res = await box.run(
        "class K:\n    def __index__(self):\n        return 10 ** 9\nresult = [0] * K()"
    )
    assert res.limit == "memory" and "1000000000 items exceeds" in (res.error or ""), res


async def test_type_does_not_hand_out_a_combinatoric_class(box: Sandbox) -> None:
    """Their constructors take a tuple length that only the module's wrappers check."""
    code = "import itertools\nresult = type(itertools.combinations('a', 1))('a', 30_000_000)"
    res = await box.run(code)
    assert (res.ok, res.error_kind) == (False, "TypeError"), res


LEGIT_SIZES = {
    "pow": ("result = 2 ** 1000 % 1000007", pow(2, 1000, 1000007)),
    "repr_and_str_through_super": (
        "class L(list):\n    def __repr__(self):\n        return 'L' + super().__repr__()\n"
        "    def __str__(self):\n        return super().__str__() + '!'\n"
        "result = [repr(L([1, 'a'])), str(L([2]))]",
        ["L[1, 'a']", "L[2]!"],
    ),
    "text_and_bytes_every_way": (  # the spellings pass AJ measured, at ordinary sizes
        "class S(str):\n    def shout(self):\n        return self.upper() + '!'\n"
        "b = 'h\u00e9llo'.encode()\nbad = b'\\xff'\n"
        "result = [str(5), str(b, 'utf-8'), b.decode(), bad.decode('utf-8', 'backslashreplace'),\n"
        "    str(bad, errors='replace'), bytes('x', 'ascii'),\n"
        "    bytes('\u00e9', 'ascii', 'xmlcharrefreplace').decode(),\n"
        "    f'{b!r}', f'{\"\u00e9\"!a}', f'{3.5!s}', S('hi').shout(), S(bad, 'latin-1'),\n"
        "    type('a') is str, isinstance(S(), str), str(), str(object=7), f'{2 + 1=}']",
        [
            "5",
            "h\u00e9llo",
            "h\u00e9llo",
            "\\xff",
            "\ufffd",
            "b'x'",
            "&#233;",
            "b'h\\xc3\\xa9llo'",
            "'\\xe9'",
            "3.5",
            "HI!",
            "\u00ff",
            True,
            True,
            "",
            "7",
            "2 + 1=3",
        ],
    ),
    "fraction_pow": (
        "import fractions\nresult = str(fractions.Fraction(3, 2) ** 20)",
        "3486784401/1048576",
    ),
    "decimal": (
        "import decimal\ndecimal.getcontext().prec = 50\nresult = str(decimal.Decimal(2).sqrt())",
        "1.4142135623730950488016887242096980785696718753769",
    ),
    "ljust": ("result = 'ab'.ljust(5, '.') + str.rjust('c', 3)", "ab...  c"),
    "format": ("result = f'{3.14159:>10.2f}|' + format(42, '08d')", "      3.14|00000042"),
    "percent": ("result = '%5.1f|%-4d|%s' % (2.25, 7, 'x')", "  2.2|7   |x"),
    "factorial": ("import math\nresult = math.factorial(20)", 2432902008176640000),
    "prod": ("import math\nresult = math.prod([1, 2, 3, 4], start=2)", 48),
    "to_bytes": ("result = list((258).to_bytes(2, 'big'))", [1, 2]),
    "fraction_sums": (
        "from fractions import Fraction as F\nh = sum(F(1, k) for k in range(1, 200))\n"
        "result = [h.denominator.bit_length(), str(divmod(F(7, 2), 1)[1]), str(F(1, 3) - 1)]",
        [293, "1/2", "-2/3"],
    ),
    "slices_and_extends": (
        "import collections\nl = [1, 2, 3, 4, 5]\nl[1:3] = [9, 9, 9]\nl[::2] = [0, 0, 0]\n"
        "l[5:2] = 'ab'\nl[::-1] = l[:]\nb = list(b'abc')\nb[1:2] = b'XYZ'\n"
        "b.extend(range(3))\nd = collections.deque(maxlen=3)\nd.extend(range(10 ** 6))\n"
        "d.extendleft([7])\nresult = [l, list(b), list(d)]",
        [[5, "b", "a", 0, 9, 0, 9, 0], [97, 88, 89, 90, 99, 0, 1, 2], [7, 999997, 999998]],
    ),
    "bytes": ("result = list(bytes(3)) + list(bytes([1, 2]))", [0, 0, 0, 1, 2]),
    "isinstance": (
        "import decimal, fractions\n"
        "result = [isinstance(decimal.Decimal(1), decimal.Decimal),"
        " type(fractions.Fraction(1, 2)) is fractions.Fraction, isinstance(b'', bytes),"
        " type(1) is int, type(type(1)) == type(type(2))]",
        [True, True, True, True, True],
    ),
    "modulo": ("result = [17 % 5, 7.5 % 2, -7 % 3]", [2, 1.5, 2]),
    "division": (
        "import fractions\nf = fractions.Fraction(1, 3)\nf /= 2\n"
        "result = [7 / 2, str(f / fractions.Fraction(1, 4)), 9 // 2]",
        [3.5, "2/3", 4],
    ),
    "from_bytes": ("result = int.from_bytes(b'\\x01\\x00', 'big')", 256),
    "format_fields": ("result = '{:>4}|{:<3}|{:^5.1f}'.format(1, 'a', 2.5)", "   1|a  | 2.5 "),
    "dates": (
        "import datetime\nd = datetime.date(1989, 11, 9)\n"
        "result = [d.strftime('%Y-%m-%d %A'), f'{d:%d/%m/%Y}', format(d, '%B'),"
        " datetime.date.strftime(d, '%j')]",
        ["1989-11-09 Thursday", "09/11/1989", "November", "313"],
    ),
    "json_indent": ("import json\nresult = json.dumps({'a': [1, {'b': 2}]}, indent=2)", None),
    "combinatorics": (
        "import itertools, random\nresult = [len(list(itertools.permutations(range(5), 3))),"
        " list(itertools.combinations('abc', 2))[0], len(list(itertools.product('ab', repeat=3))),"
        " len(random.Random(1).sample(range(100), 10))]",
        [60, ["a", "b"], 8, 10],
    ),
    "own_abc_register": (
        "import typing\nclass M(typing.Mapping):\n    def __getitem__(self, k):\n"
        "        return 1\n    def __len__(self):\n        return 0\n"
        "    def __iter__(self):\n        return iter(())\n"
        "class X:\n    pass\nM.register(X)\nresult = isinstance(X(), M)",
        True,
    ),
    "sums": (
        "import itertools, fractions, operator\n"
        "result = [sum(range(10 ** 5)), sum([0.1] * 10), sum([[1], [2]], []),\n"
        "    str(sum([fractions.Fraction(1, 3)] * 3)), sum((True, True), 1),\n"
        "    list(itertools.accumulate([1, 2, 3])), list(itertools.accumulate('abc')),\n"
        "    list(itertools.accumulate([1, 2, 3], operator.mul, initial=2))]",
        [4999950000, sum([0.1] * 10), [1, 2], "1", 3, [1, 3, 6], ["a", "ab", "abc"], [2, 2, 4, 12]],
    ),
    "statistics": (
        "import statistics\nresult = [statistics.mean([1, 2, 3, 4]), statistics.pvariance([1, 3])]",
        [2.5, 1],
    ),
    "big_decimal_answer": (
        "import decimal\nprint('printed')\nresult = decimal.Decimal(2) ** 4000",
        None,  # checked below: the exact digits, as text
    ),
}

# Found by the red-team pass: ordinary class code that the old name rules refused.
FRIENDLY = {
    "identity_by_id": (  # a visited set of nodes (addresses are no secret: hash() gives them)
        "class N:\n    def __init__(self, nxt=None):\n        self.nxt = nxt\n"
        "a = N()\nb = N(a)\na.nxt = b\nseen, n, steps = set(), b, 0\n"
        "while id(n) not in seen:\n    seen.add(id(n))\n    n, steps = n.nxt, steps + 1\n"
        "result = [steps, id(a) == id(a), id(a) != id(b)]",
        [2, True, True],
    ),
    "multiplications_as_python_makes_them": (
        "class M:\n    def __rmul__(self, other):\n        return 'mine'\n"
        "    def __mul__(self, other):\n        return 'mine too'\n"
        "    def __index__(self):\n        return 3\n"
        "class S(str):\n    def __mul__(self, other):\n        return 'str sub'\n"
        "result = ['ab' * M(), M() * 'ab', S('x') * 3, 'ab' * 3, [1] * True]",
        ["mine", "mine too", "str sub", "ababab", [1]],
    ),
    "zone_names": (
        "import datetime\nclass TZ(datetime.tzinfo):\n    def tzname(self, dt):\n"
        "        return 'CET%'\n    def utcoffset(self, dt):\n"
        "        return datetime.timedelta(hours=1)\n    def dst(self, dt):\n        return None\n"
        "d = datetime.datetime(2020, 1, 1, 12, 30, tzinfo=TZ())\n"
        "t = datetime.time(9, 5, tzinfo=TZ())\n"
        "result = [d.strftime('%Y %Z %%Z %z'), format(d, '%H:%M %Z'), f'{d:%Z}',"
        " t.strftime('%H %Z'), datetime.datetime.strftime(d, '%Z'),"
        " datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc).strftime('%Z'),"
        " datetime.datetime(2020, 1, 1).strftime('[%Z]')]",
        ["2020 CET% %Z +0100", "12:30 CET%", "CET%", "09 CET%", "CET%", "UTC", "[]"],
    ),
    "encodings": (
        "result = ['\\u00e9'.encode(), '\\u00e9'.encode('utf-8'), '\\u00e9'.encode('latin-1'),"
        " '\\u00e9'.encode('ascii', 'replace'),"
        " '\\u00e9'.encode(encoding='ascii', errors='xmlcharrefreplace'), str.encode('a'),"
        " len(('x' * 5 * 10 ** 6).encode())]",
        ["b'\\xc3\\xa9'", "b'\\xc3\\xa9'", "b'\\xe9'", "b'?'", "b'&#233;'", "b'a'", 5000000],
    ),
    "joins_and_in_place": (
        "import itertools\nx = 'ab'\nx += 'cd'\ny = [1]\ny += [2]\nz = 7\nz %= 4\n"
        "w = '%d-%s'\nw %= (3, 'q')\n"
        "result = [', '.join(['a', 'b']), '-'.join(str(i) for i in range(3)),"
        " b'+'.join([b'a', bytes(b'b')]), ''.join(itertools.repeat('z', 3)), x, y, z, w,"
        " str.join('/', 'abc')]",
        ["a, b", "0-1-2", "b'a+b'", "zzz", "abcd", [1, 2], 3, "3-q", "a/b/c"],
    ),
    "percent_of_long_bytes": ("result = len(b'%s' % (b'x' * 3000000))", 3000000),
    "percent_formatting": (
        "result = ['%s-%d-%5.2f|%-4s|%x|%c|%r|%%' % ('a', 42, 3.14159, 'b', 255, 65, 'q'),"
        " '%(x)s=%(y)03d' % {'x': 'k', 'y': 7}, b'%s:%d' % (b'ab', 3), '%.3s' % 'abcdef',"
        " '%*d' % (5, 42), '%s' % ([1, 2],), '%s' % 5]",
        ["a-42- 3.14|b   |ff|A|'q'|%", "k=007", "b'ab:3'", "abc", "   42", "[1, 2]", "5"],
    ),
    "regular_expressions": (
        "import re\np = re.compile(r'(\\w+)@(\\w+)')\nm = p.search('mail bob@example now')\n"
        "result = [re.sub(r'(\\w+)', r'<\\1>', 'ab cd'), re.subn('a', 'b', 'aaa'),"
        " p.sub(r'\\2 at \\1', 'x@y and z@w'), m.expand(r'\\g<2>/\\1'),"
        " re.sub('x', lambda m: m.group(0).upper(), 'axbx'),"
        " re.sub('(?P<n>a)', r'[\\g<n>]', 'cat', count=1), re.sub('a', 'b', 'aaa', 2)]",
        ["<ab> <cd>", ["bbb", 3], "y at x and w at z", "example/bob", "aXbX", "c[a]t", "bba"],
    ),
    "translate_and_json": (
        "import json\nt = str.maketrans('ab', 'xy', 'c')\n"
        "result = ['abcab'.translate(t), 'abc'.translate({97: None, 98: 'BB'}),"
        " json.dumps({'a': [1, 2.5, None]}), json.dumps({'b': 1}, separators=(',', ':')),"
        " json.dumps('\u00e9'), json.dumps('\u00e9', ensure_ascii=False)]",
        ["xyxy", "BBc", '{"a": [1, 2.5, null]}', '{"b":1}', '"\\u00e9"', '"\u00e9"'],
    ),
    "typing_named_tuples": (
        "import typing\nP = typing.NamedTuple('P', [('a', int), ('b', str)])\n"
        "class Q(typing.NamedTuple):\n    x: int\n    y: int = 2\np = P(1, 'z')\n"
        "class K:\n    def __index__(self):\n        return 3\n"
        "result = [p._fields, p._asdict(), repr(Q(1)), Q(1)._replace(y=5).y, K() * 'ab']",
        [["a", "b"], {"a": 1, "b": "z"}, "Q(x=1, y=2)", 5, "ababab"],
    ),
    "fstrings": (
        "x = 3.14159\nname = 'pi'\nitems = [1, 2]\nimport datetime\n"
        "d = datetime.date(2024, 3, 5)\n"
        "class A:\n    r = 2.5\n    s = f'{r:.1f}'\n"
        "result = [f'{name}: {x:.2f}', f'{x!r:>10}|{name!s:<5}|', f\"{'a':{'>'}{5}}\","
        " f\"{x:{'.'}{3}f} and {items} {{lit}}\", f\"{f'{x:.1f}':>6}\", f'{name=}',"
        " f'{x=:.1f}', f'{d:%Y-%m-%d}', A.s, f'{1:>{10 ** 6}}'[-3:]]",
        [
            "pi: 3.14",
            "   3.14159|pi   |",
            "    a",
            "3.142 and [1, 2] {lit}",
            "   3.1",
            "name='pi'",
            "x=3.1",
            "2024-03-05",
            "2.5",
            "  1",
        ],
    ),
    "methods_of_every_kind": (
        "class V:\n    def __init__(self, x):\n        self.x = x\n"
        "    def __add__(self, o):\n        return V(self.x + (o.x if isinstance(o, V) else o))\n"
        "    def __radd__(self, o):\n        return V(self.x + o)\n"
        "    def __lt__(self, o):\n        return self.x < o.x\n"
        "    @staticmethod\n    def make(x):\n        return V(x)\n"
        "    @classmethod\n    def zero(cls):\n        return cls(0)\n"
        "    def conv(self, kind):\n        return kind(self.x)\n"
        "result = [sum([V(1), V(2)], V.zero()).x, sorted([V(3), V(1)])[0].x, V.make(5).x,"
        " (V(1) + 2).x, (2 + V(1)).x, V(7).conv(str), V(7).conv(float), V.make.__name__]",
        [3, 1, 5, 3, 3, "7", 7.0, "make"],
    ),
    "fraction_classmethods": (
        "import fractions, decimal\n"
        "result = [str(fractions.Fraction.from_float(0.5)),"
        " str(fractions.Fraction.from_decimal(decimal.Decimal('1.25')))]",
        ["1/2", "5/4"],
    ),
    "library_methods_on_their_own_instances": (
        "import collections\nclass D(collections.Counter):\n    pass\n"
        "c = collections.Counter('ab')\n"
        "result = [D('aab').copy()['a'], collections.Counter.copy(c)['a'], D.copy(D('x'))['x'],"
        " list(collections.OrderedDict.fromkeys('ab', 1)), str.upper('a'),"
        " len(collections.ChainMap.new_child(collections.ChainMap({'a': 1})).maps)]",
        [2, 1, 1, ["a", "b"], "A", 2],
    ),
    "caches_in_every_form": (
        "import functools\nclass A:\n    def __init__(self):\n        self.k = 3\n"
        "    @functools.lru_cache(maxsize=64)\n    def m(self, x):\n        return self.k * x\n"
        "    @classmethod\n    @functools.lru_cache(maxsize=8)\n"
        "    def c(cls, x):\n        return x + 1\n"
        "    @staticmethod\n    @functools.lru_cache(maxsize=8)\n"
        "    def s(x):\n        return x * 2\n"
        "a = A()\nfirst = [a.m(4), a.m(4), A.c(1), a.c(1), A.s(5)]\n"
        "info = [tuple(a.m.cache_info()), tuple(A.c.cache_info()), tuple(A.s.cache_info())]\n"
        "a.m.cache_clear()\n"
        "@functools.lru_cache(4)\ndef f(x):\n    return x\n"
        "@functools.lru_cache(-1)\ndef g(x):\n    return x\n"
        "result = [first, info, tuple(a.m.cache_info()), sorted(k for k in vars(A) if k[0] != '_'),"
        " [f(i % 6) for i in range(12)], tuple(f.cache_info()), f.cache_parameters(),"
        " f.__name__, g(1), tuple(g.cache_info())]",
        [
            [12, 12, 2, 2, 10],
            [[1, 1, 64, 1], [1, 1, 8, 1], [0, 1, 8, 1]],
            [0, 0, 64, 0],
            ["c", "m", "s"],
            [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5],
            [0, 12, 4, 4],
            {"maxsize": 4, "typed": False},
            "f",
            1,
            [0, 1, 0, 0],
        ],
    ),
    "a_counter_read_in_a_repr_and_a_comparison": (  # (pass DF's guard keeps it working)
        "from collections import Counter\nclass Inv:\n    def __init__(self, s):\n"
        "        self.c = Counter(s)\n    def __repr__(self):\n"
        "        return f'Inv({self.c.most_common(1)})'\n    def __lt__(self, other):\n"
        "        return self.c.total() < other.c.total()\n"
        "result = repr(sorted([Inv('aab'), Inv('a'), Inv('abcabc')]))",
        "[Inv([('a', 1)]), Inv([('a', 2)]), Inv([('a', 2)])]",
    ),
    "a_guarded_change_takes_any_keyword": (  # red-team pass DH: the guard's own parameter
        "from collections import OrderedDict\nclass OD(OrderedDict):\n    pass\n"
        "od = OD()\nod.update(_inherited=1, a=2)\nresult = sorted(od)",
        ["_inherited", "a"],
    ),
    "container_subclasses_change_as_in_cpython": (  # (through pass DH's guards)
        "from collections import OrderedDict, ChainMap\nclass LRU(OrderedDict):\n"
        "    def put(self, k, v):\n        self[k] = v\n        self.move_to_end(k)\n"
        "        if len(self) > 2:\n            self.popitem(last=False)\n"
        "c = LRU()\nc.put(1, 1)\nc.put(2, 2)\nc.move_to_end(1)\nc.put(3, 3)\n"
        "c.update({7: 7})\nc.setdefault(8, 8)\nc.pop(7)\nc |= {10: 10}\ndel c[10]\n"
        "class Tags(set):\n    pass\nt = Tags('abc')\nt.update('de')\nt.discard('a')\n"
        "t.remove('b')\nt |= {'z'}\nt -= {'c'}\nt &= {'d', 'e', 'z', 'q'}\nt ^= {'q'}\n"
        "class Scope(ChainMap):\n    pass\ns = Scope({}, {'x': 1})\ns['z'] = 3\ndel s['z']\n"
        "s.update(w=4)\nresult = [list(c.items()), sorted(t), dict(s), s.maps[0]]",
        [[[1, 1], [3, 3], [8, 8]], ["d", "e", "q", "z"], {"x": 1, "w": 4}, {"w": 4}],
    ),
    "cached_properties": (  # as CPython answers (differential corpus v012)
        "from functools import cached_property\ncalls = []\nclass C:\n"
        "    def __init__(self, r):\n        self.r = r\n    @cached_property\n"
        "    def area(self):\n        calls.append(self.r)\n        return 3 * self.r ** 2\n"
        "c = C(2)\nd = C(3)\nresult = [c.area, c.area, d.area, calls, sorted(vars(c)),"
        " C.area.attrname]\nc.area = 5\nresult.append(c.area)\ndel c.area\n"
        "result.append(c.area)",
        [12, 12, 27, [2, 3, 2], ["area", "r"], "area", 5, 12],
    ),
    "caches_of_caches_and_of_methods": (  # red-team pass DE: as CPython answers
        "from functools import cache, lru_cache\nclass C:\n    def m(self, x):\n"
        "        return 10 * x\nclass H:\n    pass\ng = lru_cache(2)(C.m)\nh = H()\n"
        "h.fn = g\ndef f(x):\n    return x\nk = cache(lru_cache(2)(f))\nk(1)\nk(1)\n"
        "result = [h.fn(C(), 2), tuple(k.cache_info()), k.cache_parameters()]",
        [20, [1, 1, None, 1], {"maxsize": 2, "typed": False}],  # (CPython copies the inner's)
    ),
    "caches_on_own_functions": (
        "import functools\n@functools.lru_cache(maxsize=None)\ndef fib(n):\n"
        "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
        "@functools.lru_cache\ndef sq(n):\n    return n * n\n"
        "@functools.cache\ndef cube(n):\n    return n ** 3\n"
        "class A:\n    @functools.lru_cache(maxsize=32)\n"
        "    def m(self, x):\n        return x + 1\n"
        "result = [fib(80), sq(9), cube(3), A().m(1), fib.cache_info().hits > 0]",
        [23416728348467685, 81, 27, 2, True],
    ),
    "super_with_own_classes": (
        "class A:\n    def f(self):\n        return 1\n"
        "class B(A):\n    def f(self):\n        return super().f() + 1\n"
        "class C(B):\n    def g(self):\n        return super(B, self).f()\n"
        "import random\nclass R(random.Random):\n    def pick(self):\n"
        "        return len(super().choices([1, 2], k=3))\n"
        "result = [C().f(), C().g(), R(1).pick()]",
        [2, 1, 3],
    ),
    "super_init": (
        "class Animal:\n    def __init__(self, name):\n        self.name = name\n"
        "class Dog(Animal):\n    def __init__(self, name):\n        super().__init__(name)\n"
        "        self.sound = 'woof'\nd = Dog('rex')\nresult = [d.name, d.sound]",
        ["rex", "woof"],
    ),
    "super_two_args": (
        "class A:\n    def __init__(self):\n        self.x = 1\n"
        "class B(A):\n    def __init__(self):\n        super(B, self).__init__()\n"
        "result = B().x",
        1,
    ),
    "private_attributes": (
        "class Account:\n    def __init__(self):\n        self._balance = 10\n"
        "        self.__pin = 1234\n    def deposit(self, n):\n        self._balance += n\n"
        "        self.__pin += 1\n        return self._balance, self.__pin\n"
        "result = list(Account().deposit(5))",
        [15, 1235],
    ),
    "namedtuple_helpers": (
        "import collections\nP = collections.namedtuple('P', 'x y')\np = P(1, 2)\n"
        "result = [p._asdict(), list(p._replace(x=5)), list(P._fields)]",
        [{"x": 1, "y": 2}, [5, 2], ["x", "y"]],
    ),
    "type_of_a_class": (  # the differential pass: type(int).__name__ was 'StandIn'
        "result = [type(int) is type, type(type(1))(1) is int, type(int).__name__, repr(int)]",
        [True, True, "type", "<class 'int'>"],
    ),
    "typed_namedtuple_names_no_module_of_the_sandbox": (  # pass AE: its repr said
        # tools.sandbox.modules, typing's caller
        "import typing\nP = typing.NamedTuple('P', [('x', int)])\nresult = [repr(P), P(3).x]",
        ["<class '__main__.P'>", 3],  # the program's, as CPython says
    ),
    "type_name": (
        "def f():\n    pass\nresult = [type(1).__name__, type(f).__name__, f.__name__]",
        ["int", "function", "f"],
    ),
    "decimal_traps": (
        "import decimal\nctx = decimal.getcontext()\nctx.traps[decimal.Inexact] = False\n"
        "result = ctx.traps[decimal.Inexact]",
        False,
    ),
    "private_methods_and_class_attributes": (
        "class Stack:\n    _limit = 3\n    def __init__(self):\n        self._items = []\n"
        "    def _full(self):\n        return len(self._items) >= self._limit\n"
        "    def push(self, x):\n        if not self._full():\n            self._items.append(x)\n"
        "        return len(self._items)\n"
        "s = Stack()\nresult = [s.push(1), s.push(2), s.push(3), s.push(4)]",
        [1, 2, 3, 3],
    ),
    "class_name_in_repr_and_aliases": (
        "class P:\n    def __init__(self, x):\n        self.x = x\n"
        "    def __str__(self):\n        return f'{self.__class__.__name__}({self.x})'\n"
        "    __repr__ = __str__\nresult = [repr(P(1)), str(P(2))]",
        ["P(1)", "P(2)"],
    ),
    "main_guard": (
        "def solution():\n    return 6\nif __name__ == '__main__':\n    print(solution())",
        6,
    ),
    "annotations_and_typing": (
        "from typing import List, Optional, Dict\n"
        "def mean(xs: List[float]) -> Optional[float]:\n    total: float = 0.0\n"
        "    for x in xs:\n        total += x\n    return total / len(xs) if xs else None\n"
        "counts: Dict[str, int] = {}\nresult = mean([1.0, 2.0, 6.0])",
        3.0,
    ),
    "function_attributes": (
        "def f():\n    f.calls += 1\n    return f.calls\nf.calls = 0\nf()\nresult = f()",
        2,
    ),
    "chainmap_writes": (
        "import collections\ncm = collections.ChainMap({}, {'a': 1})\ncm['k'] = 2\n"
        "result = dict(cm)",
        {"a": 1, "k": 2},
    ),
    "wraps_and_docs": (
        "import functools\ndef logged(f):\n    @functools.wraps(f)\n"
        "    def inner(*a):\n        return f(*a)\n    return inner\n"
        '@logged\ndef add(a, b):\n    """Add two numbers."""\n    return a + b\n'
        "result = [add(2, 3), add.__name__, add.__doc__]",
        [5, "add", "Add two numbers."],
    ),
    "typing_names_and_named_tuple": (
        "from typing import NamedTuple, Type, ClassVar, List\n"
        "class Point(NamedTuple):\n    x: int\n    y: int = 0\n"
        "class Shape:\n    sides: ClassVar[int] = 4\n"
        "p = Point(1)\nresult = [p.x, p.y, p._asdict(), Shape.sides]",
        [1, 0, {"x": 1, "y": 0}, 4],
    ),
    "slots_dict_vars_and_isinstance_type": (
        "class V:\n    __slots__ = ('a', 'b')\n    def __init__(self):\n"
        "        self.a, self.b = 1, 2\n"
        "class R:\n    def __init__(self):\n        self.x = 3\n"
        "    def __repr__(self):\n        return repr(self.__dict__)\n"
        "result = [V().a, repr(R()), vars(R()), isinstance(int, type), isinstance(1, type)]",
        [1, "{'x': 3}", {"x": 3}, True, False],
    ),
    "dynamic_private_attributes": (
        "class Config:\n    def __init__(self, **kw):\n        for k, v in kw.items():\n"
        "            setattr(self, '_' + k, v)\n"
        "    def get(self, k, default=None):\n        return getattr(self, '_' + k, default)\n"
        "c = Config(a=1, b=2)\nresult = [c.get('a'), c.get('z', 0), hasattr(c, '_b')]",
        [1, 0, True],
    ),
    "sys_recursion_and_exit": (
        "import sys\nsys.setrecursionlimit(100000)\n"
        "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
        "result = [depth(5000), sys.maxsize > 2 ** 31]\nif result[0] != 5000:\n    sys.exit(1)",
        [5000, True],
    ),
    "fraction_and_decimal_subclasses": (
        "import fractions, decimal\nclass Half(fractions.Fraction):\n"
        "    def double(self):\n        return self * 2\n"
        "class Cash(decimal.Decimal):\n    pass\n"
        "result = [str(Half(1, 2).double()), str(Cash('1.50') + 1)]",
        ["1", "2.50"],
    ),
    "private_names_of_own_classes": (
        "class Base:\n    _registry = []\n    def __init__(self):\n"
        "        self._id = len(self._registry)\n"
        "        Base._registry.append(self)\n"
        "class Slotted:\n    __slots__ = ('_v',)\n    def __init__(self, v):\n        self._v = v\n"
        "class Mixin:\n    _unit = 'cm'\n"
        "class Box(Mixin, Base):\n    __secret = 3\n"
        "    def secret(self):\n        return self.__secret\n"
        "b = Box()\nBox._count = 1\n"
        "result = [b._id, b._unit, Box._unit, Box._count, b.secret(), Slotted(7)._v,\n"
        "          sorted(k for k in vars(Box) if not k.startswith('__'))]",
        [0, "cm", "cm", 1, 3, 7, ["_Box__secret", "_count", "secret"]],
    ),
    "super_in_own_classes": (
        "from fractions import Fraction\nclass A:\n    def name(self):\n        return 'a'\n"
        "class B(A):\n    def name(self):\n        return 'b' + super().name()\n"
        "class C(B):\n    def name(self):\n        return 'c' + super(B, self).name()\n"
        "class H(Fraction):\n    def near(self):\n"
        "        return str(super().limit_denominator(9))\n"
        "result = [C().name(), B().name(), H(333, 1000).near()]",
        ["ca", "ba", "1/3"],
    ),
    "hex_of_bytes": (
        "result = [bytes([1, 255]).hex(), bytes(b'ab').hex(':'), bytes.hex(b'\\x10', '-')]",
        ["01ff", "61:62", "10"],
    ),
    "int_subclass": (
        "class Cents(int):\n    def dollars(self):\n        return self / 100\n"
        "result = [Cents(250).dollars(), Cents('ff', 16) + 0, isinstance(Cents(1), int)]",
        [2.5, 255, True],
    ),
    # compatibility pass CF: a compiler directive, and typing's names programs import
    "future_annotations": (
        "from __future__ import annotations, division\nclass Node:\n"
        "    def link(self, other: Node) -> Node:\n        return other\n"
        "result = [type(Node().link(Node())).__name__, 1 / 2]",
        ["Node", 0.5],
    ),
    "typing_names": (
        "from typing import (Counter, Hashable, Sized, Collection, Self, Annotated, TypeAlias,\n"
        "    NoReturn, Never, NewType, overload, final, Text, AbstractSet, MutableSequence)\n"
        "UserId = NewType('UserId', int)\nVector: TypeAlias = list\n@final\nclass Shape:\n"
        "    def scale(self, k: float) -> Self:\n        return self\n@overload\n"
        "def f(x: int) -> int: ...\n@overload\ndef f(x: str) -> str: ...\ndef f(x):\n"
        "    return x * 2\nc: Counter[str] = Counter('hello')\n"
        "result = [UserId(5), f(3), f('a'), isinstance([], Sized), isinstance({}, Collection),\n"
        "    isinstance({1}, Hashable), c.most_common(1), type(Shape().scale(2)).__name__]",
        [5, 6, "aa", True, True, False, [["l", 2]], "Shape"],
    ),
}


@pytest.mark.parametrize("name", sorted(FRIENDLY))
async def test_ordinary_class_code_runs(box: Sandbox, name: str) -> None:
    code, expected = FRIENDLY[name]
    res = await box.run(code)
    assert res.ok, res
    assert res.value == expected


FLIPPING_KEY = (
    "class S(str):\n    n = 0\n    def __hash__(self):\n        return hash(str(self))\n"
    "    def __eq__(self, o):\n        S.n += 1\n        return S.n == 1\n"
)
PRIVATE_ELSEWHERE = {
    # eighth red-team pass: a class dict copied raw into a cache wrapper, and a private name
    # the program wrote first but a library's metaclass replaced
    "cache_of_a_builtin_class": "import functools\nresult = functools.lru_cache(dict).fromkeys",
    "cache_of_a_class": "import functools\nresult = functools.cache(dict)",
    "private_name_a_library_replaced": (
        "import typing\nclass X(typing.Iterable):\n    _abc_impl = 1\nresult = X._abc_impl"
    ),
    "library_private": "import fractions\nresult = fractions.Fraction(1, 2)._numerator",
    "random_private": "import random\nresult = random.Random()._randbelow",
    "dunder_elsewhere": "result = (1).__dict__",
    "name_write": "def f():\n    pass\nf.__name__ = 'g'",
    "private_getattr": "result = getattr(1, '_x')",
    "super_other_dunder": (
        "class S(str):\n    def m(self):\n        return super().__mul__(10)\nresult = S('a').m()"
    ),
    "hook_rebinding": "_getattr_ = getattr",
    "print_rebinding": "_print = 1",
    "temp_rebinding": "_tmp0 = 1",
    "class_write": "class A:\n    pass\nA().__class__ = int",
    "module_name_write": "__name__ = 'x'",
    "renamed_super_on_a_library_object": (
        "import collections\ncm = collections.ChainMap({})\nsuper = lambda *a: cm\n"
        "super().__init__({'x': 1})"
    ),
    "super_on_a_library_object": (
        "import collections\nd = collections.OrderedDict()\n"
        "super(collections.OrderedDict, d).__setitem__('x', 1)"
    ),
    "getattribute_alias": "class A:\n    __getattribute__ = getattr",
    # Guards.getattr decides by type(obj), not isinstance(), which also asks obj.__class__:
    # the two differ only for an object that lies about its class, and a program's cannot
    "class_property": (
        "class A:\n    @property\n    def __class__(self):\n        return ValueError"
    ),
    "class_in_a_body": "class A:\n    __class__ = ValueError",
    "getattribute_defined": (
        "class A:\n    def __getattribute__(self, name):\n        return ValueError"
    ),
    "class_set_later": "class A:\n    pass\nsetattr(A, '__class__', property(lambda s: int))",
    "fraction_register": (
        "from fractions import Fraction\nclass U:\n    pass\nFraction.register(U)"
    ),
    # found by the sixth red-team pass: a typing alias forwards to its ABC's metaclass
    "abc_register_through_typing": "import typing\ntyping.Mapping.register(int)",
    "abc_register_through_typing_getattr": (
        "import typing\ngetattr(typing.MutableSequence, 'register')(int)"
    ),
    "import_private_slot": "from json import _view_attrs\nresult = _view_attrs",
    "super_bound_to_a_class": (
        "import fractions\nclass P(property):\n    pass\n"
        "super(P, P).__init__(fractions.Fraction.numerator, lambda self: 4242)"
    ),
    "private_through_a_super_subclass": (
        "import random\nclass S(super):\n    pass\nr = random.Random()\n"
        "result = S(random.Random, r)._randbelow"
    ),
    "metaclass_private_on_a_program_class": (
        "import typing\nclass X(typing.Iterable):\n    pass\nresult = X._dump_registry"
    ),
    "dict_of_a_library_object": "import fractions\nresult = fractions.Fraction(1, 2).__dict__",
    "vars_of_a_module": "import math\nresult = vars(math)",
    "wraps_a_shared_class": (
        "import functools, collections\nfunctools.wraps(len)(collections.Counter)"
    ),
    # found by the fifth red-team pass: a super subclass counted as the program's own object
    "library_private_through_a_super_subclass": (
        "from fractions import Fraction\nclass H(Fraction):\n    pass\n"
        "class S(super):\n    _mul = 0\nresult = S(H, H)._mul"
    ),
    "library_dict_through_a_super_subclass": (
        "import random\nclass S(super):\n    pass\nr = random.Random()\n"
        "result = vars(S(random.Random, r))"
    ),
    "exception_attribute_through_super": (
        "try:\n    [].nope\nexcept AttributeError as e:\n    ae = e\n"
        "result = super(Exception, ae).with_traceback"
    ),
    "exception_attribute_through_super_on_own_exception": (
        "class E(Exception):\n    pass\nresult = super(E, E()).with_traceback"
    ),
    "super_on_a_library_instance": (
        "import random\nrng = random.Random()\nresult = super(random.Random, rng).getrandbits(8)"
    ),
    "super_on_a_library_class": (
        "import random\nresult = super(random.Random, random.Random).getrandbits"
    ),
    "metaclass_added_private_name": (
        "from fractions import Fraction\nclass H(Fraction):\n    pass\nresult = H._abc_impl"
    ),
    "library_private_earlier_in_the_mro": (
        "import random\nclass C:\n    _randbelow = 0\nclass D(random.Random, C):\n    pass\n"
        "result = D()._randbelow"
    ),
    "library_slot_over_own_dict": (
        "from fractions import Fraction\nclass H(Fraction):\n    _numerator = 5\n"
        "result = H(1, 2)._numerator"
    ),
    "library_slot_write": (
        "from fractions import Fraction\nclass H(Fraction):\n    pass\nh = H(1, 2)\n"
        "h._denominator = 0"
    ),
    "decimal_through_renamed_super": (
        "import decimal\ndef super(a=None, b=None):\n    return decimal.getcontext()\n"
        "super().__init__(prec=999999999, Emax=999999999, Emin=-999999999)"
    ),
    # pass GG: a key of the program's str subclass in its instance's dict, equal to the name
    # when the guard asked and not when the lookup followed, which went on to the class
    # attribute a library base (ABCMeta, typing's Protocol) put there
    "private_name_by_a_lying_key": (
        FLIPPING_KEY + "import typing\nclass H(typing.Hashable):\n    def __hash__(self):\n"
        "        return 1\nh = H()\nvars(h)[S('_abc_impl')] = 5\nresult = repr(h._abc_impl)"
    ),
    "protocol_private_name_by_a_lying_key": (
        FLIPPING_KEY + "import typing\nclass P(typing.Protocol):\n    pass\nclass Q(P):\n"
        "    pass\nq = Q()\nvars(q)[S('_is_protocol')] = 5\nresult = q._is_protocol"
    ),
}


@pytest.mark.parametrize("name", sorted(PRIVATE_ELSEWHERE))
async def test_private_names_stay_private_to_the_program(box: Sandbox, name: str) -> None:
    res = await box.run(PRIVATE_ELSEWHERE[name])
    assert not res.ok, res
    assert res.error_kind in ("SecurityError", "AttributeError"), res


# An exception the sandbox raised reaches a program's __exit__; its class must not come with
# it, nor a traceback (found by the eighth red-team pass: the class was the real one).
CATCH = (
    "class C:\n    def __enter__(self):\n        return self\n"
    "    def __exit__(self, t, v, tb):\n        global T, E, TB\n"
    "        T, E, TB = t, v, tb\n        return True\n"
)
GRAB = "def grab(t, v, tb):\n    global T, TB\n    T, TB = t, tb\n    return True\n"
FORGED = {
    # pass CQ: a traceback longer than the walk read as none (the interpreter's own, out of
    # memory), after the CO change that counted a missing traceback as out of memory
    "a_traceback_longer_than_the_walk": (
        "e = MemoryError()\nfor i in range(100001):\n    try:\n        raise e\n"
        "    except MemoryError:\n        pass\nraise e",
        "MemoryError",
    ),
    "a_recursion_error_raised_100001_times": (
        "e = RecursionError()\nfor i in range(100001):\n    try:\n        raise e\n"
        "    except RecursionError:\n        pass\nraise e",
        "RecursionError",
    ),
    # twelfth red-team pass: the program's exception thrown into a library's generator
    "throw_into_a_library_generator": (
        "import heapq\ng = heapq.merge([1, 2], [3])\nnext(g)\ng.throw(MemoryError('forged'))",
        "SecurityError",
    ),
    "throw_into_an_unstarted_library_generator": (
        "import heapq\ng = heapq.merge([1, 2], [3])\ng.throw(RecursionError('forged'))",
        "SecurityError",
    ),
    # thirteenth pass: thrown into a finished generator, it came out of C with no frame
    "throw_into_a_finished_generator": (
        "def g():\n    yield 1\nit = g()\nlist(it)\nit.throw(MemoryError('forged'))",
        "SecurityError",
    ),
    "system_error_worded_as_out_of_memory": (
        "raise SystemError('returned NULL without setting an exception: forged')",
        "SystemError",
    ),
    # tenth red-team pass: __exit__ in another form than a function, and a library's throw
    "the_class_through_a_static_exit": (
        GRAB + "class C:\n    def __enter__(self):\n        return self\n"
        "    __exit__ = staticmethod(grab)\nwith C():\n    10 ** (10 ** 8)\nraise T('forged')",
        "TypeError",
    ),
    "the_class_through_a_partial_exit": (
        "import functools\n" + GRAB + "class C:\n    def __enter__(self):\n        return self\n"
        "    __exit__ = functools.partial(grab)\nwith C():\n    10 ** (10 ** 8)\n"
        "raise T('forged')",
        "TypeError",
    ),
    "typing_generator_throw_with_a_traceback": (
        "import typing\nclass F:\n    pass\n"
        "typing.Generator.throw(F(), ValueError, ValueError('forged'), None)",
        "SecurityError",
    ),
    "raise_memory_error": ("raise MemoryError('forged')", "MemoryError"),
    "raise_recursion_error": ("raise RecursionError('forged')", "RecursionError"),
    "throw_memory_error_into_a_generator": (
        "def g():\n    yield 1\nx = g()\nnext(x)\nx.throw(MemoryError('forged'))",
        "SecurityError",
    ),
    "the_class_of_a_refusal": (
        CATCH + "with C():\n    getattr(1, '__x__')\nraise T('forged')",
        "TypeError",  # type() hands out a token for it, not the class
    ),
    "the_class_of_an_int_limit": (
        CATCH + "with C():\n    10 ** (10 ** 8)\nraise T('forged')",
        "TypeError",
    ),
    "the_class_of_a_size_limit": (
        CATCH + "with C():\n    [0] * 10 ** 10\nraise T('forged')",
        "TypeError",
    ),
    "a_refusal_thrown_with_its_traceback": (
        CATCH + "with C():\n    getattr(1, '__x__')\n"
        "def g():\n    yield 1\nx = g()\nnext(x)\nx.throw(T, E, TB)",
        "TypeError",
    ),
    "with_traceback_unbound": (
        CATCH + "with C():\n    getattr(1, '__x__')\n"
        "raise ValueError.with_traceback(ValueError('forged'), TB)",
        "SecurityError",
    ),
}


@pytest.mark.parametrize("name", sorted(FORGED))
async def test_a_program_cannot_forge_a_sandbox_limit(box: Sandbox, name: str) -> None:
    code, kind = FORGED[name]
    res = await box.run(code)
    assert (res.ok, res.error_kind, res.limit) == (False, kind, None), res


async def test_exit_gets_no_traceback_and_no_internal_class(box: Sandbox) -> None:
    code = CATCH + "with C():\n    getattr(1, '__x__')\nresult = [repr(T), TB, E is not None]"
    res = await box.run(code)
    assert res.value == ["<class 'SandboxSecurityError'>", None, True], res
    ordinary = CATCH + "with C():\n    1 / 0\nresult = [T is ZeroDivisionError, TB is None]"
    assert (await box.run(ordinary)).value == [True, True]


async def test_a_caught_limit_raised_again_is_still_the_limit(box: Sandbox) -> None:
    res = await box.run("try:\n    x = [0] * 10 ** 10\nexcept MemoryError as e:\n    raise e")
    assert (res.error_kind, res.limit) == ("MemoryLimit", "memory"), res


async def test_a_program_cannot_pass_for_a_sandbox_outcome(box: Sandbox) -> None:
    (template,) = box._templates
    for name in ("WorkerCrashed", "Timeout", "Crashed", "SandboxBusy", "MemoryLimit"):
        res = await box.run(f"class {name}(Exception):\n    pass\nraise {name}('spoofed')")
        assert (res.ok, res.error_kind, res.limit) == (False, "Exception", None), res
        assert res.error == f"{name}: spoofed (line 3)"
    assert box._templates == {template}, "a program made the service replace its template"


@pytest.mark.parametrize("name", sorted(LEGIT_SIZES))
async def test_guards_let_ordinary_programs_through(box: Sandbox, name: str) -> None:
    code, expected = LEGIT_SIZES[name]
    res = await box.run(code)
    assert res.ok, res
    if name == "big_decimal_answer":
        assert res.value == str(decimal.Decimal(2) ** 4000) and res.stdout == "printed\n"
    elif name == "json_indent":
        assert res.value == json.dumps({"a": [1, {"b": 2}]}, indent=2)
    else:
        assert res.value == expected


# -- 4. replies that cannot be turned against the parent ------------------------------------

REPLIES = {
    "lone_surrogate_print": ("print('a\\ud800b')", True),
    "lone_surrogate_result": ("result = ['\\udfff', {'k\\ud800': 1}]", True),
    "huge_int_result": ("result = 10 ** 4999", True),
    "lying_repr": (
        "class R:\n    def __repr__(self):\n        return 'x' * (10 ** 7)\nresult = R()",
        True,
    ),
    "repr_not_str": (
        "class R:\n    def __repr__(self):\n        return 5\nresult = [R()]",
        True,
    ),
    "repr_raises": (
        "class R:\n    def __repr__(self):\n        raise ValueError('no')\nresult = {R(): 1}",
        True,
    ),
    "str_subclass_repr": (
        "class S(str):\n    def __str__(self):\n        return 'lie'\n"
        "class R:\n    def __repr__(self):\n        return S('x')\nresult = R()",
        True,
    ),
    "lying_len_result": (LYING_LIST + "result = L(range(50000))", True),  # a bounded repr
    "deep_tuple": ("t = ()\nfor i in range(100000):\n    t = (t,)\nresult = t", False),
    "deep_dict": ("d = {}\nfor i in range(100000):\n    d = {'k': d}\nresult = d", False),
    "unprintable_exception": (
        "class E(Exception):\n    def __str__(self):\n        raise ValueError\nraise E()",
        False,
    ),
    "exception_str_subclass": (
        "class S(str):\n    pass\nclass E(Exception):\n    def __str__(self):\n"
        "        return S('boom')\nraise E()",
        False,
    ),
    "nested_zip": ("z = zip()\nfor i in range(3000000):\n    z = zip(z)\nresult = list(z)", False),
    "nested_tuple_repr": (
        "t = ()\nfor i in range(200000):\n    t = (t,)\nprint(t)",
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(REPLIES))
async def test_replies_are_contained(box: Sandbox, name: str) -> None:
    code, ok = REPLIES[name]
    started = time.perf_counter()
    res = await box.run(code)
    assert time.perf_counter() - started < FAST_S + 1, res
    assert res.ok is ok, res
    for text in (res.stdout, res.value_repr or "", res.error or "", str(res.value)):
        text.encode("utf-8")  # strict: no lone surrogate reached the service
    if not ok:
        assert res.error_kind, res
    assert (await box.run("result = 6 * 7")).value == 42


async def test_control_characters_within_the_limits_travel_whole(box: Sandbox) -> None:
    """Pass R: JSON writes a control character in six bytes; stdout and a repr each within the
    output limit made a frame past its cap, and the run came back as an OutputLimit."""
    res = await box.run(
        "class R:\n    def __repr__(self):\n        return '\\x01' * 65000\n"
        "print('\\x01' * 65000)\nresult = R()"
    )
    assert res.ok and res.stdout == "\x01" * 65000 + "\n", res.error
    assert res.value_repr == "\x01" * 65000


async def test_a_huge_int_travels_as_text_and_fast(box: Sandbox) -> None:
    started = time.perf_counter()
    res = await box.run("result = 10 ** 4999")
    assert time.perf_counter() - started < 0.5
    assert res.value == "1" + "0" * 4999


# -- 5. the service process is untouched by everything above --------------------------------


async def test_the_service_process_keeps_its_scheduling() -> None:
    """Run last in this module: the attacks above ran against this process's children."""
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0
    assert os.sched_getaffinity(0) == set(range(os.cpu_count() or 1))


async def test_super_cannot_be_a_base(box: Sandbox) -> None:
    # A super object reads another object's attributes; a class of the program deriving from
    # it would count as the program's own (fifth red-team pass). Other layers hold too.
    res = await box.run("class S(super):\n    pass")
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert "super cannot be subclassed" in (res.error or "")


@pytest.mark.parametrize(
    ("name", "rule", "kind"),
    [
        ("open", "file access", "NameError"),
        ("compile", "compiling code", "NameError"),
        # at the end of its input, as CPython's is: ``except EOFError`` falls back (pass FI)
        ("input", "no input", "EOFError"),
    ],
)
async def test_a_withheld_builtin_names_its_rule(
    box: Sandbox, name: str, rule: str, kind: str
) -> None:
    """From issue 15: "NameError: name 'open' is not defined" read as a bug to retry."""
    res = await box.run(f"x = {name}('1')")
    assert (res.ok, res.error_kind) == (False, kind), res
    assert rule in (res.error or "") and "in the sandbox" in (res.error or ""), res


async def test_a_program_with_no_input_to_read_goes_on(box: Sandbox) -> None:
    """Differential pass FI: ``input = sys.stdin.readline`` at the top of a program that
    never reads failed the whole program, and ``except EOFError:`` around ``input()`` never
    ran its fallback (a NameError went past it)."""
    code = (
        "import sys\ninput_line = sys.stdin.readline\ntry:\n    n = int(input('n? '))\n"
        "except (EOFError, ValueError):\n    n = 7\n"
        "result = [n, input_line(), sys.stdin.read(), list(sys.stdin), sys.stdin.readlines()]"
    )
    res = await box.run(code)
    assert res.value == [7, "", "", [], []], res


@pytest.mark.parametrize(
    "call",
    ["p.getter(None)", "p.setter(None)", "p.deleter(None)", "property.getter(p, None)"],
)
async def test_a_property_is_never_copied_with_none(box: Sandbox, call: str) -> None:
    """Pass CZ: each ``getter(None)`` took a reference from None (CPython 3.11.7,
    gh-115618); 20,000 of them freed it and killed the run as "C code recursing"."""
    res = await box.run(
        f"class P(property):\n    pass\np = P()\nfor i in range(30000):\n    {call}"
    )
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert "(None) is not available" in (res.error or ""), res


# Pass DD: CPython's C lru_cache keeps pointers into its entries while it compares keys, and a
# key's __eq__ that called the same cached function again corrupted it (SIGSEGV in 3.11-3.13,
# gh-94879), from typing's own caches and from the program's bounded @lru_cache. The template
# makes typing's caches pure-Python (tools/sandbox_lru.py): a re-entry may leave one
# inconsistent (a KeyError), never crash. The program's bounded caches are never re-entered
# (tools/sandbox/caches.py): a call from their middle goes to an unbounded cache beside them.
_PROGRAMS_CACHE = """\
import functools, random
rnd = random.Random(SEED)
depth = [0]
@functools.lru_cache(SIZE)
def f(k):
    return k.v
class K:
    def __init__(self, v):
        self.v = v
    def __hash__(self):
        return self.v % 100
    def __eq__(self, o):
        if depth[0] < 3 and rnd.random() < 0.7:
            depth[0] += 1
            try:
                for _ in range(rnd.randrange(4)):
                    f(K(rnd.randrange(400)))
            finally:
                depth[0] -= 1
        return isinstance(o, K) and o.v == self.v
for i in range(300):
    f(K(rnd.randrange(400)))
result = 'survived'
"""
LRU_REENTRIES = {
    # (each crashed CPython 3.11.7 with the C cache, six seeds out of six)
    "programs_own_cache_of_128": _PROGRAMS_CACHE.replace("SEED", "1").replace("SIZE", "128"),
    "programs_own_default_cache": _PROGRAMS_CACHE.replace("SEED", "2").replace("(SIZE)", ""),
    "typings_own_cache": """\
import typing, random
rnd = random.Random(2)
depth = [0]
class K:
    def __init__(self, v):
        self.v = v
    def __hash__(self):
        return self.v % 40
    def __eq__(self, o):
        if depth[0] < 3 and rnd.random() < 0.7:
            depth[0] += 1
            try:
                for _ in range(rnd.randrange(4)):
                    typing.Literal[K(rnd.randrange(400))]
            finally:
                depth[0] -= 1
        return isinstance(o, K) and o.v == self.v
for i in range(1500):
    typing.Literal[K(rnd.randrange(400))]
result = 'survived'
""",
}


@pytest.mark.parametrize("name", sorted(LRU_REENTRIES))
async def test_a_cache_re_entered_from_a_key_s_eq_does_not_crash(box: Sandbox, name: str) -> None:
    res = await box.run(LRU_REENTRIES[name])
    assert res.error_kind != "Crashed", res
    assert res.ok or res.error_kind == "KeyError", res
    if name.startswith("programs_"):  # never re-entered: nothing to leave inconsistent
        assert res.ok and res.value == "survived", res


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (  # stored as self.most_common = ... would be: Counter's own code calls it
            "import collections, functools\nclass C(collections.Counter):\n"
            "    @functools.cached_property\n    def most_common(self):\n"
            "        return lambda n=None: [('x' * 10, 1)]\nc = C('ab')\nm = c.most_common",
            "cannot be shadowed on its instance",
        ),
        (
            "import functools, math\nfunctools.cached_property(math.sqrt)",
            "decorates the program's own functions only",
        ),
        (
            "import functools\ndef f(self):\n    return 1\nclass C:\n"
            "    x = functools.cached_property(f)\nC.x.func = print",
            "cannot be modified",
        ),
    ],
)
async def test_a_cached_property_is_the_program_s_own_attribute(
    box: Sandbox, code: str, message: str
) -> None:
    res = await box.run(code)
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert message in (res.error or ""), res


async def test_a_chain_map_copies_an_ordered_dict_subclass_as_its_own_copy_does(
    box: Sandbox,
) -> None:
    """Pass DJ: ChainMap.copy() ran CPython's OrderedDict.copy on the program's subclass,
    whose __getitem__ cleared it while the copy walked its nodes (SIGBUS). The subclass's
    copy() is the sandbox's, whoever calls it: from a list of its keys."""
    res = await box.run(
        "from collections import OrderedDict, ChainMap\nclass P(OrderedDict):\n"
        "    def __getitem__(self, k):\n        v = OrderedDict.get(self, k)\n"
        "        if k == 'k5':\n            self.clear()\n        return v\np = P()\n"
        "for i in range(20):\n    p['k%d' % i] = 'v' * 100\nc = ChainMap(p).copy()\n"
        "d = ChainMap(p) | {}\nresult = [len(c.maps[0]), len(d.maps[0]), type(c.maps[0]).__name__]"
    )
    assert res.ok and res.value == [20, 0, "P"], res


async def test_a_bounded_cache_is_not_cleared_in_its_own_middle(box: Sandbox) -> None:
    """Clearing the list a full cache is walking is the same corruption as re-entering it."""
    res = await box.run(
        "import functools\n@functools.lru_cache(2)\ndef f(k):\n    return 1\n"
        "class K:\n    def __hash__(self):\n        return 1\n"
        "    def __eq__(self, o):\n        f.cache_clear()\n        return False\n"
        "f(K())\nf(K())\nf(K())"
    )
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert "cache_clear() cannot run while the same cache" in (res.error or ""), res


# Red-team pass ED: an alias reads what it lacks from what it stands for, whatever that is;
# the checks were the alias's. A super object past a library class gave the real
# Random.shuffle (it freed a slice list_repr was reading: SIGSEGV) and Random.gauss (an int
# grown past the limit); a library property came from its class.
READ_THROUGH_AN_ALIAS = {
    "super_past_a_library_class": (
        "import typing, random\nclass R(random.Random):\n    pass\n"
        "shuffle = typing.Annotated[super(random.Random, R()), 0].shuffle",
        "super() starts past one of the program's own classes only",
    ),
    "a_library_property_from_its_class": (
        "import collections\np = collections.ChainMap[int].parents",
        "is a library class's property",
    ),
}


@pytest.mark.parametrize("name", sorted(READ_THROUGH_AN_ALIAS))
async def test_an_alias_reads_what_it_stands_for_with_its_checks(box: Sandbox, name: str) -> None:
    code, message = READ_THROUGH_AN_ALIAS[name]
    res = await box.run(code)
    assert (res.ok, res.error_kind) == (False, "SecurityError"), res
    assert message in (res.error or ""), res


# Red-team pass EO: a module's name for a builtin class with a stand-in was the real class
# (typing.Text is str): calling it skipped the stand-in's size checks, 18x the text limit.
BUILTIN_UNDER_ANOTHER_NAME = {
    "joined": "import typing\ns = 'a' * 9000000\nt = typing.Text([s] * 20)",
    "decoded": "import typing\nt = typing.Text(b'\\xff' * 9000000, 'utf-8', 'backslashreplace')",
}


@pytest.mark.parametrize("name", sorted(BUILTIN_UNDER_ANOTHER_NAME))
async def test_a_builtin_class_under_another_name_is_its_stand_in(box: Sandbox, name: str) -> None:
    res = await box.run(BUILTIN_UNDER_ANOTHER_NAME[name])
    assert (res.ok, res.error_kind) == (False, "MemoryLimit"), res
    assert "exceeds the sandbox limit" in (res.error or ""), res


# Red-team pass ES: typing.get_origin, added the same day, read an alias's __origin__ for
# the program: get_origin(Type[int]) was the real type (classes past the class hook, then a
# known use-after-free to SIGSEGV). No function that reads an alias's fields is in the view.
@pytest.mark.parametrize("name", ["get_origin", "get_args", "get_type_hints"])
async def test_no_typing_function_reads_an_aliass_fields(box: Sandbox, name: str) -> None:
    res = await box.run(f"import typing\nT = typing.{name}(typing.Type[int])")
    assert (res.ok, res.error_kind) == (False, "AttributeError"), res
    res = await box.run(f"from typing import {name}")
    assert (res.ok, res.error_kind) == (False, "ImportError"), res


async def test_no_importable_function_answers_what_the_program_could_not_read() -> None:
    """Every module view's callable and every builtin, called with what a program holds (one
    argument, or two where the first names a class or an alias), answers nothing a program
    could not read itself (``answers_scan.py``): a name added to a view later is scanned
    too (the scan finds get_origin and get_args if they are put back)."""
    scan = Path(__file__).with_name("answers_scan.py")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(scan), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=600)
    assert process.returncode == 0
    report = json.loads(out)
    assert report["callables"] >= 400 and report["calls"] >= 100_000, report
    assert report["found"] == [], report["found"]


async def test_a_builtin_class_under_another_name_is_the_same_class(box: Sandbox) -> None:
    res = await box.run(
        "import typing\nresult = [typing.Text is str, {str: 1}.get(typing.Text), "
        "typing.Text(5), isinstance('a', typing.Text), typing.Text.__name__]"
    )
    assert res.value == [True, 1, "5", True, "str"], res


# Red-team pass ER: each group a match hands out is a copy of its part of the text:
# ``m.group(*[1] * 40)`` made 40 copies of a 5M-character group, 200M characters, ok=True.
GROUPS_COPIED = {
    "bound": "m.group(*[1] * 40)",
    "unbound": "re.Match.group(m, *[1] * 40)",
    "groups": "re.match('(' * 40 + 'a+' + ')' * 40 + 'b', 'a' * 5_000_000 + 'b').groups()",
}


@pytest.mark.parametrize("name", sorted(GROUPS_COPIED))
async def test_what_a_match_copies_is_counted(box: Sandbox, name: str) -> None:
    code = "import re\nm = re.match(r'(a+)b', 'a' * 5_000_000 + 'b')\nx = " + GROUPS_COPIED[name]
    res = await box.run(code)
    assert (res.ok, res.error_kind) == (False, "MemoryLimit"), res
    assert "group text of" in (res.error or ""), res


async def test_a_match_answers_as_ever(box: Sandbox) -> None:
    res = await box.run(
        "import re\nm = re.match(r'(?P<y>\\d{4})-(\\d\\d)(x)?', '2024-05 z')\n"
        "s = 'a' * 5_000_000\nw = re.match('((a*))', s)\n"
        "result = [m.group(), m.group(1, 2), m.group('y', 2), m.groups('-'), "
        "m.groupdict(default=0), m[2], re.Match.group(m, 2), len(w.group(1, 2, 1, 2))]"
    )
    assert res.value == [
        "2024-05",
        ["2024", "05"],
        ["2024", "05"],
        ["2024", "05", "-"],
        {"y": "2024"},
        "05",
        "05",
        4,
    ], res


async def test_a_match_refuses_an_unhashable_group_as_cpython_does(box: Sandbox) -> None:
    """CPython looks a group that is no int up among the names: an unhashable one is a
    ``TypeError``, anything else not found an ``IndexError`` (pass EV: both were the
    latter); the program's own ``__eq__`` still never runs."""
    res = await box.run(
        "import re\nm = re.match('(?P<a>x)', 'x')\nclass H:\n    __hash__ = None\nout = []\n"
        "for g in ([1], {1}, H(), 1.5, 'zz'):\n    try:\n        m.group(g)\n"
        "    except Exception as e:\n        out.append(f'{type(e).__name__}: {e}')\n"
        "result = out"
    )
    assert res.value == [
        "TypeError: unhashable type: 'list'",
        "TypeError: unhashable type: 'set'",
        "TypeError: unhashable type: 'H'",
        "IndexError: no such group",
        "IndexError: no such group",
    ], res


async def test_aliases_work_as_ever(box: Sandbox) -> None:
    res = await box.run(
        "import typing, collections\nD = typing.Dict[str, int]\nx = []\n"
        "list[int].append(x, 3)\nc = collections.Counter[str]('abca')\n"
        "result = [D.fromkeys('ab', 0), x, c.most_common(1)]"
    )
    assert res.value == [{"a": 0, "b": 0}, [3], [["a", 2]]], res


async def test_re_takes_int_flags_only(box: Sandbox) -> None:
    """Red-team pass FH: ``re.compile('a', P())`` ran re's ``flags & TEMPLATE`` with the
    program's object, whose ``__and__`` got the real ``RegexFlag`` member: every member,
    and ``|`` writing pseudo-members into the shared enum class's value map. Flags that are
    not an int are refused before re sees them; int subclasses come as the int they hold."""
    code = (
        "import re\ngot = []\nclass P:\n    def __and__(self, o):\n        got.append(o)\n"
        "        return 0\n    __rand__ = __or__ = __ror__ = __and__\nclass I(int):\n    pass\n"
        "out = []\nfor call in (lambda: re.compile('a', P()), lambda: re.search('a', 'a', P()),\n"
        "        lambda: re.sub('a', 'b', 'a', 0, P()), lambda: re.split('a', 'b', flags=P()),\n"
        "        lambda: re.findall('a', 'a', P()), lambda: re.subn('a', 'b', 'a', 0, P())):\n"
        "    try:\n        call()\n    except TypeError as e:\n        out.append(str(e))\n"
        "result = [len(got), out, bool(re.search('A', 'a', re.I | re.M)),\n"
        "          bool(re.search('A', 'a', flags=I(2))), re.sub('a', 'b', 'aA', 0, re.I)]"
    )
    res = await box.run(code)
    assert res.value == [0, ["flags must be an int, not P"] * 6, True, True, "bb"], res


async def test_a_function_the_sandbox_made_has_a_read_only_namespace(box: Sandbox) -> None:
    """Red-team pass FH: ``vars()`` of an ``lru_cache`` of the program's function was the
    real ``__dict__`` of the sandbox's wrapper, which took any key (``_`` names too) past
    the attribute guards. It is read-only now; the program's own functions' are as ever."""
    code = (
        "import functools\ndef f(x):\n    return x\nl = functools.lru_cache(maxsize=4)(f)\n"
        "out = []\nfor name in ('__wrapped__', '_x', 'x'):\n    try:\n"
        "        vars(l)[name] = 1\n        out.append(name)\n    except Exception as e:\n"
        "        out.append(type(e).__name__)\n"
        "def g():\n    pass\nvars(g)['count'] = 3\ng.other = 4\n"
        "result = [out, sorted(vars(g).items()), l(5)]"
    )
    res = await box.run(code)
    assert res.value == [
        ["TypeError"] * 3,  # a read-only proxy's own error, as in CPython (pass FS)
        [["count", 3], ["other", 4]],
        5,
    ], res


async def test_a_read_only_namespace_hands_no_dict_to_a_reflected_operator(box: Sandbox) -> None:
    """Red-team pass FN: ``vars(r) == Grab()`` gave the program's ``Grab.__eq__`` the dict
    behind the read-only mappingproxy (the proxy compares by its dict, which answers
    NotImplemented, and Python asks the other operand with that dict), and ``|`` its
    ``__ror__``: a Random subclass's ``random`` and an lru_cache wrapper's ``__wrapped__``
    were written through it, and re's own group index through ``p.groupindex``. What is
    handed out, by vars() or by a library, is a proxy over a copy."""
    code = (
        "import functools, random\ngot = []\nclass Grab:\n    def __eq__(self, other):\n"
        "        got.append(other)\n        return False\n    def __ror__(self, other):\n"
        "        got.append(other)\n        return {}\n    __hash__ = None\n"
        "class R(random.Random):\n    pass\nr = R(1)\nvars(r) == Grab()\n"
        "got[-1]['random'] = lambda: 'x'\n"
        "l = functools.lru_cache(maxsize=4)(lambda x: x)\nvars(l) | Grab()\n"
        "got[-1]['__wrapped__'] = 1\n"
        "import re\np = re.compile('(?P<a>x)')\np.groupindex == Grab()\ngot[-1]['a'] = 5\n"
        "result = [r.random() != 'x', '__wrapped__' in vars(l), p.groupindex['a'], len(got)]"
    )
    res = await box.run(code)
    assert res.value == [True, False, 1, 3], res


async def test_a_class_s_vars_are_read_only(box: Sandbox) -> None:
    """Pass FQ: ``vars(C)`` of the program's class was a plain dict copy, so
    ``vars(C)['y'] = 2`` was accepted and lost; CPython's is read-only, and so is this one
    now (a proxy over the copy, as an instance's is)."""
    res = await box.run(
        "class C:\n    x = 1\n    def f(self):\n        return 2\n"
        "v = vars(C)\nout = [v['x'], 'f' in C.__dict__, type(v).__name__, dict(v)['x']]\n"
        "try:\n    v['y'] = 2\nexcept TypeError as e:\n    out.append(str(e))\n"
        "result = out + [hasattr(C, 'y')]"
    )  # CPython's own TypeError, which a program can catch (pass FS)
    refused = "'mappingproxy' object does not support item assignment"
    assert res.value == [1, True, "mappingproxy", 1, refused, False], res


async def test_library_caches_are_not_keyed_by_the_programs_objects(box: Sandbox) -> None:
    """Red-team pass FH: ``datetime.strptime`` with a str subclass as its format ran the
    subclass's ``__hash__`` inside ``_strptime``'s module lock and kept it in its cache (one
    that parsed a date there deadlocked the run), and ``typing.overload`` kept what a
    program's own ``__module__``/``__qualname__`` answered in typing's registry. The format
    is taken as the exact str it holds; ``overload`` registers nothing."""
    code = (
        "import datetime, typing\nseen = []\nclass S(str):\n    def __hash__(self):\n"
        "        seen.append(1)\n        return datetime.datetime.strptime('1', '%d').day\n"
        "    def __eq__(self, other):\n        seen.append(2)\n        return True\n"
        "class D(datetime.datetime):\n    pass\n"
        "out = [str(datetime.datetime.strptime(S('5'), S('%d')))]\n"
        "out.append(str(D.strptime('7/4', '%m/%d')))\n"
        "try:\n    datetime.datetime.strptime(5, '%d')\nexcept TypeError as e:\n"
        "    out.append(str(e))\n"
        "@typing.overload\ndef f(x: int) -> int: ...\n@typing.overload\ndef f(x: str) -> str: ...\n"
        "def f(x):\n    return x\ntry:\n    typing.overload(f)()\nexcept NotImplementedError:\n"
        "    out.append('overloaded')\nresult = [seen, out, f(3)]"
    )
    res = await box.run(code)
    assert res.value == [
        [],
        [
            "1900-01-05 00:00:00",
            "1900-07-04 00:00:00",
            "strptime() argument 1 must be str, not int",
            "overloaded",
        ],
        3,
    ], res


async def test_the_typing_views_overload_registers_nothing() -> None:
    """The half of the above a program cannot see: typing's registry stays empty."""
    import typing

    from tools.sandbox.limits import Arithmetic
    from tools.sandbox.modules import ModuleRegistry
    from tools.sandbox.policy import Guards
    from tools.sandbox.standins import Classes

    arith = Arithmetic(max_int_digits=10_000, max_sequence_items=10_000_000)
    overload = ModuleRegistry(Guards(arith, Classes(arith))).importer("typing").overload

    def f() -> None: ...

    with pytest.raises(NotImplementedError):
        overload(f)()
    assert typing.get_overloads(f) == []


async def test_an_attribute_name_of_a_str_subclass_is_the_text_it_holds(box: Sandbox) -> None:
    """Pass FV: an honest ``class Name(str)`` as an attribute name was a TypeError in
    getattr, hasattr, setattr, attrgetter, methodcaller and ``__slots__``, where CPython
    answers. Its text is now read once and only that copy is checked and looked up, so a
    subclass whose ``startswith``, ``__eq__`` and ``__hash__`` lie is refused as its text."""
    res = await box.run(
        "import operator\nclass Name(str):\n    pass\n"
        "class P:\n    def __init__(self):\n        self.x = 1\n    def m(self, a):\n"
        "        return a * 2\np = P()\nsetattr(p, Name('y'), 2)\n"
        "class C:\n    __slots__ = (Name('a'),)\nc = C()\nc.a = 5\n"
        "result = [getattr(p, Name('x')), hasattr(p, Name('x')), p.y,\n"
        "    getattr(p, Name('zz'), 'default'), operator.attrgetter(Name('x'))(p),\n"
        "    operator.methodcaller(Name('m'), 4)(p), c.a, hasattr(p, Name('__init__'))]"
    )
    assert res.value == [1, True, 2, "default", 1, 8, 5, True], res
    lying = (
        "class Lie(str):\n    def startswith(self, prefix, *args):\n        return False\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __hash__(self):\n        return hash('x')\n"
        "class P:\n    x = 1\n"
    )
    for use in (
        "getattr(P, Lie('__subclasses__'))()",
        "getattr((lambda: 0), Lie('__globals__'))",
        "getattr(len, Lie('__self__'))",
        "setattr(P(), Lie('__class__'), int)",
        "delattr(P, Lie('__init__'))",
    ):
        res = await box.run(lying + f"result = {use}")
        assert not res.ok and res.error_kind == "SecurityError", (use, res)
    res = await box.run("result = getattr(1, 2)")
    assert res.error == "attribute name must be string, not 'int' (line 1)", res
