"""`rlvr eval` end to end with the tiny model: outputs, resume after SIGKILL, bad input, compare, prompts,
and the HumanEval glue (rows -> code verifier) with the reference solutions."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_rlvr

# Small and quick: a random tiny model answers arith with at most a few characters.
ARITH = ["--benchmark", "arith", "generation.max_new_tokens=6", "data.arith.test_size=64",
         "eval.progress=false"]


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_outputs_and_metrics(tiny_model_dir, tmp_path):
    out = tmp_path / "ev"
    proc = run_rlvr("eval", "eval.k=[1,2]", "generation.temperature=1.0", *ARITH[2:], "--model", tiny_model_dir,
                    "--benchmark", "arith", "--limit", "12", "--out", str(out), check=True)
    gens = lines(out / "generations.jsonl")
    assert len(gens) == 12 * 3  # greedy + 2 samples per problem
    assert {(g["mode"], g["sample"]) for g in gens} == {("greedy", 0), ("sample", 0), ("sample", 1)}
    assert all(set(g) >= {"completion", "correct", "reward", "reason", "reference", "finish_reason"} for g in gens)
    res = json.loads((out / "results.json").read_text())
    m = res["metrics"]
    assert set(m) == {"accuracy", "pass@1", "pass@2", "maj@2", "mean_reward", "mean_tokens", "truncated"}
    greedy = [g for g in gens if g["mode"] == "greedy"]
    assert m["accuracy"] == pytest.approx(sum(g["correct"] for g in greedy) / 12)
    assert m["truncated"] == pytest.approx(sum(g["finish_reason"] == "length" for g in gens) / len(gens))
    assert res["verifier"] == {"name": "math", "options": {"last_number_fallback": True}}
    assert "| accuracy |" in (out / "results.md").read_text() and "| accuracy |" in proc.stdout


def test_killed_eval_continues_where_it_stopped(tiny_model_dir, tmp_path):
    out = tmp_path / "ev"
    args = ["eval", *ARITH, "generation.max_new_tokens=32", "eval.chunk=2", "--model", tiny_model_dir,
            "--limit", "16", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "rlvr", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gens = out / "generations.jsonl"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if gens.is_file() and len(gens.read_text().splitlines()) >= 4:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the eval ended before it could be killed"
    before = gens.read_text().splitlines()
    assert 4 <= len(before) < 16 and not (out / "results.json").exists()

    run_rlvr(*args, check=True)
    after = gens.read_text().splitlines()
    assert after[: len(before)] == before  # kept, not redone
    assert sorted(json.loads(x)["problem"] for x in after) == list(range(16))
    timing = lines(out / "timing.jsonl")
    assert {i for t in timing for i in t["ids"]} == set(range(16))

    # a finished eval is only re-reported; a longer limit generates only the new problems
    run_rlvr(*args[:-4], "--limit", "18", "--out", str(out), check=True)
    assert len(gens.read_text().splitlines()) == 18
    assert json.loads((out / "results.json").read_text())["problems"] == 18


def test_other_settings_in_the_same_folder_are_refused(tiny_model_dir, tmp_path):
    out = tmp_path / "ev"
    run_rlvr("eval", *ARITH, "--model", tiny_model_dir, "--limit", "2", "--out", str(out), check=True)
    proc = run_rlvr("eval", *ARITH, "generation.max_new_tokens=9", "--model", tiny_model_dir, "--limit", "2",
                    "--out", str(out))
    assert proc.returncode == 2
    assert "generation.max_new_tokens" in proc.stderr and proc.stderr.count("\n") == 1
    fresh = run_rlvr("eval", *ARITH, "generation.max_new_tokens=9", "--model", tiny_model_dir, "--limit", "2",
                     "--out", str(out), "--fresh")
    assert fresh.returncode == 0, fresh.stderr


def test_bad_input_is_one_line(tiny_model_dir, tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "1+1", "answer": "2"}\n')
    cases = [
        (["--model", tiny_model_dir, "--benchmark", str(data)], "verifier.name"),
        (["--model", tiny_model_dir, "--benchmark", str(data), "--verifier", "math"], "missing field 'prompt'"),
        (["--model", tiny_model_dir, "--benchmark", "arith", "--verifier", "nosuch"], "unknown verifier"),
        (["--model", tiny_model_dir], "--benchmark"),
        (["--compare", str(tmp_path), str(tmp_path)], "results.json not found"),
    ]
    for args, expected in cases:
        proc = run_rlvr("eval", *args, "--out", str(tmp_path / "o"))
        assert proc.returncode == 2, proc.stderr
        assert expected in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_file_benchmark_with_field_names_and_compare(tiny_model_dir, tmp_path, capsys):
    """In this process (the command's own entry point), to spare two interpreter start-ups."""
    from rlvr.cli import main

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(5)))
    common = ["data.fields.prompt=question", "data.fields.reference=answer", "generation.max_new_tokens=4",
              "eval.progress=false", "--model", tiny_model_dir, "--benchmark", str(data), "--verifier", "math"]
    assert main(["eval", *common, "--out", str(tmp_path / "a")]) == 0
    assert main(["eval", *common, "--limit", "3", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "results.json").read_text())["problems"] == 3
    capsys.readouterr()
    assert main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    shown = capsys.readouterr().out
    assert "| metric | A | B | B - A |" in shown and "| accuracy |" in shown
    assert "not over the same problems" in shown


def test_math500_breaks_down_by_subject_and_level(tiny_model_dir, tmp_path):
    """The tiny model cannot read MATH problems (its prompt here is a fixed sum), but every row keeps
    its subject and level, so the breakdown covers the problems evaluated."""
    from rlvr.cli import main

    out = tmp_path / "m"
    assert main(["eval", "data.template=plain", "data.prompt_format=1+1=", "generation.max_new_tokens=3",
                 "eval.progress=false", "--model", tiny_model_dir, "--benchmark", "math500", "--limit", "8",
                 "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    from rlvr.config import DataConfig
    from rlvr.data import load_rows

    rows = load_rows(DataConfig(), split="test", source="math500", limit=8).rows
    assert res["by_subject"].keys() == {r["subject"] for r in rows}
    assert sum(g["n"] for g in res["by_level"].values()) == 8
    assert "## By subject" in (out / "results.md").read_text()


def test_few_shot_prompts(tiny_model_dir):
    from rlvr.config import DataConfig
    from rlvr.config.eval import FewShotSettings
    from rlvr.eval.prompts import render_with_examples
    from rlvr.models import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    shots = [{"prompt": "1+1", "response": "2"}, {"prompt": "2+2", "response": "4"}]
    chat = render_with_examples(tok, "3+3", DataConfig(template="chat"), shots, FewShotSettings(count=2))
    assert chat == "<|user|>1+1<|assistant|>2</s><|user|>2+2<|assistant|>4</s><|user|>3+3<|assistant|>"
    plain = render_with_examples(tok, "3+3", DataConfig(template="plain", prompt_format="{prompt}="), shots,
                                 FewShotSettings(count=2, example_format="{prompt}={response}"))
    assert plain == "1+1=2\n\n2+2=4\n\n3+3="
    wrapped = render_with_examples(tok, "3+3", DataConfig(template="chat"), shots[:1], FewShotSettings(count=1),
                                   question_format="({prompt})")
    assert wrapped == "<|user|>(1+1)<|assistant|>2</s><|user|>(3+3)<|assistant|>"
    zero = render_with_examples(tok, "3+3", DataConfig(template="chat"), [], FewShotSettings())
    assert zero == "<|user|>3+3<|assistant|>"


@pytest.mark.slow
def test_humaneval_reference_solutions_pass_and_a_wrong_one_fails():
    """The rows of HumanEval reach the code verifier with what it needs (prompt, test, entry_point): the
    canonical solutions pass, whether given as the bare body or as a fenced whole function."""
    import verifiers
    from rlvr.config import DataConfig
    from rlvr.data import load_rows
    from rlvr.eval.benchmarks import judge_for
    from rlvr.eval.runner import open_judge

    rows = load_rows(DataConfig(), split="test", source="humaneval", limit=3).rows
    completions = [rows[0]["response"],  # the body, as HumanEval's own completions are
                   "Here it is:\n```python\n" + rows[1]["prompt"] + rows[1]["response"] + "```\n",
                   "```python\ndef " + rows[2]["entry_point"] + "(*args):\n    return None\n```"]
    judge = judge_for("humaneval", None, {}, None)
    with open_judge(judge, 30.0) as score:
        verdicts = score([verifiers.Sample(prompt=r["prompt"], completion=c, fields=r)
                          for r, c in zip(rows, completions)])
    assert [v.correct for v in verdicts] == [True, True, False], [v.reason for v in verdicts]
