"""Parsing guards and equivalence rules of the math verifier, as whole-verifier hand cases."""
import pytest
import sympy

from verifiers import Sample, load
from verifiers.math_equiv import equivalent, numbers_close
from verifiers.math_parse import ParseFailure, bracket_depth, log10_bound, parse, plain_number


@pytest.fixture(scope="module")
def math():
    return load("math")


def judge(verifier, answer, reference):
    return verifier.verify(Sample(completion=f"so \\boxed{{{answer}}}", reference=reference))


ACCEPT = [
    # exact and numeric
    ("18", "18", "exact"),
    ("0.5", r"\frac{1}{2}", "decimal = fraction"),
    (r"\frac12", r"\dfrac{1}{2}", "frac spellings"),
    ("1/2", r"\tfrac{1}{2}", "slash fraction"),
    (r"15\frac{39}{40}", r"\frac{639}{40}", "mixed number"),
    ("-3", "-3.0", "trailing zero"),
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", "radicals"),
    (r"2\sqrt{113}", r"\sqrt{452}", "radical simplification"),
    (r"\sqrt[3]{8}", "2", "cube root"),
    (r"\pi", r"\frac{2\pi}{2}", "pi"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})", "left/right"),
    (r"\$18.00", "18", "currency"),
    (r"10\%", "10", "percent"),
    (r"90^\circ", "90", "degrees"),
    (r"5.4 \text{ cents}", "5.4", "units in text"),
    ("12 inches", "12", "bare units"),
    ("18 eggs", "18", "counted things"),
    ("−5", "-5", "unicode minus"),
    ("2π", r"2\pi", "unicode pi"),
    ("864", r"864 \mbox{ inches}^2", "squared unit"),
    ("58,500", "58500", "thousands separator"),
    (r"11,\! 111,\! 111,\! 100", "11111111100", "MATH thousands separator"),
    ("42.", "42", "trailing punctuation"),
    # symbolic
    ("2k+2", "2(k+1)", "factored"),
    ("x^2+2x+1", "(x+1)^2", "expanded"),
    (r"\frac{x}{2}", "0.5x", "coefficient"),
    ("-2+7i", "7i-2", "complex, reordered"),
    (r"\sin^2 x + \cos^2 x", "1", "identity"),
    (r"\sqrt{x^2}", "|x|", "absolute value"),
    # structures
    ("(1,-16,-4,43)", r"\left(1, -16, -4, 43\right)", "tuple"),
    (r"\{1,2\}", "1, 2", "set vs list"),
    ("2, 1", "1, 2", "list order free"),
    ("[1,2)", "[1, 2)", "half-open interval"),
    (r"(-\infty, 3] \cup (4, 5)", r"(4,5) \cup (-\infty,3]", "union order free"),
    (r"\begin{pmatrix} 16/49 \\ 48/49 \\ 24/49 \end{pmatrix}", r"\begin{pmatrix} \frac{16}{49} \\ \frac{48}{49} \\ \frac{24}{49} \end{pmatrix}", "vector"),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", "(1,2)", "vector vs tuple"),
    (r"\begin{bmatrix}1&2\\3&4\end{bmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", "matrix"),
    # equations
    (r"\log_2 8", "3", "log base"),
    (r"k \ge 3", r"[3, \infty)", "inequality vs interval"),
    (r"(-\infty, 3)", "x < 3", "interval vs inequality"),
    ("x=3", "3", "assignment vs value"),
    ("3", "k=3", "value vs assignment"),
    ("a=1, b=2", "(1,2)", "assignments vs tuple"),
    ("y=2x+3", "y - 2x = 3", "equation rearranged"),
    (r"x=1 \text{ or } x=2", "1, 2", "several solutions"),
    (r"\pm 2", "2, -2", "plus-minus"),
    # text and choices
    (r"\text{Evelyn}", "Evelyn", "text answer"),
    (r"\text{(C)}", "C", "multiple choice"),
    ("52_8", "52_{8}", "base subscript"),
]

REJECT = [
    ("19", "18", "off by one"),
    ("0.33", r"\frac{1}{3}", "rounded"),
    (r"\frac{1}{3}", r"\frac{1}{4}", "fraction"),
    ("-18", "18", "sign"),
    ("3.14", r"\pi", "approximation"),
    ("11111111101", "11111111100", "large, close"),
    ("2k+3", "2k+2", "expression"),
    ("(2,1)", "(1,2)", "tuple order"),
    ("[1,2]", "[1,2)", "interval openness"),
    (r"\{1,3\}", "1, 2", "set element"),
    ("1, 2, 3", "1, 2", "extra element"),
    ("x=4", "3", "assignment"),
    (r"\text{Alice}", "Evelyn", "text"),
    ("52_9", "52_8", "base"),
    ("42", "52_8", "value in another base"),
    (r"\begin{pmatrix}1\\3\end{pmatrix}", "(1,2)", "vector entry"),
    ("x<3", r"x \le 3", "strict vs non-strict"),
    ("x", r"\sqrt{x^2}", "absolute value"),
    (r"(-\infty, 3]", "x < 3", "interval vs inequality end"),
]


@pytest.mark.parametrize("answer, reference, rule", ACCEPT, ids=[c[2] for c in ACCEPT])
def test_accepts_equivalent(math, answer, reference, rule):
    score = judge(math, answer, reference)
    assert score.correct and score.reward == 1.0, score.reason


@pytest.mark.parametrize("answer, reference, rule", REJECT, ids=[c[2] for c in REJECT])
def test_rejects_different(math, answer, reference, rule):
    score = judge(math, answer, reference)
    assert not score.correct and score.reward == 0.0, score.reason


@pytest.mark.parametrize(
    "completion, reason",
    [
        (r"\boxed{}", "empty answer"),
        (r"\boxed{18} or maybe \boxed{19}", "hedging"),
        (r"\boxed{17}, \boxed{18}, \boxed{19}", "hedging"),
    ],
)
def test_no_credit_without_a_single_answer(math, completion, reason):
    score = math.verify(Sample(completion=completion, reference="18"))
    assert score.reward == 0.0 and reason in score.reason


def test_require_marker_gives_no_credit_to_a_bare_answer():
    # the format-strict reward (issue 13: by default a bare final answer is judged, test_math_extract_policy)
    score = load("math", require_marker=True).verify(Sample(completion="I think it is 18", reference="18"))
    assert score.reward == 0.0 and "no answer" in score.reason


def test_repeated_equivalent_boxes_are_not_hedging(math):
    completion = r"$d = \boxed{15\frac{39}{40}}$, or $\boxed{\frac{639}{40}}$ inches."
    assert math.verify(Sample(completion=completion, reference=r"\frac{639}{40}")).correct


def test_one_box_per_answer_of_a_list_reference(math):
    assert math.verify(Sample(completion=r"\boxed{2} and \boxed{-2}", reference=r"\pm 2")).correct


def test_reference_given_as_gsm8k_solution(math):
    ref = "She has 3 + 15 = <<3+15=18>>18.\n#### 18"
    assert math.verify(Sample(completion="#### 18", reference=ref)).correct
    assert math.verify(Sample(completion=r"The answer is \boxed{18}.", reference=ref)).correct
    assert not math.verify(Sample(completion="#### 19", reference=ref)).correct


def test_last_number_fallback_option():
    loose = load("math", last_number_fallback=True)
    assert loose.verify(Sample(completion="so she has 18 eggs", reference="18")).correct
    strict = load("math", require_marker=True)
    assert not strict.verify(Sample(completion="so she has 18 eggs", reference="18")).correct


def test_rel_tol_option():
    assert not load("math").verify(Sample(completion=r"\boxed{3.1416}", reference=r"\pi")).correct
    assert load("math", rel_tol=1e-4).verify(Sample(completion=r"\boxed{3.1416}", reference=r"\pi")).correct


# ---- parsing guards and helpers


def test_plain_numbers_parse_exactly():
    assert plain_number("-12") == -12
    assert plain_number("0.25") == sympy.Rational(1, 4)
    assert plain_number("3/4") == sympy.Rational(3, 4)
    assert plain_number(r"-\frac{3}{4}") == sympy.Rational(-3, 4)
    assert plain_number(r"2\frac{1}{2}") == sympy.Rational(5, 2)
    assert plain_number("1/0") is None
    assert plain_number("x") is None


def test_log10_bound_catches_power_towers_without_evaluating():
    tower = sympy.Pow(9, sympy.Pow(9, sympy.Pow(9, 9, evaluate=False), evaluate=False), evaluate=False)
    assert log10_bound(tower) == float("inf")
    assert log10_bound(sympy.Pow(2, 100, evaluate=False)) == pytest.approx(30.1, abs=0.1)
    assert log10_bound(sympy.Integer(10) ** 6) == pytest.approx(6, abs=0.5)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("1+" * 600 + "1", "longer than"),
        ("(" * 13 + "1" + ")" * 13, "nested deeper"),
        (r"9^{9^{9^{9}}}", "digits"),
        (r"10^{10^{5}}", "digits"),
    ],
)
def test_parse_guards_refuse_before_sympy_work(text, message):
    with pytest.raises(ParseFailure, match=message):
        parse(text)


def test_bracket_depth():
    assert bracket_depth(r"\frac{(1)}{[2]}") == 2


def test_numbers_close_is_relative():
    assert numbers_close(1e9, 1e9 + 1, 1e-6)
    assert not numbers_close(0.0, 1e-12, 1e-6)


def test_equivalent_open_interval_equals_pair():
    assert equivalent(sympy.Interval.open(1, 2), sympy.Tuple(1, 2))
    assert not equivalent(sympy.Interval(1, 2), sympy.Tuple(1, 2))


def test_plain_algebra_path_is_exact_and_guarded(math):
    assert judge(math, "2^100", "1267650600228229401496703205376").correct
    assert not judge(math, "2^100+1", "1267650600228229401496703205376").correct
    assert judge(math, "x(x+1)", "x^2+x").correct
    assert not judge(math, "1/0", "1").correct
    with pytest.raises(ParseFailure, match="digits"):
        parse("9^9^9^9")


@pytest.mark.parametrize(
    "answer, reference, ok",
    [
        (r"\frac\pi 2", r"\frac{\pi}{2}", True),
        (r"\frac{2}{3} \approx 0.67", r"\frac{2}{3}", True),
        (r"\frac{2}{3} \approx 0.67", r"0.67", False),
        ("x = 2 + 3 = 5", "5", True),
        ("0.56 = 57", "0.56 = 56", False),
        ("0.56 = 56", "56", True),
        ("-37_9", "-37_8", False),
        ("-37_8", "-37_{8}", True),
    ],
)
def test_chains_approximations_and_signed_bases(math, answer, reference, ok):
    assert judge(math, answer, reference).correct is ok


def test_relation_between_numbers_is_not_an_answer():
    with pytest.raises(ParseFailure, match="not an answer"):
        parse(r"2 \le 3")


# ---- regressions (issue 21)


@pytest.mark.parametrize(
    "answer, reference",
    [(r"x+0.0", "x"), ("0.0x", "0"), (r"\frac{x}{2}+0.0", r"\frac{x}{2}"), ("0.0", "0")],
)
def test_zero_decimal_is_judged_not_raised(math, answer, reference):
    # log10_bound took log|0.0| (complex infinity) since sympy's Float(0.0) != 0: TypeError escaped verify
    score = judge(math, answer, reference)
    assert score.correct and score.reason == "equivalent"


def test_log10_bound_of_a_zero_float():
    assert log10_bound(sympy.Float(0.0)) == 0.0


@pytest.mark.parametrize(
    "answer, reference, ok",
    [
        ("i^2", "-1", True),
        (r"i\cdot i", "-1", True),
        ("-1", "i^2", True),
        ("(1+i)^2", "2i", True),
        (r"\frac{1}{i}", "-i", True),
        ("i^2", "1", False),
        ("i", "-i", False),
        ("x+i", "i+x", True),
    ],
)
def test_i_is_the_imaginary_unit(math, answer, reference, ok):
    assert judge(math, answer, reference).correct is ok


def test_a_bound_index_named_i_is_not_the_imaginary_unit():
    assert parse(r"\sum_{i=1}^{3} i").doit() == 6


class BrokenCompare(type(load("math"))):
    def compare(self, answer, reference):
        raise ZeroDivisionError("a bug in comparing")


def test_an_exception_in_verify_is_a_judged_result_that_says_so():
    score = BrokenCompare().verify(Sample(completion=r"\boxed{1}", reference="1"))
    assert score.reward == 0.0 and score.correct is False
    assert score.reason == "exception: ZeroDivisionError: a bug in comparing"
    assert score.details == {"status": "exception"}
