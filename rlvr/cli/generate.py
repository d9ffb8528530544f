"""`rlvr generate CONFIG --prompts FILE --out FILE [key=value ...]`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlvr.config import load_config
from rlvr.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "generate", help="sample responses to prompts with a model, written as JSONL",
        description="Sample responses with the configured model, template and sampling settings. "
                    "Prompts: a .txt file (one per line) or JSONL with the field named by data.fields.prompt.",
    )
    p.add_argument("config", help="YAML config with model, data (template) and generation sections")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--prompts", required=True, help="prompts file (.txt or .jsonl)")
    p.add_argument("--out", required=True, help="output JSONL file")
    p.add_argument("-n", type=int, default=1, help="samples per prompt")
    p.set_defaults(func=run)


def read_prompts(path: str, field: str) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"prompts file not found: {p}")
    if p.suffix == ".txt":
        return [{field: line} for line in p.read_text().splitlines() if line.strip()]
    from rlvr.data.loading import read_located

    located = read_located(p)
    for where, row in located:
        if not isinstance(row.get(field), str):
            raise UserError(f"{p} {where}: expected a string field '{field}' (set data.fields.prompt)")
    return [row for _, row in located]


def run(args: argparse.Namespace) -> int:
    from rlvr.models import check_model, load_tokenizer, prepare_model

    cfg = load_config(args.config, args.overrides)
    check_model(cfg.model)  # a missing or broken model folder fails before anything is read or built
    rows = read_prompts(args.prompts, cfg.data.fields.prompt)
    from rlvr.data import render_prompt
    from rlvr.generation import sampling_params
    from rlvr.generation.factory import make_engine

    model_path = prepare_model(cfg.model, Path(args.out).parent / ".generate_model")
    tokenizer = load_tokenizer(model_path)
    engine = make_engine(cfg, model_path, tokenizer)
    prompts = [render_prompt(tokenizer, r[cfg.data.fields.prompt], cfg.data) for r in rows]
    samples = engine.generate(prompts, args.n, sampling_params(cfg.generation))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        for s in samples:
            row = rows[s.prompt_index]
            f.write(json.dumps({**row, "completion": s.text, "finish_reason": s.finish_reason,
                                "num_tokens": len(s.response_ids),
                                "logprob": round(sum(s.logprobs), 4)}) + "\n")
    engine.close()
    print(f"[rlvr] wrote {len(samples)} samples to {out}")
    return 0
