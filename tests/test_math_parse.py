"""Parsing of normalised answers (verifiers/math_parse.py): exact cases for its fast paths and guards."""
import math

import pytest
import sympy

from verifiers.math_parse import (
    MAX_DEPTH,
    MAX_DIGITS,
    ParseFailure,
    base_number,
    bracket_depth,
    log10_bound,
    parse,
    plain_number,
)


@pytest.mark.parametrize(
    "text, value",
    [
        (r"-2\frac{1}{2}", sympy.Rational(-5, 2)),  # the sign of a mixed number covers its fraction
        (r"+2\frac{1}{2}", sympy.Rational(5, 2)),
        (r"\frac{-3}{4}", sympy.Rational(-3, 4)),
        (r"-\frac{-3}{4}", sympy.Rational(3, 4)),
        ("-.5", sympy.Rational(-1, 2)),
        ("-3/4", sympy.Rational(-3, 4)),
    ],
)
def test_plain_number_signs(text, value):
    assert plain_number(text) == value


@pytest.mark.parametrize("text", [r"\frac{1}{0}", r"2\frac{1}{0}", "3/0", "1.", "--1", r"\frac{1}{x}"])
def test_plain_number_refuses(text):
    assert plain_number(text) is None


def test_base_numbers_keep_their_sign_digits_and_base():
    assert parse("-37_8") == -parse("37_8")
    assert parse("-37_8") != parse("37_8")
    assert base_number("052_{8}") == base_number("52_8") == sympy.Symbol("52_8")
    assert base_number("0_2") == sympy.Symbol("0_2")
    assert base_number("1a_{16}") == sympy.Symbol("1A_16")
    assert base_number("52") is None


def test_a_raised_length_limit_applies_to_the_parts_of_a_chain_and_an_assignment():
    long_one = "1." + "0" * 1200  # over the default limit of 1000 characters
    assert parse("x=" + long_one, 2000) == sympy.Eq(sympy.Symbol("x"), 1)
    assert parse("1=" + long_one, 2000) == 1


def test_length_limit_is_inclusive():
    assert parse("1+" * 10 + "1", 21).doit() == 11
    with pytest.raises(ParseFailure, match="longer than 20"):
        parse("1+" * 10 + "1", 20)


def test_bracket_depth_counts_nesting_not_pairs():
    assert bracket_depth("(()(()))") == 3
    assert bracket_depth("()[]{}") == 1
    assert bracket_depth("x") == 0


def test_nesting_limit_is_inclusive():
    assert parse("(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH) == 1
    with pytest.raises(ParseFailure, match=f"deeper than {MAX_DEPTH}"):
        parse("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1))
    assert MAX_DEPTH == 12


def test_digit_limit_is_inclusive():
    assert MAX_DIGITS == 10_000
    assert parse("10^10000") == sympy.Pow(10, 10000, evaluate=False)  # log10 bound exactly 10000
    with pytest.raises(ParseFailure, match="more than 10000 digits"):
        parse("10^10001")


def test_plain_numbers_are_exact_rationals():
    assert type(parse("3/4")) is sympy.Rational and parse("3/4") == sympy.Rational(3, 4)


def test_a_raised_length_limit_applies_to_the_elements_of_a_structure():
    long_one = "1." + "0" * 1200
    assert parse(f"({long_one},2,3)", 2000) == sympy.Tuple(1, 2, 3)


LOG2 = math.log10(2)


@pytest.mark.parametrize(
    "expr, bound",
    [
        (sympy.Integer(0), 0.0),
        (sympy.Integer(-1000), 3.0),
        (sympy.Integer(2**998), 998 * LOG2),          # under 1000 bits: the exact log
        (sympy.Integer(2**999), 1000 * LOG2),         # 1000 bits and over: bits * log10(2)
        (sympy.Integer(2**2000), 2001 * LOG2),
        (sympy.Rational(10**20, 3), 20.0),            # the larger of numerator and denominator
        (sympy.Rational(3, 10**20), 20.0),
        (sympy.Symbol("x"), 1.0),                     # a symbol counts as O(1)
        (sympy.Pow(10, 10**8, evaluate=False), 1e8),  # exponent bound 8: still finite
        (sympy.Pow(10, 10**9, evaluate=False), math.inf),
        (sympy.Pow(100, 3, evaluate=False), 6.0),
        (sympy.exp(100, evaluate=False), 100.0),      # e counts as a symbol: 1 * 100
        (sympy.factorial(5, evaluate=False), 5.0),    # n log10 n with log10 n floored at 1: 10^0.7 * 1
        (sympy.factorial(100, evaluate=False), 200.0),
        (sympy.factorial(10**5, evaluate=False), 5e5),
        (sympy.factorial(10**6, evaluate=False), math.inf),
        (sympy.Mul(10**3, 10**4, evaluate=False), 7.0),
        (sympy.Add(10**3, 10**4, evaluate=False), 4 + LOG2),
    ],
)
def test_log10_bound(expr, bound):
    assert log10_bound(expr) == pytest.approx(bound, rel=1e-9)
