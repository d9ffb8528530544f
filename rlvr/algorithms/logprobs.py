"""Per-token log-probabilities, entropy, and the masked means built on them.

`token_logprobs` and `entropy` are the plain equations over the whole [B, T, V] logits (the reference the
tests compare against); the trainers call `chunked_logprobs`, the same numbers computed a chunk of tokens
at a time, so that no float32 copy of the logits exists beyond one chunk, in the forward pass or in what
autograd keeps for backward."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(tokens[b, t] | logits[b, t]):  log_softmax(logits)[b, t, tokens[b, t]], in float32.

    `logits` [B, T, V] are the model's outputs already aligned with `tokens` [B, T] (that is, the logits
    at position t-1 predict token t; the caller shifts). Reference: materialises float32 [B, T, V]."""
    logits = logits.float()
    # gather before normalising: logsumexp over V is the only full-vocabulary op
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """H[b, t] = -sum_v p log p of softmax(logits[b, t]). Reference: materialises float32 [B, T, V]."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def chunk_spans(rows: int, length: int, chunk_tokens: int) -> list[tuple[slice, slice]]:
    """(row slice, position slice) pairs covering a [rows, length] grid, each at most `chunk_tokens`
    tokens: whole rows when a row fits, else pieces of one row. Slicing rows and positions keeps each chunk
    a view even of non-contiguous logits (`logits[:, :-1]`), where flattening [B, T] would copy them all."""
    if rows * length == 0:
        return []
    if chunk_tokens >= length:
        step = chunk_tokens // length
        return [(slice(b, b + step), slice(0, length)) for b in range(0, rows, step)]
    return [(slice(b, b + 1), slice(t, t + chunk_tokens))
            for b in range(rows) for t in range(0, length, chunk_tokens)]


def chunk_forward(z: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log p(tokens), logsumexp, H) of float32 logits `z` [..., V] already divided by the temperature:

        lse = log sum_v exp(z_v),   log p(y) = z_y - lse,   H = -sum_v p_v (z_v - lse),  p = exp(z - lse)"""
    lse = torch.logsumexp(z, dim=-1)
    logp = z - lse.unsqueeze(-1)
    picked = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked, lse, -(logp.exp().mul_(logp)).sum(-1)


def chunk_backward(z, tokens, lse, h, g_lp, g_h, temperature: float) -> torch.Tensor:
    """dL/dx for x = z * T, from dL/dlog p(y) = g_lp and dL/dH = g_h (either may be None):

        d log p(y) / dz = onehot(y) - p,     dH / dz = -p (log p + H),     dL/dx = dL/dz / T
        dL/dz = onehot(y) g_lp - p (g_lp + g_h (log p + H))

    In place where it can: three float32 tensors of the chunk's size at most, `z` among them."""
    logp = z - lse.unsqueeze(-1)
    if g_h is None:
        weight = torch.zeros_like(logp)
    else:
        weight = (logp + h.unsqueeze(-1)).mul_(g_h.unsqueeze(-1))
    if g_lp is not None:
        weight += g_lp.unsqueeze(-1)
    grad = weight.mul_(logp.exp_()).neg_()  # -p (...)
    if g_lp is not None:
        grad.scatter_add_(-1, tokens.unsqueeze(-1), g_lp.unsqueeze(-1))
    return grad.div_(temperature)


def _wide(logits: torch.Tensor) -> torch.dtype:
    """float32 for 16-bit and float32 logits; float64 stays float64 (gradcheck)."""
    return torch.promote_types(logits.dtype, torch.float32)


class _ChunkedLogprobs(torch.autograd.Function):
    """Saves the logits as they came (model dtype), the tokens and the per-token logsumexp and entropy;
    backward recomputes the softmax a chunk at a time instead of keeping float32 [B, T, V] for it."""

    @staticmethod
    def forward(ctx, logits, tokens, temperature: float, chunk_tokens: int, with_entropy: bool):
        B, T = tokens.shape
        lp = logits.new_empty((B, T), dtype=_wide(logits))
        lse, h = torch.empty_like(lp), torch.empty_like(lp)
        for rows, cols in chunk_spans(B, T, chunk_tokens):
            z = logits[rows, cols].to(lp.dtype) / temperature  # inside the chunk: no full-size copy
            lp[rows, cols], lse[rows, cols], h[rows, cols] = chunk_forward(z, tokens[rows, cols])
        ctx.save_for_backward(logits, tokens, lse, h)
        ctx.temperature, ctx.chunk_tokens = temperature, chunk_tokens
        ctx.set_materialize_grads(False)  # an output backward does not reach comes as None: skip its term
        return lp, (h if with_entropy else None)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_lp, g_h):
        logits, tokens, lse, h = ctx.saved_tensors
        grad = torch.empty_like(logits)  # model dtype: what the lm_head's backward takes
        for rows, cols in chunk_spans(*tokens.shape, ctx.chunk_tokens):
            z = logits[rows, cols].to(lse.dtype) / ctx.temperature
            pick = [None if g is None else g[rows, cols] for g in (g_lp, g_h)]
            grad[rows, cols] = chunk_backward(z, tokens[rows, cols], lse[rows, cols], h[rows, cols], *pick,
                                              ctx.temperature)
        return grad, None, None, None, None


def chunked_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0,
                     chunk_tokens: int = 1024, with_entropy: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log p(tokens) [B, T], entropy H [B, T] or None) under softmax(logits / temperature), in float32
    (float64 for float64 logits):

        log p(y[b, t]) = log_softmax(x[b, t] / T)[y[b, t]],   H[b, t] = -sum_v p log p

    equal to token_logprobs(logits / T, tokens) and entropy(logits / T), with their gradients, computed
    `chunk_tokens` tokens at a time. The float32 tensors of the vocabulary's width are one chunk's, in
    forward and backward; autograd keeps only `logits` itself (model dtype) and [B, T] float32 rows."""
    return _ChunkedLogprobs.apply(logits, tokens, float(temperature), int(chunk_tokens), with_entropy)


def sft_loss(logprobs: torch.Tensor, mask: torch.Tensor, num_tokens: int | float) -> torch.Tensor:
    """Negative log-likelihood of the response tokens, averaged over `num_tokens`:

        L = -(1 / N) * sum_{b,t} mask[b, t] * log p(y[b, t])

    N is the token count of the whole global batch (all ranks, all accumulation steps), not of this
    micro-batch, so that the gradient is the same however the batch is split."""
    return -(logprobs * mask).sum() / num_tokens
