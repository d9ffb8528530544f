"""Shared fixtures: a tiny model folder, a small SFT config, and a runner for the `rlvr` command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pythonpath() -> str:
    """This checkout first, then what the caller's PYTHONPATH holds (scripts/gpu_check.sh installs
    DeepSpeed and other missing packages into a folder it puts there)."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def run_rlvr(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600,
             check: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m rlvr ARGS` as a real subprocess (one OpenMP thread per process: 2 cores here)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath(), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "rlvr", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"rlvr {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def kill_after_checkpoint(args: list[str], checkpoint: Path, timeout: float = 300) -> None:
    """Start `python -m rlvr ARGS`, and SIGKILL its whole process group the moment `checkpoint` exists."""
    import signal
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath()}
    proc = subprocess.Popen([sys.executable, "-m", "rlvr", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + timeout
    while not checkpoint.is_dir():
        assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stderr.read()[-2000:]}"
        assert time.time() < deadline, f"no {checkpoint.name} within {timeout} s"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    from rlvr.config import TinyModelConfig
    from rlvr.models import build_tiny_model

    return build_tiny_model(TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128),
                            tmp_path_factory.mktemp("tiny") / "model", seed=0)


# A small SFT run: a few seconds per step count, used by the DeepSpeed and resume tests.
SMALL_SFT = [
    "model.tiny.hidden_size=64", "model.tiny.intermediate_size=128",
    "data.arith.train_size=512", "data.arith.test_size=32", "data.eval_samples=32",
    "trainer.batch_size=16", "trainer.micro_batch_size=16", "trainer.lr=1e-3", "trainer.warmup_steps=2",
    "trainer.eval_every=0", "trainer.eval_loss_samples=32", "logging.log_every=1", "logging.progress=false",
    "logging.tensorboard=false",
]
