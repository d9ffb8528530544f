"""The `format` verifier: does the completion match a layout, e.g. a reasoning block then the answer?"""
from __future__ import annotations

import re

from verifiers.base import Sample, Score, Verifier, VerifierError

# A <think>...</think> block followed by text holding a \boxed{} answer.
DEFAULT_PATTERN = r"^\s*<think>.*?</think>.*\\boxed\{.*\}.*$"


class FormatVerifier(Verifier):
    """Options:
    - pattern: a Python regex; the completion passes if `re.search(pattern, completion, DOTALL)` matches
      (anchor it with ^...$ to demand the whole layout).
    - reward (1.0): reward for a match; a miss gets 0.0.
    """

    name = "format"
    defaults = {"pattern": DEFAULT_PATTERN, "reward": 1.0}

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        try:
            self._regex = re.compile(str(self.pattern), re.DOTALL)
        except re.error as e:
            raise VerifierError(f"format verifier: option 'pattern' is not a valid regex ({e}): {self.pattern!r}") from None

    def verify(self, sample: Sample) -> Score:
        matched = self._regex.search(sample.completion) is not None
        return Score(
            reward=float(self.reward) if matched else 0.0,
            correct=matched,
            reason="format ok" if matched else "format mismatch",
        )
