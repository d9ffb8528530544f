"""The policy's logits (or the critic's values) on the response tokens of a rollout, with each prompt
computed once per group.

The n samples of a group share their prompt, and in RLVR the prompt is most of the sequence (the quickstart's
prompts are 18 tokens, its answers 4). So every distinct prompt of a batch runs once, its KV cache is
copied to the rows of its samples, and only the responses run per sample:

    prompt pass   [U, P] distinct prompts  -> KV cache, and the logits at the last prompt token
    response pass [B, T] responses over their prompt's cache -> the logits at every response token

Gradients flow back through the copied cache into the prompt pass, so the loss, its gradient and the
log-probabilities are those of the plain [B, P+T] forward (up to float rounding; tested). Both passes run
whatever the batch holds, so under ZeRO-3 every rank makes the same forward calls.
"""
from __future__ import annotations

import torch

from rlvr.models import cache_argument
from rlvr.trainers.rollout import RolloutBatch


def response_logits(model, b: RolloutBatch, share_prompts: bool = True) -> torch.Tensor:
    """[B, T, V]: the logits that predict response token t of each row (position P-1+t of the sequence)."""
    P, T = b.prompt_len, b.input_ids.shape[1] - b.prompt_len
    if not share_prompts:
        logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids,
                       logits_to_keep=T + 1).logits
        return logits[:, :-1]
    # rows are the same prompt when their ids and padding agree (the pad id may be a real token too)
    key = torch.cat([b.input_ids[:, :P], b.attention_mask[:, :P]], dim=1)
    _, owner = torch.unique(key, dim=0, return_inverse=True)
    rows = torch.arange(len(b), device=owner.device)
    first = torch.full((int(owner.max()) + 1,), len(b), device=owner.device).scatter_reduce(0, owner, rows, "amin")
    arg = cache_argument(model)
    head = model(input_ids=b.input_ids[first, :P], attention_mask=b.attention_mask[first, :P],
                 position_ids=b.position_ids[first, :P], use_cache=True, logits_to_keep=1)
    cache = getattr(head, arg)
    if cache is None or cache.get_seq_length() != P:  # e.g. gradient checkpointing drops the cache in training
        raise RuntimeError("the prompt pass returned no KV cache to share: set trainer.share_prompts: false")
    cache.reorder_cache(owner)  # [U] -> [B]: index_select, so each sample's gradient reaches its prompt
    # the last response token predicts nothing needed; one token still runs when T is 1 (ZeRO-3: every
    # rank makes the same calls)
    R = max(T - 1, 1)
    tail = model(input_ids=b.input_ids[:, P : P + R], attention_mask=b.attention_mask[:, : P + R],
                 position_ids=b.position_ids[:, P : P + R], use_cache=True, **{arg: cache}).logits
    return torch.cat([head.logits[owner], tail[:, : T - 1]], dim=1)


def shares_prompts(t, log) -> bool:
    """Whether the updates run each group's prompt once (`t`: the RL trainer section). Not with gradient
    checkpointing: a checkpointed layer keeps no KV cache in a pass with gradients (its replay in the backward
    pass would write the cache a second time), so the response pass would have no prompt to attend to. `log`
    says why, in one line."""
    if not (t.share_prompts and t.samples_per_prompt > 1):
        return False
    if t.gradient_checkpointing:
        log("trainer.share_prompts: off, because trainer.gradient_checkpointing keeps no KV cache in passes "
            "with gradients; each sample runs its prompt")
        return False
    return True
