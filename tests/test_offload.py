"""DeepSpeed offload through real 2-rank ZeRO-3 SFT runs: optimizer offload, parameter offload (with a SIGKILL
and resume), and the shipped configs/deepspeed/zero3_offload.json, each against the run without offload.

Offload swaps torch's AdamW for DeepSpeed's CPU Adam (a C++ op compiled on first use, a minute or two, then
reused from ~/.cache/torch_extensions). Matching losses alone would not show that offload was on: a run that
ignored it matches too. So each run's `[rlvr] deepspeed:` line, which the engine reads from its own ZeRO
optimizer, must say where the optimizer states and parameters live.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rlvr.trainers.metrics import read_metrics
from tests.conftest import REPO, SMALL_SFT, kill_after_checkpoint, run_rlvr

pytestmark = pytest.mark.slow
STEPS = 10
CONFIG = str(REPO / "configs/sft_arith.yaml")
ZERO3 = ["deepspeed.stage=3", "trainer.micro_batch_size=8", f"trainer.max_steps={STEPS}"]
STATES = "optimizer states on cpu"
PARAMS = "parameters on cpu"


def args(out: Path, *extra: str) -> list[str]:
    return ["train", CONFIG, *SMALL_SFT, *ZERO3, f"logging.out_dir={out}", *extra, "--nproc", "2"]


def sft(out: Path, *extra: str) -> tuple[list[float], str]:
    """The run's losses and its `[rlvr] deepspeed:` line."""
    proc = run_rlvr(*args(out, *extra), check=True)
    return losses(out), engine_line(proc)


def losses(out: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]


def engine_line(proc: subprocess.CompletedProcess) -> str:
    lines = [x for x in proc.stdout.splitlines() if x.startswith("[rlvr] deepspeed:")]
    assert len(lines) == 1, proc.stdout[-3000:]
    return lines[0].removeprefix("[rlvr] deepspeed: ")


def assert_close(a: list[float], b: list[float], rel: float = 1e-3) -> None:
    assert len(a) == len(b) == STEPS
    worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
    assert worst < rel, f"relative difference {worst:.2e}\n{a}\n{b}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[float]:
    """2 ranks, ZeRO-3, no offload: torch's AdamW, as before offload existed."""
    lo, line = sft(tmp_path_factory.mktemp("ref") / "run")
    assert line == "ZeRO-3, AdamW, offload: none"
    assert lo[-1] < lo[0]
    return lo


def test_optimizer_offload_matches_the_run_without(reference, tmp_path):
    lo, line = sft(tmp_path / "opt", "deepspeed.offload_optimizer=true")
    assert line == f"ZeRO-3, DeepSpeedCPUAdam, offload: {STATES}"
    assert_close(reference, lo)


def test_shipped_zero3_offload_config_file_matches(reference, tmp_path):
    """Offload asked for only in the merged file (rlvr's own offload keys stay false)."""
    shipped = REPO / "configs/deepspeed/zero3_offload.json"
    lo, line = sft(tmp_path / "file", f"deepspeed.config_file={shipped}")
    assert line == f"ZeRO-3, DeepSpeedCPUAdam, offload: {STATES}, {PARAMS}"
    assert_close(reference, lo)


def test_parameter_offload_matches_and_resumes_after_sigkill(reference, tmp_path):
    """Parameters and optimizer offloaded; killed after the step-5 checkpoint, resumed: the CPU Adam states
    come back from the checkpoint, so the 10 losses still match the run without offload."""
    out = tmp_path / "params"
    offload = ["deepspeed.offload_param=true", "deepspeed.offload_optimizer=true", "trainer.save_every=5"]
    kill_after_checkpoint(args(out, *offload), out / "checkpoints" / "step-000005", timeout=600)
    assert max(r["step"] for r in read_metrics(out / "metrics.jsonl")) < STEPS
    proc = run_rlvr(*args(out, *offload), "--resume", check=True)
    assert "resumed from" in proc.stdout
    assert engine_line(proc) == f"ZeRO-3, DeepSpeedCPUAdam, offload: {STATES}, {PARAMS}"
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, STEPS + 1))  # none lost, none logged twice
    assert_close(reference, losses(out))
    assert (out / "final" / "model.safetensors").is_file()
