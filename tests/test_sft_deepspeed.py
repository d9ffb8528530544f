"""SFT through real DeepSpeed: 1 rank against 2 ranks (ZeRO-2, ZeRO-3), SIGKILL and resume, HF export.

Each run is a real `rlvr train` subprocess; the 2-rank ones go through the DeepSpeed launcher.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.trainers.metrics import read_metrics
from tests.conftest import REPO, SMALL_SFT, kill_after_checkpoint, run_rlvr

pytestmark = pytest.mark.slow
STEPS = 30
CONFIG = str(REPO / "configs/sft_arith.yaml")


def sft(out: Path, *extra: str, nproc: int = 1) -> list[dict]:
    run_rlvr("train", CONFIG, *SMALL_SFT, f"trainer.max_steps={STEPS}", f"logging.out_dir={out}", *extra,
             "--nproc", str(nproc), check=True)
    return read_metrics(out / "metrics.jsonl")


def losses(records: list[dict]) -> list[float]:
    return [r["loss"] for r in records if "loss" in r]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    """One rank, ZeRO off: the run every other run must reproduce."""
    return sft(tmp_path_factory.mktemp("ref") / "run")


def assert_close(a: list[float], b: list[float], n: int, rel: float = 1e-3) -> None:
    assert len(a) >= n and len(b) >= n
    worst = max(abs(x - y) / abs(x) for x, y in zip(a[:n], b[:n]))
    assert worst < rel, f"relative difference {worst:.2e} over the first {n} steps\n{a[:n]}\n{b[:n]}"


def test_reference_learns(reference):
    lo = losses(reference)
    assert len(lo) == STEPS and all(math.isfinite(x) for x in lo)
    assert lo[-1] < 0.8 * lo[0]


def test_zero3_two_ranks_matches_one_rank(reference, tmp_path):
    out = tmp_path / "z3"
    records = sft(out, "deepspeed.stage=3", "trainer.micro_batch_size=8", nproc=2)
    assert_close(losses(reference), losses(records), n=10)
    # the consolidated ZeRO-3 checkpoint is a plain HF folder: transformers loads it and generates
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "path = sys.argv[1]\n"
        "tok = AutoTokenizer.from_pretrained(path); model = AutoModelForCausalLM.from_pretrained(path)\n"
        "n = sum(p.numel() for p in model.parameters()); assert n > 10000, n\n"
        "ids = tok.apply_chat_template([{'role': 'user', 'content': '12+30'}], add_generation_prompt=True,"
        " return_tensors='pt', return_dict=True)['input_ids']\n"
        "out = model.generate(ids, max_new_tokens=4, do_sample=False)\n"
        "assert out.shape[1] > ids.shape[1]\n"
        "print('OK', n, repr(tok.decode(out[0, ids.shape[1]:])))\n"
    )
    for folder in (out / "final", sorted((out / "checkpoints").glob("step-*"))[-1]):
        proc = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
        assert proc.returncode == 0 and proc.stdout.startswith("OK"), proc.stderr[-2000:]


def test_zero2_two_ranks_matches_one_rank(reference, tmp_path):
    records = sft(tmp_path / "z2", "deepspeed.stage=2", "trainer.micro_batch_size=4", nproc=2)
    assert_close(losses(reference), losses(records), n=10)


def test_sigkill_and_resume_matches_uninterrupted(reference, tmp_path):
    out = tmp_path / "killed"
    kill_after_checkpoint(["train", CONFIG, *SMALL_SFT, f"trainer.max_steps={STEPS}", f"logging.out_dir={out}",
                           "trainer.save_every=5"], out / "checkpoints" / "step-000010")
    killed_at = max(r["step"] for r in read_metrics(out / "metrics.jsonl"))
    assert killed_at < STEPS

    run_rlvr("train", CONFIG, *SMALL_SFT, f"trainer.max_steps={STEPS}", f"logging.out_dir={out}",
             "trainer.save_every=5", "--resume", check=True)
    resumed = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))  # no step lost or logged twice
    assert_close(losses(reference), losses(resumed), n=STEPS, rel=1e-5)
    assert losses(resumed)[-1] == pytest.approx(losses(reference)[-1], rel=1e-5)
    assert not list((out / "checkpoints").glob(".tmp-*"))
    # saved every 5 steps and at the end; trainer.keep_checkpoints (2) leaves the newest two
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000025", "step-000030"]


def test_existing_run_is_not_overwritten(reference, tmp_path):
    out = tmp_path / "once"
    sft(out, "trainer.max_steps=2")
    proc = run_rlvr("train", CONFIG, *SMALL_SFT, "trainer.max_steps=2", f"logging.out_dir={out}")
    assert proc.returncode == 2 and "already holds checkpoints" in proc.stderr


def test_max_seconds_stops_after_the_step_that_spends_it_then_evaluates(tmp_path):
    out = tmp_path / "budget"
    records = sft(out, "trainer.max_seconds=0.001")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["out_of_time"] is True
    assert (out / "final" / "config.json").is_file()
    # the held-out token-mean NLL, one update after the step's training loss was measured (3.15 -> 3.06
    # when written): per token, not per sequence or summed, and lower
    (last,) = records
    assert 0.8 * last["loss"] < last["eval_loss"] < last["loss"]
    assert 0 <= last["eval_accuracy"] <= 1 and (last["eval_accuracy"] * 32).is_integer()  # data.eval_samples
    # resuming a run that ran out of time is complete: it neither trains nor logs again
    run_rlvr("train", CONFIG, *SMALL_SFT, f"trainer.max_steps={STEPS}", f"logging.out_dir={out}",
             "trainer.max_seconds=0.001", "--resume", check=True)
    assert read_metrics(out / "metrics.jsonl") == records


def test_a_resumed_run_spends_only_what_is_left_of_max_seconds(tmp_path):
    """trainer.max_seconds counts the run's training time across resumes: the checkpoint carries it."""
    out = tmp_path / "budget_resume"
    sft(out, "trainer.max_steps=2", "trainer.save_every=1")
    state = json.loads((out / "checkpoints" / "step-000002" / "trainer_state.json").read_text())
    spent = state["train_seconds"]  # two steps, an evaluation and the saves
    assert spent > 0
    # less than was spent before the resume, far more than one step: the resumed run stops after one step
    run_rlvr("train", CONFIG, *SMALL_SFT, "trainer.max_steps=4", f"logging.out_dir={out}",
             f"trainer.max_seconds={0.9 * spent}", "--resume", check=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["out_of_time"] is True
    assert summary["seconds"] >= spent
