"""The public graders' test cases kept in tests/data/math_graders: each suite file is well formed and
attributed in SOURCES.md. (Agreement of the `math` verifier with them: benchmarks/math_grader_suites.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data" / "math_graders"
SUITES = sorted(DATA.glob("*.jsonl"))
FIELDS = {"pred", "gold", "expected", "note", "source_line", "options", "pred_is_completion"}


def test_there_are_at_least_three_suites():
    assert len(SUITES) >= 3, SUITES


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_suite_rows_have_the_documented_shape(path):
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert rows, f"{path.name} has no cases"
    for n, row in enumerate(rows, 1):
        where = f"{path.name}:{n}"
        assert isinstance(row, dict), where
        assert {"pred", "gold", "expected"} <= row.keys() <= FIELDS, (where, sorted(row))
        assert isinstance(row["expected"], bool), where
        # None only where the suite itself passes None (NeMo-Skills' `(0, None)`)
        assert all(isinstance(row[k], str) or row[k] is None for k in ("pred", "gold")), where
        assert row["pred"] is not None or row["gold"] is not None, where
        assert isinstance(row.get("note", ""), str) and isinstance(row.get("source_line", ""), str), where
        assert isinstance(row.get("options", {}), dict), where
        assert row.get("pred_is_completion", True) is True, where  # present only to say so
    # both verdicts occur: a suite of one kind could not tell a verifier that accepts everything
    assert {r["expected"] for r in rows} == {True, False}, path.name


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_suite_is_attributed_in_sources(path):
    """SOURCES.md has a table row for the file naming repo, path, a 40-hex commit and a license, and the
    case count it states is the file's."""
    rows = [line for line in (DATA / "SOURCES.md").read_text(encoding="utf-8").splitlines()
            if line.startswith(f"| `{path.name}` |")]
    assert len(rows) == 1, f"SOURCES.md: expected one table row for {path.name}"
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    _, repo, source, commit, license_, cases = cells[:6]
    assert "/" in repo and source and license_, cells
    assert len(commit.strip("`")) == 40 and all(c in "0123456789abcdef" for c in commit.strip("`")), cells
    count = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    assert int(cases) == count, f"SOURCES.md says {cases} cases for {path.name}, the file has {count}"


def test_benchmark_boxes_answers_but_not_whole_completions():
    """Boxed mode measures equivalence: a bare answer is boxed, but a pred the suite passes as a whole
    completion (`pred_is_completion`) is judged as written, as its grader is tested."""
    import importlib.util

    path = DATA.parents[2] / "benchmarks" / "math_grader_suites.py"
    spec = importlib.util.spec_from_file_location("suites", path)
    suites = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suites)
    assert suites.completion({"pred": "$x+1$"}, "boxed") == r"\boxed{x+1}"
    assert suites.completion({"pred": "$x+1$"}, "as-is") == "$x+1$"
    assert suites.completion({"pred": None}, "as-is") == ""
    whole = {"pred": "Therefore the answer is -3", "pred_is_completion": True}
    assert suites.completion(whole, "boxed") == "Therefore the answer is -3"
