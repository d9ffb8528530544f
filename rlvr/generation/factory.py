"""Building the configured generation engine."""
from __future__ import annotations

from rlvr.generation.base import Engine


def make_engine(cfg, model_path: str, tokenizer, model=None) -> Engine:
    """`cfg` has model and generation sections. `model`: an already loaded torch model to share (hf).
    The engine runs on this process's device (rlvr.devices)."""
    from rlvr.devices import device, resolve_dtype

    gen, dev = cfg.generation, device()
    dtype = resolve_dtype(cfg.model.dtype, dev)
    if gen.backend == "vllm":
        from rlvr.generation.vllm import VLLMEngine

        # colocated: this rank's engine on this rank's device, with the generation.vllm settings
        return VLLMEngine(model_path, dtype=dtype, seed=gen.seed or 0, settings=gen.vllm, device=dev)
    from rlvr.generation.hf import HFEngine
    from rlvr.models import load_model

    if model is None:
        model = load_model(model_path, dtype, dev, cfg.model.attn_implementation)
    return HFEngine(model, tokenizer, batch_size=gen.batch_size, seed=gen.seed or 0, device=dev)
