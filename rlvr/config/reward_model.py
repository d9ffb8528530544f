"""`kind: reward_model` configs (stage 2: a Bradley-Terry reward model on preference pairs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlvr.config.parts import DataConfig, DeepSpeedConfig, LoggingConfig, ModelConfig, check_trainer


@dataclass
class RewardModelTrainerConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1  # the cosine schedule decays to lr * min_lr_ratio
    max_steps: int = 500
    max_seconds: float | None = None  # stop after the step that spends this wall time (then evaluate)
    batch_size: int = 32  # global: pairs per optimizer step, across ranks and accumulation
    micro_batch_size: int = 32  # pairs per forward pass per rank (each pair is two sequences)
    max_seq_len: int = 512  # prompt + completion + EOS; longer pairs lose the prompt's oldest tokens
    # recompute each layer's activations in the backward pass instead of keeping them: less memory, about a
    # third more compute (the trained models only; transformers' non-reentrant checkpointing)
    gradient_checkpointing: bool = False
    margin: float = 0.0  # Bradley-Terry margin m in -log sigmoid(r_w - r_l - m)
    grad_clip: float = 1.0
    eval_every: int = 100
    save_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2
    resume: bool = False
    seed: int = 0


@dataclass
class RewardModelConfig:
    kind: Literal["reward_model"] = "reward_model"
    model: ModelConfig = field(default_factory=ModelConfig)  # the start: typically the SFT model
    data: DataConfig = field(default_factory=DataConfig)  # preference pairs (rlvr.data.preferences)
    trainer: RewardModelTrainerConfig = field(default_factory=RewardModelTrainerConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    logging: LoggingConfig = field(default_factory=lambda: LoggingConfig(out_dir="runs/reward_model"))

    def validate(self) -> None:
        check_trainer(self.trainer, {"batch_size": ">=1", "micro_batch_size": ">=1", "max_seq_len": ">=2"})


KINDS: dict[str, type] = {"reward_model": RewardModelConfig}
