"""Building the configured generation engine."""
from __future__ import annotations

from rlvr.generation.base import Engine


def make_engine(cfg, model_path: str, tokenizer, model=None) -> Engine:
    """`cfg` has model and generation sections. `model`: an already loaded torch model to share (hf)."""
    gen = cfg.generation
    if gen.backend == "vllm":
        from rlvr.generation.vllm import VLLMEngine

        return VLLMEngine(model_path, dtype=cfg.model.dtype, seed=gen.seed or 0)
    from rlvr.generation.hf import HFEngine
    from rlvr.models import load_model

    model = model if model is not None else load_model(model_path, cfg.model.dtype)
    return HFEngine(model, tokenizer, batch_size=gen.batch_size, seed=gen.seed or 0)
