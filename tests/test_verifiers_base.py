"""Plugin contract: options, registry, composition, and the built-in format and length verifiers."""
import pickle

import pytest

import verifiers
from verifiers import Composite, Sample, Score, Verifier, VerifierError, compose, load
from verifiers.length import penalty


def test_builtins_are_registered():
    names = verifiers.available()
    assert {"math", "format", "length"} <= set(names)


def test_unknown_name_lists_installed():
    with pytest.raises(VerifierError, match=r"unknown verifier 'nope'.*math"):
        load("nope")


def test_unknown_option_names_it_and_lists_valid_ones():
    with pytest.raises(VerifierError, match=r"no option 'tolerance'.*rel_tol"):
        load("math", tolerance=0.1)


def test_options_become_attributes_and_verifiers_pickle():
    v = load("math", rel_tol=1e-3)
    clone = pickle.loads(pickle.dumps(v))
    assert clone.rel_tol == 1e-3 and clone.options == v.options
    assert pickle.loads(pickle.dumps(Sample(completion="a", fields={"t": [1]}))).fields == {"t": [1]}


def test_verify_batch_defaults_to_a_loop():
    v = load("math")
    samples = [Sample(completion=r"\boxed{1}", reference="1"), Sample(completion=r"\boxed{2}", reference="1")]
    assert [s.reward for s in v.verify_batch(samples)] == [1.0, 0.0]


def test_format_verifier_pattern():
    default = load("format")
    assert default.verify(Sample(completion="<think>hm</think> so \\boxed{3}")).correct
    assert not default.verify(Sample(completion="\\boxed{3}")).correct
    custom = load("format", pattern=r"^Answer: \d+$", reward=0.5)
    assert custom.verify(Sample(completion="Answer: 12")).reward == 0.5
    assert custom.verify(Sample(completion="Answer: x")).reward == 0.0
    with pytest.raises(VerifierError, match="pattern"):
        load("format", pattern="(")


def test_length_penalty_rule():
    assert penalty(100, target=100, max_length=200) == 0.0
    assert penalty(150, target=100, max_length=200) == -0.5
    assert penalty(900, target=100, max_length=200) == -1.0
    words = load("length", target=2, max_length=4)
    assert words.verify(Sample(completion="a b c")).reward == -0.5
    chars = load("length", unit="chars", target=2, max_length=4)
    score = chars.verify(Sample(completion="abc"))
    assert score.reward == -0.5 and score.correct is None and score.details["length"] == 3
    with pytest.raises(VerifierError, match="unit"):
        load("length", unit="bytes")
    with pytest.raises(VerifierError, match="target"):
        load("length", target=10, max_length=5)


def test_compose_weights_gates_and_details():
    v = compose([
        {"name": "format", "options": {"pattern": r"^<think>.*</think>"}},
        {"name": "math", "weight": 2.0, "gate": "format"},
        {"name": "length", "weight": 0.5, "options": {"unit": "chars", "target": 40, "max_length": 80}},
    ])
    assert isinstance(v, Composite) and v.main == "math"
    good = v.verify(Sample(completion="<think>ok</think> \\boxed{4}", reference="4"))
    assert good.reward == pytest.approx(1.0 + 2.0) and good.correct is True
    assert good.details == {"format": 1.0, "math": 1.0, "length": 0.0}
    ungated = v.verify(Sample(completion="\\boxed{4}", reference="4"))
    # the right answer behind a failed gate earns nothing and does not count as correct either
    assert ungated.reward == 0.0 and ungated.correct is False and ungated.details["math"] == 1.0
    wrong = v.verify(Sample(completion="<think>ok</think> \\boxed{5}" + " " * 33, reference="4"))
    assert wrong.correct is False and wrong.reward == pytest.approx(1.0 + 0.5 * -0.5)


def test_compose_single_part_and_errors():
    assert type(compose("math")).__name__ == "MathVerifier"
    assert type(compose([{"name": "math"}])).__name__ == "MathVerifier"
    with pytest.raises(VerifierError, match="gate 'fmt'"):
        compose([{"name": "math", "gate": "fmt"}, {"name": "format"}])
    with pytest.raises(VerifierError, match="twice"):
        compose([{"name": "math"}, {"name": "math"}])
    with pytest.raises(VerifierError, match="unknown key 'wieght'"):
        compose([{"name": "math", "wieght": 2}])
    two = compose([{"name": "math"}, {"name": "math", "key": "math_loose", "options": {"last_number_fallback": True}}])
    assert set(two.verify(Sample(completion="it is 3", reference="3")).details) == {"math", "math_loose"}


class Batched(Verifier):
    name = "batched"
    defaults = {}
    batched = True
    calls = 0

    def verify_batch(self, samples):
        Batched.calls += 1
        return [Score(reward=1.0, correct=True) for _ in samples]


def test_composite_forwards_whole_batches():
    from verifiers.base import Part

    v = Composite([Part("batched", Batched()), Part("format", load("format"), gate="batched")])
    Batched.calls = 0
    v.verify_batch([Sample()] * 5)
    assert Batched.calls == 1 and v.batched  # one call for the part that batches


class RaisesOnX(Verifier):
    name = "raises_on_x"
    defaults = {}

    def verify(self, sample):
        if sample.completion == "x":
            raise KeyError("boom")
        return Score(reward=1.0, correct=True)


def test_a_part_that_does_not_batch_fails_one_sample_not_the_batch():
    from verifiers.base import Part

    v = Composite([Part("batched", Batched()), Part("strict", RaisesOnX())])
    scores = v.verify_batch([Sample(completion=c) for c in ("a", "x", "b")])
    assert [s.details["strict"] for s in scores] == [1.0, 0.0, 1.0]
    assert "KeyError" in scores[1].reason
