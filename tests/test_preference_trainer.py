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
from rlvr.trainers.sampler import EpochSampler
from tests.conftest import REPO, kill_after_checkpoint, run_rlvr

pytestmark = pytest.mark.slow
TIMING = {"step_seconds", "gen_seconds"}
EVAL_ROWS = 16  # data.eval_samples: greedy accuracy is a count of these over 16


def softplus(x: float) -> float:
    """-log sigmoid(-x)"""
    return math.log1p(math.exp(x))


def assert_accuracy_of(n: int, value: float) -> None:
    """`value` is a share of n items: in [0, 1] and a whole number of n-ths."""
    assert 0 <= value <= 1 and value * n == pytest.approx(round(value * n), abs=1e-9), (value, n)


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
    # step 1 scores the pairs with the reference itself: no margin, no preference yet, and the loss of
    # h = 0 is -log sigmoid(0) = log 2 (trainer.nll_coef=0: DPO alone)
    assert records[0]["margin"] == pytest.approx(0.0, abs=1e-5)
    assert records[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    late = records[-4:]
    assert min(r["margin"] for r in late) > 0.2
    assert sum(r["reward_accuracy"] for r in late) / len(late) > 0.8
    assert sum(r["loss"] for r in late) / len(late) < math.log(2) - 0.05
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_pairs"] > 0
    assert_accuracy_of(EVAL_ROWS, summary["eval_accuracy"])
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
    assert_accuracy_of(len(saved["eval_items"]), summary["eval_reward_accuracy"])
    assert math.isfinite(summary["eval_margin"]) and summary["eval_margin"] != 0  # the policy moved
    assert_accuracy_of(EVAL_ROWS, summary["eval_accuracy"])  # arith also has greedy answers to judge


@pytest.mark.parametrize("loss, extra", [
    ("ipo", ["trainer.beta=0.5", "trainer.nll_coef=0"]),
    ("kto", ["trainer.kto_undesirable_weight=1.5"]),
    ("orpo", ["trainer.orpo_lambda=0.5", "trainer.beta=0.1"]),
    ("simpo", ["trainer.beta=2.0", "trainer.simpo_gamma=0.5"]),
])
def test_every_loss_runs_offline(loss, extra, tiny_model_dir, tmp_path):
    """Step 1 scores its batch with the starting policy, and what it logs pins its loss down. IPO at
    h = 0: (1 / (2 beta))^2. KTO at r = z_ref = 0: lambda / 2 per example, lambda_D = 1 for the desirable
    ones and lambda_U = 1.5 for the rest. SimPO and ORPO have no reference: their loss is the chosen
    answers' token-mean NLL (SimPO by dpo_arith.yaml's nll_coef = 1), read off the logged rewards
    (beta times the mean token log-probability), plus a mean of -log sigmoid(x_i - gamma) over the pairs,
    which by Jensen (-log sigmoid is convex) is at least that at the mean x, the logged margin; at step 1
    the margins are small and alike, so it is hardly more (SimPO: x = beta's margin, gamma = 0.5; ORPO:
    lambda = 0.5 times it at x = the log-odds gap, about the margin over beta, gamma = 0)."""
    out = tmp_path / loss
    run_rlvr("train", *small("dpo_arith.yaml", tiny_model_dir, out, 3, f"trainer.loss={loss}", *extra), check=True)
    records = read_metrics(out / "metrics.jsonl")
    assert len(records) == 3 and all(math.isfinite(r["loss"]) for r in records)
    first = records[0]
    if loss == "kto":
        assert all(r["kl"] >= 0 for r in records)  # the clamped reference point
        for key in ("kl", "rewards/desirable", "rewards/undesirable"):  # the reference is the policy
            assert first[key] == pytest.approx(0.0, abs=1e-6), key
        items = json.loads((out / "preference_pairs.json").read_text())["items"]
        # step 1's items: the first trainer.batch_size of the sampler's order (trainer.seed 0)
        batch = EpochSampler(len(items), seed=0).take(16)
        desirable = sum(items[i]["desirable"] for i in batch) / len(batch)
        assert 0 < desirable < 1
        assert first["loss"] == pytest.approx(0.5 * desirable + 0.5 * 1.5 * (1 - desirable), abs=1e-6)
        # learning: the desirable answers' implicit reward rises above the undesirable ones'
        assert records[-1]["rewards/desirable"] > records[-1]["rewards/undesirable"]
        return
    for r in records:
        assert math.isfinite(r["margin"])
        assert_accuracy_of(16, r["reward_accuracy"])  # over trainer.batch_size pairs
    if loss == "ipo":
        assert first["margin"] == pytest.approx(0.0, abs=1e-6)
        assert first["loss"] == pytest.approx((1 / (2 * 0.5)) ** 2, abs=1e-5)
        return
    beta, gamma, lam = (2.0, 0.5, 1.0) if loss == "simpo" else (0.1, 0.0, 0.5)
    nll = -first["rewards/chosen"] / beta
    preference = (first["loss"] - nll) / lam
    at_the_mean = softplus(gamma - first["margin"] * (1 if loss == "simpo" else 1 / beta))
    assert at_the_mean - 0.01 <= preference <= at_the_mean + 0.05, (preference, at_the_mean)


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
        # 8 prompts a round: a pair for each prompt with a spread of rewards (online), or for each sample
        # that differs from the data's answer (SPIN: one sample a prompt)
        assert r["pairs"] == 8 * (1 - r[skipped])
        if config.startswith("spin"):
            # one update a round (8 pairs, batch 16, one epoch) against the policy at the round's start:
            # each round's loss is DPO's at h = 0, log 2; a stale reference would leave h != 0
            assert r["loss"] == pytest.approx(math.log(2), abs=1e-5)
            assert r["margin"] == pytest.approx(0.0, abs=1e-5)
    assert_accuracy_of(EVAL_ROWS, records[-1]["eval_accuracy"])
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
    # saved at steps 2, 4 and 5 (the end); trainer.keep_checkpoints (2) prunes the oldest
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000004", "step-000005"]


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
