"""From a sample's fields to the sandbox runs that test it, and from their results to test outcomes.

Test forms (keys of Sample.fields):
- MBPP: `tests` (or `test_list`): a list of assert statements; optional `setup` (or `test_setup_code`,
  or `test_imports`: a list of import lines) run after the program and before the asserts.
- HumanEval: `test` (source defining `check(candidate)`) and `entry_point`; optional `prompt`, the
  function header the completion continues (the program is prompt + completion, or prompt + the
  extracted code when that code defines the entry point itself). Each asserting statement of check()
  is one test.
- stdin/stdout: `cases`: a list of {"stdin": str, "stdout": str}; or CodeContests' `test`, a JSON string
  of [{"input": {"stdin"}, "output": {"stdout"}}] (used when there is no `entry_point`).

For the harness forms, the literals of top-level `assert E == <literal>` tests stay on the host
(Plan.expected); the spec written for the sandbox holds `assert __rlvr_expect__(j, E)` instead (see
code_expect).
"""
from __future__ import annotations

import ast
import functools
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from verifiers.base import VerifierError
from verifiers.code_expect import hide_expected
from verifiers.code_harness import (
    NONCE_BYTES,
    RESULT_TAG,
    check_function,
    check_steps,
    step_names,
    test_names,
)

HARNESS_SOURCE = Path(__file__).with_name("code_harness.py").read_text()


@dataclass
class Plan:
    """What to run for one sample."""

    kind: str  # "mbpp" | "humaneval" | "stdio"
    program: str
    language: str = "python"
    spec: dict = field(default_factory=dict)  # harness spec (mbpp, humaneval)
    cases: list[tuple[str, str]] = field(default_factory=list)  # (stdin, expected stdout) (stdio)
    nonce: str = ""
    expected: list[tuple[int, object]] = field(default_factory=list)  # (test index, literal) per j
    names: list[str] = field(default_factory=list)  # the tests' names, from the tests as written


def _as_str_list(value, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise VerifierError(f"code verifier: field {key!r} must be a list of strings, got {type(value).__name__}")
    return value


def _mbpp_setup(fields: dict) -> str:
    parts = []
    for key in ("test_imports",):
        if fields.get(key):
            parts.extend(_as_str_list(fields[key], key))
    for key in ("setup", "test_setup_code"):
        if fields.get(key):
            if not isinstance(fields[key], str):
                raise VerifierError(f"code verifier: field {key!r} must be a string")
            parts.append(fields[key])
    return "\n".join(parts)


def _cases(fields: dict) -> list[tuple[str, str]]:
    if "cases" in fields:
        raw, key = fields["cases"], "cases"
    else:
        key = "test"
        try:
            raw = json.loads(fields["test"])
        except (TypeError, ValueError) as e:
            raise VerifierError(f"code verifier: field 'test' without 'entry_point' must be a JSON list of "
                                f"stdin/stdout cases ({e})") from None
    if not isinstance(raw, list) or not raw:
        raise VerifierError(f"code verifier: field {key!r} must be a non-empty list of cases")
    cases = []
    for i, case in enumerate(raw):
        if not isinstance(case, dict):
            raise VerifierError(f"code verifier: {key}[{i}] must be an object with stdin and stdout")
        given, wanted = case.get("input"), case.get("output")  # CodeContests nests them
        stdin = case.get("stdin", given.get("stdin") if isinstance(given, dict) else None)
        stdout = case.get("stdout", wanted.get("stdout") if isinstance(wanted, dict) else None)
        if not isinstance(stdin, str) or not isinstance(stdout, str):
            raise VerifierError(f"code verifier: {key}[{i}] needs string 'stdin' and 'stdout'")
        cases.append((stdin, stdout))
    return cases


def humaneval_program(prompt: str, code: str, entry_point: str) -> str:
    """prompt + code when code continues the prompt's function body; prompt, then code, when code
    (re)defines the entry point itself (a fenced full solution)."""
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
        return prompt + "\n" + code
    return prompt + code


def plan(fields: dict, code: str, language: str, deadline_seconds: float, max_cases: int = 0) -> Plan:
    """The Plan for a sample whose extracted program is `code`; VerifierError names a bad field."""
    if "entry_point" in fields:
        if not isinstance(fields.get("test"), str) or not isinstance(fields["entry_point"], str):
            raise VerifierError("code verifier: HumanEval form needs string fields 'test' and 'entry_point'")
        program = humaneval_program(str(fields.get("prompt") or ""), code, fields["entry_point"])
        steps, test, expected = _humaneval_test(fields["test"])
        spec = {"kind": "humaneval", "program": program, "test": test, "entry_point": fields["entry_point"],
                "steps": [i for i, _ in steps]}
        return _harness_plan("humaneval", program, spec, deadline_seconds, list(expected), step_names(steps))
    for key in ("tests", "test_list"):
        if key in fields:
            tests = _as_str_list(fields[key], key)
            if not tests:
                raise VerifierError(f"code verifier: field {key!r} is empty")
            hidden, expected = _mbpp_tests(tuple(tests))
            spec = {"kind": "mbpp", "program": code, "setup": _mbpp_setup(fields), "tests": list(hidden)}
            return _harness_plan("mbpp", code, spec, deadline_seconds, list(expected),
                                 test_names({"kind": "mbpp", "tests": tests}))
    if "cases" in fields or "test" in fields:
        cases = _cases(fields)
        return Plan("stdio", code, language, cases=cases[:max_cases] if max_cases else cases)
    raise VerifierError("code verifier: sample fields need tests (MBPP asserts), test + entry_point "
                        f"(HumanEval) or cases (stdin/stdout); got keys {sorted(fields)}")


# A group's samples share their tests: what the host makes of a test is worked out once per test.
@functools.lru_cache(maxsize=1024)
def _humaneval_test(test: str) -> tuple[list[tuple[int, str]], str, tuple[tuple[int, object], ...]]:
    """(check_steps of the test as written: their names and statements, the test with its literal
    asserts hidden, (test index, literal) of each hidden one)."""
    steps = check_steps(test)
    test_of_step = {step: k for k, (step, _) in enumerate(steps)}
    hidden, found = hide_expected(test, _check_body)
    return steps, hidden, tuple((test_of_step[step], value) for step, value in found)


@functools.lru_cache(maxsize=1024)
def _mbpp_tests(tests: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[tuple[int, object], ...]]:
    """(the tests with their literal asserts hidden, (test index, literal) of each hidden one)."""
    hidden, expected = [], []
    for i, test in enumerate(tests):
        source, found = hide_expected(test, _module_body, len(expected))
        hidden.append(source)
        expected += [(i, value) for _, value in found]
    return tuple(hidden), tuple(expected)


def _module_body(tree: ast.Module) -> list[ast.stmt]:
    return tree.body


def _check_body(tree: ast.Module) -> list[ast.stmt]:
    check = check_function(tree)
    return check.body if check is not None else []


def _harness_plan(kind: str, program: str, spec: dict, deadline_seconds: float,
                  expected: list[tuple[int, object]], names: list[str]) -> Plan:
    spec["deadline_seconds"] = deadline_seconds
    return Plan(kind, program, "python", spec=spec, nonce=secrets.token_hex(NONCE_BYTES // 2),
                expected=expected, names=names)


def harness_result(stdout: str, nonce: str) -> dict | None:
    """The guard's result line for `nonce`, or None when the run never produced it."""
    marker = f"{RESULT_TAG} {nonce} "
    for line in reversed(stdout.splitlines()):
        if line.startswith(marker):
            try:
                result = json.loads(line[len(marker):])
            except ValueError:
                return None
            return result if isinstance(result, dict) else None
    return None
