"""The `math` verifier: is the completion's final answer equal to the reference answer?

Pipeline: extract the answer(s) (math_extract) -> normalise strings (math_normalize) -> equal normal
forms accept at once -> else parse both (math_parse, guarded) -> compare (math_equiv).
Reward is 1.0 for a correct answer and 0.0 otherwise, including for: no answer, an empty box, several
different answers (boxes, or values on a bare final line: hedging) that do not together form the reference's
list, an answer that cannot be parsed, or a guard that refused. A reference's boxes are read the same way:
equivalent boxes are one answer, different ones a list (`\\boxed{1} papers and \\boxed{2} bins` is `1,2`).
"""
from __future__ import annotations

import re

from verifiers.base import Sample, Score, Verifier, failure
from verifiers.math_equiv import equivalent
from verifiers.math_extract import extract_answers, extract_reference
from verifiers.math_normalize import normalize
from verifiers.math_parse import ParseFailure, parse

WORDS = re.compile(r"[A-Za-z][A-Za-z ]*")


class MathVerifier(Verifier):
    """Options:
    - require_marker (False): accept only a marked answer (box, `####`, "the answer is"), the format-strict
      reward. By default a completion with no marker is judged on its bare answer: the math segments on its
      final line, else the values its final line states, else its last math segment, else a one-line text
      answer (math_extract's docstring has the policy and the reasons). The field's graders (Math-Verify,
      Qwen2.5-Math) credit a bare final answer, so a correct `-5` or `So the total is 18 apples.` is not
      scored 0 for its format; several different values on that line still earn 0, as hedging.
      (`last_number_fallback` replaces the bare answer, with or without `require_marker`.)
    - last_number_fallback (False): with no marker, the last number in the text is the answer instead of the
      bare answer (the lenient rule a GSM8K-style reward may want: `12, then 15` is 15, not hedging).
    - rel_tol (1e-6): relative tolerance for non-rational numbers (exact rationals compare exactly).
    - max_answer_chars (1000): longer extracted answers are refused (reward 0).
    - max_completion_chars (100000): longer completions are refused without looking at them.
    """

    name = "math"
    defaults = {
        "require_marker": False,
        "last_number_fallback": False,
        "rel_tol": 1e-6,
        "max_answer_chars": 1000,
        "max_completion_chars": 100_000,
    }

    def warmup(self) -> None:
        """Import and exercise the LaTeX parser once, so the first timed sample does not pay for it."""
        self.compare(r"\frac{\sqrt{2}}{2}", r"\sin(\pi/4)")

    def verify(self, sample: Sample) -> Score:
        """The judged Score; an exception (a bug in parsing or comparing) costs this sample only and is
        reported as base.verify_safely reports it: reason `exception: ...`, details status `exception`."""
        try:
            return self._judge(sample)
        except Exception as e:
            return failure("exception", f"exception: {type(e).__name__}: {e}")

    def _judge(self, sample: Sample) -> Score:
        if len(sample.completion) > self.max_completion_chars:
            return _wrong(f"completion longer than {self.max_completion_chars} characters")
        try:
            references = list(dict.fromkeys(normalize(r) for r in extract_reference(sample.reference)))
        except ValueError as e:
            return _wrong(f"bad reference: {e}")
        same = self._one_answer(references)
        reference = same if same is not None else ",".join(references)
        source, candidates = extract_answers(sample.completion, self.last_number_fallback, self.require_marker)
        if not candidates:
            return _wrong("no answer found")
        answers = list(dict.fromkeys(normalize(c) for c in candidates))
        if any(a == "" for a in answers):
            return _wrong("empty answer", extracted="")
        answer, problem = self._single_answer(answers, reference)
        if problem:
            return _wrong(problem, extracted=answer[:200])
        correct, how = self.compare(answer, reference)
        details = {"extracted": answer[:200], "extracted_from": source}
        return Score(reward=float(correct), correct=correct, reason=how, details=details)

    def _single_answer(self, answers: list[str], reference: str) -> tuple[str, str]:
        """(answer, problem): several boxes must all be equivalent, or together form a reference list."""
        same = self._one_answer(answers)
        if same is not None:
            return same, ""
        joined = ",".join(answers)
        if self.compare(joined, reference)[0]:
            return joined, ""
        return answers[-1], f"hedging: {len(answers)} different answers"

    def _one_answer(self, answers: list[str]) -> str | None:
        """The last of `answers` when all are equivalent to it (one answer written twice), else None."""
        last = answers[-1]
        return last if all(self.compare(a, last)[0] for a in answers[:-1]) else None

    def compare(self, answer: str, reference: str) -> tuple[bool, str]:
        """(equal, how) for two normalised answer strings."""
        if answer == reference:
            return True, "exact match"
        if WORDS.fullmatch(answer) and WORDS.fullmatch(reference):
            same = answer.lower().replace(" ", "") == reference.lower().replace(" ", "")
            return same, "same text" if same else "different text"
        try:
            ref_value = parse(reference, self.max_answer_chars)
        except ParseFailure as e:
            return False, f"reference {e}"
        try:
            value = parse(answer, self.max_answer_chars)
        except ParseFailure as e:
            return False, str(e)
        try:
            same = equivalent(value, ref_value, self.rel_tol)
        except (TypeError, ValueError, AttributeError, RecursionError) as e:
            # sympy refusing an operation on mismatched kinds (a set minus a number, ...) means different
            return False, f"not comparable: {type(e).__name__}"
        return (True, "equivalent") if same else (False, "not equivalent")


def _wrong(reason: str, **details: object) -> Score:
    return Score(reward=0.0, correct=False, reason=reason, details=dict(details))
