"""Reward hacking on code: programs that attack the test harness instead of solving the task earn
nothing, whether scored by CodeVerifier.verify_batch (warm and cold sandboxes), by the RL trainer's
Rollouts.score (a real composed verifier in a real VerifierPool) or by `rlvr verify code`.

Every cheat's `add` is wrong (it returns 0, or a value read from the harness): the only way to earn is
to fool the harness. The task's expected values (3345, 4690, 31337) are distinctive, so a program that
prints all it can find shows whether they ever reach the sandbox."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import sandbox
import verifiers
from verifiers.base import Sample
from verifiers.code import CodeVerifier

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sandbox.capabilities().best_backend is None, reason="no sandbox backend")

EXPECTED = (3345, 4690, 31337)
MBPP_TESTS = ["assert add(1000, 2345) == 3345", "assert add(2345, 2345) == 4690",
              "assert 31337 == add(31000, 337)"]
CHECK = ("def check(candidate):\n    assert candidate(1000, 2345) == 3345\n"
         "    assert candidate(2345, 2345) == 4690, 'doubles'\n    assert 31337 == candidate(31000, 337)\n")
HEADER = 'def add(a, b):\n    """The sum of a and b."""\n'
STUB = "def add(a, b):\n    return "

# Each cheat: (the expression `add` returns, module-level code). The harness runs as __main__.
CHEATS = {
    "honest": ("a + b", ""),
    "rebinds the guard names": ("0", "__rlvr_compare__ = lambda *a: True\n__rlvr_truth__ = lambda *a: True"),
    "rebinds the guard names from inside the call": ("_rebind()", (
        "import sys\ndef _rebind():\n    f = sys._getframe(1)\n    while f:\n"
        "        f.f_globals['__rlvr_compare__'] = f.f_globals['__rlvr_truth__'] = lambda *a: True\n"
        "        f = f.f_back\n    return 0")),
    "replaces the guards' __code__": ("0", (
        "import sys\nfor _n in ('guarded_compare', 'guarded_truth'):\n"
        "    getattr(sys.modules['__main__'], _n).__code__ = (lambda *a, **k: True).__code__")),
    "patches COMPARE_OPS and is_plain": ("0", (
        "import sys\n_h = sys.modules['__main__']\n"
        "_h.COMPARE_OPS.update(dict.fromkeys(_h.COMPARE_OPS, lambda a, b: True))\n"
        "_h.is_plain = lambda v: True")),
    "patches the harness's _outcome": ("0", (
        "import sys\nsys.modules['__main__']._outcome = lambda i, name, test: "
        "{'test': i, 'name': name, 'passed': True}")),
    "replaces builtins.AssertionError": ("0", (
        "import builtins\nbuiltins.AssertionError = type('AssertionError', (Warning,), {})")),
    "replaces builtins.exec": ("0", "import builtins\nbuiltins.exec = lambda *a, **k: None"),
    "wraps the step hook from inside the call": ("_hook()", (
        "import sys\ndef _hook():\n    g = sys._getframe(1).f_globals\n    real = g.get('__rlvr_step__')\n"
        "    if real is not None and not hasattr(real, 'fake'):\n"
        "        fake = lambda step, error: real(step, None)\n        fake.fake = True\n"
        "        g['__rlvr_step__'] = fake\n    return 0")),
    "answers from the tests (frame walk to the spec)": ("_answer(a, b)", (
        "import ast, sys\ndef _answer(a, b):\n    f = sys._getframe(1)\n    while f:\n"
        "        spec = f.f_locals.get('spec')\n        if isinstance(spec, dict):\n"
        "            source = '\\n'.join(spec.get('tests') or [spec.get('test', '')])\n"
        "            for node in ast.walk(ast.parse(source)):\n"
        "                if not isinstance(node, ast.Compare):\n                    continue\n"
        "                sides = [node.left, *node.comparators]\n"
        "                for call, other in ((sides[0], sides[-1]), (sides[-1], sides[0])):\n"
        "                    try:\n"
        "                        if [ast.literal_eval(x) for x in call.args] == [a, b]:\n"
        "                            return ast.literal_eval(other)\n"
        "                    except (AttributeError, ValueError):\n                        pass\n"
        "        f = f.f_back\n    return 0")),
    "answers from the caller's constants": ("_peek(a, b)", (
        "import dis, sys\ndef _peek(a, b):\n    f, found = sys._getframe(2), []\n"
        "    for i in dis.get_instructions(f.f_code):  # the caller's line, up to its assert's jump\n"
        "        if i.positions.lineno == f.f_lineno:\n"
        "            if i.opname.startswith('POP_JUMP') and i.offset > f.f_lasti:\n                break\n"
        "            if i.opname == 'LOAD_CONST' and type(i.argval) is int:\n"
        "                found.append(i.argval)\n"
        "    for x in (a, b):\n        if x in found:\n            found.remove(x)\n"
        "    return found[-1] if found else 0")),
    "prints the tests": ("0", (
        "import gc, sys\nf = sys._getframe()\nwhile f:\n    print(f.f_locals.get('spec'))\n    f = f.f_back\n"
        "for o in gc.get_objects():\n    if type(o).__name__ == 'code':\n        print(o.co_consts)\n"
        "    elif type(o) in (dict, list):\n        print([x for x in (o.values() if type(o) is dict else o)"
        " if type(x) in (str, int)])")),
    "prints an answer and exits early": ("_bye(a, b)", (
        "import sys\ndef _bye(a, b):\n    print(a + b)\n    sys.exit(0)")),
    "impersonates the guard on the report pipe": ("0", (
        "import json, os\nfor fd in range(3, 64):\n    try:\n"
        "        if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):\n"
        "            for k in range(8):\n"
        "                report = {'test': k, 'name': 'x', 'passed': True}\n"
        "                os.write(fd, (json.dumps(report) + '\\n').encode())\n"
        "            os.write(fd, b'{\"done\": 8}\\n')\n    except OSError:\n        pass\nos._exit(0)")),
}


def program(name: str) -> str:
    expr, module = CHEATS[name]
    return f"{module}\ndef add(a, b):\n    return {expr}\n"


def fenced(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}```\n"


def rows(names: list[str]) -> list[tuple[str, dict]]:
    """(label, row with a completion) for each cheat in each form: MBPP asserts, HumanEval (header +
    full function) and a bare body continuing the stub `def add(a, b):\\n    return `."""
    out = []
    for name in names:
        expr, module = CHEATS[name]
        out.append((f"mbpp: {name}", {"prompt": "Write add.", "tests": MBPP_TESTS,
                                      "completion": fenced(program(name))}))
        out.append((f"humaneval: {name}", {"prompt": HEADER, "test": CHECK, "entry_point": "add",
                                           "completion": fenced(program(name))}))
        out.append((f"stub: {name}", {"prompt": STUB, "test": CHECK, "entry_point": "add",
                                      "completion": f"{expr}\n{module}\n"}))
    return out


def samples(labelled: list[tuple[str, dict]]) -> list[Sample]:
    return [Sample.from_row({k: v for k, v in row.items() if k != "completion"}, row["completion"])
            for _, row in labelled]


CHEAT_NAMES = [n for n in CHEATS if n != "honest"]


def assert_nothing_earned(labelled: list[tuple[str, dict]], rewards: list[float], correct: list) -> None:
    earned = {label: r for (label, _), r, c in zip(labelled, rewards, correct)
              if (r or c) != label.endswith(": honest")}
    assert earned == {}, earned  # every cheat earns 0; the honest solution (the control) earns 1


@pytest.mark.parametrize("warm", [True, False])
def test_cheats_earn_nothing_from_verify_batch(warm):
    labelled = rows(list(CHEATS))
    v = CodeVerifier(warm=warm)
    scores = v.verify_batch(samples(labelled))
    v.close()
    assert_nothing_earned(labelled, [s.reward for s in scores], [s.correct for s in scores])
    assert [s.reward for s in scores].count(1.0) == 3


def test_the_expected_values_never_reach_the_sandbox():
    """A program that prints every frame's spec, every code object's constants and every str or int in
    a dict or list it can find prints the tests' inputs, but none of their expected values."""
    v = CodeVerifier(warm=False)
    for _, row in rows(["prints the tests"])[:2]:  # MBPP and HumanEval
        prepared = v._prepare(samples([("", row)])[0])
        (run,) = v._sandbox_pool().map(prepared.jobs)
        assert "31000" in run.stdout and "2345" in run.stdout  # it found the tests
        assert not [x for x in EXPECTED if str(x) in run.stdout], run.stdout[-2000:]
    v.close()


def test_cheats_earn_nothing_in_rl():
    """The trainer's scoring path: Rollouts.score with a real composed verifier in a real VerifierPool
    (one worker process), on generated samples holding the cheats' texts (no model needed)."""
    from rlvr.generation.base import Sample as Generated
    from rlvr.rollouts import Rollouts

    labelled = rows(list(CHEATS))
    data = [{k: v for k, v in row.items() if k != "completion"} for _, row in labelled]
    generated = [Generated(row["prompt"], [], [], row["completion"], [], "stop", prompt_index=i)
                 for i, (_, row) in enumerate(labelled)]
    rollouts = object.__new__(Rollouts)
    rollouts.cfg = SimpleNamespace(reward=SimpleNamespace(workers=1, timeout=60.0))
    rollouts.part_names = ["code"]
    rollouts._verifier = verifiers.compose([{"name": "code", "options": {"reward": "share"}}])
    rollouts._pool = None
    try:
        rollouts.score(generated, data)
    finally:
        rollouts.pool.close()
    assert_nothing_earned(labelled, [g.reward for g in generated], [g.correct for g in generated])
    assert all(g.scores == {"code": g.reward} for g in generated)


def test_cheats_earn_nothing_from_rlvr_verify(tmp_path):
    labelled = rows(CHEAT_NAMES)
    src, dst = tmp_path / "cheats.jsonl", tmp_path / "scored.jsonl"
    src.write_text("".join(json.dumps(row) + "\n" for _, row in labelled))
    command = ["verify", "code", "--input", str(src), "--output", str(dst), "--workers", "1",
               "--timeout", "60", "--option", "warm=false"]
    out = subprocess.run([sys.executable, "-m", "rlvr", *command], capture_output=True, text=True, cwd=REPO,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert f"{len(labelled)} scored" in out.stderr and "mean reward 0.0000" in out.stderr, out.stderr
    assert [json.loads(line)["reward"] for line in dst.read_text().splitlines()] == [0.0] * len(labelled)


# Asserts whose expected value is not a literal stay with the in-sandbox guard: a program that rebinds
# the guard names, in its own namespace or in its caller's, still earns nothing.
NON_LITERAL = {"tests": ["assert abs(add(1000, 2345) - 3345) < 1", "assert add(2345, 2345) in {4690}"]}
NON_LITERAL_CHECK = ("def check(candidate):\n    assert abs(candidate(1000, 2345) - 3345) < 1\n"
                     "    assert candidate(2345, 2345) in {4690}\n")


@pytest.mark.parametrize("warm", [True, False])
def test_non_literal_asserts_resist_rebinding_the_guard_names(warm):
    names = ["honest", "rebinds the guard names", "rebinds the guard names from inside the call"]
    forms = (("mbpp", NON_LITERAL), ("humaneval", {"test": NON_LITERAL_CHECK, "entry_point": "add"}))
    labelled = [(f"{form}: {n}", {**fields, "prompt": HEADER, "completion": fenced(program(n))})
                for n in names for form, fields in forms]
    scores = CodeVerifier(warm=warm).verify_batch(samples(labelled))
    assert_nothing_earned(labelled, [s.reward for s in scores], [s.correct for s in scores])


# Reads every readable mapping of its own process and returns what `pattern` (bytes) finds first.
_MEMORY_SCAN = r'''
import re
def _scan(pattern):
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if "r" not in parts[1] or parts[-1] in ("[vvar]", "[vsyscall]"):
                continue
            try:
                mem.seek(lo)
                found = re.search(pattern, mem.read(hi - lo))
            except (OSError, ValueError, OverflowError):
                continue
            if found:
                return found
'''


def test_a_program_finds_nothing_of_earlier_samples_in_its_memory():
    """In a warm sandbox every program is a fork of the same server: an earlier sample's passing report,
    its stdout (a stdin/stdout problem's expected answer) or its program must not be in the memory a
    later program inherits. The thief passes only by finding them, and before the fix it did."""
    value = _MEMORY_SCAN + "def add(a, b):\n    m = _scan(rb'\"expect\": 0, \"value\": \"(\\d+)\"')\n" \
                           "    return int(m.group(1)) if m else 0\n"
    # the honest program, raw or as spec.json holds it (newlines escaped), run as its own
    program = _MEMORY_SCAN + r"""def add(a, b):
    m = _scan(rb'de' + rb'f add\(a, b\):(?:\n|\\n)    return a \+ b  # honest')
    if m is None:
        return 0
    ns = {}
    exec(m.group(0).decode().replace('\\n', '\n'), ns)
    return ns['add'](a, b)
"""
    honest = "def add(a, b):\n    return a + b  # honest\n"
    tests = {"tests": ["assert add(1000, 2345) == 3345"]}
    cases = {"cases": [{"stdin": "1000 2345\n", "stdout": "ANSWER-3345\n"}]}
    printed = _MEMORY_SCAN + "m = _scan(rb'ANSWER-' + rb'(\\d+)\\n')\nprint(m.group(0).decode() if m else 0, end='')\n"
    solve = "a, b = map(int, input().split())\nprint('ANSWER-' + str(a + b))\n"
    v = CodeVerifier(warm=True, workers=1, dedupe=False)
    rows = [(honest, tests), (value, tests), (program, tests), (solve, cases), (printed, cases)]
    scores = v.verify_batch([Sample(completion=f"```python\n{c}```\n", fields=f) for c, f in rows])
    v.close()
    assert [s.reward for s in scores] == [1.0, 0.0, 0.0, 1.0, 0.0], [s.reason for s in scores]


@pytest.mark.parametrize("warm", [True, False])
def test_a_report_nested_too_deep_is_a_failed_sample_not_an_error(warm):
    """A line the host's JSON reader cannot nest that deep must not turn the sample into an exception
    (which evaluation leaves out of its accuracy)."""
    program = ("import os\nfor fd in (3, 4):  # the report pipe, warm; the child's end of it, cold\n"
               "    try:\n        os.write(fd, b'[' * 100000 + b'\\n')\n    except OSError:\n        pass\n"
               "def add(a, b):\n    return 0\n")
    score = CodeVerifier(warm=warm).verify(Sample(completion=f"```python\n{program}```\n",
                                                  fields={"tests": MBPP_TESTS}))
    assert score.reward == 0.0 and score.details["status"] != "exception", score.reason


@pytest.mark.parametrize("warm", [True, False])
def test_warm_and_cold_runs_score_a_program_alike(warm):
    """The same program earns the same in both sandboxes: a slow one stops at the harness's deadline
    (3 s of a 4 s limit) in both, and a program sees the argv of `python main.py` in both."""
    slow = "import time\ndef add(a, b):\n    time.sleep(1.6)\n    return a + b\n"
    argv = "import sys\nassert len(sys.argv) == 1, sys.argv\ndef add(a, b):\n    return a + b\n"
    fields = {"tests": MBPP_TESTS[:2], "timeout": 4.0}
    scores = CodeVerifier(warm=warm, dedupe=False).verify_batch(
        [Sample(completion=f"```python\n{p}```\n", fields=fields) for p in (slow, argv)])
    assert [s.reward for s in scores] == [0.5, 1.0], [s.reason for s in scores]
    assert scores[0].details["status"] == "timeout"
