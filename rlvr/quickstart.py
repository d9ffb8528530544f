"""`rlvr quickstart`: the whole pipeline on the embedded default, with nothing to download.

Builds a tiny model, fine-tunes it on a small set of worked `arith` problems, then trains it with RL (GRPO
by default) on a larger set of problems, rewarded only by whether the `math` verifier accepts its answer;
evaluates both models on the held-out split, and writes summary.json, report.md and the curves into one
folder. `--task code` does the same with `pyfunc` (write a Python function from examples), rewarded and
judged by the `code` verifier running the program against hidden asserts in the sandbox.

The split between the stages is the usual one in RLVR: demonstrations are few (SFT imitates 1,000 of
them, enough to learn the format and part of the skill, and memorises most of them), while problems with
a checkable answer are plentiful (RL practises on 7,200 of the default task's 9,000 training problems
and learns from its own attempts).
"""
from __future__ import annotations

import time
from pathlib import Path

from rlvr.atomic import atomic_write_json, atomic_write_text
from rlvr.config import config_from_dict

SFT_EXAMPLES = 1000  # worked problems SFT imitates
RL_PROMPTS = 8000  # at most this many problems for RL (the SFT ones among them); see rl_prompts


def sft_config(out: Path, seed: int, operands: int, digits: int, ops: str, steps: int) -> dict:
    return {
        "kind": "sft",
        "model": {"name": "tiny", "tiny": {"hidden_size": 128, "num_layers": 2, "num_heads": 4,
                                           "intermediate_size": 512}},
        "data": {"source": "arith", "arith": {"operands": operands, "digits": digits, "ops": ops,
                                              "train_size": min(SFT_EXAMPLES, rl_prompts(operands, digits, ops)),
                                              "test_size": 500, "seed": seed}},
        "generation": {"max_new_tokens": operands * digits + 4, "batch_size": 256},
        "trainer": {"lr": 1.5e-3, "warmup_steps": 50, "max_steps": steps, "batch_size": 128,
                    "micro_batch_size": 128, "eval_every": max(steps // 4, 1), "seed": seed},
        "logging": {"out_dir": str(out / "sft"), "log_every": 10},
    }


def rl_prompts(operands: int, digits: int, ops: str) -> int:
    """RL_PROMPTS, or 80% of the task's distinct training problems when that is fewer (7,200 for sums of
    two 2-digit numbers; RL samples prompts without replacement, so the cap leaves the generator room)."""
    from rlvr.config import ArithConfig
    from rlvr.data.tasks.arith import TEST_SHARE, space_size

    space = space_size(ArithConfig(operands=operands, digits=digits, ops=ops))
    return min(RL_PROMPTS, int(0.8 * (1 - TEST_SHARE) * space))


def rl_config(out: Path, seed: int, operands: int, digits: int, ops: str, steps: int, algorithm: str,
              seconds: float | None = None) -> dict:
    critic = algorithm == "ppo"
    return {
        "kind": "rl",
        "model": {"name": str(out / "sft" / "final")},
        "data": {"source": "arith", "arith": {"operands": operands, "digits": digits, "ops": ops,
                                              "train_size": rl_prompts(operands, digits, ops),
                                              "test_size": 500, "seed": seed}},
        "generation": {"temperature": 1.0, "max_new_tokens": operands * digits + 4, "batch_size": 512},
        "reward": {"verifiers": [{"name": "math", "options": {"last_number_fallback": True}}]},
        "trainer": {"algorithm": algorithm, "max_steps": steps, "max_seconds": seconds, "prompts_per_step": 128,
                    "samples_per_prompt": 8, "minibatch_size": 256, "micro_batch_size": 256,
                    "lr": 1e-4, "warmup_steps": 10, "critic_lr": 1e-3 if critic else 1e-4,
                    "kl_coef": 0.01 if critic else 0.0, "kl_in_reward": critic, "whiten_advantages": critic,
                    # groups that all score the same carry no signal for a group baseline: swap them
                    # for fresh ones (DAPO's dynamic sampling); PPO's critic and REINFORCE++'s batch
                    # baseline give such samples an advantage of their own
                    "dynamic_sampling": algorithm in ("grpo", "dr_grpo", "rloo"),
                    "eval_every": max(steps // 10, 1), "seed": seed},
        "logging": {"out_dir": str(out / "rl"), "log_every": 1},
    }


# ---- --task code: pyfunc, judged by the code verifier -----------------------------------------------
CODE_SFT_EXAMPLES = 2000  # demonstrations (stub + the body's expression)
CODE_RL_PROMPTS = 6000
# SFT demonstrates half of the training functions; RL practises on the other half, functions the SFT model
# has never seen (as the held-out ones are), so that RL rewards reading the examples, not recalling.
DEMONSTRATED, PRACTISED = [0.0, 0.5], [0.5, 1.0]
CODE_TEST_SIZE = 256  # held-out problems (each one a sandbox run per evaluation)
CODE_SFT_STEPS, CODE_RL_STEPS = 300, 50  # at lr 2e-4 held-out accuracy peaks near step 50, then falls
# The reward and the judge of both stages: the program (stub + completion) against the hidden asserts.
CODE_REWARD = {"verifiers": [{"name": "code", "options": {"extract": "raw", "reward": "share", "timeout": 2,
                                                          "memory_mb": 256}}],
               "workers": 1, "timeout": 5}  # one verifier process, its sandboxes batched over the cores


def code_model() -> dict:
    from rlvr.data.tasks.pyfunc import ALPHABET

    return {"name": "tiny", "tiny": {"hidden_size": 128, "num_layers": 2, "num_heads": 4,
                                     "intermediate_size": 512, "max_position_embeddings": 160,
                                     "alphabet": ALPHABET}}


def code_sft_config(out: Path, seed: int, steps: int) -> dict:
    return {
        "kind": "sft",
        "model": code_model(),
        "data": {"source": "pyfunc", "pyfunc": {"train_size": CODE_SFT_EXAMPLES, "test_size": CODE_TEST_SIZE,
                                                "train_functions": DEMONSTRATED, "seed": seed}},
        "generation": {"max_new_tokens": 24, "batch_size": 256},
        "reward": CODE_REWARD,
        "trainer": {"lr": 2e-3, "warmup_steps": 30, "max_steps": steps, "batch_size": 32,
                    "micro_batch_size": 32, "eval_every": max(steps // 2, 1), "seed": seed},
        "logging": {"out_dir": str(out / "sft"), "log_every": 10},
    }


def code_rl_config(out: Path, seed: int, steps: int, algorithm: str, seconds: float | None = None) -> dict:
    from rlvr.data.tasks.pyfunc import MIN_SHAPE_FUNCTIONS

    critic = algorithm == "ppo"
    return {
        "kind": "rl",
        "model": {"name": str(out / "sft" / "final")},
        # practice on the shapes held-out functions come from (not the memorised one-function shapes)
        "data": {"source": "pyfunc", "pyfunc": {"train_size": CODE_RL_PROMPTS, "test_size": CODE_TEST_SIZE,
                                                "train_functions": PRACTISED, "seed": seed,
                                                "min_shape_functions": MIN_SHAPE_FUNCTIONS}},
        "generation": {"temperature": 1.0, "max_new_tokens": 24, "batch_size": 512},
        "reward": CODE_REWARD,
        "trainer": {"algorithm": algorithm, "max_steps": steps, "max_seconds": seconds, "prompts_per_step": 16,
                    "samples_per_prompt": 16, "minibatch_size": 128, "micro_batch_size": 128,
                    "lr": 2e-4, "warmup_steps": 10, "critic_lr": 1e-3 if critic else 1e-4,
                    "kl_coef": 0.01 if critic else 0.0, "kl_in_reward": critic, "whiten_advantages": critic,
                    "dynamic_sampling": algorithm in ("grpo", "dr_grpo", "rloo"), "max_refill_rounds": 1,
                    "eval_every": max(steps // 4, 1), "seed": seed},
        "logging": {"out_dir": str(out / "rl"), "log_every": 1},
    }


def run(out: Path, seed: int = 0, operands: int = 2, digits: int = 2, ops: str = "+",
        sft_steps: int | None = None, rl_steps: int | None = None, algorithm: str = "grpo",
        rl_seconds: float | None = None, resume: bool = False, task: str = "arith") -> dict:
    """task 'arith' (operands, digits, ops) or 'code' (pyfunc); steps None: the task's defaults."""
    from rlvr.trainers.rl import RLTrainer
    from rlvr.trainers.sft import SFTTrainer

    start = time.time()
    if task == "code":
        from rlvr.config.parts import PyfuncConfig

        sft_steps = CODE_SFT_STEPS if sft_steps is None else sft_steps
        rl_steps = CODE_RL_STEPS if rl_steps is None else rl_steps
        about = {"name": "pyfunc", "families": PyfuncConfig().families, "seed": seed}
        sft_dict = code_sft_config(out, seed, sft_steps)
        rl_dict = code_rl_config(out, seed, rl_steps, algorithm, rl_seconds)
    else:
        sft_steps = 320 if sft_steps is None else sft_steps
        rl_steps = 300 if rl_steps is None else rl_steps
        about = {"operands": operands, "digits": digits, "ops": ops, "seed": seed}
        sft_dict = sft_config(out, seed, operands, digits, ops, sft_steps)
        rl_dict = rl_config(out, seed, operands, digits, ops, rl_steps, algorithm, rl_seconds)
    summary = {"task": about, "algorithm": algorithm, "sft_steps": sft_steps, "rl_steps": rl_steps}
    cfg = config_from_dict(sft_dict, source="quickstart")
    cfg.trainer.resume = resume
    sft = SFTTrainer(cfg).train() if not (out / "sft" / "summary.json").is_file() else _read(out / "sft")
    summary.update(sft_accuracy=sft.get("eval_accuracy"), sft_seconds=sft.get("seconds"))
    if rl_steps > 0:
        cfg = config_from_dict(rl_dict, source="quickstart")
        cfg.trainer.resume = resume
        rl = RLTrainer(cfg).train()
        summary.update(rl_accuracy=rl.get("eval_accuracy"), rl_seconds=rl.get("seconds"),
                       rl_steps=rl.get("steps", rl_steps))
        plot_accuracy(out)
    summary["seconds"] = round(time.time() - start, 1)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "report.md", report(summary))
    return summary


def _read(run_dir: Path) -> dict:
    import json

    return json.loads((run_dir / "summary.json").read_text())


def plot_accuracy(out: Path) -> None:
    """Reward and held-out accuracy against RL step, with the SFT model's accuracy as step 0."""
    from rlvr.trainers.metrics import plot_curves, read_metrics

    records = read_metrics(out / "rl" / "metrics.jsonl")
    sft = _read(out / "sft")
    plot_curves([{"step": 0, "eval_accuracy": sft.get("eval_accuracy")}] + records,
                ["reward", "eval_accuracy"], out / "reward_accuracy.png", title="quickstart: RL after SFT")


def report(s: dict) -> str:
    t = s["task"]
    if t.get("name") == "pyfunc":
        task = (f"Task: `pyfunc`, Python functions of {', '.join(t['families'])} from input/output examples, "
                f"seed {t['seed']}; held-out split of {CODE_TEST_SIZE} problems (functions never trained on), "
                f"greedy decoding, judged by the `code` verifier in the sandbox (every hidden assert passes).")
    else:
        task = (f"Task: `arith`, {t['operands']} operands of up to {t['digits']} digits, ops `{t['ops']}`, "
                f"seed {t['seed']}; held-out split of 500 problems, greedy decoding, judged by the `math` "
                f"verifier.")
    rows = f"| SFT ({s['sft_steps']} steps) | {s['sft_accuracy']:.1%} | {s['sft_seconds']:.0f} s |\n"
    if "rl_accuracy" in s:
        rl = f"+ {s['algorithm'].upper()} ({s['rl_steps']} steps)"
        rows += f"| {rl} | {s['rl_accuracy']:.1%} | {s['rl_seconds']:.0f} s |\n"
    return (
        f"# rlvr quickstart\n\n{task}\n\n"
        f"| stage | held-out accuracy | time |\n|---|---|---|\n{rows}\n"
        f"Total time: {s['seconds']:.0f} s. Curves: `sft/curves.png`, `rl/curves.png`, `reward_accuracy.png`.\n"
    )
