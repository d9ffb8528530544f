"""Benchmarks run end to end at toy size. The figures come from full runs (benchmarks/results), never
from tests: these only check that each benchmark still runs and reports what it claims to."""
from __future__ import annotations

import importlib.util
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="needs the bench extra (trl)")
def test_trl_grpo_benchmark_trains_both_and_judges_both(tmp_path):
    results = tmp_path / "trl_grpo.md"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_trl_grpo.py"), "--seconds", "0", "--max-rollouts", "2",
           "--sft-steps", "10", "--prompts-per-step", "32", "--out", str(tmp_path / "work"),
           "--results", str(results)]
    proc = subprocess.run(cmd, check=False, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(results.with_suffix(".json").read_text())
    for side in ("rlvr", "trl"):
        assert data[side]["rollouts"] == 2
        assert data[side]["rollouts_per_second"] > 0
        assert set(data[side]["seconds_per_rollout"]) == {"generation", "reward", "rest"}
        assert 0.0 <= data[side]["accuracy"] <= 1.0
        assert (Path(data[side]["model"]) / "model.safetensors").is_file()
    assert data["speed_ratio"] > 0
    assert "rlvr / TRL rollouts per second" in results.read_text()


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / ".git").exists(), reason="the 'before' side is a git worktree of this checkout")
def test_code_reward_benchmark_runs_both_sides_and_reports_phases(tmp_path):
    import sandbox

    if sandbox.capabilities().best_backend is None:
        pytest.skip("no namespace backend on this machine")
    # Two HumanEval-form problems; the second one's solution, bound as the first's function (the
    # workload's third variant), never ends on the first's test with a negative number.
    rows = [{"task_id": "T/0", "prompt": "def inc(x):\n    \"\"\"x + 1\"\"\"\n", "canonical_solution": "    return x + 1\n",
             "test": "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-3) == -2\n",
             "entry_point": "inc"},
            {"task_id": "T/1", "prompt": "def down(n):\n    \"\"\"0\"\"\"\n",
             "canonical_solution": "    while n != 0:\n        n -= 1\n    return 0\n",
             "test": "def check(candidate):\n    assert candidate(3) == 0\n", "entry_point": "down"}]
    data_path = tmp_path / "problems.jsonl.gz"
    with gzip.open(data_path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    out = tmp_path / "code_reward.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_code_reward.py"), "--data", str(data_path),
           "--samples", "3", "--rounds", "1", "--chunk", "4", "--before", "HEAD", "--out", str(out)]
    proc = subprocess.run(cmd, check=False, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["programs_per_round"] == 6 and data["same_rewards"]
    assert data["at_time_limit"] == [{"task_id": "T/0", "sample": 2}]
    for kind, programs in (("distinct", 6), ("finishing", 5), ("repeats", 6)):
        for side in ("before", "after"):
            assert data[kind][side]["programs_per_second"] > 0 and data[kind][side]["programs"] == programs
            assert data[kind][side]["correct"] == 2  # each problem's canonical solution; the rest are broken
        assert data[kind]["ratio_after_over_before"] > 0
    # the program stopped at its time limit (the harness's deadline: 2.25 s of 3) is left out of "finishing" alone
    assert data["finishing"]["after"]["best_seconds"] < 2.0 < data["distinct"]["after"]["best_seconds"]
    assert set(data["startup_seconds"]) == {"before", "after"}
    after = data["phases_ms_per_program"]["after"]
    for phase in ("host prepare (extract, plan, job)", "  host wait", "  server child (fork to exit)",
                  "total (one program at a time)"):
        assert after[phase] > 0, phase
    assert "| phase (ms per program) | before | after |" in proc.stdout
