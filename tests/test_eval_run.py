"""`rlvr eval --run`: every checkpoint of a short SFT run in one command, and the score-against-step plot."""
from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, SMALL_SFT, run_rlvr

pytestmark = pytest.mark.slow


def test_checkpoints_of_a_run_give_a_score_against_step_plot(tmp_path):
    run = tmp_path / "sft"
    run_rlvr("train", str(REPO / "configs/sft_arith.yaml"), *SMALL_SFT, "trainer.max_steps=20",
             "trainer.save_every=10", "trainer.keep_checkpoints=3", f"logging.out_dir={run}", check=True)
    assert (run / "checkpoints/step-000010").is_dir() and (run / "final").is_dir()

    proc = run_rlvr("eval", "eval.progress=false", "--run", str(run), "--benchmark", "arith", "--limit", "16",
                    check=True)
    out = run / "eval" / "arith"
    combined = json.loads((out / "results.json").read_text())
    # step-000020 and final/ hold the same weights: evaluated once, as final
    assert [(c["step"], c["checkpoint"]) for c in combined["checkpoints"]] == [(10, "step-000010"), (20, "final")]
    for c in combined["checkpoints"]:
        one = json.loads((out / c["checkpoint"] / "results.json").read_text())
        assert one["problems"] == 16 and one["metrics"] == c["metrics"]
        # the run's own prompting and answer length are used: arith answers fit in 8 tokens
        assert one["template"] == "chat" and one["max_new_tokens"] == 8
    plot = out / "score_vs_step.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and combined["plot"] == str(plot)
    assert "| 10 | step-000010 |" in proc.stdout and "| 20 | final |" in proc.stdout

    # the latest checkpoint of the run against a single-model eval of final/: the same scores
    single = tmp_path / "single"
    run_rlvr("eval", "eval.progress=false", "generation.max_new_tokens=8", "--model", str(run / "final"),
             "--benchmark", "arith", "--limit", "16", "--out", str(single), check=True)
    cmp = run_rlvr("eval", "--compare", str(out), str(single), check=True).stdout
    assert "| accuracy |" in cmp and "+0.0 pts" in cmp
