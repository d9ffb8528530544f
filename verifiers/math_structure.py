"""The outer structure of an answer: lists, tuples, intervals, sets, unions, matrices.

Only the outer layer is split here (at top-level commas, `\\cup`, matrix `&` and `\\\\`); every element is
parsed on its own by the caller's `parse` (plain numbers without the LaTeX parser, the rest with it).
Splitting first is faster than handing the whole answer to the ANTLR grammar, whose time grows steeply
with the length and nesting of comma lists, and it fixes the meaning of the notation:
  `(a, b, ...)` tuple (a pair (a, b) doubles as an open interval, see math_equiv);
  `[a, b]`, `[a, b)`, `(a, b]` intervals (and `(a, b)` inside a union);  `[a, b, c]` tuple;
  `\\{a, b\\}` set;  `a, b` (bare) several answers, an AnswerList;  `A \\cup B` union;
  `\\begin{pmatrix} a & b \\\\ c & d \\end{pmatrix}` matrix (also bmatrix, vmatrix-free forms).
"""
from __future__ import annotations

import re
from typing import Callable

import sympy

Parse = Callable[[str], sympy.Basic]
OPEN, CLOSE = "([{", ")]}"
MATRIX = re.compile(r"^\\begin\{([pb]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$", re.DOTALL)


class AnswerList(sympy.FiniteSet):
    """Several answers written bare, `a, b`: a set of answers (against a set or another list the order
    does not count) that keeps the written order and repeats, because against a tuple reference the
    order counts (Math-Verify reads `1, 3` against `(1, 3)` in order too)."""

    def __new__(cls, *args: object) -> "AnswerList":
        obj = sympy.Basic.__new__(cls, *map(sympy.sympify, args))
        obj._args_set = frozenset(obj.args)  # FiniteSet's own __new__ sorts and deduplicates; this does not
        return obj


def split_top_level(s: str, separator: str) -> list[str]:
    """`s` split at `separator` where no bracket, brace or `\\{ \\}` is open (an escaped brace counts as
    its brace: the backslash before it changes nothing)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c in OPEN:
            depth += 1
        elif c in CLOSE:
            depth -= 1
        elif depth == 0 and s.startswith(separator, i):
            parts.append(s[start:i])
            i += len(separator)
            start = i
            continue
        i += 1
    parts.append(s[start:])
    return parts


def wrapper(s: str) -> tuple[str, str, str] | None:
    """(opening, inside, closing) when one bracket pair (or `\\{ \\}`) encloses all of `s`, else None."""
    if s.startswith("\\{") and s.endswith("\\}"):
        opening, closing, inner = "\\{", "\\}", s[2:-2]
    elif len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        opening, closing, inner = s[0], s[-1], s[1:-1]
    else:
        return None
    depth = 0
    for c in inner:  # the outer pair must not close early, as in `(1)+(2)`
        depth += (c in OPEN) - (c in CLOSE)
        if depth < 0:
            return None
    return (opening, inner, closing) if depth == 0 else None


def parse_structure(s: str, parse: Parse, in_union: bool = False) -> sympy.Basic | None:
    """The sympy object for a structured answer, or None when `s` is a single expression."""
    matrix = MATRIX.match(s)
    if matrix:
        rows = [r for r in split_top_level(matrix.group(2), "\\\\") if r.strip()]
        cells = [[parse(c.strip()) for c in split_top_level(r, "&")] for r in rows]
        if len({len(r) for r in cells}) != 1:
            return None
        return sympy.ImmutableMatrix(cells)
    union = split_top_level(s, "\\cup")
    if len(union) > 1:
        return sympy.Union(*(parse_structure(p, parse, in_union=True) or parse(p) for p in union))
    wrapped = wrapper(s)
    if wrapped:
        opening, inner, closing = wrapped
        parts = split_top_level(inner, ",")
        if opening == "\\{":
            return sympy.FiniteSet(*(parse(p) for p in parts)) if all(parts) else None
        if len(parts) == 2 and (opening + closing != "()" or in_union):
            a, b = parse(parts[0]), parse(parts[1])
            return sympy.Interval(a, b, left_open=opening == "(", right_open=closing == ")")
        if len(parts) >= 2 and all(parts):
            return sympy.Tuple(*(parse(p) for p in parts))
        return None
    parts = split_top_level(s, ",")
    if len(parts) > 1 and all(parts):
        return AnswerList(*(parse(p) for p in parts))
    return None
