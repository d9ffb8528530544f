"""ZeRO-3 generation on 2 real ranks: the weights gathered once per generate call draw exactly the tokens
that gathering them per decoded token draws (same seeds), through benchmarks/bench_zero3_generation.py
(the speed is the benchmark's business, not a test's)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, pythonpath

pytestmark = pytest.mark.slow


def test_gathering_once_per_call_draws_the_same_tokens_as_per_token(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/bench_zero3_generation.py"), "--hidden", "64",
                           "--layers", "2", "--prompts", "4", "--samples", "2", "--tokens", "8", "--out", str(tmp_path)],
                          env={**os.environ, "PYTHONPATH": pythonpath(), "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "zero3_generation.json").read_text())
    assert report["identical_samples"] is True
    counts = {r["tokens"] for runs in report["runs"].values() for r in runs}
    assert len(counts) == 1 and 0 < counts.pop() <= 2 * 4 * 2 * 8  # 2 ranks x 4 prompts x 2 samples x 8 tokens
