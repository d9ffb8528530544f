"""The code verifier on real data rows (MBPP, HumanEval, CodeContests) and its reward rules, run for real
in the sandbox."""
from __future__ import annotations

import gzip
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import time

import pytest

import sandbox
import verifiers
from verifiers import code_harness as harness
from verifiers.base import Sample, VerifierError
from verifiers.code import CodeVerifier
from verifiers.code_compare import same_output
from verifiers.code_expect import decode, hide_expected, judge_expected
from verifiers.code_extract import extract_program

DATA = "/work/shared/data"
pytestmark = pytest.mark.skipif(sandbox.capabilities().best_backend is None, reason="no sandbox backend")


def fenced(code: str, lang: str = "python") -> str:
    return f"Here is my solution.\n```{lang}\n{code}\n```\nDone."


def mbpp_rows() -> dict[int, dict]:
    with open(f"{DATA}/mbpp/mbpp.jsonl") as f:
        return {r["task_id"]: r for r in map(json.loads, f)}


def humaneval_rows() -> list[dict]:
    with gzip.open(f"{DATA}/humaneval/HumanEval.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def humaneval_sample(row: dict, completion: str) -> Sample:
    return Sample(completion=completion,
                  fields={k: row[k] for k in ("prompt", "test", "entry_point")})


def contest_row(name_prefix: str) -> dict:
    with open(f"{DATA}/code_contests/code_eval_code_contests.jsonl") as f:
        return next(r for r in map(json.loads, f) if json.loads(r["labels"])["name"].startswith(name_prefix))


# ------------------------------------------------------------------ expected values kept on the host


def test_hide_expected_rewrites_top_level_literal_asserts_only():
    source = ("assert f(1) == [1, 'a']\nassert 2 == g(x)  # kept\nassert f(y) == y\nassert f() != 1\n"
              "assert f() == 1 == 1\nif x:\n    assert f() == 3\nassert 1 == 1\nassert f(), 'm'\n"
              "s = 'é'; assert h('é',\n    2) == {3: ('ü',)}, 'msg'\n")
    out, found = hide_expected(source, lambda tree: tree.body, 5)
    assert out == ("assert __rlvr_expect__(5, (f(1)))\nassert __rlvr_expect__(6, (g(x)))  # kept\n"
                   "assert f(y) == y\nassert f() != 1\nassert f() == 1 == 1\nif x:\n    assert f() == 3\n"
                   "assert 1 == 1\nassert f(), 'm'\ns = 'é'; assert __rlvr_expect__(7, (h('é',\n    2)))\n")
    assert found == [(0, [1, "a"]), (1, 2), (9, {3: ("ü",)})]
    assert hide_expected("assert f() == 1\r\nassert g() == 2\r\n", lambda tree: tree.body) == (
        "assert __rlvr_expect__(0, (f()))\r\nassert __rlvr_expect__(1, (g()))\r\n", [(0, 1), (1, 2)])
    assert hide_expected("assert (", lambda tree: tree.body) == ("assert (", [])
    check = "def check(c):\n    assert c(1) == 2\n    for x in (1,):\n        assert c(x) == 2\n"
    hidden = check.replace("assert c(1) == 2", "assert __rlvr_expect__(0, (c(1)))")
    assert hide_expected(check, lambda tree: tree.body[0].body) == (hidden, [(0, 2)])


PLAIN = [0, -0.0, 1.5, -math.inf, math.inf, complex(1, math.inf), complex(math.nan, -1), complex(0, math.nan),
         complex(0, math.inf), "s\n'", b"\x00",
         bytearray(b"x"), bytearray(), None, True, [1, (2,)], {1: {2}}, set(), frozenset(), frozenset({1, 2}),
         {frozenset({1})}, range(3), range(1, 9, 2), {"a": [range(2), math.nan]}, 10 ** 100]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_decode_reads_back_every_plain_repr(value):
    got = decode(repr(value))
    assert type(got) is type(value) and repr(got) == repr(value)


@pytest.mark.parametrize("text, why", [
    ("f()", "unexpected call of f"), ("(lambda: 1)()", "unexpected call of an expression"),
    ("__import__('os')", "unexpected call of __import__"), ("x", "unexpected name 'x'"),
    ("bytearray(1000000000000)", "unexpected arguments of bytearray"),
    ("frozenset(range(1000000000000))", "unexpected arguments of frozenset"),
    ("frozenset({1}, {2})", "unexpected arguments of frozenset"),
    ("range(1.5)", "unexpected arguments of range"),
    ("range(1, 2, 3, 4)", "unexpected arguments of range"), ("set([1])", "unexpected arguments of set"),
    ("set(**{})", "unexpected call of set"), ("1 +", "unreadable value (SyntaxError)"),
    ("[" * 1000, "unreadable value (SyntaxError)"), ("9" * 5000, "unreadable value (SyntaxError)"),
    ("'" + "x" * harness.MAX_VALUE_CHARS + "'", "value too long"), ("2 ** 3", "malformed node"),
    ("1" * 400 + "+1j", "unreadable value (OverflowError)"),
])
def test_decode_refuses_what_is_no_plain_repr(text, why):
    with pytest.raises(ValueError, match=why.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        decode(text)
    assert decode("'" + "x" * (harness.MAX_VALUE_CHARS - 2) + "'") == "x" * (harness.MAX_VALUE_CHARS - 2)


def test_judge_expected_needs_every_reported_value_equal():
    tests = [{"passed": True}, {"passed": True}, {"passed": False, "error": "E"}, {"passed": True},
             {"passed": True}, {"passed": True}]
    expected = [(0, 3), (1, [1]), (2, 5), (3, 7), (3, 8), (4, 1.0), (5, "x")]
    values = [[0, "3"], [0, "3"], [1, "[1]"], [1, "[2]"], [2, "5"], [3, "7"], [True, "8"], ["4", "8"], [4],
              [5, "True"], [6, "x"], 7]
    judge_expected(tests, values, expected)
    assert tests == [{"passed": True}, {"passed": False, "error": "AssertionError: got [2]"},
                     {"passed": False, "error": "E"},
                     {"passed": False, "error": "AssertionError: no value was reported"},
                     {"passed": True},  # True == 1.0, as the assert itself would have it
                     {"passed": False, "error": "AssertionError: unexpected name 'x'"}]
    unreported = [{"passed": True}, {"passed": True}]
    judge_expected(unreported, {"0": "1"}, [(0, 1)])
    assert unreported == [{"passed": False, "error": "AssertionError: no value was reported"},
                          {"passed": True}]


def _run(spec: dict) -> list[dict]:
    reports = []
    harness.run_tests(spec, reports.append)
    sys.modules.pop("solution", None)
    return reports


def test_the_harness_reports_plain_values_of_hidden_asserts():
    n = harness.MAX_VALUE_CHARS - 2  # the longest str whose repr may be reported
    spec = {"kind": "mbpp", "program": "class A:\n    pass\ndef f(x):\n    return x + 1",
            "setup": "assert f(1) == 2\nK = 2",
            "tests": ["assert __rlvr_expect__(0, (f(K)))", "assert __rlvr_expect__(1, (A()))",
                      f"assert __rlvr_expect__(2, ('x' * {n + 1}))",
                      f"assert __rlvr_expect__(3, ('x' * {n}))"]}
    reports = _run(spec)
    assert reports[:4] == [{"expect": 0, "value": "3"}, {"test": 0, "name": "test_0", "passed": True},
                           {"test": 1, "name": "test_1", "passed": False,
                            "error": "AssertionError: refused to report a A"},
                           {"test": 2, "name": "test_2", "passed": False,
                            "error": f"AssertionError: value too long to report ({n + 3} characters)"}]
    assert reports[4:] == [{"expect": 3, "value": repr("x" * n)},
                           {"test": 3, "name": "test_3", "passed": True}, {"done": 4}]


REBINDS = ("import sys\ndef f(x):\n    sys._getframe(1).f_globals['__rlvr_compare__'] = lambda *a: True\n"
           "    globals()['__rlvr_truth__'] = lambda *a: True\n    return 0\n"
           "__rlvr_compare__ = lambda *a: True")


def test_a_program_cannot_rebind_the_guard_names_of_later_tests():
    """Rebinding a guard name in the program's namespace reaches no test; rebinding it in the tests'
    namespace (through a caller's frame) reaches no later test, nor, in HumanEval, a later step."""
    mbpp = _run({"kind": "mbpp", "program": REBINDS, "tests": ["assert f(1) == 5", "assert f(2) == 7",
                                                              "assert f(3) or __rlvr_truth__(0)"]})
    assert [r.get("passed") for r in mbpp] == [False, False, False, None]
    check = "def check(candidate):\n    assert candidate(1) == 5\n    assert candidate(2) == 7\n"
    humaneval = _run({"kind": "humaneval", "program": REBINDS, "test": check, "entry_point": "f"})
    assert [r.get("passed") for r in humaneval] == [False, False, None]


def test_the_guard_collects_every_reported_value():
    read_fd, write_fd = os.pipe()
    lines = [b'{"expect": 0, "value": "1"}\n', b'{"expect": true, "value": "1"}\n',
             b'{"expect": 1, "value": 2}\n', b'{"test": 0, "passed": true}\n',
             b'{"expect": 0, "value": "2"}\n', b'{"test": 0, "passed": false, "expect": 0, "value": "1"}\n',
             b'{"done": 1}\n', b'{"expect": 2, "value": "3"}\n']
    script = f"import os\nfor line in {lines!r}:\n    os.write({write_fd}, line)"
    child = subprocess.Popen([sys.executable, "-c", script], pass_fds=(write_fd,))
    os.close(write_fd)
    try:
        reports, done, _ = harness._collect(read_fd, child.pid, time.monotonic() + 10)
    finally:
        child.wait()
        os.close(read_fd)
    assert reports == [{"expect": 0, "value": "1"}, {"test": 0, "passed": True}, {"expect": 0, "value": "2"}]
    assert done


def test_a_wrong_value_fails_on_the_host_and_the_literal_stays_there():
    v = CodeVerifier()
    sample = Sample(completion=fenced("def add(a, b):\n    return a - b"),
                    fields={"tests": ["assert add(5, 5) == 10", "assert add(5, 0) == 5"]})
    prepared = v._prepare(sample)
    assert "10" not in json.dumps(prepared.jobs[0].files) and prepared.plan.expected == [(0, 10), (1, 5)]
    score = v.verify(sample)
    assert score.reward == 0.5 and score.details["tests"][0] == {
        "name": "test_0", "passed": False, "error": "AssertionError: got 0"}


# ------------------------------------------------------------------ MBPP


def test_mbpp_reference_solutions_pass_and_wrong_ones_fail():
    rows = mbpp_rows()
    chosen = [rows[i] for i in (2, 3, 11)]
    samples = [Sample(completion=fenced(r["code"]), fields={"tests": r["test_list"], "setup": r["test_setup_code"]})
               for r in chosen]
    samples += [Sample(completion=fenced(rows[3]["code"]), fields={"tests": r["test_list"]}) for r in chosen[:1]]
    scores = CodeVerifier().verify_batch(samples)
    assert [s.correct for s in scores] == [True, True, True, False]
    assert scores[0].reward == 1.0 and scores[3].reward == 0.0
    assert scores[0].details["passed"] and scores[0].details["status"] == "ok"
    assert [t["passed"] for t in scores[0].details["tests"]] == [True, True, True]


def test_sanitized_mbpp_test_imports_run_before_the_asserts():
    with open(f"{DATA}/mbpp/sanitized-mbpp.json") as f:
        row = next(r for r in json.load(f) if r["test_imports"])
    sample = Sample(completion=fenced(row["code"]), fields={"test_list": row["test_list"],
                                                            "test_imports": row["test_imports"]})
    assert CodeVerifier().verify(sample).correct


def test_share_versus_all_or_nothing():
    half_right = fenced("def sq(x):\n    return x * x if x < 3 else 0")
    sample = Sample(completion=half_right, fields={"tests": ["assert sq(1) == 1", "assert sq(2) == 4",
                                                             "assert sq(3) == 9", "assert sq(4) == 16"]})
    share = CodeVerifier(reward="share").verify(sample)
    strict = CodeVerifier(reward="all").verify(sample)
    assert share.reward == 0.5 and share.correct is False and share.details["tests_passed"] == 2
    assert strict.reward == 0.0 and strict.correct is False
    assert [t["passed"] for t in share.details["tests"]] == [True, True, False, False]


# ------------------------------------------------------------------ HumanEval


def test_humaneval_header_as_the_samples_prompt():
    """Trainer, eval and `rlvr verify` all build samples with Sample.from_row: the HumanEval header is
    the sample's prompt, not a field, and a body-only completion must still be judged against it."""
    row = humaneval_rows()[0]
    v = CodeVerifier()
    assert v.verify(Sample.from_row(row, row["canonical_solution"])).correct
    assert not v.verify(Sample.from_row(row, "    return not True\n")).correct


def test_code_then_a_closing_fence_it_never_opened():
    """A common shape of small models' answers: the function, a closing fence, then prose about it.
    The prose is not the program (that once scored 20 of 20 SmolLM2 HumanEval answers as failures)."""
    row = humaneval_rows()[0]
    v = CodeVerifier()
    function = row["prompt"] + row["canonical_solution"] + "```\nThis function compares every pair."
    body = row["canonical_solution"] + "```\n\nExplanation: it checks each pair of numbers."
    assert v.verify(humaneval_sample(row, function)).correct
    assert v.verify(humaneval_sample(row, body)).correct
    # prose before a bare fence that opens an unclosed block is still prose: the block is the program
    assert v.verify(humaneval_sample(row, "Here it is:\n```\n" + row["prompt"] + row["canonical_solution"])).correct


def test_humaneval_canonical_body_and_full_fenced_function():
    row = humaneval_rows()[0]
    v = CodeVerifier()
    body = v.verify(humaneval_sample(row, row["canonical_solution"]))
    full = v.verify(humaneval_sample(row, fenced(row["prompt"] + row["canonical_solution"])))
    broken = v.verify(humaneval_sample(row, fenced("def has_close_elements(numbers, threshold):\n    return True")))
    assert body.correct and full.correct and not broken.correct
    assert len(body.details["tests"]) == 7 and all(t["passed"] for t in body.details["tests"])
    assert body.details["tests"][0]["name"] == "assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True"


def test_humaneval_share_counts_each_assert_of_check():
    row = humaneval_rows()[0]  # has_close_elements: 7 asserts, 4 expecting True and 3 expecting False
    always_false = "def has_close_elements(numbers, threshold):\n    return False"
    share = CodeVerifier(reward="share").verify(humaneval_sample(row, fenced(always_false)))
    strict = CodeVerifier(reward="all").verify(humaneval_sample(row, fenced(always_false)))
    assert share.reward == pytest.approx(3 / 7) and not share.correct
    assert [t["passed"] for t in share.details["tests"]] == [False, True, False, True, False, False, True]
    assert strict.reward == 0.0


@pytest.mark.slow
def test_all_humaneval_canonical_solutions_pass_and_broken_variants_fail():
    rows = humaneval_rows()
    n = len(rows)
    v = CodeVerifier(extract="raw")
    canonical = v.verify_batch([humaneval_sample(r, r["canonical_solution"]) for r in rows])
    assert [r["task_id"] for r, s in zip(rows, canonical) if not s.correct] == []
    returns_none = v.verify_batch([humaneval_sample(r, "    return None\n") for r in rows])
    assert [r["task_id"] for r, s in zip(rows, returns_none) if s.correct] == []
    # Each task gets the next task's solution, bound to the expected name.
    def other(i: int) -> str:
        o = rows[(i + 1) % n]
        return fenced(o["prompt"] + o["canonical_solution"] + f"\n{rows[i]['entry_point']} = {o['entry_point']}\n")
    swapped = CodeVerifier().verify_batch([humaneval_sample(r, other(i)) for i, r in enumerate(rows)])
    assert [r["task_id"] for r, s in zip(rows, swapped) if s.correct] == []
    assert len(canonical) == len(returns_none) == len(swapped) == 164


# ------------------------------------------------------------------ stdin/stdout


CORRECT_SOLUTION_12B = """
n = input().strip(); m = input().strip()
d = sorted(n)
if len(d) > 1 and d[0] == '0':
    i = next(i for i, c in enumerate(d) if c != '0')
    d[0], d[i] = d[i], d[0]
print('OK' if ''.join(d) == m else 'WRONG_ANSWER')
"""


def test_codecontests_row_stdin_stdout():
    row = contest_row("12_B")
    fields = {"test": row["test"]}
    v = CodeVerifier(max_cases=12, reward="all")
    right = v.verify(Sample(completion=fenced(CORRECT_SOLUTION_12B), fields=fields))
    wrong = v.verify(Sample(completion=fenced("input(); input()\nprint('OK')"), fields=fields))
    assert right.correct and right.reward == 1.0 and right.details["tests_total"] == 12
    assert not wrong.correct and wrong.reward == 0.0
    assert any(t.get("error") == "wrong output" for t in wrong.details["tests"])


def test_cases_are_whitespace_insensitive_with_optional_float_tolerance():
    cases = [{"stdin": "1 2\n", "stdout": "0.3333333\n"}, {"stdin": "2 2\n", "stdout": "0.5"}]
    program = fenced("a, b = map(int, input().split())\nprint(' ', round(a / (a + b), 4), '  ')")
    assert CodeVerifier().verify(Sample(completion=program, fields={"cases": cases})).reward == 0.5
    tolerant = CodeVerifier(float_tolerance=1e-3).verify(Sample(completion=program, fields={"cases": cases}))
    assert tolerant.correct
    assert same_output("1  2\n3\n", "1 2 3") and not same_output("1 2", "1 2 3")
    assert same_output("nan", "nan ", float_tolerance=1.0)  # equal text
    assert not same_output("nan", "1", float_tolerance=1e9)  # NaN is no number within any tolerance


def test_right_output_then_an_error_exit_fails():
    cases = [{"stdin": "", "stdout": "3"}]
    scores = CodeVerifier().verify_batch([Sample(completion=fenced(program), fields={"cases": cases}) for program in (
        "print(3)\nraise ValueError('after the answer')", "import sys\nprint(3)\nsys.exit(2)", "print(3)")])
    assert [s.reward for s in scores] == [0.0, 0.0, 1.0]
    assert scores[0].details["tests"] == [{"name": "case_0", "passed": False, "status": "runtime_error",
                                           "error": "ValueError: after the answer"}]
    assert scores[1].details["tests"][0]["error"] == "runtime_error"  # no stderr: the status names it


@pytest.mark.parametrize("warm", [True, False])
def test_a_program_that_dies_after_its_last_test_is_not_passed(warm):
    """Every test reported passing, then the program ended the run before the harness reached the end
    of check(): the run is unconfirmed, so never `passed` (nor rewarded under reward="all")."""
    check = "def check(candidate):\n    assert candidate(1) == 2\n    candidate(-1)\n"
    program = "def f(x):\n    if x < 0:\n        import os; os._exit(0)\n    return x + 1"
    sample = Sample(completion=fenced(program), fields={"entry_point": "f", "test": check})
    share, strict = CodeVerifier(warm=warm).verify(sample), CodeVerifier(reward="all", warm=warm).verify(sample)
    assert [t["passed"] for t in share.details["tests"]] == [True]
    assert share.correct is False and share.details["passed"] is False
    assert share.reason == "1/1 tests passed (the harness did not confirm that the tests ran)"
    assert strict.reward == 0.0 and strict.correct is False
    honest = "def f(x):\n    return x + 1"
    assert CodeVerifier(reward="all", warm=warm).verify(
        Sample(completion=fenced(honest), fields={"entry_point": "f", "test": check})).correct


@pytest.mark.skipif(not sandbox.capabilities().compilers.get("g++"), reason="g++ not installed")
def test_cpp_solution_from_its_fence_tag():
    row = contest_row("1342_C")
    cpp = """#include <bits/stdc++.h>
using namespace std;
int main(){int t; scanf("%d",&t); while(t--){long long a,b; int q; scanf("%lld %lld %d",&a,&b,&q);
 long long L=a*b; vector<long long> p(L+1,0);
 for(long long i=0;i<L;i++) p[i+1]=p[i]+(((i%a)%b)!=((i%b)%a));
 auto f=[&](long long x){return (x/L)*p[L]+p[x%L+1];};
 while(q--){long long l,r; scanf("%lld %lld",&l,&r); printf("%lld ", f(r)-f(l-1));} printf("\\n");}}"""
    score = CodeVerifier(language="auto", max_cases=6, timeout=20).verify(
        Sample(completion=fenced(cpp, "cpp"), fields={"test": row["test"]}))
    assert score.correct, score.details


@pytest.mark.skipif(not sandbox.capabilities().compilers.get("g++"), reason="g++ not installed")
def test_a_cpp_compile_error_is_reported_once_for_every_case():
    """A C++ program is compiled once, before its cases run: a compile error fails every case with the
    compiler's first line, and no case is run."""
    cases = [{"stdin": "1\n", "stdout": "2\n"}, {"stdin": "2\n", "stdout": "3\n"}]
    score = CodeVerifier(language="cpp").verify(
        Sample(completion=fenced("int main() { return x; }", "cpp"), fields={"cases": cases}))
    assert score.reason == "0/2 tests passed (compile error)", score.reason
    assert [t["name"] for t in score.details["tests"]] == ["case_0", "case_1"]
    assert all(t["error"].startswith("compile error: main.cpp") for t in score.details["tests"])


# ------------------------------------------------------------------ gaming attempts earn nothing


ADD_TESTS = {"tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]}
CHEATS = {
    "sys.exit before tests": "import sys\nsys.exit(0)\ndef add(a, b): return a + b",
    "os._exit before tests": "import os\nos._exit(0)",
    "os._exit inside the function": "import os\ndef add(a, b): os._exit(0)",
    "raise SystemExit inside the function": "def add(a, b): raise SystemExit(0)",
    "atexit prints a fake result": (
        "import atexit, os\natexit.register(lambda: print('RLVR-HARNESS-RESULT ' + '0' * 32 + "
        "' {\"tests\": [], \"complete\": true}'))\nos._exit(0)"),
    "fake result line printed then exit": (
        "import json, os\nprint('RLVR-HARNESS-RESULT', 'a' * 32, json.dumps({'tests': [{'test': 0, 'passed': True}, "
        "{'test': 1, 'passed': True}], 'complete': True}))\nos._exit(0)"),
    "AlwaysEqual result": "class A:\n    def __eq__(self, o): return True\n    __hash__ = None\ndef add(a, b): return A()",
    "lying int subclass": (
        "class I(int):\n    __module__ = 'builtins'\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
        "def add(a, b): return I(0)"),
    "kills the harness guard": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos._exit(0)",
    "reads the nonce and spec": (
        "import os, sys\nleak = []\nfor p in ('spec.json', 'harness.py', '/proc/1/mem', '/proc/1/environ'):\n"
        "    try: leak.append(open(p, 'rb').read(64))\n    except OSError as e: pass\n"
        "try: leak.append(os.read(0, 64))\nexcept OSError: pass\n"
        "f = sys._getframe()\nwhile f:\n"
        "    for v in f.f_locals.values():\n"
        "        if isinstance(v, (bytes, bytearray)) and len(v) == 32: leak.append(bytes(v))\n"
        "    f = f.f_back\n"
        "for x in leak: print('RLVR-HARNESS-RESULT', x.decode(errors='replace'), '{\"tests\": [], \"complete\": true}')\n"
        "os._exit(0)"),
}


# Looks for the nonce everywhere the program can: the call stack's frames, every object the garbage
# collector knows, every readable byte of its own memory and of the guard's; prints each candidate in a forged result
# line, then kills the harness's guard so that no genuine line follows (in a warm sandbox the guard is
# the program's parent; in a cold one it is the namespace's init, which ignores the signal).
NONCE_HUNT = r"""
import base64, gc, json, os, re, sys
found, seen = set(), set()
def look(v, depth=0):
    if isinstance(v, (bytes, bytearray)):
        found.update(m.decode() for m in re.findall(rb"[0-9a-f]{32}", bytes(v)))
        for m in re.findall(rb"[A-Za-z0-9+/]{44}", bytes(v)) if depth < 2 else ():
            look(base64.b64decode(m), depth + 1)
    elif isinstance(v, str):
        look(v.encode(errors="replace"), depth)
    elif isinstance(v, dict) and id(v) not in seen:
        seen.add(id(v))
        for x in list(v.values()):
            look(x, depth)
f = sys._getframe()
while f:
    for v in list(f.f_locals.values()):
        look(v)
    f = f.f_back
for o in list(gc.get_objects()):
    look(o)
for pid in ("self", os.getppid(), 1):  # its own memory, and the guard's if the kernel lets it
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        maps = open(f"/proc/{pid}/maps").read().splitlines()
    except OSError:
        continue
    for region in maps:
        start, end = (int(x, 16) for x in region.split()[0].split("-"))
        if "r" in region.split()[1]:
            try: look(os.pread(fd, end - start, start))
            except OSError: pass
    os.close(fd)
for p in ("spec.json", "harness.py", "/proc/1/environ", "/proc/1/cmdline", f"/proc/{os.getppid()}/environ"):
    try: look(open(p, "rb").read())
    except OSError: pass
line = json.dumps({"tests": [{"test": 0, "passed": True}, {"test": 1, "passed": True}], "complete": True})
for n in sorted(found):
    print("RLVR-HARNESS-RESULT", n, line)
sys.stdout.flush()
os.kill(os.getppid(), 9)
os._exit(0)
"""


@pytest.mark.parametrize("warm", [True, False])
def test_the_nonce_stays_secret(warm):
    """Not only does the hunt earn nothing: the nonce is nowhere the program could find it. It appears in
    the run's output only on the guard's own line, and never in the verifier's Score."""
    v = CodeVerifier(warm=warm)
    prepared = v._prepare(Sample(completion=fenced(NONCE_HUNT), fields=ADD_TESTS))
    nonce = prepared.plan.nonce
    (run,) = v._sandbox_pool().map(prepared.jobs)
    assert run.isolation.get("warm", False) is warm
    forged = [line for line in run.stdout.splitlines() if line.startswith("RLVR-HARNESS-RESULT") and "names" not in line]
    assert forged and not [line for line in forged if nonce in line]  # it did hunt, and found nothing
    genuine = [line for line in run.stdout.splitlines() if nonce in line]
    assert len(genuine) == (0 if warm else 1)  # cold: the guard, as pid 1, survived and reported
    score = v._score(prepared.plan, [run])
    assert score.reward == 0.0 and score.correct is False and nonce not in repr(score)
    v.close()


@pytest.mark.parametrize("warm", [True, False])
def test_a_program_runs_one_fork_from_the_guard(warm):
    """Warm, the sandbox's server is the guard and the program its child (pid 1's child: one fork per
    program); cold, the harness's guard is pid 1 and forks the program. Reports arrive either way."""
    program = fenced("import os\ndef parent():\n    return os.getppid()")
    score = CodeVerifier(warm=warm).verify(Sample(completion=program, fields={"tests": ["assert parent() == 1"]}))
    assert score.correct is True and score.reward == 1.0, score.reason


@pytest.mark.parametrize("reward, warm", [("share", True), ("all", False)])
def test_exit_and_marker_tricks_earn_nothing(reward, warm):
    names = list(CHEATS)
    scores = CodeVerifier(reward=reward, warm=warm).verify_batch(
        [Sample(completion=fenced(CHEATS[n]), fields=ADD_TESTS) for n in names])
    earned = {n: s.reward for n, s in zip(names, scores) if s.reward or s.correct}
    assert earned == {}
    assert all(s.details["passed"] is False for s in scores)


def test_hanging_test_is_a_timeout_that_keeps_earlier_results():
    program = fenced("def add(a, b):\n    while a == 5: pass\n    return a + b")
    fields = {"tests": ["assert add(1, 2) == 3", "assert add(5, 0) == 5", "assert add(2, 2) == 4"], "timeout": 5}
    score = CodeVerifier().verify(Sample(completion=program, fields=fields))
    assert score.correct is False and score.details["passed"] is False and score.details["status"] == "timeout"
    assert [t["passed"] for t in score.details["tests"]] == [True, False, False]
    assert score.reward == pytest.approx(1 / 3)


def test_memory_field_limits_the_run():
    program = fenced("def add(a, b):\n    x = bytearray(300 << 20)\n    return a + b")
    small = CodeVerifier().verify(Sample(completion=program, fields={**ADD_TESTS, "memory_mb": 128}))
    large = CodeVerifier().verify(Sample(completion=program, fields={**ADD_TESTS, "memory_mb": 1024}))
    assert small.reward == 0.0 and "MemoryError" in small.details["tests"][0]["error"]
    assert large.correct
    huge = fenced("def add(a, b):\n    x = bytearray(700 << 20)\n    return a + b")
    default = CodeVerifier().verify(Sample(completion=huge, fields=ADD_TESTS))  # 512 MB unless asked
    assert default.reward == 0.0 and "MemoryError" in default.details["tests"][0]["error"]


# ------------------------------------------------------------------ plumbing


def test_extraction_modes():
    text = "```python\nprint(1)\n```\nthen\n```cpp\nint main(){}\n```"
    assert extract_program(text) == ("int main(){}\n", "cpp")
    assert extract_program(text, "first_block") == ("print(1)\n", "python")
    assert extract_program("no fences", raw_fallback=False) == ("", "")
    assert extract_program("```python\nprint(2)\n")[0] == "print(2)\n"  # unclosed final block
    no_program = CodeVerifier().verify(Sample(completion="I don't know.", fields=ADD_TESTS))
    assert no_program.reward == 0.0  # the prose itself ran as Python and failed to define add


def test_bad_input_is_named():
    with pytest.raises(VerifierError, match="'tests' must be a list of strings"):
        CodeVerifier().verify(Sample(completion="x = 1", fields={"tests": "assert True"}))
    with pytest.raises(VerifierError, match="need tests"):
        CodeVerifier().verify(Sample(completion="x = 1", fields={"other": 1}))
    with pytest.raises(VerifierError, match="cases\\[0\\] needs string 'stdin' and 'stdout'"):
        CodeVerifier().verify(Sample(completion="x = 1", fields={"cases": [{"stdin": "1"}]}))
    with pytest.raises(VerifierError, match="option reward"):
        CodeVerifier(reward="most")


def test_registered_and_picklable():
    assert "code" in verifiers.available()  # as the built-ins are (tests/test_verifiers_base.py)
    v = verifiers.load("code", reward="all")
    clone = pickle.loads(pickle.dumps(v))
    assert isinstance(clone, CodeVerifier) and clone.reward == "all"
    assert clone.verify(Sample(completion=fenced("def add(a, b): return a + b"), fields=ADD_TESTS)).correct


def test_the_workers_option_sizes_the_sandbox_pool():
    v = CodeVerifier(workers=7)  # not any machine's core count, which is the default
    assert v._sandbox_pool().workers == 7
    v.close()


@pytest.mark.parametrize("warm", [True, False])
def test_the_program_can_read_its_own_proc_entries(warm):
    """The guard is non-dumpable while it holds the nonce; the child that runs the program is made
    dumpable again, so its /proc files are readable to its own subprocesses, as in a plain run."""
    program = ("import os, subprocess, sys\ndef fds():\n    return len(subprocess.run(\n"
               "        [sys.executable, '-c', f'import os; print(os.listdir(\"/proc/{os.getpid()}/fd\"))'],\n"
               "        capture_output=True, text=True, check=True).stdout)")
    score = CodeVerifier(warm=warm).verify(Sample(completion=fenced(program),
                                                  fields={"tests": ["assert fds() > 3"]}))
    assert score.correct, score.details


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
def test_the_guard_kills_every_process_only_where_it_is_pid_1(tmp_path):
    """kill(-1) reaches every process the guard may signal: only as pid 1 of the sandbox's own pid
    namespace is that exactly the program's processes. Run here (benign program, our own fresh pid
    namespace) with the guard NOT pid 1, a sibling process must survive it."""
    v = CodeVerifier(warm=False)
    (job,) = v._prepare(Sample(completion=fenced("def add(a, b):\n    return a + b"), fields=ADD_TESTS)).jobs
    (tmp_path / "harness.py").write_text(job.program)
    for name, content in job.files.items():
        (tmp_path / name).write_text(content)
    (tmp_path / "nonce").write_text(job.stdin)
    script = (f"sleep 30 & s=$!; {sys.executable} harness.py < nonce > out.txt; "
              "kill -0 $s && echo sibling-alive; kill $s")
    run = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert "sibling-alive" in run.stdout, (run.stdout, run.stderr)
    assert "RLVR-HARNESS-RESULT" in (tmp_path / "out.txt").read_text()


def test_what_the_program_printed_is_kept_in_the_run_output():
    v = CodeVerifier(warm=False)
    program = fenced("def add(a, b):\n    print('adding', a, b)\n    return a + b")
    prepared = v._prepare(Sample(completion=program, fields=ADD_TESTS))
    (run,) = v._sandbox_pool().map(prepared.jobs)
    assert "adding 1 2\nadding 2 2\n" in run.stdout
    assert v._score(prepared.plan, [run]).correct
    v.close()


def test_a_forged_value_with_a_newline_gives_a_one_line_error():
    tests = [{"passed": True}]
    judge_expected(tests, [[0, "[1,\n2]"]], [(0, [3])])
    assert tests == [{"passed": False, "error": "AssertionError: got [1,\\n2]"}]
