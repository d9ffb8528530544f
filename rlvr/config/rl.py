"""`kind: rl`: PPO with a critic and the critic-free family (GRPO, Dr. GRPO, RLOO, REINFORCE++)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rlvr.config.parts import (DataConfig, DeepSpeedConfig, GenerationConfig, LoggingConfig, ModelConfig,
                               check_ranges, check_trainer)


@dataclass
class VerifierSpec:
    """One part of the reward: a verifier plugin by name (see `verifiers.available()`)."""

    name: str = "math"
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    gate: str | None = None  # counts only when this other part passes (e.g. format)
    key: str | None = None  # the part's label in metrics (default: name)


@dataclass
class RewardConfig:
    verifiers: list[VerifierSpec] = field(default_factory=lambda: [VerifierSpec()])
    # verifier worker processes (0: in-process, no hard timeout); they share this rank's CPUs, so code
    # (whose one worker runs a sandbox per CPU) needs only 1
    workers: int = 1
    timeout: float = 5.0  # seconds per sample; a hang or crash scores 0 (code: above its timeout + 1 s)
    normalize: bool = False  # divide by the running std of all rewards seen
    clip: float | None = None  # then clip to [-clip, clip]
    truncation_penalty: float | None = None  # reward for a response cut off without EOS
    overlong: Literal["none", "filter", "soft"] = "none"  # DAPO: drop cut-off responses, or ramp a penalty
    overlong_buffer: int = 16  # tokens before max_new_tokens where the soft penalty starts


@dataclass
class RolloutCorrectionConfig:
    """Importance weights for the gap between the policy that sampled (the engine: other kernels, 16-bit)
    and the one the trainer computes (rlvr/algorithms/rollout_correction.py). Applies only when the
    trainer recomputes the old log-probabilities; otherwise the two are the same numbers."""

    # tis: weight min(r, cap); mask: weight r inside [1/cap, cap], 0 outside; none: 1
    mode: Literal["none", "tis", "mask"] = "tis"
    level: Literal["token", "sequence"] = "token"  # one ratio per token, or one per response
    cap: float = 2.0


@dataclass
class RLTrainerConfig:
    algorithm: Literal["ppo", "grpo", "dr_grpo", "rloo", "reinforce_pp"] = "grpo"
    max_steps: int = 100  # rollouts (one generation round and its updates)
    max_seconds: float | None = None  # stop after the step that spends this wall time (then evaluate)
    prompts_per_step: int = 32  # global
    samples_per_prompt: int = 8  # the group size n
    ppo_epochs: int = 1
    minibatch_size: int = 64  # sequences per optimizer step, global
    micro_batch_size: int = 64  # sequences per forward pass, per rank
    # tokens whose float32 log-softmax over the vocabulary is held at once (log-probabilities, entropy)
    logprob_chunk_tokens: int = 1024
    lr: float = 1e-5
    critic_lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.0
    warmup_steps: int = 0  # optimizer steps
    min_lr_ratio: float = 1.0  # 1.0: constant after warmup
    grad_clip: float = 1.0
    clip_low: float = 0.2
    clip_high: float = 0.2  # DAPO clip-higher: > clip_low
    dual_clip: float | None = None
    value_clip: float | None = 0.2
    vf_coef: float = 0.5
    entropy_coef: float = 0.0
    kl_coef: float = 0.0  # beta; 0 skips the reference model
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    kl_in_reward: bool = False  # True: -beta * k1 in the reward at every token (InstructGPT); False: a loss term
    kl_target: float | None = None  # adaptive beta toward this KL
    kl_horizon: int = 10000
    gamma: float = 1.0
    lam: float = 0.95
    whiten_advantages: bool = False  # PPO: whiten GAE advantages over the batch
    loss_agg: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"] = "token_mean"
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal and refill
    # null: take the old log-probabilities from the hf engine in float32 (it samples from the actor
    # itself); recompute them with another forward pass for other backends (vLLM: other kernels) and 16-bit
    recompute_logprobs: bool | None = None
    share_prompts: bool = True  # run each group's prompt once per forward pass and share its KV cache
    # recompute each layer's activations in the backward pass instead of keeping them: less memory, about a
    # third more compute (the trained models only; transformers' non-reentrant checkpointing)
    gradient_checkpointing: bool = False
    rollout_correction: RolloutCorrectionConfig = field(default_factory=RolloutCorrectionConfig)
    max_refill_rounds: int = 3
    eval_every: int = 10
    eval_samples: int = 500
    save_every: int = 0
    keep_checkpoints: int = 2
    resume: bool = False
    seed: int = 0


@dataclass
class RLConfig:
    kind: Literal["rl"] = "rl"
    model: ModelConfig = field(default_factory=ModelConfig)  # the policy's start (an SFT checkpoint)
    critic_model: str | None = None  # PPO: the critic's start (default: a copy of the policy's)
    data: DataConfig = field(default_factory=DataConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    trainer: RLTrainerConfig = field(default_factory=RLTrainerConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    logging: LoggingConfig = field(default_factory=lambda: LoggingConfig(out_dir="runs/rl", log_every=1))

    def validate(self) -> None:
        from rlvr.errors import UserError

        check_trainer(self.trainer, {
            "prompts_per_step": ">=1", "samples_per_prompt": ">=1", "ppo_epochs": ">=1",
            "minibatch_size": ">=1", "micro_batch_size": ">=1", "critic_lr": ">0", "clip_low": "[0,1)",
            "clip_high": ">=0", "dual_clip": ">1", "value_clip": ">0", "vf_coef": ">=0",
            "entropy_coef": ">=0", "kl_coef": ">=0", "kl_target": ">0", "kl_horizon": ">=1",
            "gamma": "[0,1]", "lam": "[0,1]", "max_refill_rounds": ">=0", "eval_samples": ">=0",
            "logprob_chunk_tokens": ">=1"})
        check_reward(self.reward)
        rc = self.trainer.rollout_correction
        if rc.mode != "none" and not rc.cap > 1:
            raise UserError(f"trainer.rollout_correction.cap: expected a number above 1, got {rc.cap}")


def check_reward(reward: RewardConfig) -> None:
    check_ranges(reward, "reward", {"workers": ">=0", "timeout": ">0", "clip": ">0",
                                    "overlong_buffer": ">=1"})
    check_code_timeouts(reward)


def check_code_timeouts(reward: RewardConfig) -> None:
    """reward.timeout (the verifier pool's hard limit per sample) must leave a code part's program its whole
    sandbox time plus a margin: otherwise a slow program gets the pool worker SIGKILLed, and with it every
    warm sandbox it holds, instead of a sandbox timeout with the tests it passed."""
    from rlvr.errors import UserError

    for i, spec in enumerate(reward.verifiers):
        if spec.name != "code":
            continue
        from verifiers.code import POOL_MARGIN_SECONDS, CodeVerifier

        try:
            program = float((spec.options or {}).get("timeout") or CodeVerifier.defaults["timeout"])
        except (TypeError, ValueError):
            continue  # the verifier names a bad option itself
        least = program + POOL_MARGIN_SECONDS
        if not reward.timeout > least:
            raise UserError(f"reward.timeout: {reward.timeout:g} s is not above reward.verifiers[{i}]"
                            f".options.timeout ({program:g} s) + {POOL_MARGIN_SECONDS:g} s: a slower program "
                            f"would get the verifier worker killed; set reward.timeout above {least:g}")


KINDS = {"rl": RLConfig}
