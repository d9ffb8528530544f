import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_rlvr


def test_help_lists_every_subcommand():
    proc = run_rlvr("--help", check=True)
    for cmd in ("train", "generate", "verify", "quickstart", "sandbox"):
        assert cmd in proc.stdout
    for cmd in ("train", "generate", "quickstart"):
        sub = run_rlvr(cmd, "--help", check=True)
        assert f"usage: rlvr {cmd}" in sub.stdout


def test_console_script_is_installed():
    # the venv running the tests, wherever it lives (a worktree has no ./.venv of its own)
    exe = Path(sys.executable).parent / "rlvr"
    assert exe.exists(), f"no rlvr console script next to {sys.executable} (run `make setup`)"
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: rlvr" in done.stdout


def test_generate_rejects_a_missing_prompts_file(tmp_path):
    proc = run_rlvr("generate", "configs/generate_smollm2.yaml", "--prompts", str(tmp_path / "none.txt"),
                    "--out", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 2 and "prompts file not found" in proc.stderr


@pytest.mark.slow
def test_generate_answers_a_chat_prompt_with_smollm2(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "What is the capital of France?", "id": 7}) + "\n"
                       + json.dumps({"prompt": "What is 2 + 3?", "id": 8}) + "\n")
    out = tmp_path / "answers.jsonl"
    run_rlvr("generate", "configs/generate_smollm2.yaml", "--prompts", str(prompts), "--out", str(out),
             check=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [7, 8]  # the input row travels with its answer
    assert "Paris" in rows[0]["completion"]
    assert re.search(r"(?<![\d.])5(?![\d])", rows[1]["completion"]), rows[1]["completion"]  # 5, not 15 or 2.5
    assert all(r["finish_reason"] in ("eos", "length") and r["num_tokens"] > 0 for r in rows)
