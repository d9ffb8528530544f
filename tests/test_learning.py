"""Learning checks: slow, and run in CI like everything else."""
import json

import pytest

from tests.conftest import REPO, run_rlvr

pytestmark = pytest.mark.slow


def test_sft_arith_reaches_95_percent(tmp_path):
    """The issue's bar: a tiny model trained from scratch on 2-operand addition, >= 95% greedy exact match."""
    out = tmp_path / "sft"
    run_rlvr("train", str(REPO / "configs/sft_arith.yaml"), f"logging.out_dir={out}", "logging.progress=false",
             check=True, timeout=1200)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_accuracy"] >= 0.95, summary
    assert (out / "curves.png").stat().st_size > 10_000
    assert (out / "final" / "model.safetensors").is_file()


def test_quickstart_writes_its_report(tmp_path):
    out = tmp_path / "qs"
    proc = run_rlvr("quickstart", "--out", str(out), "--sft-steps", "40", check=True)
    summary = json.loads((out / "summary.json").read_text())
    assert {"sft_accuracy", "seconds"} <= set(summary)
    assert 0.0 <= summary["sft_accuracy"] <= 1.0
    assert "| SFT (40 steps) |" in (out / "report.md").read_text()
    assert "sft_accuracy=" in proc.stdout
