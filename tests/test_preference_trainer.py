"""The preference trainer end to end on a tiny model: offline DPO learns its pairs, every loss runs, online
and SPIN rounds run, and a SIGKILLed run resumes without logging a step twice.

The reward is the `format` verifier asking for a digit from 0 to 4 anywhere in the answer: a random tiny
model earns it about half the time, so sampled groups are mixed and yield pairs.
"""
from __future__ import annotations

import json
import math

import pytest

from rlvr.trainers.metrics import read_metrics
from tests.conftest import REPO, kill_after_checkpoint, run_rlvr

pytestmark = pytest.mark.slow
TIMING = {"step_seconds", "gen_seconds"}


def small(config: str, model: str, out, steps: int, *extra: str) -> list[str]:
    return [str(REPO / "configs" / config), f"model.name={model}", f"logging.out_dir={out}",
            f"trainer.max_steps={steps}", "data.arith.train_size=256", "data.arith.test_size=16",
            "data.eval_samples=16", "reward.verifiers=[{name: format, options: {pattern: '[0-4]'}}]",
            "trainer.offline_prompts=32", "trainer.prompts_per_step=8", "trainer.samples_per_prompt=4",
            "trainer.batch_size=16", "trainer.micro_batch_size=16", "trainer.lr=1e-3", "trainer.warmup_steps=0",
            "trainer.eval_every=0", "trainer.eval_samples=16", "generation.max_new_tokens=4",
            "generation.batch_size=128", "logging.progress=false", "logging.tensorboard=false", *extra]


def test_offline_dpo_learns_its_pairs(tiny_model_dir, tmp_path):
    out = tmp_path / "dpo"
    run_rlvr("train", *small("dpo_arith.yaml", tiny_model_dir, out, 12, "trainer.beta=0.5", "trainer.nll_coef=0"),
             check=True)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 13))
    # step 1 scores the pairs with the reference itself: no margin, no preference yet
    assert records[0]["margin"] == pytest.approx(0.0, abs=1e-5)
    late = records[-4:]
    assert min(r["margin"] for r in late) > 0.2
    assert sum(r["reward_accuracy"] for r in late) / len(late) > 0.8
    assert sum(r["loss"] for r in late) / len(late) < math.log(2) - 0.05
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_pairs"] > 0 and "eval_accuracy" in summary
    pairs = json.loads((out / "preference_pairs.json").read_text())
    assert len(pairs["items"]) == summary["data_pairs"]
    assert all(it["ref"][0] < 0 and it["ref"][1] < 0 for it in pairs["items"])  # cached log-probabilities


def test_offline_pairs_from_data_with_held_out_reward_accuracy(tiny_model_dir, tmp_path):
    out = tmp_path / "data_pairs"
    run_rlvr("train", *small("dpo_arith.yaml", tiny_model_dir, out, 3, "trainer.pairs=data",
                             "data.max_samples=64"), check=True)
    saved = json.loads((out / "preference_pairs.json").read_text())
    assert len(saved["items"]) == 64 and len(saved["eval_items"]) == 16  # arith's synthetic pairs
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["eval_reward_accuracy"] <= 1 and "eval_margin" in summary
    assert "eval_accuracy" in summary  # arith also has greedy answers to judge


@pytest.mark.parametrize("loss, extra", [
    ("ipo", ["trainer.beta=0.5"]),
    ("kto", ["trainer.kto_undesirable_weight=1.5"]),
    ("orpo", ["trainer.orpo_lambda=0.5"]),
    ("simpo", ["trainer.beta=2.0", "trainer.simpo_gamma=0.5"]),
])
def test_every_loss_runs_offline(loss, extra, tiny_model_dir, tmp_path):
    out = tmp_path / loss
    run_rlvr("train", *small("dpo_arith.yaml", tiny_model_dir, out, 3, f"trainer.loss={loss}", *extra), check=True)
    records = read_metrics(out / "metrics.jsonl")
    assert len(records) == 3 and all(math.isfinite(r["loss"]) for r in records)
    if loss == "kto":
        assert all(r["kl"] >= 0 for r in records)  # the clamped reference point
        assert "rewards/desirable" in records[-1] and "rewards/undesirable" in records[-1]
    else:
        assert "margin" in records[-1]


@pytest.mark.parametrize("config, skipped, extra", [
    ("dpo_online_arith.yaml", "flat_share", []),
    ("dpo_online_arith.yaml", "flat_share", ["trainer.reference=initial", "trainer.loss=kto"]),
    ("spin_arith.yaml", "identical_share", []),
])
def test_online_and_spin_rounds(config, skipped, extra, tiny_model_dir, tmp_path):
    out = tmp_path / config.split(".")[0]
    run_rlvr("train", *small(config, tiny_model_dir, out, 3, *extra), check=True)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert r["pairs"] > 0 and 0 <= r[skipped] < 1 and math.isfinite(r["loss"])
        assert math.isfinite(r["kl"] if "trainer.loss=kto" in extra else r["margin"])
    assert "eval_accuracy" in records[-1]
    assert (out / "final" / "model.safetensors").is_file()


@pytest.mark.parametrize("config", ["dpo_arith.yaml", "dpo_online_arith.yaml"])
def test_sigkill_and_resume_logs_each_step_once(config, tiny_model_dir, tmp_path):
    steps = 5
    ref_out = tmp_path / "uninterrupted"
    run_rlvr("train", *small(config, tiny_model_dir, ref_out, steps), check=True)
    reference = {r["step"]: r for r in read_metrics(ref_out / "metrics.jsonl")}

    out = tmp_path / "killed"
    args = small(config, tiny_model_dir, out, steps, "trainer.save_every=2")
    kill_after_checkpoint(["train", *args], out / "checkpoints" / "step-000002")
    assert max(r["step"] for r in read_metrics(out / "metrics.jsonl")) < steps

    run_rlvr("train", *args, "--resume", check=True)
    resumed = {r["step"]: r for r in read_metrics(out / "metrics.jsonl")}
    assert sorted(resumed) == list(range(1, steps + 1))
    for step in (3, steps):  # the first step after the checkpoint, and the last
        for key, value in reference[step].items():
            if key not in TIMING:
                assert resumed[step][key] == pytest.approx(value, rel=1e-4, abs=1e-6), (step, key)


@pytest.mark.parametrize("config, extra, key", [
    ("dpo_online_arith.yaml", "trainer.reference_model=some/model", "trainer.reference_model"),
    ("dpo_arith.yaml", "trainer.reference=initial", "trainer.reference"),
])
def test_reference_settings_the_mode_ignores_are_refused(config, extra, key, tiny_model_dir, tmp_path):
    proc = run_rlvr("train", *small(config, tiny_model_dir, tmp_path / "refused", 1, extra))
    assert proc.returncode == 2
    assert key + ":" in proc.stderr and "Traceback" not in proc.stderr


def test_minibatches_never_exceed_the_micro_batch_on_any_rank():
    from rlvr.trainers.preference import minibatch_count, split_evenly

    # 2 ranks, 32 pairs a minibatch (16 per rank, no accumulation); a round's 70 pairs fall 60 / 10
    n = minibatch_count(70, 60, batch=32, micro=16, accumulation=1)
    assert n == 4  # 3 by the global count alone: 20 pairs in one forward pass on the first rank
    assert max(len(chunk) for chunk in split_evenly(list(range(60)), n)) <= 16
    assert minibatch_count(64, 32, batch=32, micro=16, accumulation=1) == 2  # even shares: unchanged
    assert minibatch_count(64, 32, batch=64, micro=8, accumulation=2) == 2
