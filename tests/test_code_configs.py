"""configs/grpo_mbpp_smollm2.yaml: its reward pays whole solutions only, and it trains and evaluates end to
end (2 GRPO steps of SmolLM2-135M on MBPP, judged in the sandbox; the held-out split is sanitized MBPP's
test split)."""
from __future__ import annotations

import math

import pytest
import yaml

import verifiers
from rlvr.config import load_config
from rlvr.data import load_rows
from rlvr.trainers.metrics import read_metrics
from tests.conftest import REPO, run_rlvr

CONFIG = REPO / "configs" / "grpo_mbpp_smollm2.yaml"


def reward_of(cfg):
    return verifiers.compose([{k: v for k, v in vars(part).items() if v is not None}
                              for part in cfg.reward.verifiers])


def test_the_mbpp_reward_pays_whole_solutions_not_the_shown_assert():
    """The prompt shows the first assert, so a program can hard-code its answer; with `reward: all` that
    earns nothing (with `share` it would earn a third). The reference solutions, fenced as the system
    prompt asks, earn 1 on both splits."""
    cfg = load_config(CONFIG)
    judge = reward_of(cfg)
    train = load_rows(cfg.data, cfg.data.split, source=cfg.data.source, limit=3).rows
    held_out = load_rows(cfg.data, cfg.data.eval_split, source=cfg.data.eval_source, limit=3).rows
    assert "```python" in cfg.data.system_prompt
    gold = [verifiers.Sample.from_row(r, f"```python\n{r['response']}\n```") for r in train + held_out]
    assert [s.reward for s in judge.verify_batch(gold)] == [1.0] * 6

    row = held_out[0]  # task 11: assert remove_Occ("hello","l") == "heo", shown in the prompt
    assert row["task_id"] == 11 and row["tests"][0] in row["prompt"]
    hard_coded = verifiers.Sample.from_row(row, '```python\ndef remove_Occ(s, ch):\n    return "heo"\n```')
    assert judge.verify(hard_coded).reward == 0.0
    share = verifiers.load("code", **{**cfg.reward.verifiers[0].options, "reward": "share"})
    assert share.verify(hard_coded).reward == pytest.approx(1 / 3)  # what `all` refuses to pay


@pytest.mark.slow
def test_grpo_mbpp_config_trains_two_steps_and_evaluates(tmp_path):
    out = tmp_path / "run"
    run_rlvr("train", str(CONFIG), "trainer.max_steps=2", "trainer.prompts_per_step=2",
             "trainer.samples_per_prompt=2", "trainer.minibatch_size=4", "trainer.micro_batch_size=4",
             "generation.max_new_tokens=32", "trainer.eval_samples=2", "logging.progress=false",
             "logging.tensorboard=false", f"logging.out_dir={out}", check=True, timeout=300)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert 0.0 <= r["reward/code"] <= 1.0 and r["reward"] == r["reward/code"]
        for key in ("policy_loss", "kl", "entropy", "response_length"):
            assert math.isfinite(r[key]), (key, r)
    # the finish: greedy pass rate on the held-out split, the summary, the final weights
    assert 0.0 <= records[-1]["eval_accuracy"] <= 1.0
    summary = yaml.safe_load((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["eval_accuracy"] == records[-1]["eval_accuracy"]
    assert (out / "final" / "model.safetensors").is_file()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["data"]["source"], saved["data"]["eval_source"]) == ("mbpp_edited", "mbpp_sanitized")
