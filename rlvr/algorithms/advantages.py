"""Advantage estimators. Shapes: B sequences, T response tokens; `mask` [B, T] is 1 on real tokens.

Critic-free estimators score whole sequences: `scores` [G, n] holds the n samples of each of G prompts.
Their per-sequence advantage is broadcast over the sequence's tokens by the trainer.
"""
from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries (population std); `shift_mean=False` only rescales."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) / torch.sqrt(var + eps) if shift_mean else x / torch.sqrt(var + eps)
    return out * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), right-padded sequences.

        delta_t = r_t + gamma * V_{t+1} - V_t           (V past the last real token is 0)
        A_t     = delta_t + gamma * lam * A_{t+1}
        R_t     = A_t + V_t                             (the critic's regression target)
    """
    values = values * mask
    B, T = rewards.shape
    adv = torch.zeros_like(rewards)
    running = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        adv[:, t] = running
    return adv, (adv + values) * mask


def grpo_advantages(scores: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GRPO (Shao et al. 2024): A_i = (r_i - mean(r_group)) / (std(r_group) + eps), sample std.

    A group whose samples all score the same gets 0 for each: it carries no learning signal."""
    mean = scores.mean(-1, keepdim=True)
    std = scores.std(-1, keepdim=True) if scores.shape[-1] > 1 else torch.zeros_like(mean)
    return (scores - mean) / (std + eps)


def dr_grpo_advantages(scores: torch.Tensor) -> torch.Tensor:
    """Dr. GRPO (Liu et al. 2025): A_i = r_i - mean(r_group); no division by the std (its bias toward
    too-easy and too-hard questions), paired with a loss that does not normalise by length."""
    return scores - scores.mean(-1, keepdim=True)


def rloo_advantages(scores: torch.Tensor) -> torch.Tensor:
    """RLOO (Ahmadian et al. 2024): A_i = r_i - mean_{j != i} r_j = n / (n - 1) * (r_i - mean(r))."""
    n = scores.shape[-1]
    if n < 2:
        raise ValueError("RLOO needs at least 2 samples per prompt")
    return (scores - scores.mean(-1, keepdim=True)) * n / (n - 1)


def reinforce_pp_advantages(token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0
                            ) -> torch.Tensor:
    """REINFORCE++ (Hu 2025): the return G_t = sum_{s>=t} gamma^(s-t) r_s of token rewards (score at the
    last token minus the per-token KL penalty), whitened over every token of the batch."""
    returns = torch.zeros_like(token_rewards)
    running = torch.zeros(token_rewards.shape[0], dtype=token_rewards.dtype, device=token_rewards.device)
    for t in reversed(range(token_rewards.shape[1])):
        running = (token_rewards[:, t] + gamma * running) * mask[:, t]
        returns[:, t] = running
    return whiten(returns, mask)
