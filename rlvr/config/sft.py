"""`kind: sft` (supervised fine-tuning) and `kind: generate`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlvr.config.parts import (DataConfig, DeepSpeedConfig, GenerationConfig, LoggingConfig,
                               ModelConfig, check_trainer)
from rlvr.config.rl import RewardConfig, check_reward


@dataclass
class SFTTrainerConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1  # the cosine schedule decays to lr * min_lr_ratio
    max_steps: int = 1000
    max_seconds: float | None = None  # stop after the step that spends this wall time (then evaluate)
    batch_size: int = 64  # global: prompts per optimizer step, across ranks and accumulation
    micro_batch_size: int = 64  # per rank per forward pass
    # tokens whose float32 log-softmax over the vocabulary is held at once (log-probabilities, entropy)
    logprob_chunk_tokens: int = 1024
    max_seq_len: int = 512
    # recompute each layer's activations in the backward pass instead of keeping them: less memory, about a
    # third more compute (the trained models only; transformers' non-reentrant checkpointing)
    gradient_checkpointing: bool = False
    grad_clip: float = 1.0
    eval_every: int = 200
    eval_loss_samples: int = 256
    save_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2
    resume: bool = False
    seed: int = 0


@dataclass
class SFTConfig:
    kind: Literal["sft"] = "sft"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(temperature=0.0))
    trainer: SFTTrainerConfig = field(default_factory=SFTTrainerConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # Judge held-out accuracy with these verifiers (as RL's reward section; `correct` counts) instead of
    # exact match of the reference: a program is right when it passes its tests, whatever its text.
    reward: RewardConfig | None = None

    def validate(self) -> None:
        check_trainer(self.trainer, {"batch_size": ">=1", "micro_batch_size": ">=1", "max_seq_len": ">=2",
                                     "eval_loss_samples": ">=1", "logprob_chunk_tokens": ">=1"})
        if self.reward is not None:
            check_reward(self.reward)


@dataclass
class GenerateConfig:
    """`rlvr generate`: a model, a template and sampling settings."""

    kind: Literal["generate"] = "generate"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


KINDS = {"sft": SFTConfig, "generate": GenerateConfig}
