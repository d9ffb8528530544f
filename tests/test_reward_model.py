"""Reward models: the Bradley-Terry loss by hand, the text a reward model reads, and the trainer through
real `rlvr train` runs (learning, 1 rank against 2, SIGKILL and resume, plain-transformers loading)."""
from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlvr.algorithms.bradley_terry import bradley_terry_loss, pairwise_accuracy
from rlvr.data.collate import pad_right
from rlvr.models import load_tokenizer
from rlvr.reward_scoring import RewardScorer, encode_pair
from rlvr.trainers.metrics import read_metrics
from tests.conftest import kill_after_checkpoint, run_rlvr


# ---- the loss, by hand ----------------------------------------------------------------------------
def test_bradley_terry_hand_values():
    chosen, rejected = torch.tensor([2.0, 0.0, 1.0, -3.0]), torch.tensor([0.0, 0.0, 2.0, 97.0])
    # -log sigmoid(d) = log(1 + e^-d): d = 2, 0, -1, -100
    expected = [math.log(1 + math.exp(-2)), math.log(2), math.log(1 + math.e), 100.0]
    assert bradley_terry_loss(chosen, rejected).tolist() == pytest.approx(expected, rel=1e-6)
    assert pairwise_accuracy(chosen, rejected).tolist() == [1.0, 0.5, 0.0, 0.0]


def test_margin_shifts_the_gap():
    chosen, rejected = torch.tensor([2.0, 2.0]), torch.tensor([0.0, 1.5])
    # m = 1: d - m = 1 and -0.5
    assert bradley_terry_loss(chosen, rejected, margin=1.0).tolist() == pytest.approx(
        [math.log(1 + math.exp(-1)), math.log(1 + math.exp(0.5))], rel=1e-6)
    # a per-pair margin (Llama 2's preference strength): m = [2, 0] gives d - m = 0 and 0.5
    per_pair = bradley_terry_loss(chosen, rejected, margin=torch.tensor([2.0, 0.0]))
    assert per_pair.tolist() == pytest.approx([math.log(2), math.log(1 + math.exp(-0.5))], rel=1e-6)


def test_gradient_is_minus_sigmoid_of_the_negative_gap():
    chosen = torch.tensor([1.0], requires_grad=True)
    rejected = torch.tensor([0.0], requires_grad=True)
    bradley_terry_loss(chosen, rejected, margin=0.5).sum().backward()
    # dL/dr_w = -sigmoid(-(d - m)) = -sigmoid(-0.5); dL/dr_l is its negative
    assert chosen.grad.item() == pytest.approx(-1 / (1 + math.exp(0.5)), rel=1e-6)
    assert rejected.grad.item() == pytest.approx(1 / (1 + math.exp(0.5)), rel=1e-6)


# ---- what a reward model reads --------------------------------------------------------------------
def test_encode_pair_keeps_the_answer_and_its_eos(tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)
    eos = tok.eos_token_id

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    assert encode_pair(tok, "12+3", "15", 16) == ids("12+3") + ids("15") + [eos]
    # too long: the prompt's oldest tokens go first
    assert encode_pair(tok, "123456789", "42", 6) == ids("789") + ids("42") + [eos]
    # a long answer keeps max_len // 4 of the prompt and its closing EOS
    assert encode_pair(tok, "123456789", "9876543210", 8) == ids("89") + ids("98765") + [eos]
    batch = pad_right([[5, 6, 7], [8]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


# ---- the trainer, through real runs ---------------------------------------------------------------
STEPS = 160
SMALL_RM = [
    "model.name=tiny", "model.tiny.hidden_size=64", "model.tiny.intermediate_size=128",
    "trainer.batch_size=32", "trainer.micro_batch_size=32", "trainer.lr=3e-3", "trainer.warmup_steps=5",
    "trainer.min_lr_ratio=1.0",  # constant after warmup: shorter runs take the same first steps
    "trainer.max_seq_len=32", "trainer.eval_every=80", "logging.log_every=1", "logging.progress=false",
    "logging.tensorboard=false",
]


def echo_pairs(path: Path, n: int = 800) -> Path:
    """Pairs a tiny model can learn from scratch: the prompt's digits echoed, against other digits."""
    rng = random.Random(0)
    with path.open("w") as f:
        for _ in range(n):
            prompt = "".join(rng.choice("0123456789") for _ in range(4))
            other = prompt
            while other == prompt:
                other = "".join(rng.choice("0123456789") for _ in range(4))
            f.write(json.dumps({"prompt": prompt, "chosen": prompt, "rejected": other}) + "\n")
    return path


CONFIG = Path(__file__).resolve().parents[1] / "configs" / "rm_arith.yaml"


def train_rm(out: Path, data: Path, *extra: str, nproc: int = 1) -> list[dict]:
    run_rlvr("train", str(CONFIG), *SMALL_RM, f"data.source={data}", f"trainer.max_steps={STEPS}",
             f"logging.out_dir={out}", *extra, "--nproc", str(nproc), check=True)
    return read_metrics(out / "metrics.jsonl")


def losses(records: list[dict]) -> list[float]:
    return [r["loss"] for r in records if "loss" in r]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    return echo_pairs(tmp_path_factory.mktemp("pairs") / "echo.jsonl")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, pairs_file) -> Path:
    out = tmp_path_factory.mktemp("rm") / "run"
    train_rm(out, pairs_file)
    return out


@pytest.mark.slow
def test_trainer_learns_held_out_preferences(reference):
    records = read_metrics(reference / "metrics.jsonl")
    summary = json.loads((reference / "summary.json").read_text())
    assert [r["step"] for r in records if "loss" in r][-1] == STEPS
    assert summary["eval_pairs"] > 100 and summary["train_pairs"] + summary["eval_pairs"] == 800
    first = records[0]
    assert first["loss"] == pytest.approx(math.log(2), abs=0.1)  # a fresh head: about chance
    assert summary["eval_accuracy"] >= 0.85, summary  # 0.96 when written; chance is 0.5
    assert summary["eval_loss"] < 0.4
    assert summary["eval_margin"] > 0  # chosen scored above rejected, on average too


@pytest.mark.slow
def test_final_model_scores_the_same_in_plain_transformers(reference):
    final = reference / "final"
    assert json.loads((final / "reward_format.json").read_text())["template"] == "chat"
    step = max((reference / "checkpoints").glob("step-*"))
    assert (step / "reward_format.json").is_file()
    scorer = RewardScorer(str(final))
    ours = scorer.score(["1234", "1234"], ["1234", "9876"]).tolist()
    assert ours[0] > ours[1]
    script = (
        "import sys, json, torch\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        "path = sys.argv[1]\n"
        "tok = AutoTokenizer.from_pretrained(path)\n"
        "model = AutoModelForSequenceClassification.from_pretrained(path).eval()\n"
        "assert model.config.num_labels == 1\n"
        "out = []\n"
        "for answer in ('1234', '9876'):\n"
        "    prompt = tok.apply_chat_template([{'role': 'user', 'content': '1234'}],"
        " add_generation_prompt=True, tokenize=False)\n"
        "    text = prompt + answer + tok.eos_token\n"
        "    ids = tok(text, add_special_tokens=False, return_tensors='pt')\n"
        "    with torch.no_grad(): out.append(model(**ids).logits[0, 0].item())\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(final)], capture_output=True, text=True,
                          check=False, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert theirs == pytest.approx(ours, abs=1e-4)


@pytest.mark.slow
def test_two_ranks_zero2_match_one_rank(reference, pairs_file, tmp_path):
    records = train_rm(tmp_path / "z2", pairs_file, "trainer.max_steps=6", "trainer.micro_batch_size=8",
                       "deepspeed.stage=2", nproc=2)
    ref = losses(read_metrics(reference / "metrics.jsonl"))[:6]
    got = losses(records)
    assert len(got) == 6
    assert max(abs(a - b) / a for a, b in zip(ref, got)) < 1e-3, (ref, got)


@pytest.mark.slow
def test_sigkill_and_resume_matches_uninterrupted(reference, pairs_file, tmp_path):
    out = tmp_path / "killed"
    args = ["train", str(CONFIG), *SMALL_RM, f"data.source={pairs_file}", "trainer.max_steps=12",
            f"logging.out_dir={out}", "trainer.save_every=4", "trainer.keep_checkpoints=1"]
    kill_after_checkpoint(args, out / "checkpoints" / "step-000008")
    assert max(r["step"] for r in read_metrics(out / "metrics.jsonl")) < 12
    run_rlvr(*args, "--resume", check=True)
    resumed = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in resumed] == list(range(1, 13))
    ref = losses(read_metrics(reference / "metrics.jsonl"))[:12]
    assert losses(resumed) == pytest.approx(ref, rel=1e-5)
    # saved at steps 4, 8 and 12 (the end): trainer.keep_checkpoints=1 leaves only the newest
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-000012"]
    # the reward format is part of the checkpoint, so resume checks it against the manifest too
    manifest = json.loads((out / "checkpoints" / "step-000012" / "manifest.json").read_text())
    assert "reward_format.json" in manifest["files"]
