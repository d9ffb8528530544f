"""Generating from a model DeepSpeed trains: the embedded engine on the engine's own module.

Under ZeRO-3 each rank holds a slice of every weight and each forward pass gathers the rest from the
other ranks. Decoding token by token would gather the whole model once per token, so by default
(`generation.gather_weights`) the weights are gathered once for a whole generate() call, with DeepSpeed's
own `unwrap_model_for_generation` (the gathered copy takes one full model's memory on each device for
that time; the hooks that would gather per layer are lifted meanwhile, as TRL does).
"""
from __future__ import annotations

import torch

from rlvr import distributed as D
from rlvr.config import GenerationConfig
from rlvr.generation.hf import HFEngine


def generation_engine(engine, tokenizer, gen: GenerationConfig, seed: int, device: torch.device) -> HFEngine:
    """The hf engine sampling from DeepSpeed `engine`'s module (no copy of the weights, no sync); each rank
    seeds its sampler with seed + rank."""
    partitioned = engine.zero_optimization_partition_weights()
    weights = None
    if partitioned and gen.gather_weights:
        from deepspeed.runtime.zero.stage3 import unwrap_model_for_generation

        def weights():
            return unwrap_model_for_generation(engine)

    return HFEngine(engine.module, tokenizer, batch_size=gen.batch_size, seed=seed + D.rank(),
                    sync_ranks=partitioned, device=device, weights=weights)
