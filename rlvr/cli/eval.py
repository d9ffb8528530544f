"""`rlvr eval`: benchmark scores with the verifiers that give the training rewards."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from rlvr.errors import UserError

EPILOG = """examples:
  rlvr eval --model smollm2-135m-instruct --benchmark gsm8k --limit 50
  rlvr eval configs/eval_smollm2_humaneval.yaml --limit 20
  rlvr eval --model runs/sft_arith/final --benchmark arith -k 1,4 generation.temperature=1.0
  rlvr eval --run runs/sft_arith --benchmark arith          # every checkpoint, plus a score-vs-step plot
  rlvr eval --benchmark data.jsonl --verifier math --model my/model
  rlvr eval --compare runs/eval/a runs/eval/b
"""


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="score a model or a run's checkpoints on GSM8K, MATH-500, HumanEval, arith, or a file",
        description="Generate responses to a benchmark's problems and judge them with the training verifiers: "
                    "accuracy (greedy), pass@k, maj@k, response length, truncation; per subject and level "
                    "where the data has them. An interrupted eval continues where it stopped.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("args", nargs="*", metavar="[CONFIG] KEY=VALUE",
                   help="an optional eval config (YAML, kind: eval) then dotted overrides, together (all before or all after the options)")
    p.add_argument("--model", help="hub id, local HF folder, .gguf file, or smollm2-135m-instruct")
    p.add_argument("--benchmark", help="gsm8k, math500, humaneval, mbpp, arith, or a data file (with --verifier)")
    p.add_argument("--split", help="benchmark split (default: test)")
    p.add_argument("--limit", type=int, help="only the first N problems")
    p.add_argument("--verifier", help="verifier name (default: the benchmark's)")
    p.add_argument("-k", type=k_list, metavar="K[,K...]",
                   help="k values for pass@k and maj@k, e.g. 1,4,8 (samples per problem: the largest)")
    p.add_argument("--out", help="output folder (default: runs/eval/<model>-<benchmark>, or RUN/eval/<benchmark>)")
    p.add_argument("--run", help="a training run folder: evaluate each checkpoints/step-*/ and final/")
    p.add_argument("--fresh", action="store_true", help="discard earlier results in the output folder")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="show two eval result folders side by side")
    p.set_defaults(func=run)


def k_list(text: str) -> list[int]:
    try:
        ks = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return ks


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(text).name if Path(text).exists() else text).strip("-")


def split_args(items: list[str]) -> tuple[str | None, list[str]]:
    if items and "=" not in items[0]:
        return items[0], items[1:]
    bad = [i for i in items if "=" not in i]
    if bad:
        raise UserError(f"eval: expected KEY=VALUE overrides after the config, got {bad[0]!r}")
    return None, items


def run_section(run: Path) -> dict:
    """The data (prompting) and generation length of a training run, so its checkpoints are asked as trained."""
    from rlvr.config import read_yaml

    path = run / "config.yaml"
    if not path.is_file():
        return {}
    saved = read_yaml(path)
    gen = saved.get("generation") or {}
    return {"data": saved.get("data") or {}, "model": {"dtype": (saved.get("model") or {}).get("dtype", "float32")},
            "generation": {k: gen[k] for k in ("max_new_tokens", "batch_size", "stop") if k in gen}}


def build_config(args: argparse.Namespace):
    from rlvr.config import config_from_dict, parse_override, read_yaml

    if args.run and args.model:
        raise UserError("eval: --run evaluates the run's own checkpoints; leave out --model")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"eval: --limit: expected a number of problems >= 1, got {args.limit} "
                        "(leave it out for the whole split)")
    config_path, overrides = split_args(args.args)
    raw = read_yaml(config_path) if config_path else {"kind": "eval"}
    if raw.get("kind", "eval") != "eval":
        raise UserError(f"{config_path}: kind: expected 'eval', got {raw.get('kind')!r}")
    raw["kind"] = "eval"
    if args.run:
        for section, values in run_section(Path(args.run)).items():
            raw[section] = {**values, **(raw.get(section) or {})}
    flags = {"model.name": args.model, "eval.benchmark": args.benchmark, "eval.split": args.split,
             "eval.limit": args.limit, "verifier.name": args.verifier, "eval.k": args.k}
    extra = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in flags.items() if v is not None]
    if args.fresh:
        extra.append("eval.resume=false")
    given = {parse_override(o)[0] for o in overrides}
    if not (config_path or args.benchmark or args.run or "eval.benchmark" in given or "data.source" in given):
        raise UserError("eval: say what to evaluate on: --benchmark NAME, a config file, or --run RUN")
    cfg = config_from_dict(raw, [*extra, *overrides], source=config_path or "eval")
    if args.out:
        cfg.eval.out_dir = args.out
    elif "out_dir" not in (raw.get("eval") or {}) and "eval.out_dir" not in given:
        bench = slug(cfg.eval.benchmark or cfg.data.source)
        cfg.eval.out_dir = str(Path(args.run) / "eval" / bench if args.run
                               else Path("runs/eval") / f"{slug(cfg.model.name)}-{bench}")
    return cfg


def run(args: argparse.Namespace) -> int:
    if args.compare:
        from rlvr.eval.compare import compare

        print(compare(*args.compare), end="")
        return 0
    cfg = build_config(args)
    if args.run:
        from rlvr.eval.checkpoints import evaluate_run

        combined = evaluate_run(cfg, Path(args.run))
        print(Path(cfg.eval.out_dir, "results.md").read_text(), end="")
        print(f"[rlvr] results: {cfg.eval.out_dir}/results.json; plot: {combined['plot']}")
        return 0
    from rlvr.eval.runner import run_eval
    from rlvr.models import check_model

    check_model(cfg.model)  # before the output folder is made and the problems are read
    run_eval(cfg)
    print(Path(cfg.eval.out_dir, "results.md").read_text(), end="")
    print(f"[rlvr] generations and verdicts: {cfg.eval.out_dir}/generations.jsonl")
    return 0
