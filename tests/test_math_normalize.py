"""String normalisation rules of the math verifier (verifiers/math_normalize.py)."""
import pytest

from verifiers.math_normalize import (
    collapse_space,
    normalize,
    strip_degrees,
    strip_delimiters,
    strip_percent_and_currency,
    strip_punctuation,
    strip_spacing,
    strip_text,
    strip_thousands,
    strip_units,
    unify_commands,
    unify_unicode,
)


@pytest.mark.parametrize(
    "rule, raw, expected",
    [
        (strip_delimiters, r"$\frac{1}{2}$", r"\frac{1}{2}"),
        (strip_delimiters, r"\(x\)", "x"),
        (strip_delimiters, r"\displaystyle 5", " 5"),
        (strip_spacing, r"\left( 1, 2 \right)", "( 1, 2 )"),
        (strip_spacing, r"\left\{ 1 \right.", r"\{ 1 "),
        (strip_spacing, r"11,\! 111,\! 100", "11,111,100"),
        (strip_spacing, r"3\,\text{cm}", r"3 \text{cm}"),
        (unify_commands, r"\dfrac{1}{2}+\tfrac{3}{4}", r"\frac{1}{2}+\frac{3}{4}"),
        (unify_commands, r"\frac12", r"\frac{1}{2}"),
        (unify_commands, r"\frac1{x}", r"\frac{1}{x}"),
        (unify_commands, r"\frac{1}2", r"\frac{1}{2}"),
        (unify_commands, r"3\sqrt2", r"3\sqrt{2}"),
        (unify_commands, r"x \leq 3", r"x \le 3"),
        (strip_text, r"5.4 \text{ cents}", "5.4  "),
        (strip_text, r"\text{Evelyn}", "Evelyn"),
        (strip_text, r"864 \mbox{ inches}^2", "864  "),
        (strip_text, r"15\text{ cm}^{3}", "15 "),
        (strip_text, r"x=1 \text{ or } x=2", "x=1 , x=2"),
        (strip_text, r"\mbox{(C)}", "(C)"),
        (strip_degrees, r"90^\circ", "90"),
        (strip_degrees, r"90^{\circ}", "90"),
        (strip_degrees, "90°", "90"),
        (strip_percent_and_currency, r"10\%", "10"),
        (strip_percent_and_currency, r"\$5.00", "5.00"),
        (strip_percent_and_currency, "€5", "5"),
        (strip_units, "10 inches", "10"),
        (strip_units, "4 cm^2", "4"),
        (strip_units, "5 square units", "5"),
        (strip_units, "5m", "5m"),  # a single letter may be a variable
        (strip_units, "18 eggs", "18"),
        (strip_units, "1,000 red apples", "1,000"),
        (strip_units, "2 x", "2 x"),
        (unify_unicode, "−5×2π", "-5\\times 2\\pi "),
        (strip_thousands, "58,500", "58500"),
        (strip_thousands, "1,234,567.5", "1234567.5"),
        (strip_thousands, "(1,000)", "(1,000)"),  # inside brackets a comma separates
        (strip_thousands, "1,2", "1,2"),
        (strip_punctuation, "42.", "42"),
        (strip_punctuation, " 7 ;", "7"),
        (strip_punctuation, "(C)", "C"),
        (strip_punctuation, "b)", "B"),
        (collapse_space, r"2 + 7 i", "2+7 i"),
        (collapse_space, r"\log_2 8", r"\log_2 8"),
        (collapse_space, r"\pi r^2", r"\pi r^2"),
    ],
)
def test_rule(rule, raw, expected):
    assert rule(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        (r"$\dfrac{33}{100}$", r"\frac{33}{100}"),
        (r"11,\! 111,\! 111,\! 100", "11111111100"),
        (r"5.4 \text{ cents}", "5.4"),
        (r"\$1,000.", "1000"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
        (r"\text{(C)}", "C"),
        (r"30^\circ", "30"),
    ],
)
def test_normalize_pipeline(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("4 CM", "4"),                   # unit words in any case
        ("4 Cm^2", "4"),
        (r"\text{total }7", "7"),        # a label right before the number goes too
        ("(c", "C"),                     # multiple choice with only its opening bracket
        ("c)", "C"),
        ("(c)", "C"),
    ],
)
def test_units_labels_and_choices(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        (r"2\text{cis}(\pi/2)", r"2cis(\pi/2)"),      # a word inside an expression is not a unit
        (r"3\text{ m} \cdot 2", r"3 m\cdot 2"),
        (r"(3\text{ cm}, 4\text{ cm})", "(3,4)"),      # units of the elements of a tuple
        (r"\{3\text{ cm}\}", r"\{3\}"),
        (r"[2\text{ sec},5\text{ sec}]", "[2,5]"),
        (r"10\text{ inches}.", "10"),                  # closing punctuation after the unit
        (r"5\text{ cm}^2;", "5"),
        (r"\text{total: }7", "7"),                     # a label before the number
        (r"(\text{about }3, 4)", "(3,4)"),
    ],
)
def test_text_is_dropped_only_at_the_edges_of_an_element(raw, expected):
    assert normalize(raw) == expected
