"""The sections every run shares: model, data, generation, DeepSpeed, logging."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class TinyModelConfig:
    """A Llama-family model built from scratch, with a character-level tokenizer made locally."""

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 128
    alphabet: str = "0123456789+-*=() "  # characters of the character-level vocabulary
    # Instead of the character-level one: a real tokenizer (an HF folder, a hub id, or a model name such
    # as 'smollm2-135m-instruct'), for tiny models that read text.
    tokenizer: str | None = None


@dataclass
class ModelConfig:
    # A local HF folder, a hub id, a .gguf file, 'smollm2-135m-instruct' (the shipped GGUF), or 'tiny'.
    name: str = "tiny"
    gguf_file: str | None = None
    # 'auto': bfloat16 on a GPU that supports it, float32 otherwise (CPUs, older GPUs)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # transformers' attention kernels: 'sdpa' (PyTorch's fused attention, on every device),
    # 'flash_attention_2' (GPUs, needs the flash-attn package), 'eager' (plain matmuls)
    attn_implementation: Literal["sdpa", "flash_attention_2", "eager"] = "sdpa"
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class ArithConfig:
    """The built-in `arith` task: integer arithmetic, deterministic by seed."""

    operands: int = 2
    digits: int = 2  # maximum digits per operand
    ops: str = "+"  # any of + - *
    train_size: int = 20000
    test_size: int = 500
    seed: int = 0


@dataclass
class PyfuncConfig:
    """The built-in `pyfunc` task: small Python functions from input/output examples, checked by hidden
    asserts in the sandbox; deterministic by seed (rlvr.data.tasks.pyfunc)."""

    families: list[str] = field(default_factory=lambda: ["int", "str", "list"])  # argument types
    # The part [from, to) of the training split's functions (ranked by a hash of what they compute) that
    # training rows use: the quickstart demonstrates [0, 0.5) and practises RL on [0.5, 1), functions SFT
    # never showed, as the held-out ones are. The test split always uses all of its functions.
    train_functions: list[float] = field(default_factory=lambda: [0.0, 1.0])
    # Only shapes (x+a, sorted(a), ...) with at least this many functions: 5 keeps those that held-out
    # functions come from, so that RL practises what the held-out split asks.
    min_shape_functions: int = 1
    train_size: int = 2000
    test_size: int = 256
    seed: int = 0


@dataclass
class FieldsConfig:
    """Which field of a data row holds what. Unused ones are ignored."""

    prompt: str = "prompt"
    response: str = "response"  # the target completion for SFT
    reference: str = "reference"  # the reference answer a verifier checks against
    chosen: str = "chosen"
    rejected: str = "rejected"
    tests: str = "tests"  # test cases for the code verifier


@dataclass
class DataConfig:
    # 'arith', 'pyfunc', 'gsm8k', 'math500', 'humaneval', 'hh-rlhf', a local .jsonl/.json/.jsonl.gz/.parquet file,
    # or a hub data set name.
    source: str = "arith"
    split: str = "train"
    eval_source: str | None = None  # defaults to `source`
    eval_split: str = "test"
    fields: FieldsConfig = field(default_factory=FieldsConfig)
    # 'chat': the tokenizer's chat template; 'plain': `prompt_format` with {prompt} filled in.
    template: Literal["chat", "plain"] = "chat"
    prompt_format: str = "{prompt}"
    system_prompt: str | None = None
    max_samples: int | None = None
    eval_samples: int | None = None
    on_bad_row: Literal["error", "skip"] = "error"
    arith: ArithConfig = field(default_factory=ArithConfig)
    pyfunc: PyfuncConfig = field(default_factory=PyfuncConfig)


@dataclass
class VLLMConfig:
    """The vLLM engine, colocated: each rank (or tensor-parallel group of ranks) runs one engine on its own
    GPU(s), beside training, as TRL's colocate mode does."""

    gpu_memory_utilization: float = 0.3  # share of each GPU's memory vLLM takes (weights + KV cache)
    max_model_len: int | None = None  # prompt + response tokens; null: the model's own limit
    tensor_parallel_size: int = 1  # consecutive ranks that share one engine, the model split over their GPUs
    # free vLLM's GPU memory while the trainer updates: sleep after generating, wake (weights first, then
    # the KV cache) before the next generation
    enable_sleep: bool = False
    enforce_eager: bool | None = None  # null: eager on CPUs; CUDA graphs on GPUs
    sync_timeout: float = 600.0  # seconds a weight sync may take before it is an error, not a hang


@dataclass
class GenerationConfig:
    backend: Literal["hf", "vllm"] = "hf"
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    batch_size: int = 64  # prompts per forward batch (hf backend)
    # hf backend under ZeRO-3: gather the full weights once per generate() call instead of once per
    # decoded token (every forward of a partitioned model is a collective); needs room for one full copy
    # of the model on each device while generating
    gather_weights: bool = True
    vllm: VLLMConfig = field(default_factory=VLLMConfig)


@dataclass
class DeepSpeedConfig:
    stage: Literal[0, 1, 2, 3] = 0
    offload_optimizer: bool = False  # ZeRO 1-3: optimizer states and step in CPU memory (DeepSpeed's CPU Adam)
    offload_param: bool = False  # ZeRO-3: parameters in CPU memory, brought to the GPU layer by layer
    # a collective that waits longer than this fails with an error instead of hanging the run
    timeout_minutes: float = 30.0
    # A DeepSpeed JSON/YAML file whose keys override the generated config (for users who know DeepSpeed).
    config_file: str | None = None


@dataclass
class LoggingConfig:
    out_dir: str = "runs/sft"
    log_every: int = 10
    progress: bool = True
    tensorboard: bool = True  # only when tensorboard is installed


# ---- ranges ----------------------------------------------------------------------------------------
# A rule per numeric field: what it must be, and how the one-line error says so. None (an unset optional
# field) is always allowed. The checks are written so that NaN fails every rule.
RULES = {
    ">0": (lambda v: v > 0, "a number above 0"),
    ">1": (lambda v: v > 1, "a number above 1"),
    ">=0": (lambda v: v >= 0, "0 or more"),
    ">=1": (lambda v: v >= 1, "1 or more"),
    ">=2": (lambda v: v >= 2, "2 or more"),
    "[0,1]": (lambda v: 0 <= v <= 1, "a share in [0, 1]"),
    "(0,1]": (lambda v: 0 < v <= 1, "a share in (0, 1]"),
    "[0,1)": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "[0,0.5)": (lambda v: 0 <= v < 0.5, "a number in [0, 0.5)"),
    "seed": (lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)"),  # numpy's seeds
}

# The optimizer and schedule fields every trainer section shares.
TRAINER_RANGES = {"lr": ">0", "weight_decay": ">=0", "warmup_steps": ">=0", "min_lr_ratio": "[0,1]",
                  "max_steps": ">=1", "max_seconds": ">0", "grad_clip": ">=0", "eval_every": ">=0",
                  "save_every": ">=0", "keep_checkpoints": ">=0", "seed": "seed"}


def check_ranges(section, key: str, ranges: dict[str, str]) -> None:
    """Each field of `section` named in `ranges` within its rule; raises UserError naming `key`.field."""
    import math

    from rlvr.errors import UserError

    for name, rule in ranges.items():
        value = getattr(section, name)
        if value is None:
            continue
        within, expected = RULES[rule]
        if not within(value) or (isinstance(value, float) and not math.isfinite(value)):
            raise UserError(f"{key}.{name}: expected {expected}, got {value}")


def check_betas(betas: list[float], key: str) -> None:
    """Adam's (beta1, beta2): two decay rates in [0, 1)."""
    from rlvr.errors import UserError

    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise UserError(f"{key}: expected two numbers in [0, 1) (Adam's beta1, beta2), got {betas}")


def check_trainer(trainer, ranges: dict[str, str]) -> None:
    """A trainer section: the shared optimizer fields, then the kind's own `ranges`."""
    check_ranges(trainer, "trainer", {**TRAINER_RANGES, **ranges})
    check_betas(trainer.betas, "trainer.betas")


def validate_sections(cfg) -> None:
    """Checks of the shared sections that their types cannot express; raises UserError naming the key."""
    from rlvr.errors import UserError

    model, data, gen = (getattr(cfg, name, None) for name in ("model", "data", "generation"))
    ds, log = getattr(cfg, "deepspeed", None), getattr(cfg, "logging", None)
    if model is not None:
        tiny = model.tiny
        check_ranges(tiny, "model.tiny", {"hidden_size": ">=1", "num_layers": ">=1", "num_heads": ">=1",
                                          "intermediate_size": ">=1", "max_position_embeddings": ">=2"})
        if tiny.hidden_size % tiny.num_heads or (tiny.hidden_size // tiny.num_heads) % 2:
            raise UserError(f"model.tiny.hidden_size: expected an even number of dimensions per head "
                            f"(model.tiny.num_heads={tiny.num_heads}), got {tiny.hidden_size}")
    if data is not None:
        check_ranges(data, "data", {"max_samples": ">=1", "eval_samples": ">=0"})
        check_ranges(data.arith, "data.arith", {"operands": ">=1", "digits": ">=1", "train_size": ">=1",
                                                "test_size": ">=0", "seed": "seed"})
        check_ranges(data.pyfunc, "data.pyfunc", {"train_size": ">=1", "test_size": ">=0", "seed": "seed",
                                                  "min_shape_functions": ">=1"})
    if gen is not None:
        check_ranges(gen, "generation", {"temperature": ">=0", "top_p": "(0,1]", "top_k": ">=0",
                                         "max_new_tokens": ">=1", "seed": "seed", "batch_size": ">=1"})
        v = gen.vllm
        if not 0 < v.gpu_memory_utilization <= 1:
            raise UserError(f"generation.vllm.gpu_memory_utilization: expected a share in (0, 1], got "
                            f"{v.gpu_memory_utilization}")
        if v.tensor_parallel_size < 1:
            raise UserError(f"generation.vllm.tensor_parallel_size: expected 1 or more, "
                            f"got {v.tensor_parallel_size}")
        if v.max_model_len is not None and v.max_model_len < 1:
            raise UserError(f"generation.vllm.max_model_len: expected a positive number, got {v.max_model_len}")
        check_ranges(v, "generation.vllm", {"sync_timeout": ">0"})
    if ds is not None:
        if ds.offload_param and ds.stage != 3:
            raise UserError(f"deepspeed.offload_param: parameter offload needs deepspeed.stage=3, "
                            f"got stage {ds.stage}")
        if ds.offload_optimizer and ds.stage == 0:
            raise UserError("deepspeed.offload_optimizer: optimizer offload needs ZeRO, deepspeed.stage 1, 2 or 3")
        if ds.timeout_minutes <= 0:
            raise UserError(f"deepspeed.timeout_minutes: expected a positive number, got {ds.timeout_minutes}")
    if log is not None:
        check_ranges(log, "logging", {"log_every": ">=1"})
