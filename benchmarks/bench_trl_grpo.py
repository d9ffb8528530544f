"""rlvr's GRPO against TRL's GRPOTrainer: rollouts per second, and held-out accuracy after equal wall time.

Both trainers start from the same SFT'd tiny model (built as `rlvr quickstart` builds it:
`rlvr.quickstart.sft_config`, the tiny Llama with the character tokenizer, SFT on `arith`), train on the
same `arith` rows for the same number of seconds, each in its own fresh process (one after the other,
never at once), and the two saved models are then judged by the same code: rlvr's greedy evaluation
(`rlvr.trainers.evaluation.greedy_accuracy`, the HF engine, the `math` verifier) on the 500 held-out
problems.

Matched settings (rlvr key = TRL GRPOConfig argument), the quickstart's RL stage by default:
  - data: the `arith` train rows, prompts rendered by rlvr's `render_prompt` (the tokenizer's chat template)
    and handed to TRL as text, so both see the same token ids (checked at start-up);
  - batch: trainer.prompts_per_step x samples_per_prompt = generation_batch_size (128 x 8 = 1024);
    samples_per_prompt = num_generations (8);
  - updates: minibatch_size = per_device_train_batch_size (256), micro_batch_size 256 and
    gradient_accumulation_steps 1, so 4 optimizer steps per rollout = steps_per_generation;
    ppo_epochs = num_iterations (1);
  - sampling: generation.max_new_tokens = max_completion_length (8), temperature (1.0), top_p 1, top_k 0;
  - loss: GRPO advantages (group mean and std) = scale_rewards "group"; token-mean aggregation over the
    minibatch = loss_type "dapo" (tokens of the whole accumulated batch); clip 0.2 = epsilon 0.2;
    no KL: kl_coef 0 = beta 0 (neither loads a reference model); no entropy bonus; no dynamic sampling
    (the quickstart turns it on for GRPO; TRL has no equivalent, so it is off here);
  - optimizer: AdamW, lr 1e-4, betas (0.9, 0.95), weight decay 0, grad clip 1.0, 10 warm-up optimizer
    steps then constant (rlvr min_lr_ratio 1 = lr_scheduler_type "constant_with_warmup");
  - precision and memory: float32, no gradient checkpointing (TRL's defaults are bf16 and gradient
    checkpointing on: both set off here, they only cost time on a CPU);
  - reward: rlvr's `math` verifier with last_number_fallback, in TRL as a reward function
    (in-process; rlvr scores through its VerifierPool, one worker process, as it trains);
  - budget: rlvr's trainer.max_seconds, and a TRL callback that stops at the same time; both stop after the
    rollout that spends the budget; in-loop evaluation and checkpoints are off for both.

Where rlvr does less work for the same result (its defaults, the point of the comparison):
  - the n samples of a prompt share its prompt pass, in generation (one prefill per prompt, its KV cache
    copied to the n rows) and in the updates (minibatches hold whole groups; each prompt runs once and the
    responses run over its cache, gradients flowing back through it); TRL runs prompt + completion per sample;
  - the old log-probabilities are the ones the hf engine recorded while sampling from the actor itself;
    TRL recomputes them with another forward pass (it must: steps_per_generation 4 > 1);
  - rlvr's entropy metric comes from the update's own logits; TRL's too.

Not matched (cannot be, or not worth it):
  - generation: rlvr samples with its own KV-cached loop (HFEngine, batches of generation.batch_size 512);
    TRL calls transformers' `generate` on the whole generation batch; neither uses vLLM (CPU);
  - warm-up shape: rlvr's multiplier is (s + 1) / warmup, transformers' s / warmup;
  - group std: rlvr divides by std + 1e-6, TRL by std + 1e-4;
  - TRL logs entropy and clip ratios every step; rlvr logs its own metrics; both are part of their cost;
  - one process each, CPU, the same torch threads (--threads); no ZeRO for either (rlvr: DeepSpeed stage 0).

A "step" is one rollout: generate, score, and its optimizer steps. Rollouts per second are counted after
the first (warm-up) rollout. Time per rollout is split into generation, reward, and the rest (log-prob
passes, backward, optimizer, bookkeeping), by timing each trainer's own generation and reward calls.

    .venv/bin/python benchmarks/bench_trl_grpo.py [--seconds 90] [--out runs/bench_trl_grpo]
Needs the `bench` extra (trl). Writes benchmarks/results/trl_grpo.md (and .json).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "trl_grpo.md"
OPERANDS, DIGITS, OPS = 2, 2, "+"


# ---- the shared recipe ---------------------------------------------------------------------------
def rl_settings(model: str, out: Path, seed: int, prompts_per_step: int, seconds: float, max_rollouts: int) -> dict:
    """rlvr's RL config for this benchmark: the quickstart's GRPO stage from `model`, on a wall-time budget."""
    from rlvr.quickstart import rl_config

    cfg = rl_config(out, seed, OPERANDS, DIGITS, OPS, max_rollouts, "grpo")
    cfg["model"]["name"] = model
    # TRL has no dynamic sampling (refilling all-equal groups costs extra generation rounds): off for both
    cfg["trainer"].update(prompts_per_step=prompts_per_step, max_seconds=seconds, eval_every=0, save_every=0,
                          dynamic_sampling=False)
    cfg["logging"].update(out_dir=str(out / "rlvr"), progress=False, tensorboard=False)
    return cfg


class Stopwatch:
    """Seconds spent inside chosen methods of chosen objects, summed by phase name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"generation": 0.0}
        self.detail: dict[str, float] = {}  # finer phases inside "rest", reported apart

    def wrap(self, obj: object, method: str, phase: str, detail: bool = False) -> None:
        inner = getattr(obj, method)
        book = self.detail if detail else self.seconds
        book.setdefault(phase, 0.0)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                book[phase] += time.perf_counter() - start

        setattr(obj, method, timed)  # on the instance: the class and other instances stay untouched

    def snapshot(self) -> dict[str, float]:
        return dict(self.seconds)

    def snapshot_detail(self) -> dict[str, float]:
        return dict(self.detail)


def timing_report(stamps: list[float], at_warm: dict, at_end: dict) -> dict:
    """Rollouts per second after the warm-up rollout, and the mean seconds of each phase per rollout.

        rate = (n - 1) / (t_n - t_1),   t_i = the time rollout i ended
        rest = (t_n - t_1) / (n - 1) - generation - reward
    """
    n = len(stamps) - 1  # stamps[0] is the start of the first rollout
    report = {"rollouts": n, "train_seconds": stamps[-1] - stamps[0]}
    if n < 2:
        return {**report, "rollouts_per_second": None}
    span = stamps[-1] - stamps[1]
    per = {k: (at_end[k] - at_warm[k]) / (n - 1) for k in at_end}
    return {**report, "rollouts_per_second": (n - 1) / span,
            "seconds_per_rollout": {**per, "rest": span / (n - 1) - sum(per.values())}}


# ---- one side per process ------------------------------------------------------------------------
def run_rlvr(model: str, out: Path, seed: int, prompts_per_step: int, seconds: float, max_rollouts: int) -> dict:
    from rlvr.config import config_from_dict
    from rlvr.trainers.rl import RLTrainer

    watch, stamps, marks = Stopwatch(), [], {}

    class TimedRLTrainer(RLTrainer):
        def train_step(self, step: int) -> dict:
            if not stamps:
                watch.wrap(self.rollouts.engine, "generate", "generation")
                # scoring runs in a background thread while the next generation batch is sampled: its
                # cost is the rollout's time beyond generation (the thread's own time is reported apart)
                watch.wrap(self, "_generate_groups", "rollout", detail=True)
                watch.wrap(self.rollouts.pool, "score", "scoring_in_background", detail=True)
                # inside "rest": no-grad forwards (old log-probs when recomputed, reference, values), and
                # the PPO updates
                watch.wrap(self, "_in_micro_batches", "no_grad_passes", detail=True)
                watch.wrap(self, "_update", "updates", detail=True)
                stamps.append(time.perf_counter())
            metrics = super().train_step(step)
            stamps.append(time.perf_counter())
            marks.setdefault("warm", watch.snapshot())
            marks.setdefault("warm_detail", watch.snapshot_detail())
            marks["end"], marks["end_detail"] = watch.snapshot(), watch.snapshot_detail()
            return metrics

    cfg = config_from_dict(rl_settings(model, out, seed, prompts_per_step, seconds, max_rollouts),
                           source="benchmark")
    summary = TimedRLTrainer(cfg).train()
    n = len(stamps) - 2  # rollouts after the warm-up one
    report = timing_report(stamps, marks["warm"], marks["end"])
    rest = {k: (marks["end_detail"][k] - marks["warm_detail"][k]) / n for k in marks["end_detail"]} if n > 0 else {}
    if "seconds_per_rollout" in report:
        per = report["seconds_per_rollout"]
        per["reward"] = rest.pop("rollout") - per["generation"]  # waiting for scores after sampling
        per["rest"] -= per["reward"]
    return {**report, "rest_seconds_per_rollout": rest,
            "model": str(out / "rlvr" / "final"), "in_run_accuracy": summary.get("eval_accuracy")}


def run_trl(model: str, out: Path, seed: int, prompts_per_step: int, seconds: float, max_rollouts: int) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import verifiers
    from rlvr.config import config_from_dict
    from rlvr.data import load_rows, render_prompt
    from rlvr.data.templates import encode
    from rlvr.models import load_model, load_tokenizer

    cfg = config_from_dict(rl_settings(model, out, seed, prompts_per_step, seconds, max_rollouts),
                           source="benchmark")
    t, g = cfg.trainer, cfg.generation
    tokenizer = load_tokenizer(cfg.model.name)
    rows = load_rows(cfg.data, "train").rows
    prompts = [render_prompt(tokenizer, r["prompt"], cfg.data) for r in rows]
    if tokenizer(text=prompts[:1])["input_ids"][0] != encode(tokenizer, prompts[0]):
        raise SystemExit("TRL would tokenize the prompts differently from rlvr: the comparison is off")
    dataset = Dataset.from_dict({"prompt": prompts, "reference": [r["reference"] for r in rows]})

    spec = cfg.reward.verifiers[0]
    verifier = verifiers.load(spec.name, **spec.options)

    def math_reward(prompts, completions, reference, **_) -> list[float]:
        return [verifier.verify(verifiers.Sample(prompt=p, completion=c, reference=r)).reward
                for p, c, r in zip(prompts, completions, reference)]

    updates = t.prompts_per_step * t.samples_per_prompt // t.minibatch_size
    args = GRPOConfig(
        output_dir=str(out / "trl"), seed=seed, use_cpu=True, bf16=False, fp16=False,
        gradient_checkpointing=False, report_to="none", save_strategy="no", logging_steps=updates,
        disable_tqdm=True, dataloader_num_workers=0, max_steps=max_rollouts * updates,
        num_generations=t.samples_per_prompt, per_device_train_batch_size=t.minibatch_size,
        gradient_accumulation_steps=t.minibatch_size // t.micro_batch_size, steps_per_generation=updates,
        num_iterations=t.ppo_epochs, max_completion_length=g.max_new_tokens, temperature=g.temperature,
        top_p=g.top_p, top_k=g.top_k, beta=t.kl_coef, epsilon=t.clip_low, loss_type="dapo",
        scale_rewards="group", learning_rate=t.lr, adam_beta1=t.betas[0], adam_beta2=t.betas[1],
        weight_decay=t.weight_decay, max_grad_norm=t.grad_clip, warmup_steps=t.warmup_steps,
        lr_scheduler_type="constant_with_warmup",
    )
    watch, stamps, marks = Stopwatch(), [], {}

    class Budget(TrainerCallback):
        """Stamps each rollout's end; stops after the rollout that spends the budget (as max_seconds does)."""

        def on_train_begin(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % updates:
                return
            stamps.append(time.perf_counter())
            marks.setdefault("warm", watch.snapshot())
            marks["end"] = watch.snapshot()
            if seconds and stamps[-1] - stamps[0] >= seconds:  # 0: no budget, as for max_seconds
                control.should_training_stop = True

    trainer = GRPOTrainer(model=load_model(cfg.model.name), reward_funcs=math_reward, args=args,
                          train_dataset=dataset, processing_class=tokenizer, callbacks=[Budget()])
    watch.wrap(trainer, "_generate_single_turn", "generation")
    watch.wrap(trainer, "_calculate_rewards", "reward")
    trainer.train()
    trainer.save_model(str(out / "trl" / "final"))
    return {**timing_report(stamps, marks["warm"], marks["end"]), "model": str(out / "trl" / "final")}


def in_subprocess(side: str, args: argparse.Namespace) -> dict:
    """Run one stage in a fresh process (no state shared with the others: each trainer sets up its own
    process group) and read back its report."""
    report = Path(args.out) / f"{side}_report.json"
    cmd = [sys.executable, __file__, "--side", side, "--out", args.out, "--seed", str(args.seed),
           "--seconds", str(args.seconds), "--prompts-per-step", str(args.prompts_per_step),
           "--max-rollouts", str(args.max_rollouts), "--sft-steps", str(args.sft_steps)]
    if args.sft_model:
        cmd += ["--sft-model", args.sft_model]
    subprocess.run(cmd, check=True)
    return json.loads(report.read_text())


# ---- evaluation, identical for every model -------------------------------------------------------
def held_out_accuracy(model_dir: str, out: Path, seed: int) -> float:
    import verifiers
    from rlvr.config import config_from_dict
    from rlvr.data import load_rows
    from rlvr.generation.hf import HFEngine
    from rlvr.models import load_model, load_tokenizer
    from rlvr.trainers.evaluation import greedy_accuracy

    cfg = config_from_dict(rl_settings(model_dir, out, seed, 128, 0, 1), source="benchmark")
    spec = cfg.reward.verifiers[0]
    verifier = verifiers.load(spec.name, **spec.options)
    rows = load_rows(cfg.data, cfg.data.eval_split).rows
    tokenizer = load_tokenizer(model_dir)
    engine = HFEngine(load_model(model_dir), tokenizer, batch_size=cfg.generation.batch_size)

    def judge(rows, samples):
        return [bool(verifier.verify(verifiers.Sample.from_row(r, s.text)).correct) for r, s in zip(rows, samples)]

    return greedy_accuracy(engine, tokenizer, rows, cfg.data, cfg.generation.max_new_tokens, judge)


def build_sft_model(out: Path, seed: int, steps: int) -> dict:
    """The quickstart's SFT stage (reused when the folder already holds it)."""
    from rlvr.config import config_from_dict
    from rlvr.quickstart import sft_config
    from rlvr.trainers.sft import SFTTrainer

    if not (out / "sft" / "summary.json").is_file():
        cfg = config_from_dict(sft_config(out, seed, OPERANDS, DIGITS, OPS, steps), source="benchmark")
        cfg.logging.tensorboard = False
        SFTTrainer(cfg).train()
    return {"model": str(out / "sft" / "final")}


# ---- report --------------------------------------------------------------------------------------
def table(results: dict) -> str:
    rows = [f"| SFT start | - | - | - | - | - | - | {results['sft_accuracy']:.1%} | - |"]
    for side in ("rlvr", "trl"):
        r = results[side]
        per = r.get("seconds_per_rollout") or {}
        rate = f"{r['rollouts_per_second']:.3f}" if r["rollouts_per_second"] else "-"
        rows.append(f"| {side} | {r['rollouts']} | {r['train_seconds']:.1f} | {rate} | "
                    + " | ".join(f"{per[k]:.2f}" if k in per else "-" for k in ("generation", "reward", "rest"))
                    + f" | {r['accuracy']:.1%} | {r['load_average'][0]:.1f} |")
    return ("| trainer | rollouts | train s | rollouts/s (after warm-up) | gen s/rollout | reward s/rollout "
            "| rest s/rollout | held-out greedy accuracy | load average after |\n"
            "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))


def markdown(results: dict) -> str:
    s = results["settings"]
    ratio = f"{results['speed_ratio']:.2f}x" if results["speed_ratio"] else "n/a"
    detail = results["rlvr"].get("rest_seconds_per_rollout", {})
    return (
        "# rlvr GRPO vs TRL GRPOTrainer (tiny model, `arith`)\n\n"
        f"Written by `benchmarks/bench_trl_grpo.py` on {results['date']} (trl {results['trl_version']}, "
        f"torch {results['torch_version']}, {results['threads']} torch thread(s) per process, {os.cpu_count()} "
        "CPU cores, load average "
        f"{results['load_average'][0]:.1f} at the end).\n\n"
        f"Same SFT'd tiny model (quickstart recipe: `{s['sft_model']}`), same prompts, "
        f"{s['prompts_per_step']} prompts x {s['group']} samples per rollout, max {s['max_new_tokens']} new "
        f"tokens, temperature 1.0, lr {s['lr']:g}, {s['updates']} optimizer steps per rollout, reward: the "
        f"`math` verifier; each trainer ran for {s['seconds']:.0f} s in its own process, one after the other. "
        "Held-out accuracy: 500 `arith` test problems, greedy, judged by rlvr's evaluation code for every "
        "model. The script's docstring lists every matched and unmatched setting.\n\n"
        f"{table(results)}\n\n"
        f"**Speed: rlvr / TRL rollouts per second = {ratio}** (target at least 2x).\n\n"
        "rlvr's *rest* per rollout: " + ", ".join(f"{k.replace('_', ' ')} {v:.2f} s" for k, v in detail.items()
                                                   if k != "scoring_in_background")
        + ", other bookkeeping the remainder. rlvr scores each generation batch while the next is sampled "
        f"(the scoring thread's own time: {detail.get('scoring_in_background', 0):.2f} s per rollout); its "
        "*reward* column is the wait for scores after sampling ends.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0,
                        help="training budget of each trainer (0: none, --max-rollouts only)")
    parser.add_argument("--out", default="runs/bench_trl_grpo", help="work folder (SFT model, runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sft-steps", type=int, default=320)
    parser.add_argument("--sft-model", help="a quickstart SFT model folder to start from instead (e.g. "
                        "runs/quickstart/sft/final); its task must be 2-operand addition of 2 digits, seed --seed")
    parser.add_argument("--prompts-per-step", type=int, default=128)
    parser.add_argument("--max-rollouts", type=int, default=1000, help="a cap besides the time budget")
    parser.add_argument("--results", default=str(RESULTS), help="markdown to write (a .json goes beside it)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of every stage (default: torch's choice; 1 is faster on a busy machine)")
    parser.add_argument("--side", choices=["sft", "rlvr", "trl"], help=argparse.SUPPRESS)  # one stage, internal
    args = parser.parse_args()
    out = Path(args.out)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by torch at import, inherited by every stage

    if args.side:
        if args.side == "sft":
            report = build_sft_model(out, args.seed, args.sft_steps)
        else:
            run = run_rlvr if args.side == "rlvr" else run_trl
            report = run(args.sft_model, out, args.seed, args.prompts_per_step, args.seconds, args.max_rollouts)
        report["load_average"] = os.getloadavg()  # others share this machine: a busy spell skews a side
        (out / f"{args.side}_report.json").write_text(json.dumps(report, indent=2))
        return

    import torch
    import trl  # fail now, not after SFT, when the bench extra is missing

    if not args.sft_model:
        print(f"== SFT: {args.sft_steps} steps (the quickstart's recipe)", flush=True)
        args.sft_model = in_subprocess("sft", args)["model"]
    sft = args.sft_model
    for stale in ("rlvr", "trl"):  # a rerun trains afresh from the SFT model
        shutil.rmtree(out / stale, ignore_errors=True)
    results: dict = {}
    for side in ("rlvr", "trl"):
        print(f"== {side}: GRPO for {args.seconds:.0f} s", flush=True)
        results[side] = in_subprocess(side, args)
    print("== evaluating the SFT model and both trained models", flush=True)
    results["sft_accuracy"] = held_out_accuracy(sft, out, args.seed)
    for side in ("rlvr", "trl"):
        results[side]["accuracy"] = held_out_accuracy(results[side]["model"], out, args.seed)
    fast, slow = results["rlvr"]["rollouts_per_second"], results["trl"]["rollouts_per_second"]
    results["speed_ratio"] = fast / slow if fast and slow else None
    results["settings"] = {"seconds": args.seconds, "sft_model": sft, "group": 8,
                           "prompts_per_step": args.prompts_per_step, "max_new_tokens": OPERANDS * DIGITS + 4,
                           "lr": 1e-4, "updates": args.prompts_per_step * 8 // 256}
    results.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), trl_version=trl.__version__,
                   threads=torch.get_num_threads(),
                   torch_version=torch.__version__, load_average=os.getloadavg())

    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results))
    path.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print(table(results))
    ratio = f"{results['speed_ratio']:.2f}x" if results["speed_ratio"] else "n/a"
    print(f"rlvr / TRL rollouts per second: {ratio} (target >= 2x); written to {path}")


if __name__ == "__main__":
    main()
