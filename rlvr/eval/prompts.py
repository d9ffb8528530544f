"""The text the model sees for each problem: the training template, optionally after worked examples.

Zero-shot prompts go through `rlvr.data.render_prompt`, the very function training uses, so an eval of
a trained model sees its problems exactly as training did (with the default `eval.question_format`). Few-shot examples are earlier chat turns
(template: chat) or text blocks before the problem (template: plain).
"""
from __future__ import annotations

from rlvr.config import DataConfig
from rlvr.config.eval import FewShotSettings
from rlvr.data import render_prompt
from rlvr.errors import UserError


def ask(question_format: str, prompt: str) -> str:
    """The problem text as the model is asked it: `question_format` with {prompt} filled in."""
    try:
        return question_format.format(prompt=prompt)
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(f"eval.question_format: only {{prompt}} can be filled in (double other braces), "
                        f"found {e}") from None


def render_with_examples(tokenizer, prompt: str, data: DataConfig, examples: list[dict],
                         shot: FewShotSettings, question_format: str = "{prompt}") -> str:
    """The rendered prompt for `prompt` after `examples` (rows with `prompt` and `response`)."""
    prompt = ask(question_format, prompt)
    examples = [{**e, "prompt": ask(question_format, e["prompt"])} for e in examples]
    if not examples:
        return render_prompt(tokenizer, prompt, data)
    if data.template == "plain":
        try:
            blocks = [shot.example_format.format(prompt=e["prompt"], response=e["response"]) for e in examples]
        except (KeyError, IndexError) as e:
            raise UserError(f"few_shot.example_format: only {{prompt}} and {{response}} can be filled in, "
                            f"found {e}") from None
        return "\n\n".join(blocks) + "\n\n" + render_prompt(tokenizer, prompt, data)
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("data.template: 'chat' needs a tokenizer with a chat template; use template: plain")
    messages = [{"role": "system", "content": data.system_prompt}] if data.system_prompt else []
    for e in examples:
        messages += [{"role": "user", "content": e["prompt"]}, {"role": "assistant", "content": e["response"]}]
    messages.append({"role": "user", "content": prompt})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def pick_examples(rows: list[dict], count: int, origin: str) -> list[dict]:
    """The first `count` rows that have a worked response (deterministic: the same shots every run)."""
    usable = [r for r in rows if isinstance(r.get("response"), str) and r["response"].strip()]
    if len(usable) < count:
        raise UserError(f"few_shot.count: {count} examples wanted but {origin} has only {len(usable)} rows "
                        f"with a response")
    return usable[:count]
