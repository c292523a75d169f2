"""The corpora the project carries (``tests/corpora``): legitimate programs give their
answers, real LLM-written PAL programs give their targets, and no attack gets anywhere.

A missing corpus fails (``tests/corpora.py``). Attack programs are only ever run through the
sandbox under test.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import time
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.corpora import corpus_ids, load_json, load_jsonl
from tools.sandbox import Sandbox, SandboxConfig
from tools.sandbox.template import SPARES

pytestmark = pytest.mark.asyncio(loop_scope="module")

LEGIT = "sandbox_legit.json"
DIFFERENTIAL = "sandbox_differential.json"
# Programs of the differential corpus that run differently in the sandbox, by design: what
# each one uses, and the word for it in docs/sandbox.md ("What a program cannot use, in full").
BY_DESIGN = {
    "g019_repr_ascii": "bytearray: not available",
    "n018_sieve_bytearray": "bytearray: not available",
    "s002_bytearray_slices": "bytearray: not available",
    "a014_sieve_bytearray": "bytearray: not available",
    "b012_bytes_manipulation": "bytearray: not available",
    "ao_d004_bytearray_ops": "bytearray: not available",
    "ao_d007_str_from_bytes_enc": "bytearray: not available",
    "ao_d008_decode_default_and_kwargs": "bytearray: not available",
    "ao_d017_json_bytes_loads": "bytearray: not available",
    "ao_e081_bytes_decode_unbound": "bytearray: not available",
    "ao_e082_bytes_arg_errors": "bytearray: not available",
    "ao_e086_str_of_bytes_variants": "bytearray: not available",
    "ao_f032_bytes_kwargs": "bytearray: not available",
    "ao_f033_bytearray_mutation": "bytearray: not available",
    "c031_class_registry": "__init_subclass__: names starting with _",
    "t008_type_name_checks": "__module__: names starting with _",
    "s023_string_template": "string.Template: not in the module view",
    "s026_calendar_text": "calendar.month/TextCalendar: not in the module view",
    "v013_singledispatch": "functools.singledispatch: not in the module view",
    "s024_textwrap": "textwrap: not one of the 22 modules",
    "v015_enum_module": "enum: not one of the 22 modules",
    "n022_bigint_digits": "int() of 10,000 digits: CPython stops at 4,300, the sandbox answers",
    "a057_fast_doubling_fib": "str() of 6,270 digits: CPython stops at 4,300, the sandbox answers",
    "c002_inheritance_chain_super": "Puppy.__mro__: names starting with _",
    "c028_eq_and_ne_default_hash": "Tag.__hash__: names starting with _",
    "c031_exception_hierarchy_custom": "e.__cause__: names starting with _",
    "c034_slots_and_defaults": "P3.__slots__ outside the class body: names starting with _",
    "c029_mixins_multiple_inheritance": "C.mro(): mro is not available",
    "e045_mro_method": "C.mro(): mro is not available",
    "c022_setattr_getattr_dynamic": "__getattr__/__setattr__ on a class: not definable",
    "e007_getattr_delegation": "__getattr__ on a class: not definable",
    "e015_dict_subclass_missing_attr": "__getattr__ on a class: not definable",
    "e002_int_subclass_new": "__new__ on a class: not definable",
    "e003_singleton_new": "__new__ on a class: not definable",
    "e018_str_subclass": "__new__ on a class: not definable",
    "e044_type_three_arg": "type() with three arguments: not available",
    "d023_random_shuffle_stable": "random.getstate/setstate: not in the module view",
    "e012_class_based_decorator": "functools.update_wrapper: not in the module view",
    "b035_bytes_struct_manual": "memoryview: not a builtin here",
    "e041_memoryview_bytes": "memoryview: not a builtin here",
    "e033_abc_module": "abc: not one of the 22 modules",
    "di_015_lru_over_staticmethod_order": "lru_cache(staticmethod): the program's own functions",
    "di_189_lru_over_staticmethod": "lru_cache(staticmethod): the program's own functions only",
    "di_122_counter_copy_and_clear_in_eq": "taking items out of a dict while a comparison runs",
    "di_131_counter_iadd_nothing_dropped_in_lt": "Counter += (may drop) while a comparison runs",
    "di_148_attr_store_errors_builtin_objects": "writes to anything but the program's own objects",
    "di_190_cache_recursion_bounded_deep_limit_raised": "a bounded lru_cache: half the depth",
    "di_191_cache_recursion_unbounded_beyond_10000": "sys.setrecursionlimit up to 10,000",
    "di_192_cache_fn_default_limit_980": "the sandbox answers where CPython's recursion stops",
    "di_221_userdict_lowercase_keys": "collections.UserDict: not in the module view",
}
GSMHARD = "pal_programs_gsmhard.jsonl"
ATTACKS = "sandbox_attacks_dev.json"
ATTACK_TIMEOUT_S = 2.0
SLACK_S = 2.0
SECRET_VAR = "REACTPAL_SANDBOX_TEST_SECRET"
SECRET = f"sk-canary-{secrets.token_hex(12)}"
# Categories whose programs must fail outright: a success would mean the attack worked.
MUST_FAIL = {"escape", "import", "filesystem", "network", "process", "introspection", "info-leak"}
PWNED_FILES = [
    Path("/tmp/pal_sandbox_pwned.txt"),
    Path("/tmp/pal_sandbox_pwned_sh"),
    Path("/tmp/pal_sandbox_atexit"),
]
PROBE = """
import random, decimal, fractions, math, string, datetime
print("probe")
result = (str(decimal.Decimal(1) / 7), decimal.getcontext().prec, math.pi, string.digits,
          '{:.2f}'.format(2 / 3), repr(fractions.Fraction(1, 3)), random.Random(1).random(),
          datetime.datetime(2020, 1, 2).strftime('%m/%d/%Y'), 2 ** 64, hasattr(ValueError, 'x'))
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    """Legitimate programs are held to the production deadline (the shared fixture's 2 s made
    a 10**6-step loop fail on a loaded machine); the attacks below have their own sandbox."""
    config = SandboxConfig(workers=2, queue_size=64)
    async with Sandbox(config) as sb:
        yield sb


@cache
def _by_id(name: str) -> dict[str, dict[str, Any]]:
    rows = load_jsonl(name) if name.endswith(".jsonl") else load_json(name)
    return {str(row["id"]): row for row in rows}


@pytest.mark.parametrize("case_id", corpus_ids(LEGIT))
async def test_legit_program_gives_expected(sandbox: Sandbox, case_id: str) -> None:
    case = _by_id(LEGIT)[case_id]
    res = await sandbox.run(case["code"])
    assert res.ok, f"{res.error_kind}: {res.error}"
    assert res.value_repr == case["expected"]


@pytest.mark.parametrize("case_id", corpus_ids(DIFFERENTIAL))
async def test_a_program_answers_as_cpython_does(sandbox: Sandbox, case_id: str) -> None:
    """Ordinary LLM-style programs (classes, collections, numbers, typing, slices, graphs,
    dynamic programming, parsing, operator overloading, ...):
    value, output and error kind as CPython 3.11 gave them when the corpus was written,
    except where the README says the sandbox differs (``BY_DESIGN``)."""
    case = _by_id(DIFFERENTIAL)[case_id]
    cpython = case["cpython"]
    res = await sandbox.run(case["code"])
    if case_id in BY_DESIGN:
        assert (res.ok, res.value) != (cpython["ok"], cpython.get("value")), BY_DESIGN[case_id]
        return
    assert res.ok == cpython["ok"], f"{res.error_kind}: {res.error}"
    assert res.stdout == cpython["stdout"]
    if res.ok:
        assert res.value == cpython["value"]
    else:
        assert res.error_kind == cpython["error_kind"], res


@pytest.mark.parametrize("case_id", corpus_ids(GSMHARD))
async def test_gsmhard_program_gives_target(sandbox: Sandbox, case_id: str) -> None:
    case = _by_id(GSMHARD)[case_id]
    res = await sandbox.run(case["program"])
    assert res.ok, f"{res.error_kind}: {res.error}"
    assert isinstance(res.value, (int, float)) and not isinstance(res.value, bool)
    assert math.isclose(res.value, float(case["target"]), rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> str:
    content = f"canary-{secrets.token_hex(12)}"
    (tmp_path_factory.mktemp("canary") / "secret.txt").write_text(content)
    return content


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def attack_sandbox() -> AsyncIterator[Sandbox]:
    os.environ[SECRET_VAR] = SECRET  # present in the service process, must not reach a worker
    try:
        # One worker: the probe after each attack is the very next run, wherever possible on
        # the worker that ran the attack.
        async with Sandbox(SandboxConfig(workers=1, timeout_s=ATTACK_TIMEOUT_S)) as sb:
            yield sb
    finally:
        os.environ.pop(SECRET_VAR, None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def baseline(attack_sandbox: Sandbox) -> Any:
    res = await attack_sandbox.run(PROBE)
    assert res.ok, res
    return res


def _host_secrets(canary: str) -> list[str]:
    found = [SECRET, canary, "root:x:0:0", "uid=0(root)"]
    hostname = Path("/etc/hostname")
    if hostname.is_file() and len(hostname.read_text().strip()) >= 6:
        found.append(hostname.read_text().strip())
    return found


def _depth_below(pid: int, roots: set[int]) -> int:
    depth = 0
    while pid not in roots and depth < 50:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return 0  # gone meanwhile
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        depth += 1
    return depth


def sandbox_processes(sandbox: Sandbox) -> dict[int, str]:
    """Every process below the sandbox's templates: pid -> command name."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            names[int(entry.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = {t.process.pid for t in sandbox._templates}
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found} - found
        grew = bool(below)
        found |= below
    return {pid: names.get(pid, "?") for pid in found}


@pytest.mark.parametrize("case_id", corpus_ids(ATTACKS))
async def test_attack_gets_nowhere(
    attack_sandbox: Sandbox, baseline: Any, canary: str, case_id: str
) -> None:
    case = _by_id(ATTACKS)[case_id]
    for path in PWNED_FILES:
        assert not path.exists(), f"{path} exists before the attack"
    started = time.perf_counter()
    res = await attack_sandbox.run(case["code"])
    elapsed = time.perf_counter() - started

    assert elapsed < ATTACK_TIMEOUT_S + SLACK_S, f"ran {elapsed:.1f} s"
    text = json.dumps(dataclasses.asdict(res))
    for secret in _host_secrets(canary):
        assert secret not in text
    if case["category"] in MUST_FAIL:
        assert not res.ok, f"attack succeeded: {res}"
    # Per template: its keeper, the namespace's middle process, the template itself, the
    # children it forked for the next runs and the used ones not yet reaped; nothing the
    # attack started: no process is more than three levels below the keeper.
    processes = sandbox_processes(attack_sandbox)
    assert len(processes) <= (3 + SPARES + 2) * len(attack_sandbox._templates), processes
    keepers = {t.process.pid for t in attack_sandbox._templates}
    assert max(_depth_below(pid, keepers) for pid in processes) <= 3, processes
    assert set(processes.values()) <= {"python", "python3", "python3.11"}, processes
    for path in PWNED_FILES:
        assert not path.exists()

    after = await attack_sandbox.run(PROBE)
    assert (after.ok, after.value, after.stdout) == (True, baseline.value, baseline.stdout)
