"""Normalised answer string -> sympy object, with cheap guards in front of the LaTeX parser.

Order of attempts (the first that applies wins):
  1. plain numbers (integers, decimals, a/b, \\frac{a}{b}, mixed numbers), exactly, without a parser;
  2. numbers in a base (`52_8`), as opaque symbols;
  3. a clock time `h:mm` (minutes 00-59) as an opaque symbol: `1:00` is no ratio 1/0 and equals only 1:00;
  4. a chain `x = 2 + 3 = 5` or `0.56 = 56`: its last side; an assignment `x = ...`: Eq(x, value);
     any other `lhs = rhs` (`7 = 11a+c`, `(p,q) = (3,2)`, `f(x) = 1`): Eq(lhs, rhs), both parsed here, a
     label the parser cannot read (`S_{MBCN}:S`) kept as an opaque symbol;
  5. ASCII algebra (`x^2+2x`): sympy's expression parser, unevaluated;
  6. lists, tuples, intervals, sets, unions, matrices: split (math_structure), elements parsed alone;
  7. anything else: latex2sympy2_extended.
Guards refuse before any expensive work: over-long answers, deep bracket nesting (the ANTLR parser's
time grows steeply with nesting depth) and numbers with more than MAX_DIGITS digits (power towers
such as 9^{9^{9^9}}), checked on the unevaluated expression. A value that is or holds zoo or nan (a
division by zero) is a parse failure: undefined answers would otherwise all equal one another.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from tokenize import TokenError

import sympy
from latex2sympy2_extended import latex2sympy  # at import time: the pool's forkserver preloads it once

from verifiers.math_structure import parse_structure, split_top_level

MAX_DEPTH = 12
MAX_DIGITS = 10_000
INTEGER = re.compile(r"^[+-]?\d+$")
DECIMAL = re.compile(r"^[+-]?\d*\.\d+$")
# `4.5e33`, `3E8`, `1e-5`: scientific notation (Minerva's answers), not Euler's e times a number
SCIENTIFIC = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))[eE]([+-]?\d+)$")
SLASH = re.compile(r"^([+-]?\d+)/(\d+)$")
FRAC = re.compile(r"^([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}$")
MIXED = re.compile(r"^([+-]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}$")
# Plain ASCII algebra: digits, operators and single lowercase letters (not e or i, whose meaning the LaTeX
# parser decides); sympy's own expression parser reads these about ten times faster than the grammar.
PLAIN_ALGEBRA = re.compile(r"^(?:[0-9+\-*/^(). ]|(?<![a-z])[a-df-hj-z](?![a-z]))+$")
ASSIGNMENT = re.compile(r"^([a-zA-Z])=([^=<>]+)$")
BASE_NUMBER = re.compile(r"^(-?)([0-9A-Za-z]+)_\{?(\d+)\}?$")
LETTER_I = sympy.Symbol("i")
CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d)$")


class ParseFailure(Exception):
    """The answer cannot (or must not) be turned into a sympy object; the message says why."""


def bracket_depth(s: str) -> int:
    """Maximum nesting depth of (, [ and { together."""
    depth = deepest = 0
    for c in s:
        if c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}":
            depth -= 1
    return deepest


def plain_number(s: str) -> sympy.Rational | None:
    """Exact value of an integer, decimal, `4.5e33`, a/b, \\frac{a}{b} or mixed number `3\\frac{1}{2}`
    (= 3 + 1/2); else None."""
    if INTEGER.match(s):
        return sympy.Integer(int(s))
    if DECIMAL.match(s):
        return sympy.Rational(s)
    m = SCIENTIFIC.match(s)
    if m:
        if abs(int(m.group(2))) > MAX_DIGITS:
            raise ParseFailure(f"number with more than {MAX_DIGITS} digits")
        return sympy.Rational(m.group(1)) * sympy.Integer(10) ** int(m.group(2))
    m = SLASH.match(s)
    if m and int(m.group(2)) != 0:
        return sympy.Rational(int(m.group(1)), int(m.group(2)))
    m = FRAC.match(s)
    if m and int(m.group(3)) != 0:
        value = sympy.Rational(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) == "-" else value
    m = MIXED.match(s)
    if m and int(m.group(4)) != 0:
        value = int(m.group(2)) + sympy.Rational(int(m.group(3)), int(m.group(4)))
        return -value if m.group(1) == "-" else value
    return None


def base_number(s: str) -> sympy.Symbol | None:
    """`52_8` / `52_{8}` -> an opaque symbol `52_8`: the question asked for that base, so only the same
    digits in the same base match (the LaTeX parser would drop the subscript and compare 52 with 52)."""
    m = BASE_NUMBER.match(s)
    if not m:
        return None
    digits = m.group(2).lstrip("0").upper() or "0"
    value = sympy.Symbol(f"{digits}_{int(m.group(3))}")
    return -value if m.group(1) else value


def clock_time(s: str) -> sympy.Symbol | None:
    """`1:00` / `01:00` -> an opaque symbol `1:00`: a time equals only the same time (read as a ratio,
    every `h:00` would be h/0, undefined). A ratio whose second term has two digits below 60 (`7:32`)
    reads the same way, so it matches only itself written so, not `14:64`."""
    m = CLOCK.match(s)
    return sympy.Symbol(f"{int(m.group(1))}:{m.group(2)}") if m else None


def _times_i(exponent: sympy.Basic) -> bool:
    """`exponent` is i (sympy's I, or the letter i the parser leaves) times something without an i."""
    for unit in (sympy.I, LETTER_I):
        coefficient = exponent.as_coefficient(unit)
        if coefficient is not None and not coefficient.has(sympy.I, LETTER_I):
            return True
    return False


def log10_bound(expr: sympy.Basic) -> float:
    """An upper bound on log10|value| of a numeric (sub)expression, without evaluating it.

    Rules: |n| -> log10|n|; p/q -> max; a+b -> max + log10(#terms); a*b -> sum;
    b^e -> |e| * log10|b| with |e| <= 10^log10_bound(e), but 0 for b > 0 and e = i t (modulus 1);
    n! -> n log10 n; symbols count as O(1)."""
    if isinstance(expr, sympy.Integer):
        n = abs(int(expr))
        if n.bit_length() < 1000:
            return math.log10(n) if n else 0.0
        return n.bit_length() * math.log10(2)
    if isinstance(expr, sympy.Rational):
        return max(log10_bound(sympy.Integer(expr.p)), log10_bound(sympy.Integer(expr.q)))
    if isinstance(expr, sympy.Float):
        # is_zero, not `!= 0`: sympy's Float(0.0) != 0, and log|0.0| is complex infinity
        return 0.0 if expr.is_zero else abs(float(sympy.log(abs(expr), 10)))
    if isinstance(expr, sympy.Pow) or isinstance(expr, sympy.exp):
        base, exponent = (expr.args if isinstance(expr, sympy.Pow) else (sympy.E, expr.args[0]))
        e = log10_bound(exponent)
        if e > 8:
            return math.inf
        if _times_i(exponent) and base.is_positive:
            return 0.0  # |b^{i t}| = 1 for real t: e^{2024 \pi i} is 1, not a 10^2000-digit number
        return max(log10_bound(base), 0.0) * 10**e
    if isinstance(expr, sympy.factorial):
        n = log10_bound(expr.args[0])
        return math.inf if n > 5 else 10**n * max(n, 1.0)
    if isinstance(expr, sympy.Mul):
        return sum(log10_bound(a) for a in expr.args)
    if expr.args:
        return max(log10_bound(a) for a in expr.args) + math.log10(len(expr.args))
    return 1.0


def _exact_floats(expr: sympy.Basic) -> sympy.Basic:
    """Decimals as exact rationals (0.5 -> 1/2): the parser makes Floats, comparison wants exact values."""
    floats = expr.atoms(sympy.Float)
    return expr.xreplace({f: sympy.Rational(str(f)) for f in floats}) if floats else expr


@lru_cache(maxsize=8192)
def parse(s: str, max_chars: int = 1000) -> sympy.Basic:
    """The sympy value of the normalised answer `s` (cached: a reference is parsed once per group)."""
    if not s:
        raise ParseFailure("empty answer")
    if len(s) > max_chars:
        raise ParseFailure(f"answer longer than {max_chars} characters")
    number = plain_number(s)
    if number is not None:
        return number
    based = base_number(s)
    if based is not None:
        return based
    clock = clock_time(s)
    if clock is not None:
        return clock
    single = len(split_top_level(s, ",")) == 1 and not re.search(r"[<>!]", s)
    sides = split_top_level(s, "=") if single else [s]
    if len(sides) > 2:
        # `x = 2 + 3 = 5` : the last side is the answer being stated
        return parse(sides[-1], max_chars)
    m = ASSIGNMENT.match(s)
    if m and "," not in m.group(2):
        # `x=...` : parse the value on its own so the fast paths above apply to it too
        return sympy.Eq(sympy.Symbol(m.group(1).lower()), parse(m.group(2), max_chars), evaluate=False)
    if len(sides) == 2 and all(sides):
        return _equation(sides[0], sides[1], max_chars)
    if bracket_depth(s) > MAX_DEPTH:
        raise ParseFailure(f"brackets nested deeper than {MAX_DEPTH}")
    if PLAIN_ALGEBRA.match(s):
        return _checked(_plain_algebra(s))
    try:
        structured = parse_structure(s, lambda part: parse(part.strip(), max_chars))
    except (TypeError, ValueError):  # e.g. an interval with a complex end point: let the parser decide
        structured = None
    if structured is not None:
        return structured
    try:
        expr = latex2sympy(s)
    except RecursionError:
        raise ParseFailure("expression nested too deeply") from None
    except Exception as e:
        raise ParseFailure(f"unparseable: {str(e).splitlines()[0][:80]}") from None
    if isinstance(expr, sympy.MatrixBase):
        expr = sympy.ImmutableMatrix(expr)
    if not isinstance(expr, sympy.Basic):
        raise ParseFailure(f"unparseable: parser returned {type(expr).__name__}")
    return _checked(expr)


def _equation(lhs: str, rhs: str, max_chars: int) -> sympy.Basic:
    """`lhs = rhs`: the value `rhs` when neither side has a variable (`0.56 = 56`, `\\frac12 = 0.5`: the last
    side is the answer stated), else Eq(lhs, rhs) (`7 = 11a+c` is an equation, not the expression 11a+c)."""
    right = parse(rhs, max_chars)
    try:
        left = parse(lhs, max_chars)
    except ParseFailure:
        left = sympy.Symbol(lhs)  # a label the parser cannot read, such as `S_{MBCN}:S`: only its name counts
    if not left.free_symbols and not right.free_symbols:
        return right
    return sympy.Eq(left, right, evaluate=False)


def _checked(expr: sympy.Basic) -> sympy.Basic:
    """`expr` with exact decimals and `i` as the imaginary unit, after refusing numbers too large to
    compute with, and refusing a relation the parser already decided (`2 = 3` -> False is a statement,
    not an answer)."""
    if isinstance(expr, sympy.logic.boolalg.BooleanAtom) or (
        isinstance(expr, sympy.core.relational.Relational) and not expr.free_symbols
    ):
        raise ParseFailure("not an answer: a relation between numbers")
    if expr.has(sympy.zoo, sympy.nan):
        raise ParseFailure("undefined value (a division by zero)")
    if log10_bound(expr) > MAX_DIGITS:
        raise ParseFailure(f"number with more than {MAX_DIGITS} digits")
    return _exact_floats(_imaginary_unit(expr))


def _imaginary_unit(expr: sympy.Basic) -> sympy.Basic:
    """A free `i` as sympy's I (the parser leaves it a symbol, so `i^2` would differ from -1); `subs`
    leaves a bound index alone (`\\sum_{i=1}^3 i`). After the size guard: substituting evaluates."""
    return expr.subs(LETTER_I, sympy.I) if LETTER_I in expr.free_symbols else expr


def _plain_algebra(s: str) -> sympy.Basic:
    """sympy's parser on ASCII algebra (`^` is power, `2x` is 2*x), unevaluated so that nothing large is
    computed before the size check."""
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication,
        parse_expr,
        standard_transformations,
    )

    try:
        return parse_expr(s, transformations=standard_transformations + (implicit_multiplication, convert_xor),
                          evaluate=False)
    except (SyntaxError, TokenError, Exception) as e:  # parse_expr evaluates code: any error means no
        raise ParseFailure(f"unparseable: {type(e).__name__}") from None
