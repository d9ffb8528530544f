"""Evaluating every checkpoint of a training run, and the score-against-step plot.

A run folder (rlvr.trainers) holds `checkpoints/step-NNNNNN/` and `final/`, each an HF folder. `final/`
is at the run's last step (summary.json `steps`); a checkpoint at that same step holds the same weights,
so it is evaluated once, as `final`. A checkpoint whose model files do not match its manifest (rlvr.trainers.
checkpoint) is skipped with a line that says why: damaged weights would give a wrong score without a word.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from rlvr.atomic import atomic_write_json, atomic_write_text
from rlvr.config.eval import EvalConfig
from rlvr.errors import UserError
from rlvr.eval.report import fmt, metric_keys, table
from rlvr.eval.runner import benchmark_of, run_eval

STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path
    name: str  # 'step-000600' or 'final'


def final_step(run: Path) -> int | None:
    for name, key in (("summary.json", "steps"), ("final/trainer_state.json", "step")):
        f = run / name
        if f.is_file():
            try:
                return int(json.loads(f.read_text())[key])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                pass
    return None


def discover(run: Path) -> list[Checkpoint]:
    """The run's evaluable checkpoints by step; `final/` replaces a checkpoint of the same step."""
    from rlvr.trainers.checkpoint import manifest_problems

    if not run.is_dir():
        raise UserError(f"--run: not a folder: {run}")
    found: dict[int, Checkpoint] = {}
    damaged = []
    for d in sorted((run / "checkpoints").glob("step-*")):
        m = STEP_DIR.match(d.name)
        if m and (d / "config.json").is_file():
            # the HF folder's own files: the DeepSpeed and RNG states below it are not needed here
            problems = manifest_problems(d, only=lambda name: "/" not in name)
            if problems:
                print(f"[rlvr] skipping damaged checkpoint {d}: {problems[0]}")
                damaged.append(d.name)
                continue
            found[int(m.group(1))] = Checkpoint(int(m.group(1)), d, d.name)
    final = run / "final"
    if (final / "config.json").is_file():
        step = final_step(run)
        if step is None:
            step = max(found, default=-1) + 1  # unknown: after every checkpoint
        found[step] = Checkpoint(step, final, "final")
    if not found and damaged:
        raise UserError(f"--run: every checkpoint of {run} is damaged ({', '.join(damaged)}) and there is "
                        f"no final/")
    if not found:
        raise UserError(f"--run: {run} has no checkpoints/step-*/ or final/ model folder")
    return [found[s] for s in sorted(found)]


def evaluate_run(cfg: EvalConfig, run: Path) -> dict:
    """Evaluate each checkpoint into <out_dir>/<name>/, then write the combined results and plot."""
    from rlvr.trainers.metrics import plot_curves

    out = Path(cfg.eval.out_dir)
    entries = []
    for ck in discover(run):
        sub = dataclasses.replace(
            cfg, model=dataclasses.replace(cfg.model, name=str(ck.path)),
            eval=dataclasses.replace(cfg.eval, out_dir=str(out / ck.name)))
        res = run_eval(sub, label=f"{run.name}/{ck.name}")
        entries.append({"step": ck.step, "checkpoint": ck.name, "path": str(ck.path), "metrics": res["metrics"],
                        "seconds": res["seconds"]})
    combined = {"run": str(run), "benchmark": benchmark_of(cfg), "split": cfg.eval.split,
                "problems": res["problems"], "verifier": res["verifier"], "checkpoints": entries}
    scores = ("mean_reward", "mean_tokens", "truncated")  # plotted: the correctness metrics only
    keys = [k for k in metric_keys([e["metrics"] for e in entries]) if k not in scores]
    records = [{"step": e["step"], **e["metrics"]} for e in entries]
    plot = plot_curves(records, keys, out / "score_vs_step.png",
                       title=f"{run.name} on {combined['benchmark']} ({combined['problems']} problems)")
    combined["plot"] = str(plot) if plot else None
    atomic_write_json(out / "results.json", combined)
    atomic_write_text(out / "results.md", run_markdown(combined))
    return combined


def run_markdown(combined: dict) -> str:
    keys = metric_keys([e["metrics"] for e in combined["checkpoints"]])
    rows = [[str(e["step"]), e["checkpoint"], *(fmt(k, e["metrics"].get(k)) for k in keys)]
            for e in combined["checkpoints"]]
    text = (f"# {combined['run']} on {combined['benchmark']} ({combined['split']}, "
            f"{combined['problems']} problems)\n\n" + table(["step", "checkpoint", *keys], rows))
    if combined.get("plot"):
        text += f"\n![score against step]({Path(combined['plot']).name})\n"
    return text
