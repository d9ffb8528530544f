"""The code verifier's pure parts, each against exact hand-made cases: comparing outputs, finding the
program, planning runs, reading the harness's result line, and the harness's own guards (run here on
fixed, harmless test programs; model output only ever runs in the sandbox)."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time

import pytest

from verifiers.base import VerifierError
from verifiers.code_compare import same_output
from verifiers.code_extract import code_blocks, extract_program
from verifiers import code_harness as harness
from verifiers.code_plan import HARNESS_SOURCE, Plan, harness_result, humaneval_program, plan

# ------------------------------------------------------------------ same_output


def test_same_output_is_token_equality():
    assert same_output("1  2\n3\n", "1 2 3")
    assert same_output("", "") and same_output(" \n", "")
    assert not same_output("1 2", "1 2 3") and not same_output("1 2 3", "1 2")
    assert not same_output("1 3", "1 2")
    assert not same_output("1.0", "1")  # without a tolerance numbers are text


def test_same_output_float_tolerance_is_absolute_then_relative():
    assert same_output("0.3334", "0.3333333", float_tolerance=1e-3)
    assert not same_output("0.335", "0.3333333", float_tolerance=1e-3)
    # |a - e| <= t * max(1, |e|): the bound itself is accepted (exact binary fractions)
    assert same_output("1.25", "1", float_tolerance=0.25) and not same_output("1.25", "1", float_tolerance=0.125)
    assert same_output("0.25", "0", float_tolerance=0.25)  # small values: absolute, not t * |e| = 0
    assert same_output("1100", "1000", float_tolerance=0.1) and not same_output("1101", "1000", float_tolerance=0.1)
    assert same_output("-1100", "-1000", float_tolerance=0.1)  # relative to |e|
    assert same_output("1 2.0005", "1 2", float_tolerance=1e-3)  # each token, text and number mixed


def test_same_output_non_numbers_and_non_finite_tokens_need_equal_text():
    assert same_output("nan", "nan ", float_tolerance=1.0)  # equal text
    assert not same_output("nan", "1", float_tolerance=1e9)
    assert not same_output("inf", "1e308", float_tolerance=1.0)
    assert not same_output("1e400", "inf", float_tolerance=1.0)  # both overflow to inf: not numbers
    assert not same_output("yes", "YES", float_tolerance=1.0)
    assert not same_output("1", "x", float_tolerance=1.0)


# ------------------------------------------------------------------ extracting the program


def test_extract_last_first_and_raw():
    text = "```python\nprint(1)\n```\nthen\n```cpp\nint main(){}\n```"
    assert extract_program(text) == ("int main(){}\n", "cpp")
    assert extract_program(text, "last_block") == ("int main(){}\n", "cpp")
    assert extract_program(text, "first_block") == ("print(1)\n", "python")
    assert extract_program(text, "raw") == (text, "")
    assert extract_program("no fences") == ("no fences", "")
    assert extract_program("no fences", raw_fallback=False) == ("", "")
    assert extract_program("no fences", "raw", raw_fallback=False) == ("no fences", "")
    with pytest.raises(ValueError, match="extract mode 'middle'"):
        extract_program(text, "middle")


def test_fence_forms():
    assert code_blocks("~~~py\nx = 1\n~~~\n") == [("py", "x = 1\n")]
    assert code_blocks("````Python\nx = 1\n```\ny\n````\n") == [("python", "x = 1\n```\ny\n")]  # longer fence
    assert code_blocks("  ```c++ extra words\nint x;\n  ```\n") == [("c++", "int x;\n")]
    assert code_blocks("```\nunclosed\n") == [("", "unclosed\n")]
    assert code_blocks("text ```python\nx\n```") == []  # a fence starts its line


def test_code_before_a_bare_closing_fence_is_a_block():
    assert code_blocks("def f():\n    return 1\n```\nThis returns one.") == [("", "def f():\n    return 1\n")]
    # a HumanEval body continuation: indented, it parses once dedented
    assert code_blocks("    return 1\n```\nprose") == [("", "    return 1\n")]
    # prose before the fence, a tagged first fence, an even number of fences, or nothing before: unchanged
    assert code_blocks("Here it is:\n```\nx = 1\n") == [("", "x = 1\n")]
    assert code_blocks("x = 1\n```python\ny = 2\n") == [("python", "y = 2\n")]
    assert code_blocks("x = 1\n```\ny = 2\n```\n") == [("", "y = 2\n")]
    assert code_blocks("\n```\ny = 2\n") == [("", "y = 2\n")]
    assert code_blocks("x = \0\n```\nprose") == [("", "prose")]  # ValueError from ast.parse: prose


# ------------------------------------------------------------------ planning


def test_mbpp_plan_and_its_setup_order():
    p = plan({"tests": ["assert f() == 1"], "test_imports": ["import a", "import b"], "setup": "S",
              "test_setup_code": "T"}, "CODE", "c", 7.5)
    assert p.kind == "mbpp" and p.program == "CODE" and p.language == "python" and p.cases == []
    # the literal of a top-level `assert E == <literal>` stays on the host (code_expect)
    assert p.spec == {"kind": "mbpp", "program": "CODE", "setup": "import a\nimport b\nS\nT",
                      "tests": ["assert __rlvr_expect__(0, (f()))"], "deadline_seconds": 7.5}
    assert p.expected == [(0, 1)] and p.names == ["test_0"]
    assert len(p.nonce) == harness.NONCE_BYTES and int(p.nonce, 16) >= 0
    assert plan({"test_list": ["assert 1"]}, "C", "python", 1.0).spec["setup"] == ""
    assert plan({"tests": ["assert 1"], "setup": ""}, "C", "python", 1.0).spec["setup"] == ""
    # tests wins over test_list
    assert plan({"tests": ["assert 1"], "test_list": ["assert 2"]}, "C", "python", 1.0).spec["tests"] == ["assert 1"]


def test_each_plan_gets_a_fresh_nonce():
    nonces = {plan({"tests": ["assert 1"]}, "C", "python", 1.0).nonce for _ in range(20)}
    assert len(nonces) == 20


def test_humaneval_plan():
    fields = {"entry_point": "f", "test": "def check(c):\n    assert c(1) == 2\n", "prompt": "def f(x):\n"}
    p = plan(fields, "    return x + 1\n", "python", 3.0)
    assert p.kind == "humaneval" and p.program == "def f(x):\n    return x + 1\n"
    assert p.spec == {"kind": "humaneval", "program": p.program, "entry_point": "f", "deadline_seconds": 3.0,
                      "test": "def check(c):\n    assert __rlvr_expect__(0, (c(1)))\n", "steps": [0]}
    assert p.expected == [(0, 2)] and p.names == ["assert c(1) == 2"]
    assert len(p.nonce) == harness.NONCE_BYTES
    assert plan({**fields, "prompt": None}, "X", "python", 3.0).program == "X"
    # entry_point wins over tests
    assert plan({**fields, "tests": ["assert 1"]}, "X", "python", 3.0).kind == "humaneval"


def test_humaneval_program_joins_prompt_and_code():
    assert humaneval_program("def f():\n", "    return 1\n", "f") == "def f():\n    return 1\n"
    full = "def f():\n    return 2\n"
    assert humaneval_program("HEADER", full, "f") == "HEADER\n" + full
    assert humaneval_program("H", "  def  f (x): pass", "f") == "H\n  def  f (x): pass"
    assert humaneval_program("H", "def f_2(): pass", "f") == "Hdef f_2(): pass"  # another function
    assert humaneval_program("H", "x = 1; def f(): pass", "f") == "Hx = 1; def f(): pass"  # not at a line start
    assert humaneval_program("H", "import os\ndef f(): pass", "f") == "H\nimport os\ndef f(): pass"  # any line
    assert humaneval_program("H", "def a.b(): pass", "a.b") == "H\ndef a.b(): pass"  # the name is escaped
    assert humaneval_program("H", "def aXb(): pass", "a.b") == "Hdef aXb(): pass"


def test_stdio_plan_and_case_forms():
    cases = [{"stdin": "1", "stdout": "2"}, {"stdin": "3", "stdout": "4"}, {"stdin": "5", "stdout": "6"}]
    p = plan({"cases": cases}, "CODE", "cpp", 1.0)
    assert p == Plan("stdio", "CODE", "cpp", cases=[("1", "2"), ("3", "4"), ("5", "6")])
    assert plan({"cases": cases}, "C", "c", 1.0, max_cases=2).cases == [("1", "2"), ("3", "4")]
    contests = json.dumps([{"input": {"stdin": "a"}, "output": {"stdout": "b"}}])
    assert plan({"test": contests}, "C", "python", 1.0).cases == [("a", "b")]
    # flat keys win over the nested ones; cases wins over test
    mixed = [{"stdin": "x", "input": {"stdin": "y"}, "stdout": "u", "output": {"stdout": "v"}}]
    assert plan({"cases": mixed, "test": "not json"}, "C", "python", 1.0).cases == [("x", "u")]


@pytest.mark.parametrize("fields, message", [
    ({"entry_point": "f", "test": 1}, "HumanEval form needs string fields 'test' and 'entry_point'"),
    ({"entry_point": 1, "test": "t"}, "HumanEval form needs string fields"),
    ({"entry_point": "f"}, "HumanEval form needs string fields"),
    ({"tests": "assert 1"}, "field 'tests' must be a list of strings, got str"),
    ({"test_list": [1]}, "field 'test_list' must be a list of strings, got list"),
    ({"tests": []}, "field 'tests' is empty"),
    ({"tests": ["assert 1"], "test_imports": "import a"}, "field 'test_imports' must be a list of strings"),
    ({"tests": ["assert 1"], "setup": ["x"]}, "field 'setup' must be a string"),
    ({"tests": ["assert 1"], "test_setup_code": 3}, "field 'test_setup_code' must be a string"),
    ({"test": "[not json"}, "field 'test' without 'entry_point' must be a JSON list of stdin/stdout cases"),
    ({"test": None}, "must be a JSON list"),
    ({"test": "[]"}, "field 'test' must be a non-empty list of cases"),
    ({"test": "{}"}, "field 'test' must be a non-empty list of cases"),
    ({"cases": []}, "field 'cases' must be a non-empty list of cases"),
    ({"cases": {"stdin": "1"}}, "field 'cases' must be a non-empty list"),
    ({"cases": [{"stdin": "1", "stdout": "2"}, "x"]}, r"cases\[1\] must be an object with stdin and stdout"),
    ({"cases": [{"stdin": "1"}]}, r"cases\[0\] needs string 'stdin' and 'stdout'"),
    ({"cases": [{"stdout": "1"}]}, r"cases\[0\] needs string"),
    ({"cases": [{"stdin": 1, "stdout": "1"}]}, r"cases\[0\] needs string"),
    ({"test": json.dumps([{"input": "1", "output": {"stdout": "2"}}])}, r"test\[0\] needs string"),
    ({"test": json.dumps([{"input": {"stdin": "1"}, "output": "2"}])}, r"test\[0\] needs string"),
    ({"other": 1, "b": 2}, r"need tests .* got keys \['b', 'other'\]"),
])
def test_bad_fields_are_named(fields, message):
    with pytest.raises(VerifierError, match=message):
        plan(fields, "CODE", "python", 1.0)


def test_harness_source_is_the_harness_module():
    with open(harness.__file__) as f:
        assert HARNESS_SOURCE == f.read()


# ------------------------------------------------------------------ the result line


NONCE = "ab" * (harness.NONCE_BYTES // 2)


def test_harness_result_needs_the_nonce():
    result = {"tests": [{"test": 0, "passed": True}], "complete": True}
    line = f"{harness.RESULT_TAG} {NONCE} {json.dumps(result)}"
    assert harness_result(f"printed\n{line}\n", NONCE) == result
    assert harness_result(f"{line}\n", "cd" * 16) is None  # another nonce
    assert harness_result(f"{harness.RESULT_TAG}  {json.dumps(result)}\n", NONCE) is None
    assert harness_result(f"{harness.RESULT_TAG} {json.dumps(result)}\n", NONCE) is None
    assert harness_result(f" {line}\n", NONCE) is None  # at a line's start only
    assert harness_result(f"{harness.RESULT_TAG} {NONCE}{json.dumps(result)}\n", NONCE) is None
    assert harness_result("", NONCE) is None


def test_harness_result_takes_the_last_line_for_the_nonce():
    first = f"{harness.RESULT_TAG} {NONCE} {json.dumps({'n': 1})}"
    last = f"{harness.RESULT_TAG} {NONCE} {json.dumps({'n': 2})}"
    other = f"{harness.RESULT_TAG} {'cd' * 16} {json.dumps({'n': 3})}"
    assert harness_result("\n".join([first, last, other]), NONCE) == {"n": 2}
    assert harness_result(f"{first}\n{harness.RESULT_TAG} {NONCE} not json\n", NONCE) is None
    assert harness_result(f"{first}\n{harness.RESULT_TAG} {NONCE} [1, 2]\n", NONCE) is None


# ------------------------------------------------------------------ the harness's comparison guards


class AlwaysEqual:
    def __eq__(self, other):
        return True

    __hash__ = None


class LyingInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def test_is_plain_takes_exact_builtin_types_all_the_way_down():
    for value in (1, 1.5, 1j, "s", b"b", bytearray(b"x"), True, None, [1, (2, {3})], {"a": [1]},
                  frozenset({1}), range(3)):
        assert harness.is_plain(value), value
    for value in (LyingInt(1), AlwaysEqual(), [1, LyingInt(2)], (1, (2, AlwaysEqual())), {LyingInt(1): 1},
                  {1: AlwaysEqual()}, {frozenset({LyingInt(3)})}):
        assert not harness.is_plain(value), value


def test_is_plain_gives_up_past_its_visit_budget(monkeypatch):
    monkeypatch.setattr(harness, "_MAX_PLAIN_VISITS", 3)
    assert harness.is_plain([1, 2]) and not harness.is_plain([1, 2, 3])


@pytest.mark.parametrize("op, a, b, expected", [
    ("Eq", 1, 1, True), ("Eq", 1, 2, False), ("NotEq", 1, 2, True), ("NotEq", 1, 1, False),
    ("Lt", 1, 2, True), ("Lt", 2, 2, False), ("LtE", 2, 2, True), ("LtE", 3, 2, False),
    ("Gt", 3, 2, True), ("Gt", 2, 2, False), ("GtE", 2, 2, True), ("GtE", 1, 2, False),
    ("In", 1, [1], True), ("In", 2, [1], False), ("NotIn", 2, [1], True), ("NotIn", 1, [1], False),
    ("Is", None, None, True), ("Is", None, 0, False), ("IsNot", None, 0, True), ("IsNot", None, None, False),
])
def test_guarded_compare_each_operator(op, a, b, expected):
    assert harness.guarded_compare(a, (op,), b) is expected


def test_guarded_compare_chains_and_refusals():
    assert harness.guarded_compare(1, ("Lt", "Lt"), 2, 3) is True
    assert harness.guarded_compare(1, ("Lt", "Lt"), 3, 2) is False
    assert harness.guarded_compare(3, ("Lt", "Eq"), 2, LyingInt(0)) is False  # stops at the first False
    obj = AlwaysEqual()
    assert harness.guarded_compare(obj, ("Is",), obj) is True  # identity cannot lie
    assert harness.guarded_compare(obj, ("IsNot",), 3) is True
    assert harness.guarded_compare(obj, ("Eq",), AlwaysEqual()) is True  # neither side plain
    for a, b in ((obj, 3), (3, obj), (LyingInt(0), 3), ([LyingInt(0)], [0])):
        with pytest.raises(AssertionError, match="refused to compare"):
            harness.guarded_compare(a, ("Eq",), b)
    with pytest.raises(AssertionError, match="refused to compare int with AlwaysEqual"):
        harness.guarded_compare(1, ("Lt", "Eq"), 2, obj)


def test_guarded_truth():
    assert harness.guarded_truth([1]) == [1] and harness.guarded_truth(0) == 0
    with pytest.raises(AssertionError, match="refused the truth value of LyingInt"):
        harness.guarded_truth(LyingInt(1))


def _run_guarded(source: str, **names) -> None:
    ns = {"__rlvr_compare__": harness.guarded_compare, "__rlvr_truth__": harness.guarded_truth, **names}
    exec(harness.guarded_code(source, "t.py"), ns)


@pytest.mark.parametrize("source", [
    "assert x == 3", "assert 3 == x", "assert x", "assert not not x", "assert x and True", "assert False or x",
    "assert all(v == 3 for v in [x])", "assert [x] == [3]", "assert f(x == 3)",
])
def test_rewritten_asserts_refuse_a_lying_value(source):
    with pytest.raises(AssertionError):
        _run_guarded(source, x=LyingInt(0), f=bool)


@pytest.mark.parametrize("source", [
    "assert x == 3", "assert x", "assert not not x", "assert x and True", "assert all(v == 3 for v in [x])",
    "assert 1 < x <= 3", "assert x is not None", "assert f(x == 3)",
])
def test_rewritten_asserts_pass_honest_values(source):
    _run_guarded(source, x=3, f=bool)


@pytest.mark.parametrize("source", ["assert x == 4", "assert not x", "assert x and False", "assert x > 3",
                                    "assert all(v == 4 for v in [x])", "assert f(x == 4)"])
def test_rewritten_asserts_fail_honestly(source):
    with pytest.raises(AssertionError):
        _run_guarded(source, x=3, f=bool)


def test_only_asserts_are_rewritten():
    _run_guarded("y = (x == 3)\nassert y is True", x=LyingInt(0))  # outside an assert the program decides
    tree = harness.AssertGuard().visit(ast.parse("assert a == b, 'msg'"))
    assert ast.unparse(tree) == "assert __rlvr_compare__(a, ('Eq',), b), 'msg'"
    tree = harness.AssertGuard().visit(ast.parse("assert not a or b in c"))
    assert ast.unparse(tree) == "assert not __rlvr_truth__(a) or __rlvr_compare__(b, ('In',), c)"


def test_describe_is_capped():
    assert harness._describe(ValueError("bad")) == "ValueError: bad"
    assert len(harness._describe(ValueError("x" * 1000))) == harness.MAX_ERROR_CHARS


# ------------------------------------------------------------------ HumanEval's check() split


CHECK = """
def helper():
    return 1

def check(candidate):
    x = 2
    assert candidate(1) == x
    assert True
    for v in (1, 2):
        assert candidate(v) > 0
    assert candidate(3) == 4, "three"
"""


def test_check_steps_name_each_asserting_statement():
    assert harness.check_steps(CHECK) == [(1, "assert candidate(1) == x"), (3, "for v in (1, 2):"),
                                          (4, "assert candidate(3) == 4, 'three'")]
    assert harness.check_steps("def other(c):\n    assert c(1)\n") == []
    assert harness.check_steps("def check(c) pass") == []
    long = "def check(c):\n    assert c(" + "1, " * 100 + ")\n"
    assert len(harness.check_steps(long)[0][1]) == 120


def test_test_names():
    assert harness.test_names({"kind": "mbpp", "tests": ["a", "b"]}) == ["test_0", "test_1"]
    assert harness.test_names({"kind": "humaneval", "test": CHECK}) == [
        "assert candidate(1) == x", "for v in (1, 2):", "assert candidate(3) == 4, 'three'"]
    assert harness.test_names({"kind": "humaneval", "test": "assert True"}) == ["check"]


def _reports(spec: dict) -> list[dict]:
    reports = []
    harness.run_tests(spec, reports.append)
    sys.modules.pop("solution", None)
    return reports


def test_run_tests_mbpp_reports_each_test_then_done():
    spec = {"kind": "mbpp", "program": "def f(x):\n    return x + 1", "setup": "K = 2",
            "tests": ["assert f(1) == K", "assert f(1) == 3", "raise SystemExit(0)", "assert f(K) == 3"]}
    assert _reports(spec) == [
        {"test": 0, "name": "test_0", "passed": True},
        {"test": 1, "name": "test_1", "passed": False, "error": "AssertionError: "},
        {"test": 2, "name": "test_2", "passed": False, "error": "SystemExit: 0"},
        {"test": 3, "name": "test_3", "passed": True},
        {"done": 4}]


def test_run_tests_program_that_fails_to_load_fails_every_test():
    for program, setup, error in (("raise SystemExit(3)", "", "program: SystemExit: 3"),
                                  ("x = 1", "import no_such_module_here", "program: ModuleNotFoundError")):
        reports = _reports({"kind": "mbpp", "program": program, "setup": setup, "tests": ["assert 1", "assert 2"]})
        assert [r.get("test") for r in reports] == [0, 1, None] and reports[-1] == {"done": 2}
        assert all(r["passed"] is False and r["error"].startswith(error) for r in reports[:2])


def test_run_tests_program_runs_as_module_solution_not_main():
    spec = {"kind": "mbpp", "program": "if __name__ == '__main__':\n    raise SystemExit(1)\nN = __name__",
            "tests": ["assert N == 'solution'"]}
    assert _reports(spec)[0]["passed"] is True


def test_run_check_one_test_per_asserting_statement():
    spec = {"kind": "humaneval", "program": "def f(x):\n    return 4 if x == 3 else x + 1", "test": CHECK,
            "entry_point": "f"}
    assert _reports(spec) == [
        {"test": 0, "name": "assert candidate(1) == x", "passed": True},
        {"test": 1, "name": "for v in (1, 2):", "passed": True},
        {"test": 2, "name": "assert candidate(3) == 4, 'three'", "passed": True},
        {"done": 3}]
    spec["program"] = "def f(x):\n    return 0"
    reports = _reports(spec)
    assert [r.get("passed") for r in reports] == [False, False, False, None]
    assert reports[2]["error"] == "AssertionError: three"


def test_run_check_without_a_check_function_is_one_test():
    spec = {"kind": "humaneval", "program": "def f():\n    return 1",
            "test": "def check(c) -> None: pass\nCHECKED = True\nassert f() == 1", "entry_point": "f"}
    assert _reports(spec) == [{"test": 0, "name": "check", "passed": True}, {"done": 1}]
    spec["test"] = "assert f() == 2"
    assert _reports(spec)[0]["passed"] is False


def test_run_check_failures_outside_the_asserts_fail_the_rest():
    check = "def check(c):\n    assert c() == 1\n    raise KeyboardInterrupt\n    assert c() == 1\n"
    spec = {"kind": "humaneval", "program": "def f():\n    return 1", "test": check, "entry_point": "f"}
    assert _reports(spec) == [{"test": 0, "name": "assert c() == 1", "passed": True},
                              {"test": 1, "name": "assert c() == 1", "passed": True}, {"done": 2}]
    spec["entry_point"] = "g"
    reports = _reports(spec)
    assert [r.get("passed") for r in reports] == [False, False, None]
    assert reports[0]["error"] == "NameError: entry point 'g' is not defined"
    spec["test"] = "import no_such_module_here\n" + check
    spec["entry_point"] = "f"
    assert _reports(spec)[1]["error"].startswith("ModuleNotFoundError")


# ------------------------------------------------------------------ the guard's collection of reports


def _collect_from(lines: list[bytes], exit_after: float = 0.0, deadline: float = 10.0):
    """Reports a real child process wrote on a pipe, as the guard collects them."""
    read_fd, write_fd = os.pipe()
    script = (f"import os, time\nfor line in {lines!r}:\n    os.write({write_fd}, line)\n"
              f"time.sleep({exit_after})\n")
    child = subprocess.Popen([sys.executable, "-c", script], pass_fds=(write_fd,))
    os.close(write_fd)
    try:
        return harness._collect(read_fd, child.pid, time.monotonic() + deadline)
    finally:
        child.kill()
        child.wait()
        os.close(read_fd)


def test_collect_keeps_first_report_per_test_and_stops_at_done():
    lines = [b'{"test": 0, "passed": true}\n', b'not json\n', b'[1]\n', b'{"test": "1", "passed": true}\n',
             b'{"test": 0, "passed": false}\n', b'{"test": 1, "passed": false}\n', b'{"done": 2}\n',
             b'{"test": 2, "passed": true}\n']
    reports, done, timed_out = _collect_from(lines)
    assert reports == [{"test": 0, "passed": True}, {"test": 1, "passed": False}]
    assert done is True and timed_out is False


def test_collect_without_done_is_incomplete():
    reports, done, timed_out = _collect_from([b'{"test": 0, "passed": true}\n'])
    assert reports == [{"test": 0, "passed": True}] and done is False and timed_out is False


def test_collect_at_the_deadline_is_timed_out():
    start = time.monotonic()
    reports, done, timed_out = _collect_from([b'{"test": 0, "passed": true}\n'], exit_after=30, deadline=0.5)
    assert reports == [{"test": 0, "passed": True}] and done is False and timed_out is True
    assert time.monotonic() - start < 5


def test_parse_reports_and_the_result_the_verifier_reads():
    """The guard's rules, shared with the host for a warm sandbox's report pipe: a test's first outcome
    stands, every expectation value counts, nothing after `done`, junk lines are skipped."""
    buf = (b'{"test": 0, "passed": true}\nnot json\n{"expect": 0, "value": "1"}\n{"test": 0, "passed": false}\n'
           b'{"expect": 0, "value": "2"}\n{"expect": "0", "value": "3"}\n{"done": 1}\n{"test": 1, "passed": true}\n')
    reports, done = harness.parse_reports(buf)
    assert done is True
    assert reports == [{"test": 0, "passed": True}, {"expect": 0, "value": "1"}, {"expect": 0, "value": "2"}]
    assert harness.parse_reports(b'{"test": 0, "passed": true}\n') == ([{"test": 0, "passed": True}], False)
    assert harness.result_of(reports, done, False, ["t0"]) == {
        "tests": [{"test": 0, "passed": True}], "complete": True, "timed_out": False, "names": ["t0"],
        "values": [[0, "1"], [0, "2"]]}
    assert harness._report_fd(["main.py", "--report-fd=3"]) == 3 and harness._report_fd(["main.py"]) is None


def test_a_humaneval_spec_carries_its_steps_from_the_host():
    """The verifier sends the statement index of each test, found in the test as written, so the harness
    parses nothing twice; not the names, which quote expected values (the host names the tests)."""
    p = plan({"test": CHECK, "entry_point": "f"}, "def f(x):\n    return x\n", "python", 2.0)
    steps = harness.check_steps(CHECK)
    assert p.spec["steps"] == [i for i, _ in steps] and p.names == harness.step_names(steps)
    assert harness.spec_steps(p.spec) == [(i, f"test_{k}") for k, (i, _) in enumerate(steps)]
    assert harness.spec_steps({"test": CHECK}) == steps  # a spec without them: found here
    assert plan({"test": CHECK, "entry_point": "f"}, "def f(x): pass\n", "python", 2.0).names == p.names
