"""The `reward_model` verifier on real tiny reward models: ensembles, normalisation, clipping, pools,
and a real GRPO run rewarded by a reward model."""
from __future__ import annotations

import json
import pickle
import statistics
from pathlib import Path

import pytest

import verifiers
from rlvr.config import TinyModelConfig
from rlvr.models import build_tiny_model, load_tokenizer
from rlvr.reward_scoring import RewardFormat, RewardScorer, load_reward_model
from rlvr.trainers.metrics import read_metrics
from tests.conftest import REPO, run_rlvr
from verifiers.base import Sample
from verifiers.reward_model import Moments

PROMPTS = ["12+34", "7+8", "50+50", "3+4", "99+1", "10+20"]
ANSWERS = ["46", "15", "100", "8", "101", "30"]


def tiny_reward_model(folder: Path, seed: int) -> str:
    """A real (untrained) reward model: a tiny Llama body with a seeded random scalar head."""
    body = build_tiny_model(TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64),
                            folder / "body", seed=seed)
    tok = load_tokenizer(body)
    import torch

    torch.manual_seed(seed)
    model = load_reward_model(body, pad_token_id=tok.pad_token_id)
    torch.nn.init.normal_(model.score.weight, std=1.0)  # rewards of order 1, so clipping has work to do
    model.save_pretrained(folder / "rm")
    tok.save_pretrained(folder / "rm")
    RewardFormat(max_seq_len=32).save(folder / "rm")
    return str(folder / "rm")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("rms")
    return [tiny_reward_model(root / f"m{seed}", seed) for seed in (1, 2)]


def samples() -> list[Sample]:
    return [Sample(prompt=p, completion=a) for p, a in zip(PROMPTS, ANSWERS)]


def rewards(v: verifiers.Verifier) -> list[float]:
    return [s.reward for s in v.verify_batch(samples())]


def test_single_model_matches_the_scorer_and_verify_matches_verify_batch(models):
    v = verifiers.load("reward_model", model=models[0], batch_size=4)
    raw = RewardScorer(models[0]).score(PROMPTS, ANSWERS).tolist()
    assert rewards(v) == pytest.approx(raw, abs=1e-5)
    assert [v.verify(s).reward for s in samples()] == pytest.approx(raw, abs=1e-5)
    assert v.verify(samples()[0]).correct is None
    assert len(set(raw)) == len(raw)  # the samples are told apart


def test_ensemble_mean_and_min(models):
    each = [RewardScorer(m).score(PROMPTS, ANSWERS).tolist() for m in models]
    mean = rewards(verifiers.load("reward_model", model=models, reduce="mean"))
    low = rewards(verifiers.load("reward_model", model=models, reduce="min"))
    assert mean == pytest.approx([(a + b) / 2 for a, b in zip(*each)], abs=1e-5)
    assert low == pytest.approx([min(a, b) for a, b in zip(*each)], abs=1e-5)
    assert any(abs(a - b) > 1e-3 for a, b in zip(*each))  # two different models, or the test proves nothing
    scores = verifiers.load("reward_model", model=models).verify_batch(samples())
    assert scores[0].details["raw"] == pytest.approx([each[0][0], each[1][0]], abs=1e-5)


def test_calibration_normalises_each_model_then_clips(models, tmp_path):
    calib = tmp_path / "calib.jsonl"
    rows = [{"prompt": p, "completion": a} for p, a in zip(PROMPTS, ANSWERS)]
    calib.write_text("".join(json.dumps(r) + "\n" for r in rows))
    v = verifiers.load("reward_model", model=models, reduce="min", normalize="calibration",
                       calibration=str(calib))
    per_model = []
    for m in models:
        raw = RewardScorer(m).score(PROMPTS, ANSWERS).tolist()
        mu, sd = statistics.fmean(raw), statistics.pstdev(raw)
        per_model.append([(r - mu) / sd for r in raw])
    expected = [min(a, b) for a, b in zip(*per_model)]
    assert rewards(v) == pytest.approx(expected, abs=1e-4)
    clipped = rewards(verifiers.load("reward_model", model=models, reduce="min", normalize="calibration",
                                     calibration=str(calib), clip=0.5))
    assert clipped == pytest.approx([max(-0.5, min(0.5, e)) for e in expected], abs=1e-4)
    assert any(abs(e) > 0.5 for e in expected)  # something was clipped


def test_running_normalisation_uses_everything_seen_so_far(models):
    v = verifiers.load("reward_model", model=models[0], normalize="running")
    raw = RewardScorer(models[0]).score(PROMPTS, ANSWERS).tolist()
    first = [v.verify_batch([s])[0].reward for s in samples()[:3]]
    assert first[0] == 0.0  # one value: centred only
    seen = raw[:2]
    assert first[1] == pytest.approx((raw[1] - statistics.fmean(seen)) / statistics.pstdev(seen), abs=1e-4)
    rest = [s.reward for s in v.verify_batch(samples()[3:])]
    mu, sd = statistics.fmean(raw), statistics.pstdev(raw)
    assert rest == pytest.approx([(r - mu) / sd for r in raw[3:]], abs=1e-4)


def test_moments_merge_batches_exactly():
    m = Moments()
    for batch in ([1.0, 2.0], [10.0], [], [3.0, -4.0, 5.5]):
        m.update(batch)
    values = [1.0, 2.0, 10.0, 3.0, -4.0, 5.5]
    assert m.count == 6 and m.mean == pytest.approx(statistics.fmean(values))
    assert m.std == pytest.approx(statistics.pstdev(values))


def test_bad_options_name_the_option(models):
    with pytest.raises(verifiers.VerifierError, match="'model'"):
        verifiers.load("reward_model")
    with pytest.raises(verifiers.VerifierError, match="'reduce'"):
        verifiers.load("reward_model", model=models[0], reduce="max")
    with pytest.raises(verifiers.VerifierError, match="'calibration'"):
        verifiers.load("reward_model", model=models[0], normalize="calibration")
    with pytest.raises(verifiers.VerifierError, match="file not found: nope.jsonl"):
        verifiers.load("reward_model", model=models[0], normalize="calibration", calibration="nope.jsonl")
    with pytest.raises(verifiers.VerifierError, match="'clip'"):
        verifiers.load("reward_model", model=models[0], clip=-1)
    with pytest.raises(verifiers.VerifierError, match="folder not found: runs/none/final"):
        verifiers.load("reward_model", model=[models[0], "runs/none/final"])
    with pytest.raises(verifiers.VerifierError, match="no config.json"):
        verifiers.load("reward_model", model=str(Path(models[0]).parent))


def test_pool_worker_loads_its_own_copy(models):
    v = verifiers.load("reward_model", model=models[0])
    v.verify(samples()[0])  # loaded here; pickling must still ship only the options
    assert b"safetensors" not in pickle.dumps(v) and len(pickle.dumps(v)) < 2000
    with verifiers.VerifierPool(v, workers=1, timeout=60) as pool:
        pooled = [s.reward for s in pool.score(samples())]
    assert pooled == pytest.approx(rewards(v), abs=1e-5)


@pytest.mark.slow
def test_grpo_run_rewarded_by_a_reward_model(models, tmp_path):
    """configs/grpo_arith_rm.yaml end to end: a tiny policy, the reward model as the whole reward."""
    import yaml

    cfg = yaml.safe_load((REPO / "configs" / "grpo_arith_rm.yaml").read_text())
    assert cfg["reward"]["verifiers"][1]["name"] == "reward_model"
    # a list item takes no dotted override; normalised and clipped here, to run those through the pool too
    cfg["reward"]["verifiers"][1]["options"].update(model=models[0], normalize="running", clip=3.0)
    config = tmp_path / "grpo_rm.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "grpo"
    run_rlvr("train", str(config), "model.name=tiny", "model.tiny.hidden_size=32",
             "model.tiny.intermediate_size=64", "trainer.max_steps=2",
             "trainer.prompts_per_step=8", "trainer.samples_per_prompt=4", "trainer.minibatch_size=32",
             "trainer.micro_batch_size=32", "trainer.eval_samples=16", "trainer.eval_every=0",
             "data.arith.train_size=200", "data.arith.test_size=16", f"logging.out_dir={out}",
             "logging.progress=false", "logging.tensorboard=false", check=True)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    # the reward is the reward model's (normalised, clipped); math (weight 0) counts for accuracy only
    assert all(r["reward_std"] > 0 and abs(r["reward"]) <= 3.0 for r in records)
    assert all(r["reward"] == pytest.approx(r["reward/reward_model"]) for r in records)
    assert all(r["accuracy"] == pytest.approx(r["reward/math"]) for r in records)
    assert "eval_accuracy" in json.loads((out / "summary.json").read_text())
