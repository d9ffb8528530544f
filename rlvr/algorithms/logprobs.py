"""Per-token log-probabilities and the masked means built on them."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(tokens[b, t] | logits[b, t]):  log_softmax(logits)[b, t, tokens[b, t]], in float32.

    `logits` [B, T, V] are the model's outputs already aligned with `tokens` [B, T] (that is, the logits
    at position t-1 predict token t; the caller shifts)."""
    logits = logits.float()
    # gather before normalising: logsumexp over V is the only full-vocabulary op
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """H[b, t] = -sum_v p log p of softmax(logits[b, t])."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def sft_loss(logprobs: torch.Tensor, mask: torch.Tensor, num_tokens: int | float) -> torch.Tensor:
    """Negative log-likelihood of the response tokens, averaged over `num_tokens`:

        L = -(1 / N) * sum_{b,t} mask[b, t] * log p(y[b, t])

    N is the token count of the whole global batch (all ranks, all accumulation steps), not of this
    micro-batch, so that the gradient is the same however the batch is split."""
    return -(logprobs * mask).sum() / num_tokens
