"""The `length` penalty: a reward <= 0 that grows with how far a completion exceeds a target length."""
from __future__ import annotations

from verifiers.base import Sample, Score, Verifier, VerifierError

UNITS = ("chars", "tokens")


def length_of(text: str, unit: str) -> int:
    """Length in characters, or in whitespace-separated tokens (a tokenizer-free proxy)."""
    return len(text) if unit == "chars" else len(text.split())


def penalty(length: int, target: int, max_length: int) -> float:
    """0 up to `target`, then linear down to -1 at `max_length`, and -1 beyond:
    r = -clip((length - target) / (max_length - target), 0, 1)."""
    if length <= target:
        return 0.0
    return -min(1.0, (length - target) / (max_length - target))


class LengthPenalty(Verifier):
    """Options:
    - unit ("tokens"): "chars" or "tokens" (whitespace-separated words).
    - target (512): lengths up to this cost nothing.
    - max_length (1024): the penalty reaches -1 here (and stays -1 beyond).
    `correct` is None: length says nothing about right or wrong. Combine with weight in `compose`.
    """

    name = "length"
    defaults = {"unit": "tokens", "target": 512, "max_length": 1024}

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        if self.unit not in UNITS:
            raise VerifierError(f"length verifier: option 'unit' must be one of {', '.join(UNITS)}, got {self.unit!r}")
        if not (isinstance(self.target, int) and isinstance(self.max_length, int) and 0 <= self.target < self.max_length):
            raise VerifierError(
                f"length verifier: need integers 0 <= target < max_length, got target={self.target!r}, "
                f"max_length={self.max_length!r}"
            )

    def verify(self, sample: Sample) -> Score:
        n = length_of(sample.completion, self.unit)
        return Score(
            reward=penalty(n, self.target, self.max_length),
            correct=None,
            reason=f"{n} {self.unit}",
            details={"length": n},
        )
