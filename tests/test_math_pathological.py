"""Hostile answers: judged by the guards (not the pool's timeout) with reward 0, caller alive.

Each runs through a VerifierPool with a 3 s hard limit; the assertion that the reason is *not* a
timeout is what shows the guard judged it inside the limit.
"""
import pytest

from verifiers import Sample, VerifierPool, load

PATHOLOGICAL = {
    "power tower": r"\boxed{9^{9^{9^{9}}}}",
    "tall tower": r"\boxed{2^{2^{2^{2^{2^{2^{2}}}}}}}",
    "huge power": r"\boxed{10^{10^{10}}}",
    "factorial": r"\boxed{100000!}",
    "400 nested parentheses": r"\boxed{" + "(" * 400 + "1" + ")" * 400 + "}",
    "200,000-character completion": r"\boxed{" + "1+" * 100_000 + "1}",
    "division by zero": r"\boxed{\frac{1}{0}}",
    "unbalanced box": r"\boxed{" * 1000,
    "deep braces": r"\boxed{" + "{" * 300 + "1" + "}" * 300 + "}",
}


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(load("math"), workers=2, timeout=3.0) as p:
        yield p


@pytest.mark.slow
def test_pathological_answers_get_zero_from_the_guards(pool):
    names = list(PATHOLOGICAL)
    scores = pool.score([Sample(completion=PATHOLOGICAL[n], reference="1") for n in names])
    for name, score in zip(names, scores):
        assert score.reward == 0.0 and score.correct is False, name
        assert not score.reason.startswith("timeout"), f"{name}: {score.reason}"
    assert pool.restarts == 0


def test_long_completion_is_refused_by_length_in_process():
    score = load("math").verify(Sample(completion="x" * 200_000 + r"\boxed{1}", reference="1"))
    assert score.reward == 0.0 and "longer than" in score.reason


def test_long_answer_under_a_raised_cap_is_still_cheap_to_refuse():
    verifier = load("math", max_completion_chars=10**6)
    score = verifier.verify(Sample(completion="x" * 150_000 + r"\boxed{" + "1+" * 5000 + "1}", reference="1"))
    assert score.reward == 0.0 and "longer than 1000" in score.reason


def test_power_tower_in_process():
    score = load("math").verify(Sample(completion=r"\boxed{9^{9^{9^{9}}}}", reference=r"9^{9^{9^{9}}}+1"))
    assert score.reward == 0.0
