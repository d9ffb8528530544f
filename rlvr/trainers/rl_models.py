"""The extra models of RL: a critic (value head on a transformer) and the frozen reference policy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rlvr.models import cache_argument, disable_dropout, enable_gradient_checkpointing, load_model


@dataclass
class ValueOutput:
    logits: torch.Tensor  # [B, L, 1]: V(s_t) as a one-wide vocabulary, so response_logits serves the critic
    cache: Any = None  # the body's KV cache, when asked for


class ValueModel(nn.Module):
    """V(s_t) for every position: a transformer body with a scalar head on its last hidden state.

    It is called the way a causal LM is (use_cache, cache, logits_to_keep), so the critic shares each
    prompt's pass among its samples exactly as the policy does (rlvr/trainers/shared_prompts.py)."""

    def __init__(self, path: str, dtype: str = "float32", attn_implementation: str = "sdpa"):
        super().__init__()
        lm = disable_dropout(load_model(path, dtype, attn_implementation=attn_implementation))
        self.config = lm.config
        self.body = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.model
        self.head = nn.Linear(lm.config.hidden_size, 1, dtype=next(lm.parameters()).dtype)
        nn.init.zeros_(self.head.weight)  # start from V = 0: no spurious advantages on step one
        nn.init.zeros_(self.head.bias)
        self._cache_arg = cache_argument(self.body)

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None):
        """Checkpointing of the body's layers (rlvr.models.enable_gradient_checkpointing); the head is one
        matmul."""
        enable_gradient_checkpointing(self.body)

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache: bool = False,
                logits_to_keep: int = 0, cache=None) -> ValueOutput:
        out = self.body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        use_cache=use_cache, **{self._cache_arg: cache})
        hidden = out.last_hidden_state[:, -logits_to_keep:] if logits_to_keep else out.last_hidden_state
        return ValueOutput(self.head(hidden).float(), getattr(out, self._cache_arg, None))


def reference_engine(path: str, dtype: str, ds_config: dict, device: torch.device,
                     attn_implementation: str = "sdpa"):
    """The frozen reference. Under ZeRO-3 it is a DeepSpeed engine without an optimizer, so its weights
    stay partitioned like the actor's; otherwise a plain module in eval mode on this rank's device."""
    zero3 = ds_config["zero_optimization"]["stage"] == 3
    model = load_model(path, dtype, None if zero3 else device, attn_implementation)
    model.requires_grad_(False)
    model.eval()
    if not zero3:
        return model
    import deepspeed

    config = {k: v for k, v in ds_config.items() if k not in ("gradient_clipping",)}
    engine, *_ = deepspeed.initialize(model=model, config=config, dist_init_required=False)
    engine.eval()
    return engine.module
