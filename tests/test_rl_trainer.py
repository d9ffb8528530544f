"""The RL loop end to end on a tiny model: ZeRO-3 on 2 ranks, SIGKILL and resume, PPO with a critic.

The reward is the `format` verifier asking for a digit from 0 to 4 anywhere in the answer: a random tiny
model earns it about half the time, so groups are mixed and every update carries signal.
"""
from __future__ import annotations

import json
import math

import pytest

from rlvr.trainers.metrics import read_metrics
from tests.conftest import REPO, kill_after_checkpoint, run_rlvr

pytestmark = pytest.mark.slow
CONFIG = str(REPO / "configs/grpo_arith.yaml")
TIMING = {"gen_seconds", "train_seconds", "tokens_per_second"}


def small_rl(model: str, out, steps: int, *extra: str) -> list[str]:
    return [CONFIG, f"model.name={model}", f"logging.out_dir={out}", f"trainer.max_steps={steps}",
            "data.arith.train_size=256", "data.arith.test_size=16", "data.eval_samples=16",
            "reward.verifiers=[{name: format, options: {pattern: '[0-4]'}}]",
            "trainer.prompts_per_step=8", "trainer.samples_per_prompt=4", "trainer.minibatch_size=16",
            "trainer.micro_batch_size=16", "trainer.lr=1e-3", "trainer.eval_every=0", "trainer.eval_samples=16",
            "generation.max_new_tokens=4", "trainer.warmup_steps=0", "logging.progress=false",
            "logging.tensorboard=false", *extra]


def test_grpo_zero3_on_two_ranks(tiny_model_dir, tmp_path):
    out = tmp_path / "z3"
    run_rlvr("train", *small_rl(tiny_model_dir, out, 3, "deepspeed.stage=3", "trainer.kl_coef=0.05",
                                "trainer.micro_batch_size=4"), "--nproc", "2", check=True)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        for key in ("policy_loss", "kl", "kl_loss", "entropy", "reward", "approx_kl"):
            assert math.isfinite(r[key]), (key, r)
    # step 1 samples from the starting policy, which the partitioned reference is; then the policy moves
    assert records[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert records[-1]["kl"] > 0
    assert (out / "final" / "model.safetensors").is_file()


def test_sigkill_and_resume_logs_the_same_next_step(tiny_model_dir, tmp_path):
    steps = 6
    ref_out = tmp_path / "uninterrupted"
    run_rlvr("train", *small_rl(tiny_model_dir, ref_out, steps, "trainer.kl_coef=0.05"), check=True)
    reference = {r["step"]: r for r in read_metrics(ref_out / "metrics.jsonl")}

    out = tmp_path / "killed"
    kill_after_checkpoint(["train", *small_rl(tiny_model_dir, out, steps, "trainer.kl_coef=0.05",
                                              "trainer.save_every=2")], out / "checkpoints" / "step-000002")
    assert max(r["step"] for r in read_metrics(out / "metrics.jsonl")) < steps

    run_rlvr("train", *small_rl(tiny_model_dir, out, steps, "trainer.kl_coef=0.05", "trainer.save_every=2"),
             "--resume", check=True)
    resumed = {r["step"]: r for r in read_metrics(out / "metrics.jsonl")}
    assert sorted(resumed) == list(range(1, steps + 1))
    for step in (3, steps):  # the first step after the checkpoint, and the last
        for key, value in reference[step].items():
            if key not in TIMING:
                assert resumed[step][key] == pytest.approx(value, rel=1e-4, abs=1e-6), (step, key)
    # saved at steps 2, 4 and 6 (the end); trainer.keep_checkpoints (2) prunes the oldest
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000004", "step-000006"]


def test_ppo_with_critic_runs_and_fits_values(tiny_model_dir, tmp_path):
    out = tmp_path / "ppo"
    run_rlvr("train", *small_rl(tiny_model_dir, out, 8, "trainer.algorithm=ppo", "trainer.kl_coef=0.02",
                                "trainer.kl_in_reward=true", "trainer.critic_lr=1e-3", "trainer.gamma=1.0",
                                "trainer.lam=0.95", "trainer.whiten_advantages=true"), check=True)
    records = read_metrics(out / "metrics.jsonl")
    assert len(records) == 8
    for r in records:
        assert math.isfinite(r["value_loss"]) and math.isfinite(r["explained_variance"])
    # step 1 rolls out with the starting policy, which is the reference: no KL yet; and the critic's head
    # starts at zero, so V = 0 explains none of the returns' variance: 1 - Var(R - 0) / Var(R) = 0 exactly
    assert records[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert records[0]["explained_variance"] == 0.0
    assert records[-1]["kl"] > 0
    # the critic learns: its loss falls from the zero-initialised head's (0.24 to 0.10 when written)
    assert records[-1]["value_loss"] < 0.6 * records[0]["value_loss"]


def test_dynamic_sampling_refills_flat_groups(tiny_model_dir, tmp_path):
    out = tmp_path / "dapo"
    run_rlvr("train", *small_rl(tiny_model_dir, out, 2, "trainer.dynamic_sampling=true",
                                "trainer.clip_high=0.28", "reward.overlong=soft", "reward.overlong_buffer=2",
                                "trainer.loss_agg=token_mean"), check=True)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert any(r["flat_group_share"] > 0 for r in records)  # 1 group of 8 in step 2 when written
    for r in records:
        # a step with flat groups refills, one without does not; ending before max_refill_rounds (3) means
        # the loop found no flat group left: every group trained on has a spread of rewards
        assert (r["refill_rounds"] > 0) == (r["flat_group_share"] > 0), r
        assert r["refill_rounds"] < 3, r
    # each refill round draws a fresh prompts_per_step (8) prompts on top of the step's own
    state = json.loads((out / "checkpoints" / "step-000002" / "trainer_state.json").read_text())
    assert state["sampler"]["consumed"] == 8 * (len(records) + sum(r["refill_rounds"] for r in records))


def test_refills_swap_only_flat_groups_for_informative_fresh_ones():
    """RLTrainer.rollout's refill rounds with scripted rewards (no model: the generator is the one part
    replaced). Prompts in order, 2 samples each; F = flat (both rewards equal), I = informative:
        the step's prompts 0-3: F I F I   round 1 (4-7): I F F F   round 2 (8-11): F I I F
    Round 1 has one informative group, for the first flat slot; round 2 fills the second with the last
    informative group it found; then nothing is flat and the rounds stop."""
    from types import SimpleNamespace

    from rlvr.generation.base import Sample
    from rlvr.trainers.rl import RLTrainer
    from rlvr.trainers.sampler import EpochSampler

    informative = {1, 3, 4, 9, 10}

    def groups(indices: list[int]) -> list[list[Sample]]:
        return [[Sample("", [], [], "", [], "stop", prompt_index=i, reward=float(k * (i in informative)))
                 for k in range(2)] for i in indices]

    def rollout(max_rounds: int) -> tuple[list[int], dict, int]:
        trainer = object.__new__(RLTrainer)
        trainer.t = SimpleNamespace(prompts_per_step=4, dynamic_sampling=True, max_refill_rounds=max_rounds)
        trainer.sampler = EpochSampler(12, seed=0, shuffle=False)
        trainer._generate_groups = groups
        samples, stats = trainer.rollout()
        return [s.prompt_index for s in samples[::2]], stats, trainer.sampler.consumed

    assert rollout(3) == ([4, 1, 10, 3], {"flat_group_share": 0.5, "refill_rounds": 2}, 12)
    # the cap: one round, and the second flat group stays
    assert rollout(1) == ([4, 1, 2, 3], {"flat_group_share": 0.5, "refill_rounds": 1}, 8)


def test_estimators_take_effect_on_the_same_samples(tiny_model_dir, tmp_path):
    """Step 1 samples the same answers under every estimator (same seed, same starting policy) and its
    first minibatch scores them with the policy that sampled them (ratio 1), so the policy loss there is
    -sum_i A_i |y_i| / sum_i |y_i|. RLOO's advantages are n / (n - 1) = 4/3 times Dr. GRPO's
    (r_i - mean r); Adam's first step is the same for gradients 4/3 apart, so the second minibatch's
    ratios match too. REINFORCE++ whitens over every token of the batch, and with the whole batch in
    one minibatch its token-mean advantage, hence its policy loss, is 0."""
    def run(algorithm: str, *extra: str) -> list[dict]:
        out = tmp_path / algorithm
        run_rlvr("train", *small_rl(tiny_model_dir, out, 2, f"trainer.algorithm={algorithm}", *extra),
                 check=True)
        records = read_metrics(out / "metrics.jsonl")
        assert [r["step"] for r in records] == [1, 2]
        assert all(math.isfinite(r["policy_loss"]) for r in records)
        return records

    rloo, dr_grpo = run("rloo"), run("dr_grpo")
    rpp = run("reinforce_pp", "trainer.kl_coef=0.05", "trainer.kl_in_reward=true",
              "trainer.minibatch_size=32")
    assert rloo[0]["reward"] == dr_grpo[0]["reward"] == rpp[0]["reward"]  # the same samples
    assert abs(dr_grpo[0]["policy_loss"]) > 1e-3
    assert rloo[0]["policy_loss"] == pytest.approx(4 / 3 * dr_grpo[0]["policy_loss"], rel=1e-3)
    for r in rpp:  # each step's first (and only) minibatch: ratio 1, whitened advantages
        assert r["policy_loss"] == pytest.approx(0.0, abs=1e-6)


def test_rollout_correction_weights_the_policy_loss_in_16_bit(tmp_path):
    """SmolLM2 in bfloat16, full passes (no shared prompt cache): the trainer's old log-probabilities
    differ from those the engine recorded token by token (about 0.05 nats), so the trainer recomputes them
    and the correction has work to do. One step from the same seed samples the same answers under every
    mode. Every mode but `none` reweights the policy loss by the ratios; masking drops the responses whose
    ratio leaves [1/1.01, 1.01]; token-level truncation at 2 truncates nothing at this mismatch."""
    def step(mode: str, level: str, cap: float) -> dict:
        out = tmp_path / f"{mode}-{level}"
        run_rlvr("train", CONFIG, "model.name=smollm2-135m-instruct", f"logging.out_dir={out}", "trainer.max_steps=1",
                 "data.arith.train_size=64", "data.arith.test_size=8", "data.eval_samples=8",
                 "reward.verifiers=[{name: format, options: {pattern: '[0-4]'}}]", "trainer.prompts_per_step=4",
                 "trainer.samples_per_prompt=4", "trainer.minibatch_size=16", "trainer.micro_batch_size=16",
                 "trainer.eval_every=0", "trainer.eval_samples=8", "generation.max_new_tokens=8",
                 "logging.progress=false", "logging.tensorboard=false", "model.dtype=bfloat16",
                 "trainer.share_prompts=false", f"trainer.rollout_correction.mode={mode}",
                 f"trainer.rollout_correction.level={level}", f"trainer.rollout_correction.cap={cap}", check=True)
        (record,) = read_metrics(out / "metrics.jsonl")
        return record

    plain, masked, truncated = step("none", "token", 2.0), step("mask", "sequence", 1.01), step("tis", "token", 2.0)
    assert plain["logprob_mismatch"] > 0.01 and plain["rollout_correction/k3"] > 0
    assert plain["reward"] == masked["reward"] == truncated["reward"]  # the same samples
    assert plain["rollout_correction/weight_mean"] == 1.0
    assert masked["rollout_correction/corrected_share"] > 0.5 and masked["rollout_correction/weight_mean"] < 0.5
    assert truncated["rollout_correction/corrected_share"] == 0
    assert truncated["rollout_correction/weight_mean"] == pytest.approx(truncated["rollout_correction/ratio_mean"])
    for corrected in (masked, truncated):  # the weights reach the loss
        assert abs(corrected["policy_loss"] - plain["policy_loss"]) > 1e-4
