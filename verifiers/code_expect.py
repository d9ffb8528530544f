"""Expected values that never enter the sandbox.

A test statement `assert E == L` (or `assert L == E`) whose L is a literal (`ast.literal_eval` reads it)
and that is a top-level statement of its test (an MBPP test's own statement, or a statement of the body
of HumanEval's `check(candidate)`) is rewritten on the host, before the spec is written for the sandbox,
to `assert __rlvr_expect__(j, E)`. The harness reports repr(value of E) for plain values only (see
code_harness.is_plain) and the verifier judges here that it equals L:

    passed(test) = the harness reports it passed
                   and for each of its expectations j: j was reported at least once,
                   and every report of j decodes to a value v with v == L_j

L never enters the sandbox, so a program that reads or prints the tests, walks the stack to its
caller's constants or patches the harness learns nothing it could answer with, and a report it forges
or suppresses fails. A top-level statement runs once when it completes, so an honest run reports each
of its expectations; asserts nested in loops or branches (which may run any number of times) and
non-literal ones stay with the harness's in-sandbox guard.
"""
from __future__ import annotations

import ast
import math
import re
from collections import defaultdict
from collections.abc import Callable

from verifiers.code_harness import EXPECT_NAME, MAX_VALUE_CHARS

# repr() of plain values that ast.literal_eval cannot read back: float and complex infinities and
# NaNs, and the containers without a literal syntax.
_NAMES = {"inf": math.inf, "nan": math.nan, "infj": complex(0, math.inf), "nanj": complex(0, math.nan)}
_CALLS: dict[str, tuple[Callable, tuple[type, ...]]] = {
    "set": (set, ()), "frozenset": (frozenset, (set,)), "bytearray": (bytearray, (bytes,)),
    "range": (range, (int, int, int)),
}


NOT_LITERAL = object()


def literal(node: ast.expr) -> object:
    """The value of `node` when it is a literal ast.literal_eval reads, else NOT_LITERAL."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NOT_LITERAL


def _split_assert(statement: ast.stmt) -> tuple[ast.expr, object] | None:
    """(E, L) of `assert E == L` or `assert L == E` with exactly one literal side, else None."""
    if not isinstance(statement, ast.Assert) or not isinstance(statement.test, ast.Compare):
        return None
    test = statement.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return None
    left, right = literal(test.left), literal(test.comparators[0])
    if left is NOT_LITERAL and right is not NOT_LITERAL:
        return test.left, right
    if right is NOT_LITERAL and left is not NOT_LITERAL:
        return test.comparators[0], left
    return None


def hide_expected(source: str, body: Callable[[ast.Module], list[ast.stmt]],
                  first: int = 0) -> tuple[str, list[tuple[int, object]]]:
    """`source` with each literal assert among the statements `body(tree)` rewritten to
    `assert __rlvr_expect__(j, (E))` (j counting from `first`), and [(statement index, L)] in order.
    Everything else is kept byte for byte; a source that does not parse is returned unchanged."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return source, []
    data = source.encode()
    starts = [0] + [m.end() for m in re.finditer(rb"\r\n|\r|\n", data)]  # ast's lines; columns are bytes

    def offset(line: int, column: int) -> int:
        return starts[line - 1] + column

    found = [(i, st, split) for i, st in enumerate(body(tree)) if (split := _split_assert(st)) is not None]
    expected = [(i, value) for i, _, (_, value) in found]
    for j, (_, st, (expr, _)) in reversed(list(enumerate(found))):  # from the end: offsets stay valid
        e = data[offset(expr.lineno, expr.col_offset):offset(expr.end_lineno, expr.end_col_offset)]
        call = f"assert {EXPECT_NAME}({first + j}, (".encode() + e + b"))"
        start, end = offset(st.lineno, st.col_offset), offset(st.end_lineno, st.end_col_offset)
        data = data[:start] + call + data[end:]
    return data.decode(), expected


class _Plain(ast.NodeTransformer):
    """Turns the names and calls of _NAMES and _CALLS in a parsed repr into constants."""

    def visit_Name(self, node: ast.Name) -> ast.Constant:
        if node.id not in _NAMES:
            raise ValueError(f"unexpected name {node.id!r}")
        return ast.Constant(_NAMES[node.id])

    def visit_Call(self, node: ast.Call) -> ast.Constant:
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        if name not in _CALLS or node.keywords:
            raise ValueError(f"unexpected call of {name or 'an expression'}")
        make, types = _CALLS[name]
        args = [ast.literal_eval(self.visit(a)) for a in node.args]
        # exact argument types: bytearray(10**12) or frozenset(range(10**12)) would exhaust the host
        if len(args) > len(types) or any(type(a) is not t for a, t in zip(args, types)):
            raise ValueError(f"unexpected arguments of {name}")
        return ast.Constant(make(*args))


def decode(text: str) -> object:
    """The plain value whose repr() is `text`; ValueError when it is none."""
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError("value too long")
    try:
        return ast.literal_eval(_Plain().visit(ast.parse(text, mode="eval")))
    except (SyntaxError, TypeError, MemoryError, RecursionError, OverflowError) as e:
        # OverflowError: a forged complex with a 400-digit real part; the text comes from the sandbox
        raise ValueError(f"unreadable value ({type(e).__name__})") from None


def _verdict(reports: list[str], want: object) -> str | None:
    """Why the reported values of one expectation fail it, or None when they pass."""
    if not reports:
        return "AssertionError: no value was reported"
    for text in reports:
        try:
            got = decode(text)
        except ValueError as e:
            return f"AssertionError: {e}"
        if got != want:
            return f"AssertionError: got {text[:200]}".replace("\n", "\\n")  # one line, even when forged
    return None


def judge_expected(tests: list[dict], values: object, expected: list[tuple[int, object]]) -> None:
    """Fail (in place) each test the harness reported passed whose expectations the reported `values`
    ([[j, repr], ...], from the sandbox, so untrusted) do not bear out; expected[j] = (test index, L)."""
    reported: defaultdict[int, list[str]] = defaultdict(list)
    for item in values if isinstance(values, list) else []:
        if isinstance(item, list) and len(item) == 2 and type(item[0]) is int and isinstance(item[1], str):
            reported[item[0]].append(item[1])
    for j, (k, want) in enumerate(expected):
        if tests[k]["passed"]:
            why = _verdict(reported[j], want)
            if why is not None:
                tests[k].update(passed=False, error=why)
