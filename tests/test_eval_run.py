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


# Code benchmarks: the rows reach the code verifier with their tests, through the shipped eval configs.
TWELVE_B = """n = input().strip()
m = input().strip()
digits = sorted(n)
first = next((i for i, c in enumerate(digits) if c != "0"), 0)
print("OK" if m == digits[first] + "".join(digits[:first] + digits[first + 1:]) else "WRONG_ANSWER")
"""


def test_mbpp_and_code_contests_solutions_pass_their_eval_judges():
    """Sanitized MBPP's reference solutions pass (fenced, as the eval config asks), a wrong one fails; a
    right stdin/stdout program for CodeContests' 12_B passes all 132 cases, one that always prints OK
    does not."""
    import verifiers
    from rlvr.config import DataConfig
    from rlvr.data import load_rows
    from rlvr.eval.benchmarks import judge_for
    from rlvr.eval.runner import open_judge

    mbpp = load_rows(DataConfig(), split="test", source="mbpp_sanitized", limit=3).rows
    completions = [f"```python\n{r['response']}\n```" for r in mbpp[:2]]
    completions.append(f"```python\n{mbpp[1]['response']}\n```")  # task 12's solution for task 13
    judge = judge_for("mbpp_sanitized", None, {}, None)
    with open_judge(judge, 30.0) as score:
        verdicts = score([verifiers.Sample.from_row(r, c) for r, c in zip(mbpp, completions)])
    assert [v.correct for v in verdicts] == [True, True, False], [v.reason for v in verdicts]

    contest = load_rows(DataConfig(), split="test", source="code_contests").rows[17]
    judge = judge_for("code_contests", None, {}, None)
    assert (judge.verifier, judge.options, judge.workers) == ("code", {"language": "python", "timeout": 4}, 0)
    with open_judge(judge, 30.0) as score:
        right, always_ok = score([verifiers.Sample.from_row(contest, f"```python\n{TWELVE_B}```"),
                                  verifiers.Sample.from_row(contest, "```python\nprint('OK')\n```")])
    assert right.correct and right.reason == "132/132 tests passed"
    assert not always_ok.correct and always_ok.reason == "12/132 tests passed"


def test_the_mbpp_eval_config_gives_pass_at_k_from_n_samples(tmp_path):
    """configs/eval_smollm2_mbpp.yaml with a random tiny model (its answers fail): 2 samples and a greedy
    answer per problem, pass@1 and pass@2, and every verdict counted over the problem's own asserts."""
    from rlvr.config import DataConfig, TinyModelConfig
    from rlvr.data import load_rows
    from rlvr.models import build_tiny_model

    model = build_tiny_model(TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                                             max_position_embeddings=1024), tmp_path / "model", seed=0)
    out = tmp_path / "eval"
    run_rlvr("eval", str(REPO / "configs/eval_smollm2_mbpp.yaml"), "generation.max_new_tokens=8",
             "eval.progress=false", "--model", model, "--limit", "2", "-k", "1,2", "--out", str(out),
             check=True)
    res = json.loads((out / "results.json").read_text())
    assert (res["benchmark"], res["split"], res["problems"]) == ("mbpp_sanitized", "test", 2)
    assert (res["samples_per_problem"], res["k"], res["verifier"]["name"]) == (2, [1, 2], "code")
    assert set(res["metrics"]) >= {"accuracy", "pass@1", "pass@2"}
    rows = load_rows(DataConfig(), split="test", source="mbpp_sanitized", limit=2).rows
    gens = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 2 * 3 and {g["id"] for g in gens} == {11, 12}
    for g in gens:
        if g["completion"].strip():
            assert g["reason"] == f"0/{len(rows[g['problem']]['tests'])} tests passed", g
        else:
            assert g["reason"] == "no program found in the completion"


def test_the_code_contests_eval_config_asks_for_a_stdin_program():
    from rlvr.config import load_config
    from rlvr.eval.runner import benchmark_of

    cfg = load_config(REPO / "configs/eval_smollm2_code_contests.yaml")
    assert (benchmark_of(cfg), cfg.eval.split) == ("code_contests", "test")
    assert cfg.model.name == "smollm2-135m-instruct"
    asked = cfg.eval.question_format.format(prompt="PROBLEM")
    assert asked.startswith("PROBLEM\n\n") and "standard input" in asked and "```python" in asked
