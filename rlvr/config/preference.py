"""`kind: preference`: the DPO family (DPO, IPO, KTO, ORPO, SimPO), offline, online (iterative) or SPIN."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlvr.config.parts import (DataConfig, DeepSpeedConfig, GenerationConfig, LoggingConfig, ModelConfig,
                               check_trainer)
from rlvr.config.rl import RewardConfig, check_reward


@dataclass
class PreferenceTrainerConfig:
    loss: Literal["dpo", "ipo", "kto", "orpo", "simpo"] = "dpo"
    # offline: a fixed set of pairs (see `pairs`); online: every step samples `samples_per_prompt`
    # responses per prompt from the current policy and pairs the best against the worst by reward;
    # spin: every step pairs the data's response (chosen) against the policy's own sample (rejected).
    mode: Literal["offline", "online", "spin"] = "offline"
    # offline only. data: chosen/rejected rows of data.source; policy: sampled once from the starting
    # policy, `samples_per_prompt` per prompt, ranked by reward.verifiers.
    pairs: Literal["data", "policy"] = "data"
    beta: float = 0.1  # DPO / IPO (tau) / KTO / SimPO temperature (SimPO wants larger, e.g. 2)
    label_smoothing: float = 0.0  # DPO: conservative DPO's share of flipped labels
    simpo_gamma: float = 0.5  # SimPO's target margin
    nll_coef: float = 0.0  # DPO / IPO / SimPO: + this times the chosen response's token-mean NLL (RPO)
    orpo_lambda: float = 0.1  # ORPO's weight on the odds-ratio term
    kto_desirable_weight: float = 1.0  # lambda_D
    kto_undesirable_weight: float = 1.0  # lambda_U
    # online / spin: the reference of each step's update is the policy at the start of the step
    # ('step', iterative DPO), or the starting model throughout ('initial', kept in memory).
    reference: Literal["step", "initial"] = "step"
    reference_model: str | None = None  # offline: the reference's weights (default: the starting policy)
    max_steps: int = 100  # offline: optimizer steps; online / spin: sample-and-update rounds
    max_seconds: float | None = None  # stop after the step that spends this wall time (then evaluate)
    prompts_per_step: int = 32  # online / spin: prompts sampled per round (global)
    samples_per_prompt: int = 8  # K responses per prompt (online, and offline pairs: policy)
    offline_prompts: int | None = None  # offline pairs: policy: a random subset of the prompts (default all)
    epochs: int = 1  # online / spin: passes over a round's pairs
    batch_size: int = 32  # pairs (KTO: examples) per optimizer step, global
    micro_batch_size: int = 32  # pairs per forward pass, per rank
    # tokens whose float32 log-softmax over the vocabulary is held at once (log-probabilities, entropy)
    logprob_chunk_tokens: int = 1024
    max_seq_len: int = 512
    # recompute each layer's activations in the backward pass instead of keeping them: less memory, about a
    # third more compute (the trained models only; transformers' non-reentrant checkpointing)
    gradient_checkpointing: bool = False
    lr: float = 1e-6
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.0
    warmup_steps: int = 0  # optimizer steps
    min_lr_ratio: float = 1.0  # 1.0: constant after warmup
    grad_clip: float = 1.0
    eval_every: int = 10
    eval_samples: int = 500  # held-out rows for greedy accuracy (those with a reference answer)
    save_every: int = 0
    keep_checkpoints: int = 2
    resume: bool = False
    seed: int = 0


@dataclass
class PreferenceConfig:
    kind: Literal["preference"] = "preference"
    model: ModelConfig = field(default_factory=ModelConfig)  # the policy's start (an SFT checkpoint)
    data: DataConfig = field(default_factory=DataConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)  # ranks sampled responses; judges eval
    trainer: PreferenceTrainerConfig = field(default_factory=PreferenceTrainerConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    logging: LoggingConfig = field(default_factory=lambda: LoggingConfig(out_dir="runs/preference", log_every=1))

    def validate(self) -> None:
        check_trainer(self.trainer, {
            "beta": ">0", "label_smoothing": "[0,0.5)", "simpo_gamma": ">=0", "nll_coef": ">=0",
            "orpo_lambda": ">=0", "kto_desirable_weight": ">0", "kto_undesirable_weight": ">0",
            "prompts_per_step": ">=1", "samples_per_prompt": ">=1", "offline_prompts": ">=1", "epochs": ">=1",
            "batch_size": ">=1", "micro_batch_size": ">=1", "max_seq_len": ">=2", "eval_samples": ">=0",
            "logprob_chunk_tokens": ">=1"})
        check_reward(self.reward)


KINDS = {"preference": PreferenceConfig}
