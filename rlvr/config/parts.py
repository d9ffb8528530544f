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
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
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
    # 'arith', 'gsm8k', 'math500', 'humaneval', 'hh-rlhf', a local .jsonl/.json/.jsonl.gz/.parquet file,
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


@dataclass
class DeepSpeedConfig:
    stage: Literal[0, 1, 2, 3] = 0
    offload_optimizer: bool = False
    # A DeepSpeed JSON/YAML file whose keys override the generated config (for users who know DeepSpeed).
    config_file: str | None = None


@dataclass
class LoggingConfig:
    out_dir: str = "runs/sft"
    log_every: int = 10
    progress: bool = True
    tensorboard: bool = True  # only when tensorboard is installed
