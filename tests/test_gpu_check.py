"""scripts/gpu_check.sh --dry-run: everything the GPU check does except what needs the GPU, so the script
cannot rot between the runs on a GPU machine."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_gpu_check_dry_run_installs_collects_and_runs_the_quickstart(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "RLVR_GPU_WHEELS": str(tmp_path / "none")}
    proc = subprocess.run(["bash", str(REPO / "scripts/gpu_check.sh"), "--dry-run", "--out", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rlvr verifiers: ['code', 'format', 'length', 'math', 'reward_model']" in proc.stdout
    collected = [line for line in proc.stdout.splitlines() if line.endswith("gpu tests collected (not run: --dry-run)")]
    assert collected and int(collected[0].split()[0]) >= 5
    timings = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert timings["dry_run"] == 1 and {"install", "gpu_tests", "quickstart", "total"} <= set(timings)
    summary = json.loads((tmp_path / "out" / "quickstart" / "summary.json").read_text())
    assert summary["sft_steps"] == 4 and summary["rl_steps"] == 2 and 0 <= summary["rl_accuracy"] <= 1
