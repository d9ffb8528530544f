"""Policy-gradient losses, per token, and how per-token losses aggregate into one number.

Shapes: [B, T] over response tokens; `mask` is 1 on real tokens. Losses are returned per token so the
trainer can aggregate them over the global batch (see `aggregate`).
"""
from __future__ import annotations

from typing import Literal

import torch

AggMode = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                clip_low: float, clip_high: float, dual_clip: float | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (Schulman et al. 2017), with DAPO's clip-higher and optional dual clip.

        ratio = exp(logp - logp_old)
        L     = -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)
        dual clip (Ye et al. 2020), for A < 0:  L = min(L, -c * A)

    Returns (per-token loss, per-token 1.0 where the clipped branch was taken)."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * advantages
    loss = -torch.min(unclipped, clipped)
    clip_frac = (clipped < unclipped).float()
    if dual_clip is not None:
        loss = torch.where(advantages < 0, torch.min(loss, -dual_clip * advantages), loss)
    return loss, clip_frac


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               clip: float | None) -> torch.Tensor:
    """Clipped value loss: 0.5 * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2), per token."""
    loss = (values - returns) ** 2
    if clip is not None:
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        loss = torch.max(loss, (clipped - returns) ** 2)
    return 0.5 * loss


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimators of KL(pi || pi_ref) from samples of pi (Schulman 2020), log r = ref - logp:

        k1 = -log r = logp - ref             unbiased, high variance, can be negative
        k2 = (log r)^2 / 2                   biased, low variance
        k3 = (r - 1) - log r                 unbiased, low variance, always >= 0
    """
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        # clamp: exp of a large log-ratio would turn one token into inf
        log_ratio = log_ratio.clamp(-20, 20)
        return torch.exp(log_ratio) - 1 - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r} (k1, k2, k3)")


def aggregate(loss: torch.Tensor, mask: torch.Tensor, mode: AggMode, num_tokens: float | None = None,
              num_seqs: float | None = None, max_len: int | None = None) -> torch.Tensor:
    """One number from per-token losses. The denominators are those of the whole (global) minibatch, so
    the gradient does not depend on how the minibatch is split over ranks and micro-batches:

        token_mean               sum_{i,t} l_it / N_tokens                   (DAPO; every token equal)
        seq_mean_token_mean      sum_i (sum_t l_it / |y_i|) / N_seqs         (GRPO; every sequence equal)
        seq_mean_token_sum_norm  sum_{i,t} l_it / (N_seqs * T_max)           (Dr. GRPO; no length bias)
    """
    if mode == "token_mean":
        return (loss * mask).sum() / (num_tokens if num_tokens is not None else mask.sum().clamp(min=1))
    seqs = num_seqs if num_seqs is not None else loss.shape[0]
    if mode == "seq_mean_token_mean":
        per_seq = (loss * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.sum() / seqs
    if mode == "seq_mean_token_sum_norm":
        return (loss * mask).sum() / (seqs * (max_len if max_len is not None else loss.shape[1]))
    raise ValueError(f"unknown loss aggregation {mode!r}")
