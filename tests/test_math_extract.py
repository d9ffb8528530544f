"""Answer extraction rules of the math verifier (verifiers/math_extract.py)."""
import pytest

from verifiers.math_extract import (
    answer_is,
    boxed_contents,
    extract_answers,
    extract_reference,
    hash_answer,
    last_number,
    matching_brace,
)


def test_matching_brace_skips_escaped_braces():
    text = r"{a\{b\}{c}}x"
    assert matching_brace(text, 0) == len(text) - 2
    assert matching_brace("{unclosed", 0) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{18}.", ["18"]),
        (r"\boxed{\frac{1}{2}}", [r"\frac{1}{2}"]),
        (r"\boxed{\{1,2\}}", [r"\{1,2\}"]),
        (r"\fbox{7}", ["7"]),
        (r"\boxed 5$", ["5"]),
        (r"first \boxed{1} then \fbox{2} then \boxed{3}", ["1", "2", "3"]),
        (r"\boxed{}", [""]),
        (r"\boxed{unclosed", []),
        ("no box here", []),
    ],
)
def test_boxed_contents(text, expected):
    assert boxed_contents(text) == expected


def test_hash_answer_takes_last_line_value():
    assert hash_answer("work\n#### 18") == "18"
    assert hash_answer("#### 1\n#### 2,000 ") == "2,000"
    assert hash_answer("none") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("So the answer is 42.", "42"),
        ("The final answer is $\\frac{1}{2}$.\nThanks", "$\\frac{1}{2}$"),
        ("Final Answer: 3.5.", "3.5"),
        ("answer: -7", "-7"),
        ("**Final Answer:** 18", "18"),
    ],
)
def test_answer_is(text, expected):
    assert answer_is(text) == expected


def test_last_number_keeps_sign_decimals_and_separators():
    assert last_number("a 3 then -1,234.5 end") == "-1,234.5"
    assert last_number("nothing") is None


def test_extract_precedence_box_over_hash_over_phrase():
    assert extract_answers("the answer is 1\n#### 2 \\boxed{3}") == ("boxed", ["3"])
    assert extract_answers("the answer is 1\n#### 2") == ("####", ["2"])
    assert extract_answers("the answer is 1") == ("answer is", ["1"])


def test_last_number_fallback_is_off_by_default():
    # format-strict extraction (require_marker): the bare-answer policy is tested in test_math_extract_policy
    assert extract_answers("I got 12 apples", require_marker=True) == ("none", [])
    assert extract_answers("I got 12 apples", last_number_fallback=True) == ("last number", ["12"])


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("18", ["18"]),
        (18, ["18"]),
        (0.5, ["0.5"]),
        ("Janet sells 9 eggs.\n#### 18", ["18"]),
        (r"so it is \boxed{\frac{1}{2}}.", [r"\frac{1}{2}"]),
        (r"\frac{1}{2}", [r"\frac{1}{2}"]),
    ],
)
def test_extract_reference(reference, expected):
    assert extract_reference(reference) == expected


def test_extract_reference_rejects_missing():
    with pytest.raises(ValueError):
        extract_reference(None)


# ---- exact cases for each guard (issue 21: each kills a plausible mistake)


def test_matching_brace_an_escaped_closing_brace_does_not_close():
    assert matching_brace(r"{a\}b}", 0) == 5
    assert matching_brace(r"{\\}", 0) == 3  # an escaped backslash, then the real `}`
    assert matching_brace("x{a}", 1) == 3


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"it ends with \boxed", []),
        (r"\boxed $5$", []),
        (r"\boxed   7 then", ["7"]),
        (r"\boxed{1} and \boxed 2", ["1", "2"]),
        (r"\fbox{2} before \boxed{1}", ["2", "1"]),
        (r"\boxed{a{b}c}", ["a{b}c"]),
        (r"\boxed{1}\boxed{2}", ["1", "2"]),
        (r"\boxed{\boxed{1}} and \boxed{2}", [r"\boxed{1}", "2"]),  # a box inside a box is its content
    ],
)
def test_boxed_contents_edges(text, expected):
    assert boxed_contents(text) == expected


def test_answer_is_takes_the_last_phrase_and_stops_at_the_sentence():
    assert answer_is("the answer is 1.\nThen again, the answer is 2. Done") == "2"
    assert answer_is("The answer is 3.5") == "3.5"
    assert answer_is("nothing here") is None


def test_last_number_fallback_without_numbers_finds_nothing():
    assert extract_answers("no digits at all", last_number_fallback=True) == ("none", [])
    assert last_number("-.5 and .25") == ".25"


@pytest.mark.parametrize(
    "reference, expected",
    [
        (r"first \boxed{1}, finally \boxed{2}", ["1", "2"]),  # issue 13: every box, not the last
        ("#### 1\nthen\n#### 2", ["2"]),
        ("####", [""]),
        (-3, ["-3"]),
        (1e-07, ["1e-07"]),
    ],
)
def test_extract_reference_takes_the_last_hash_answer_and_every_box(reference, expected):
    assert extract_reference(reference) == expected


@pytest.mark.parametrize("reference", [None, True, False])
def test_extract_reference_rejects_non_answers(reference):
    with pytest.raises(ValueError, match="string or a number"):
        extract_reference(reference)
