"""Parsing of normalised answers (verifiers/math_parse.py): exact cases for its fast paths and guards."""
import pytest
import sympy

from verifiers.math_parse import ParseFailure, base_number, parse, plain_number


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
