"""What only a CUDA device can show: placement, bf16 training steps, ZeRO-3 on one rank, exact resume with
the GPU's RNG. Run by scripts/gpu_check.sh on a GPU machine (`pytest -m gpu`); skipped without CUDA.

Each run is small (the tiny test model, a few steps); the point is that every trainer runs on the GPU in
the precision `model.dtype: auto` picks there (bfloat16), not what it learns.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from rlvr.trainers.metrics import read_metrics
from tests.conftest import REPO, SMALL_SFT, kill_after_checkpoint, run_rlvr

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
TIMING = {"gen_seconds", "train_seconds", "tokens_per_second", "step_seconds"}


def rl_args(model: str, out, steps: int, *extra: str) -> list[str]:
    return [str(REPO / "configs/grpo_arith.yaml"), f"model.name={model}", f"logging.out_dir={out}",
            f"trainer.max_steps={steps}", "data.arith.train_size=256", "data.arith.test_size=16",
            "data.eval_samples=16", "reward.verifiers=[{name: format, options: {pattern: '[0-4]'}}]",
            "trainer.prompts_per_step=8", "trainer.samples_per_prompt=4", "trainer.minibatch_size=16",
            "trainer.micro_batch_size=16", "trainer.lr=1e-3", "trainer.eval_every=0", "trainer.eval_samples=16",
            "generation.max_new_tokens=4", "trainer.warmup_steps=0", "logging.progress=false",
            "logging.tensorboard=false", *extra]


def finite(records: list[dict], *keys: str) -> None:
    for r in records:
        for k in keys:
            assert math.isfinite(r[k]), (k, r)


def test_every_model_and_the_sampler_are_on_the_gpu_in_bf16(tiny_model_dir, tmp_path):
    """In-process: PPO with a critic and a KL reference, each on cuda:0 in bfloat16; a rollout batch and
    the engine's sampler there too; two steps train."""
    from rlvr.config import load_config
    from rlvr.trainers import trainer_for

    cfg = load_config(REPO / "configs/grpo_arith.yaml", rl_args(tiny_model_dir, tmp_path / "ppo", 2)[1:] + [
        "trainer.algorithm=ppo", "trainer.kl_coef=0.05", "trainer.kl_in_reward=true"])
    trainer = trainer_for(cfg)
    gpu = torch.device("cuda", 0)
    assert trainer.device == gpu and cfg.model.dtype == "bfloat16"
    for name, model in {"actor": trainer.actor.module, "critic": trainer.critic.module,
                        "reference": trainer.reference}.items():
        placed = {(p.device, p.dtype) for p in model.parameters()}
        assert placed == {(gpu, torch.bfloat16)}, (name, placed)
    assert trainer.rollouts.rng.device.type == "cuda"
    summary = trainer.train()
    assert summary["steps"] == 2 and math.isfinite(summary["policy_loss"]) and math.isfinite(summary["value_loss"])
    # 16-bit: the trainer recomputes the old log-probabilities, so rollout correction has work to do
    assert trainer.recompute_logprobs


def test_bf16_sft_learns(tmp_path):
    out = tmp_path / "sft"
    run_rlvr("train", str(REPO / "configs/sft_arith.yaml"), *SMALL_SFT, "trainer.max_steps=30",
             f"logging.out_dir={out}", check=True)
    assert "dtype: bfloat16" in (out / "config.yaml").read_text()
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl")]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < 0.8 * losses[0]


def test_bf16_grpo_and_dpo_steps(tiny_model_dir, tmp_path):
    run_rlvr("train", *rl_args(tiny_model_dir, tmp_path / "grpo", 3, "trainer.kl_coef=0.05"), check=True)
    records = read_metrics(tmp_path / "grpo" / "metrics.jsonl")
    finite(records, "policy_loss", "kl", "entropy", "logprob_mismatch")
    out = tmp_path / "dpo"
    run_rlvr("train", str(REPO / "configs/dpo_online_arith.yaml"), f"model.name={tiny_model_dir}",
             f"logging.out_dir={out}", "trainer.max_steps=2", "data.arith.train_size=256", "data.arith.test_size=16",
             "data.eval_samples=16", "reward.verifiers=[{name: format, options: {pattern: '[0-4]'}}]",
             "trainer.prompts_per_step=8", "trainer.samples_per_prompt=4", "trainer.batch_size=16",
             "trainer.micro_batch_size=16", "trainer.eval_every=0", "trainer.eval_samples=16",
             "generation.max_new_tokens=4", "logging.progress=false", "logging.tensorboard=false", check=True)
    assert len(read_metrics(out / "metrics.jsonl")) == 2


def test_zero3_on_one_rank(tiny_model_dir, tmp_path):
    """ZeRO-3 partitions even on one rank (hooks gather before each layer); generation gathers once."""
    out = tmp_path / "z3"
    run_rlvr("train", *rl_args(tiny_model_dir, out, 2, "deepspeed.stage=3", "trainer.kl_coef=0.05"), check=True)
    finite(read_metrics(out / "metrics.jsonl"), "policy_loss", "kl")
    assert (out / "final" / "model.safetensors").is_file()


def test_sigkill_and_resume_on_the_gpu_continues_exactly(tiny_model_dir, tmp_path):
    """float32 (TF32 matmuls), so that two runs of the same steps agree; the sampler is a CUDA generator
    whose state is in the checkpoint with the GPU's own RNG."""
    steps, extra = 6, ("trainer.kl_coef=0.05", "model.dtype=float32", "trainer.save_every=2")
    ref = tmp_path / "uninterrupted"
    run_rlvr("train", *rl_args(tiny_model_dir, ref, steps, *extra), check=True)
    reference = {r["step"]: r for r in read_metrics(ref / "metrics.jsonl")}
    out = tmp_path / "killed"
    kill_after_checkpoint(["train", *rl_args(tiny_model_dir, out, steps, *extra)], out / "checkpoints" / "step-000002")
    rng = torch.load(out / "checkpoints" / "step-000002" / "rng" / "rank0.pt", weights_only=False)
    assert "cuda" in rng and rng["generation"].numel() > 0
    run_rlvr("train", *rl_args(tiny_model_dir, out, steps, *extra), "--resume", check=True)
    resumed = {r["step"]: r for r in read_metrics(out / "metrics.jsonl")}
    assert sorted(resumed) == list(range(1, steps + 1))
    for step in (3, steps):
        for key, value in reference[step].items():
            if key not in TIMING:
                assert resumed[step][key] == pytest.approx(value, rel=1e-3, abs=1e-5), (step, key)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == steps
