"""Generation engines behind one interface: `hf` (embedded default) and `vllm` (GPUs)."""
from rlvr.generation.base import Engine, Sample, SamplingParams

__all__ = ["Engine", "Sample", "SamplingParams", "sampling_params"]


def sampling_params(cfg) -> SamplingParams:
    """SamplingParams from a GenerationConfig."""
    return SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                          max_new_tokens=cfg.max_new_tokens, stop=list(cfg.stop), seed=cfg.seed)
