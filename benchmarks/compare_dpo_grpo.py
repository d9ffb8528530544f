"""Offline DPO, iterative DPO and GRPO on `arith` at equal wall time, from the same short SFT model.

    python benchmarks/compare_dpo_grpo.py --budget 300          # (make compare)

1. SFT: the quickstart's tiny model and settings (320 steps by default).
2. Each method trains from that model until `trainer.max_seconds` (the budget) is spent, then is evaluated
   greedily on the 500 held-out problems, judged by the math verifier:
     offline DPO    configs/dpo_arith.yaml: 8 samples for each of the 8,000 prompts drawn once from the SFT model, the
                    verifier's correct answer against an incorrect one; the sampling counts in the budget
     iterative DPO  configs/dpo_online_arith.yaml: the same, redone from the current policy every round
     GRPO           the quickstart's RL settings (rlvr.quickstart.rl_config)
   The SFT model itself is evaluated the same way (a run of zero steps).
3. Writes table.md, results.json and accuracy_vs_time.png into the output folder.

Every run is a `rlvr train` subprocess; a finished run is not redone (delete its folder to redo it).
CPU seconds are reported next to wall seconds: on a shared machine they show how much compute each
method actually got within the same wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

from rlvr.atomic import atomic_write_json, atomic_write_text
from rlvr.config import read_yaml
from rlvr.quickstart import rl_config, sft_config
from rlvr.trainers.metrics import read_metrics

REPO = Path(__file__).resolve().parents[1]

TASK = {"operands": 2, "digits": 2, "ops": "+"}
MANY_STEPS = 100_000  # the budget, not the step count, ends every method's run


def preference_config(name: str, out: Path, seed: int, budget: float, eval_every: int) -> dict:
    cfg = read_yaml(REPO / "configs" / name)
    cfg["model"]["name"] = str(out / "sft" / "final")
    cfg["data"]["arith"]["seed"] = seed
    cfg["trainer"].update(max_steps=MANY_STEPS, max_seconds=budget, eval_every=eval_every, seed=seed)
    cfg["logging"] = {"out_dir": str(out / Path(name).stem), "log_every": 1, "progress": False}
    return cfg


def offline_config(out: Path, seed: int, budget: float) -> dict:
    """Pairs from every training prompt x 8 samples, then DPO steps on them for the rest of the budget.
    With a few hundred prompts the cheap steps run hundreds of epochs over the pairs (see the results)."""
    cfg = preference_config("dpo_arith.yaml", out, seed, budget, eval_every=150)
    cfg["trainer"]["offline_prompts"] = None
    return cfg


def grpo_config(out: Path, seed: int, budget: float, eval_every: int) -> dict:
    cfg = rl_config(out, seed, TASK["operands"], TASK["digits"], TASK["ops"], MANY_STEPS, "grpo")
    cfg["trainer"].update(max_seconds=budget, eval_every=eval_every)
    cfg["logging"] = {"out_dir": str(out / "grpo"), "log_every": 1, "progress": False}
    return cfg


def train(cfg: dict, name: str, out: Path) -> dict:
    """Run `rlvr train` on `cfg` unless its run folder holds a summary; return the summary plus the
    run's CPU seconds (all its processes)."""
    run_dir = Path(cfg["logging"]["out_dir"])
    if (run_dir / "summary.json").is_file():
        return json.loads((run_dir / "summary.json").read_text())
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(f"[compare] {name}: rlvr train {path}", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    subprocess.run([sys.executable, "-m", "rlvr", "train", str(path)], env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["cpu_seconds"] = round(cpu, 1)
    atomic_write_json(run_dir / "summary.json", summary)
    return summary


def accuracy_curve(run_dir: Path, start_accuracy: float) -> list[tuple[float, float]]:
    """(training seconds, held-out accuracy) at each evaluation: the seconds of the steps so far, so the
    evaluations themselves are not on the clock of the curve."""
    points, clock = [(0.0, start_accuracy)], 0.0
    for r in read_metrics(run_dir / "metrics.jsonl"):
        clock += r.get("step_seconds", r.get("gen_seconds", 0.0) + r.get("train_seconds", 0.0))
        if "eval_accuracy" in r:
            points.append((round(clock, 1), r["eval_accuracy"]))
    return points


def plot(curves: dict[str, list[tuple[float, float]]], budget: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, pts in curves.items():
        ax.plot(*zip(*pts), marker="o", markersize=3, label=name)
    ax.axvline(budget, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("training seconds (evaluation excluded)")
    ax.set_ylabel("held-out greedy accuracy")
    ax.set_title("arith: from the same SFT model at equal wall time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict], budget: float, sft_steps: int) -> str:
    lines = ["| method | held-out accuracy | steps | wall seconds | CPU seconds |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['accuracy']:.1%} | {r['steps']} | {r['seconds']:.0f} | "
                     f"{r['cpu_seconds']:.0f} |")
    return (f"# arith: offline DPO, iterative DPO and GRPO at equal wall time\n\n"
            f"From one SFT model ({sft_steps} steps); each method trains for a budget of {budget:.0f} s "
            f"(`trainer.max_seconds`; the step that crosses it finishes), then answers the 500 held-out "
            f"problems greedily, judged by the math verifier. Wall seconds include the method's own "
            f"evaluations during training and, for offline DPO, sampling its pairs.\n\n"
            + "\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "compare_dpo_grpo")
    ap.add_argument("--budget", type=float, default=300.0, help="wall seconds of training per method")
    ap.add_argument("--sft-steps", type=int, default=320)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()

    sft = sft_config(out, args.seed, TASK["operands"], TASK["digits"], TASK["ops"], args.sft_steps)
    sft["logging"].update(progress=False)
    sft_summary = train(sft, "sft", out)
    start_cfg = preference_config("dpo_online_arith.yaml", out, args.seed, args.budget, 0)
    start_cfg["trainer"]["max_steps"] = 0  # no training: the SFT model judged like the others
    start_cfg["logging"]["out_dir"] = str(out / "sft_eval")
    start_acc = train(start_cfg, "sft_eval", out)["eval_accuracy"]

    methods = {
        "offline DPO": (offline_config(out, args.seed, args.budget), "dpo_arith"),
        "iterative DPO": (preference_config("dpo_online_arith.yaml", out, args.seed, args.budget, 10),
                          "dpo_online_arith"),
        "GRPO": (grpo_config(out, args.seed, args.budget, 15), "grpo"),
    }
    rows = [{"method": f"SFT ({args.sft_steps} steps, the start)", "accuracy": start_acc,
             "steps": sft_summary["steps"], "seconds": sft_summary["seconds"],
             "cpu_seconds": sft_summary.get("cpu_seconds", float("nan"))}]
    curves = {}
    for label, (cfg, name) in methods.items():
        s = train(cfg, name, out)
        rows.append({"method": label, "accuracy": s["eval_accuracy"], "steps": s["steps"], "seconds": s["seconds"],
                     "cpu_seconds": s.get("cpu_seconds", float("nan"))})
        curves[label] = accuracy_curve(out / name, start_acc)

    plot(curves, args.budget, out / "accuracy_vs_time.png")
    report = table(rows, args.budget, args.sft_steps)
    atomic_write_text(out / "table.md", report)
    atomic_write_json(out / "results.json", {"budget_seconds": args.budget, "task": TASK, "seed": args.seed,
                                             "rows": rows, "curves": curves,
                                             "total_seconds": round(time.time() - start, 1)})
    print(report)
    print(f"[compare] {out / 'table.md'}, results.json, accuracy_vs_time.png ({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
