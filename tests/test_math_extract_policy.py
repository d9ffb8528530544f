"""Issue 13, extraction half: the Minerva answer line, bare answers (the policy in verifiers/math_extract.py),
`require_marker`, and references with several boxes. Hand-written cases, each against the exact result."""
import time

import pytest

from verifiers import Sample, load
from verifiers.math_extract import answer_is, extract_answers, extract_reference, math_segments

MINERVA = "Final Answer: The final answer is ${}$. I hope it is correct."


@pytest.fixture(scope="module")
def math():
    return load("math")


def verdict(verifier, completion, reference):
    return verifier.verify(Sample(completion=completion, reference=reference))


# ---- the Minerva / MATH few-shot answer line (a bug: the phrase itself was extracted)


@pytest.mark.parametrize(
    "text, expected",
    [
        (MINERVA.format(r"\frac{1}{2}"), r"$\frac{1}{2}$"),
        (MINERVA.format("3.5"), "$3.5$"),
        ("The answer is: the answer is 7", "7"),
        ("Answer: 5 is the answer:", "5 is the answer:"),  # an anchor with nothing after it is not the last
        ("ANSWER: The Answer Is 7", "7"),
        ("Answer: the answer is the answer is 7", "7"),
    ],
)
def test_answer_is_takes_the_last_anchor_of_its_line(text, expected):
    assert answer_is(text) == expected


def test_minerva_answer_line_is_judged_on_its_value(math):
    score = verdict(math, "We add them.\n" + MINERVA.format("18"), "18")
    assert score.correct and score.details == {"extracted": "18", "extracted_from": "answer is"}
    assert not verdict(math, MINERVA.format("19"), "18").correct


# ---- math segments: $..$ (pandoc's rule), $$..$$, \(..\), \[..\]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so $x=1$ and $y$.", [(3, 8, "x=1"), (13, 16, "y")]),
        ("$$\nx = 5\n$$", [(0, 11, "x = 5")]),
        (r"\(a\) then \[ b \]", [(0, 5, "a"), (11, 18, "b")]),
        ("pays $18 and $5 back", []),  # a closing `$` needs a non-space before it: currency, not math
        ("$20,000 and $30,000", []),  # nor may a digit follow it
        ("$ x$", []),  # an opening `$` needs a non-space after it
        (r"costs \$5 and \$6", []),
        (r"a\\[2pt] b", []),  # a row break, not display math
        ("$a$$b$", [(0, 3, "a"), (3, 6, "b")]),
        ("$x\n$ and $y$", [(9, 12, "y")]),  # inline math stays on one line
        (r"$a\$b$", [(0, 6, r"a\$b")]),  # an escaped `$` does not close
        ("$$ x", []),
        (r"\( x", []),
        ("$unclosed then\n$$y$$", [(15, 20, "y")]),
    ],
)
def test_math_segments(text, expected):
    assert math_segments(text) == expected


# ---- the bare-answer policy


@pytest.mark.parametrize(
    "text, expected",
    [
        # the completion is only the answer
        ("-5", ("final line", ["-5"])),
        ("$x=11$", ("final line math", ["x=11"])),
        ("28 percent", ("final line", ["28"])),
        (r"$\sec^2(y)$", ("final line math", [r"\sec^2(y)"])),
        (r"\sec^2(y)", ("final line", [r"\sec^2(y)"])),
        ("x = 11", ("final line", ["x = 11"])),
        ("**18**", ("final line", ["18"])),
        ("Evelyn", ("bare text", ["Evelyn"])),
        ("No real solutions", ("bare text", ["No real solutions"])),
        ("(C).", ("bare text", ["(C)"])),
        # prose ending in it: the values stated on the final line
        ("3 + 15 = 18\nSo the total is 18 apples.", ("final line", ["18"])),
        ("The total = 18", ("final line", ["18"])),
        ("It costs 5.4 \\text{ cents} each.", ("final line", [r"5.4 \text{ cents}"])),
        ("The area is 12 cm^2.", ("final line", ["12 cm^2"])),
        (r"7 \text{\emph{big} apples} each", ("final line", [r"7 \text{\emph{big} apples}"])),  # nested
        ("1} then 2", ("final line", ["1}", "2"])),  # a stray `}` does not hide later prose words
        ("Great, it is 18!", ("final line", ["18"])),
        ("3 or 4", ("final line", ["3", "4"])),
        ("The roots are 19, 46, and 82.", ("final line", ["19, 46", "82"])),
        # math on the final line: every segment there
        ("Work\nThus $x = 3$.", ("final line math", ["x = 3"])),
        ("Thus $x = 3$ or $x = 4$.", ("final line math", ["x = 3", "x = 4"])),
        ("We get\n$$\nx = 5\n$$\n", ("final line math", ["x = 5"])),
        (r"So \[ \frac{1}{2} \]", ("final line math", [r"\frac{1}{2}"])),
        ("There are 3 cases, so $x = 18$.", ("final line math", ["x = 18"])),
        # a segment that only names something is not a second answer, unless it is all there is
        ("Therefore, the value of $x$ is $5$.", ("final line math", ["5"])),
        (r"The area of $\triangle ABC$ is $24$.", ("final line math", ["24"])),
        ("The maximum of $f(x)$ is $9$ at $a_1$.", ("final line math", ["9"])),
        ("The length of $AB$ is $5$ and $BC$ is $7$.", ("final line math", ["5", "7"])),
        ("Hence $n$.", ("final line math", ["n"])),
        ("So $x^2$ is $4$.", ("final line math", ["x^2", "4"])),
        # no value on the final line: the last math segment of the text
        ("We find $x = 2$, then $x = 5$.\nThis completes the solution.", ("last math segment", ["x = 5"])),
        # nothing that states an answer
        ("I am not sure how to solve this problem.", ("none", [])),
        ("I cannot solve this", ("none", [])),  # four words: prose, not a text answer
        ("Let me think.\nYes", ("none", [])),
        ("   \n  ", ("none", [])),
    ],
)
def test_bare_answers(text, expected):
    assert extract_answers(text) == expected


def test_marked_answers_come_before_bare_ones():
    assert extract_answers("\\boxed{3}\n$4$") == ("boxed", ["3"])
    assert extract_answers("the answer is 3\n$4$") == ("answer is", ["3"])
    assert extract_answers("#### 3\nso 4") == ("####", ["3"])


def test_require_marker_keeps_the_format_strict_rules():
    assert extract_answers("-5", require_marker=True) == ("none", [])
    assert extract_answers("$x=11$", require_marker=True) == ("none", [])
    assert extract_answers("got 12\nthe end", last_number_fallback=True, require_marker=True) == (
        "last number", ["12"])


def test_last_number_fallback_replaces_the_bare_answer():
    assert extract_answers("so 9 * 2 = 18") == ("final line", ["9 * 2 = 18"])
    assert extract_answers("12 then 15") == ("final line", ["12", "15"])
    assert extract_answers("12 then 15", last_number_fallback=True) == ("last number", ["15"])
    assert extract_answers("$x = 3$ then 12\nnothing", last_number_fallback=True) == ("last number", ["12"])
    assert extract_answers("Evelyn", last_number_fallback=True) == ("none", [])
    assert extract_answers(r"\boxed{2} then 15", last_number_fallback=True) == ("boxed", ["2"])


@pytest.mark.parametrize(
    "text",
    [
        "$1 " * 33_000,  # openers without closers
        "\\(" * 50_000,
        "$$" + "x" * 100_000,
        "one " * 25_000 + "2",
        "{" * 100_000 + "1",
        "answer is " * 10_000 + "1",
        "the answer is" + "\n" * 100_000,  # was quadratic: `\s*:?\s*` in the "answer is" pattern
    ],
)
def test_bare_extraction_is_linear_on_long_completions(text):
    start = time.perf_counter()
    extract_answers(text)
    assert time.perf_counter() - start < 0.5


# ---- the verifier: bare answers judged like boxed ones, hedging still 0


@pytest.mark.parametrize(
    "completion, reference, source",
    [
        ("-5", "-5", "final line"),
        ("$x=11$", "11", "final line math"),
        ("28 percent", "28", "final line"),
        (r"$\sec^2(y)$", r"\sec^2(y)", "final line math"),
        ("Adding them up.\nSo the total is 18 apples.", "18", "final line"),
        ("3 or 4", "3, 4", "final line"),
        ("The roots are 19, 46, and 82.", "19, 46, 82", "final line"),
        ("Then $x=2$.\nDone, as required.", "2", "last math segment"),
        ("Therefore, the value of $x$ is $5$.", "5", "final line math"),
    ],
)
def test_bare_answer_is_judged_like_a_boxed_one(math, completion, reference, source):
    score = verdict(math, completion, reference)
    assert score.correct and score.details["extracted_from"] == source, score.reason


@pytest.mark.parametrize(
    "completion, reference",
    [
        ("3 or 4", "3"),
        ("Thus $x = 3$ or $x = 4$.", "3"),
        ("Either 17 or 18", "18"),
        ("There are 3 cases and 18 ways", "18"),
    ],
)
def test_several_different_final_answers_earn_nothing(math, completion, reference):
    score = verdict(math, completion, reference)
    assert score.reward == 0.0 and score.reason.startswith("hedging"), score.reason


def test_require_marker_option(math):
    strict = load("math", require_marker=True)
    assert strict.verify(Sample(completion="-5", reference="-5")).reason == "no answer found"
    assert strict.verify(Sample(completion=r"\boxed{-5}", reference="-5")).correct
    assert math.verify(Sample(completion="-5", reference="-5")).correct


# ---- references with several boxes: all of them, in order


@pytest.mark.parametrize(
    "reference, expected",
    [
        (r"\boxed{1} papers and \boxed{2} bins", ["1", "2"]),
        (r"first \boxed{1}, finally \boxed{2}", ["1", "2"]),
        (r"\boxed{2}", ["2"]),
        ("#### 1\nthen\n#### 2", ["2"]),
        ("7", ["7"]),
    ],
)
def test_extract_reference_returns_every_box(reference, expected):
    assert extract_reference(reference) == expected


@pytest.mark.parametrize(
    "completion, ok",
    [
        (r"\boxed{1, 2}", True),
        (r"\boxed{1} papers and \boxed{2} bins", True),
        (r"\boxed{2}", False),
        (r"\boxed{1}", False),
        (r"\boxed{1, 2, 3}", False),
    ],
)
def test_a_reference_with_several_boxes_is_a_list(math, completion, ok):
    assert verdict(math, completion, r"\boxed{1} papers and \boxed{2} bins").correct is ok


def test_a_reference_boxing_one_value_twice_is_that_value(math):
    reference = r"$d = \boxed{15\frac{39}{40}}$, or $\boxed{\frac{639}{40}}$ inches."
    assert verdict(math, r"\boxed{639/40}", reference).correct
    assert not verdict(math, r"\boxed{639/40, 15\frac{39}{40}, 1}", reference).correct


# ---- the verifier's verdicts, reasons and details (verifiers/math.py), one exact case each


@pytest.mark.parametrize(
    "completion, reference, correct, reason",
    [
        (r"\boxed{18}", "18", True, "exact match"),
        (r"\boxed{evelyn}", "Evelyn", True, "same text"),
        (r"\boxed{Alice}", "Evelyn", False, "different text"),
        (r"\boxed{3.1415926}", r"\pi", True, "equivalent"),  # within the default rel_tol 1e-6
        (r"\boxed{1}", "@@", False, "reference unparseable: I don't understand this"),
        (r"\boxed{1+}", "1", False, "unparseable: SyntaxError"),
        (r"\boxed{} \boxed{5}", "5", False, "empty answer"),
    ],
)
def test_verdict_and_reason(math, completion, reference, correct, reason):
    score = verdict(math, completion, reference)
    assert (score.correct, score.reward, score.reason) == (correct, float(correct), reason)


def test_details_name_the_extracted_answer_cut_to_200_characters(math):
    assert verdict(math, r"\boxed{} \boxed{5}", "5").details == {"extracted": ""}
    assert verdict(math, r"\boxed{1} or \boxed{2}", "3").details == {"extracted": "2"}
    long_sum = "1+" * 150 + "1"  # 301 characters, equal to 151
    hedged = verdict(math, r"\boxed{1} or \boxed{" + long_sum + "}", "3")
    assert hedged.reason == "hedging: 2 different answers" and hedged.details == {"extracted": long_sum[:200]}
    right = verdict(math, r"\boxed{" + long_sum + "}", "151")
    assert right.correct and right.details == {"extracted": long_sum[:200], "extracted_from": "boxed"}


def test_answer_length_cap_applies_to_answer_and_reference():
    one = "1." + "0" * 1199  # 1201 characters, equal to 1
    score = load("math").verify(Sample(completion=r"\boxed{" + one + "}", reference="1"))
    assert score.reason == "answer longer than 1000 characters"
    score = load("math").verify(Sample(completion=r"\boxed{1}", reference=one))
    assert score.reason == "reference answer longer than 1000 characters"
    raised = load("math", max_answer_chars=5000)
    assert raised.verify(Sample(completion=r"\boxed{" + one + "}", reference="1")).correct
    assert raised.verify(Sample(completion=r"\boxed{1}", reference=one)).correct


def test_completion_length_cap_is_inclusive():
    ten = Sample(completion=r"\boxed{18}", reference="18")
    assert load("math", max_completion_chars=10).verify(ten).correct
    score = load("math", max_completion_chars=9).verify(Sample(completion=r"\boxed{18}", reference="18"))
    assert score.reason == "completion longer than 9 characters"
