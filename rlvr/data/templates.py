"""Prompt templates: the tokenizer's chat template, or a plain format string."""
from __future__ import annotations

from rlvr.config import DataConfig
from rlvr.errors import UserError


def render_prompt(tokenizer, prompt: str, cfg: DataConfig) -> str:
    """The text the model sees before its response."""
    if cfg.template == "plain":
        try:
            return cfg.prompt_format.format(prompt=prompt)
        except (KeyError, IndexError) as e:
            raise UserError(f"data.prompt_format: only {{prompt}} can be filled in, found {e}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("data.template: 'chat' needs a tokenizer with a chat template; use template: plain")
    messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    messages.append({"role": "user", "content": prompt})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def render_response(tokenizer, response: str) -> str:
    """The SFT target: the response and the end-of-sequence token the model must learn to emit."""
    return response + tokenizer.eos_token


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of rendered text. Templates already hold every special token the model expects, so
    the tokenizer adds none (generation and training must tokenize identically)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]
