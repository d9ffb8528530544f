"""The generation engine interface: prompts in, sample records out.

A `Sample` is the one record that travels from generation to the loss (DESIGN.md): the trainer and the
verifiers add to it, nobody keeps parallel lists.

Log-probabilities: `Sample.logprobs[t]` is log p(token_t) under softmax(logits / temperature) of the
policy that sampled it, before top-k / top-p truncation: the old log-probability of PPO's ratio. The
trainer uses it as such (hf engine, float32) or recomputes it (other engines, 16-bit), and compares it
token by token with its own pass (a disagreement means different kernels, weights or settings, and is
logged as logprob_mismatch instead of silently skewing importance ratios).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

FinishReason = Literal["eos", "length", "stop"]


@dataclass
class SamplingParams:
    """How to sample. `temperature == 0` means greedy decoding."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k truncation
    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Sample:
    """One response to one prompt, plus whatever later stages attach to it."""

    prompt: str
    prompt_ids: list[int]
    response_ids: list[int]
    text: str
    logprobs: list[float]
    finish_reason: FinishReason
    prompt_index: int = 0  # which of the prompts passed to generate() this answers
    row: dict[str, Any] = field(default_factory=dict)  # the data row (reference answer, tests, ...)
    reward: float | None = None
    scores: dict[str, float] = field(default_factory=dict)  # per-verifier parts of the reward
    correct: bool | None = None


class Engine(ABC):
    """A generation backend. `prompts` are already-templated strings (see rlvr.data.templates)."""

    name: str = "base"

    @abstractmethod
    def generate(self, prompts: Sequence[str], n: int, sampling: SamplingParams) -> list[Sample]:
        """Return `n` samples per prompt, grouped by prompt: samples[i * n + j] answers prompts[i]."""

    def update_weights(self, model) -> None:  # noqa: B027 - optional for engines that share the model
        """Load the trainer's current weights (a torch module, possibly ZeRO-3 partitioned)."""

    def sleep(self, level: int = 2) -> bool:
        """Release the engine's accelerator memory until it next loads weights or generates; False when
        the engine has nothing to release (it shares the trainer's model, or sleep mode is off)."""
        return False

    def close(self) -> None:  # noqa: B027
        """Release the engine's resources."""
