"""Reward models as scalar-head transformers: loading, the text they judge, and batched scoring.

A reward model is an HF sequence-classification model with one label (for Llama-family models,
`LlamaForSequenceClassification`: the transformer plus a linear head read at the last non-pad token),
so plain transformers loads and runs it. What it judges is

    render_prompt(prompt) + completion + EOS

with the prompt rendered exactly as in training (chat template or plain format). That format is saved
beside the weights in `reward_format.json`, so the trainer and the `reward_model` verifier can never
disagree on it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from rlvr.config import DataConfig
from rlvr.data import render_prompt
from rlvr.data.collate import pad_right
from rlvr.data.templates import encode
from rlvr.data.tokens import encode_capped
from rlvr.errors import UserError
from rlvr.models import load_tokenizer, resolve_model, torch_dtype

FORMAT_FILE = "reward_format.json"


@dataclass
class RewardFormat:
    """How a (prompt, completion) pair becomes the text a reward model reads."""

    template: str = "chat"
    prompt_format: str = "{prompt}"
    system_prompt: str | None = None
    max_seq_len: int = 512

    @classmethod
    def from_data(cls, data: DataConfig, max_seq_len: int) -> RewardFormat:
        return cls(data.template, data.prompt_format, data.system_prompt, max_seq_len)

    def data_config(self) -> DataConfig:
        return DataConfig(template=self.template, prompt_format=self.prompt_format,  # type: ignore[arg-type]
                          system_prompt=self.system_prompt)

    def save(self, folder: str | Path) -> None:
        Path(folder, FORMAT_FILE).write_text(json.dumps(self.__dict__, indent=1) + "\n")

    @classmethod
    def load(cls, folder: str | Path, tokenizer) -> RewardFormat:
        """The saved format; for a reward model trained elsewhere, its chat template if it has one."""
        path = Path(folder, FORMAT_FILE)
        if not path.is_file():
            return cls(template="chat" if getattr(tokenizer, "chat_template", None) else "plain",
                       max_seq_len=min(getattr(tokenizer, "model_max_length", 512), 4096))
        try:
            return cls(**json.loads(path.read_text()))
        except (TypeError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: not a reward format file ({e})") from None


def load_reward_model(path: str, dtype: str = "float32", pad_token_id: int | None = None,
                      device: torch.device | None = None, attn_implementation: str = "sdpa"):
    """A one-label sequence classifier from any HF folder; a causal LM (e.g. the SFT model) keeps its
    body and gets a freshly initialised head. The pad id tells the head where each sequence ends. Moved
    to `device` when one is given."""
    import transformers
    from transformers import AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()  # "newly initialized: score.weight" is the point here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=torch_dtype(dtype, device), attn_implementation=attn_implementation)
    except (OSError, ValueError) as e:
        raise UserError(f"reward model: cannot load '{path}' as a sequence classifier: "
                        f"{str(e).splitlines()[0]}") from None
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    return model.to(device) if device is not None else model


def encode_pair(tokenizer, prompt_text: str, completion: str, max_len: int) -> list[int]:
    """Token ids of a rendered prompt, then the completion and EOS; at most `max_len` of them.

    When too long, the prompt loses its oldest tokens first (the completion is what is judged), but
    keeps at least a quarter of `max_len`; then the completion is cut, keeping its closing EOS. Of a long
    text only the part that can be kept is tokenized (rlvr.data.tokens)."""
    prompt, _ = encode_capped(tokenizer, prompt_text, max_len, keep="tail")
    answer, over = encode_capped(tokenizer, completion, max_len)
    if over:  # cut below, keeping the EOS
        answer = answer[:max_len] + [tokenizer.eos_token_id]
    else:
        answer = encode(tokenizer, completion + tokenizer.eos_token)
    if len(prompt) + len(answer) <= max_len:
        return prompt + answer
    keep = max(max_len - len(answer), min(len(prompt), max_len // 4))
    prompt = prompt[len(prompt) - keep :]
    room = max_len - len(prompt)
    if len(answer) > room:
        answer = answer[: room - 1] + answer[-1:]
    return prompt + answer


def forward_rewards(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """r(x, y) for each row of a collated batch, float32, shape [B]. `model` may be a DeepSpeed engine."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return out.logits[:, 0].float()


class RewardScorer:
    """A trained reward model ready to score: `score(prompts, completions) -> tensor`, batched."""

    def __init__(self, path: str, batch_size: int = 32, dtype: str = "float32",
                 device: torch.device | str = "cpu"):
        folder = resolve_model(path)
        self.device = torch.device(device)
        self.tokenizer = load_tokenizer(folder)
        self.format = RewardFormat.load(folder, self.tokenizer)
        self.data = self.format.data_config()
        self.model = load_reward_model(folder, dtype, self.tokenizer.pad_token_id, self.device).eval()
        self.batch_size = batch_size

    def encode(self, prompt: str, completion: str) -> list[int]:
        text = render_prompt(self.tokenizer, prompt, self.data)
        return encode_pair(self.tokenizer, text, completion, self.format.max_seq_len)

    @torch.no_grad()
    def score(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        """Rewards in input order. Batches group similar lengths, so little compute goes to padding."""
        seqs = [self.encode(p, c) for p, c in zip(prompts, completions, strict=True)]
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out = torch.empty(len(seqs), device="cpu")  # host: the rewards leave as floats
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = pad_right([seqs[i] for i in chunk], self.tokenizer.pad_token_id)
            out[chunk] = forward_rewards(self.model, {k: v.to(self.device) for k, v in batch.items()}).cpu()
        return out
