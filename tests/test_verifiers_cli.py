"""`rlvr verify`: scoring a jsonl file, errors, and the audit mode (real subprocesses, real files)."""
import argparse
import json
import os
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rlvr.atomic import atomic_open
from rlvr.cli.verify import (
    NEEDS,
    check_ranges,
    lacks,
    output_row,
    parse_options,
    read_rows,
    to_json,
    to_sample,
)
from rlvr.errors import UserError
from verifiers import Score
from verifiers import load as load_verifier
from verifiers.audit import (
    build_cases,
    format_report,
    perturbations,
    read_gold,
    resolve_data,
    rewrites,
    summarize,
)
from verifiers.base import failure

REPO = Path(__file__).resolve().parents[1]


def rlvr(*args):
    return subprocess.run([sys.executable, "-m", "rlvr", *args], capture_output=True, text=True, cwd=REPO)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_parse_options_yaml_scalars():
    assert parse_options(["k=3", "b=true", "f=1e-3", "g=0.5", "s=abc", "e="]) == {
        "k": 3, "b": True, "f": 0.001, "g": 0.5, "s": "abc", "e": ""}
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_options(["novalue"])


def test_rows_to_samples_and_back():
    row = {"prompt": "p", "completion": "c", "reference": "r", "tests": ["assert f()"], "id": 7}
    sample = to_sample(row)
    assert (sample.prompt, sample.completion, sample.reference) == ("p", "c", "r")
    assert sample.fields == {"tests": ["assert f()"], "id": 7}
    out = output_row(row, Score(reward=1.0, correct=True, reason="ok", details={"passed": 3}), 0.25)
    assert out == {**row, "reward": 1.0, "correct": True, "reason": "ok", "seconds": 0.25, "passed": 3}
    # a sample the verifier raised on has no verdict: null, not a zero that reads as "wrong"
    out = output_row(row, failure("exception", "exception: KeyError: 'x'"), 0.5)
    assert (out["reward"], out["correct"], out["status"]) == (None, None, "exception")
    assert output_row(row, failure("timeout", "timeout"), 0.5)["reward"] == 0.0  # a timeout is a verdict


def test_rows_without_what_the_verifier_needs():
    math, code = NEEDS["math"], NEEDS["code"]
    assert [lacks(r, math) for r in ({}, {"reference": None}, {"reference": " "}, {"reference": 0},
                                     {"reference": "7"})] == [True, True, True, False, False]
    assert [lacks(r, code) for r in ({"entry_point": "f"}, {"tests": []}, {"tests": ["assert 1"]},
                                     {"test": "def check(c): ...", "entry_point": "f"}, {"cases": [{}]})] == [
        True, True, False, False, False]
    assert not lacks({}, NEEDS.get("format"))  # a verifier that judges the completion alone needs nothing


@pytest.mark.parametrize("workers,timeout,error", [
    (-1, 5.0, r"--workers -1: expected 0"), (10**6, 5.0, r"--workers 1000000: expected 0"),
    (2, 0.0, r"--timeout 0: expected"), (2, -1.0, r"--timeout -1: expected"),
    (2, float("nan"), r"--timeout nan: expected"), (2, float("inf"), r"--timeout inf: expected"),
    (2, 1e9, r"--timeout 1e\+09: expected"),
])
def test_range_checks(workers, timeout, error):
    with pytest.raises(UserError, match=error):
        check_ranges(argparse.Namespace(workers=workers, timeout=timeout))
    check_ranges(argparse.Namespace(workers=0, timeout=0.01))
    check_ranges(argparse.Namespace(workers=64, timeout=86400))


def test_to_json_keeps_a_lone_surrogate():
    row = {"completion": "\ud800 x", "note": "caf\u00e9"}
    line = to_json(row)
    assert json.loads(line) == row and line.encode("utf-8")
    assert to_json({"note": "caf\u00e9"}) == '{"note": "caf\u00e9"}'  # readable text stays readable


def test_atomic_open_is_whole_or_nothing(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    path.chmod(0o640)
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as f:
        f.write("half")
        raise KeyboardInterrupt
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    with atomic_open(path) as f:
        f.write("new\n")
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    with atomic_open(link) as f:
        f.write("via link\n")
    assert link.is_symlink() and path.read_text() == "via link\n"
    umask = os.umask(0o022)
    os.umask(umask)
    with atomic_open(tmp_path / "sub" / "fresh.jsonl") as f:  # a missing folder is created
        f.write("x")
    assert stat.S_IMODE((tmp_path / "sub" / "fresh.jsonl").stat().st_mode) == 0o666 & ~umask


def test_atomic_open_refuses_bad_paths_before_the_work(tmp_path):
    (tmp_path / "f").write_text("x")
    for bad, error in [(tmp_path, "is a folder"), (tmp_path / "f" / "o.jsonl", "f is a file, not a folder"),
                       (tmp_path / "f" / "a" / "o.jsonl", "f is a file, not a folder")]:
        with pytest.raises(OSError, match=error), atomic_open(bad):
            raise AssertionError("the block ran: the check came too late")
    assert (tmp_path / "f").read_text() == "x"


def test_atomic_open_writes_a_fifo_in_place(tmp_path):
    """A path that is no regular file (a fifo, /dev/null) is written, never renamed over."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    with atomic_open(fifo) as f:
        f.write("through\n")
    reader.join(timeout=10)
    assert got == ["through\n"] and stat.S_ISFIFO(fifo.stat().st_mode)


def test_read_rows_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"completion": "a", "reference": "1"}\n{not json\n')
    with pytest.raises(UserError, match=r"bad.jsonl line 2: not valid JSON"):
        read_rows(bad)
    bad.write_text('{"reference": "1"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl line 1: .*'completion'"):
        read_rows(bad)
    with pytest.raises(UserError, match=r"cannot read .*missing\.jsonl: No such file"):
        read_rows(tmp_path / "missing.jsonl")


@pytest.mark.slow
def test_verify_scores_a_file_in_order(tmp_path):
    rows = [
        {"completion": r"so \boxed{\frac{1}{2}}", "reference": "0.5", "id": "a"},
        {"completion": "#### 18", "reference": "Janet...\n#### 18", "id": "b"},
        {"completion": r"\boxed{3}", "reference": "4", "id": "c"},
        {"completion": r"\boxed{9^{9^{9^{9}}}}", "reference": "1", "id": "d"},
    ]
    src, dst = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    out = rlvr("verify", "math", "--input", str(src), "--output", str(dst), "--workers", "2",
               "--timeout", "3", "--option", "rel_tol=1e-6")
    assert out.returncode == 0, out.stderr
    assert "accuracy 0.5000" in out.stderr and "timeouts 0" in out.stderr
    scored = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [r["id"] for r in scored] == ["a", "b", "c", "d"]
    assert [r["reward"] for r in scored] == [1.0, 1.0, 0.0, 0.0]
    assert all({"correct", "reason", "seconds", "extracted"} <= set(r) for r in scored)


def test_verify_bad_input_is_one_line_error(tmp_path):
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"completion": "x", "reference": "1"}\n[1, 2]\n')
    out = rlvr("verify", "math", "--input", str(bad), "--output", str(tmp_path / "o.jsonl"), "--workers", "0")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"rlvr: error: {bad} line 2: expected a JSON object, got list"]


def test_verify_unknown_option_is_one_line_error(tmp_path):
    out = rlvr("verify", "math", "--input", "x", "--output", "y", "--option", "tolerance=3")
    assert out.returncode == 2
    assert "no option 'tolerance'" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_audit_reports_rates_and_writes_json(tmp_path):
    data = write_jsonl(tmp_path / "gold.jsonl", [
        {"answer": "Sam has 3.\n#### 3"},
        {"problem": "?", "solution": r"It is $\boxed{\frac{1}{2}}$.", "answer": r"\frac{1}{2}"},
        {"reference": "7", "completion": "the answer is 7"},
    ])
    report = tmp_path / "report.json"
    out = rlvr("verify", "math", "--audit", str(data), "--report", str(report), "--workers", "0")
    assert out.returncode == 0, out.stderr
    assert "false-accept rate 0.0000" in out.stdout and "false-reject rate 0.0000" in out.stdout
    saved = json.loads(report.read_text())
    assert saved["by_kind"]["gold"]["cases"] == 3 + 2 + 2
    assert saved["false_accepts"] == 0 and saved["false_rejects"] == 0


def test_audit_finds_a_lenient_verifier(tmp_path):
    """The audit must be able to fail: a format check passes everything, so it false-accepts."""
    data = write_jsonl(tmp_path / "gold.jsonl", [{"reference": "7"}])
    report = tmp_path / "r.json"
    out = rlvr("verify", "format", "--option", "pattern=.", "--audit", str(data), "--report", str(report),
               "--workers", "0")
    assert out.returncode == 0, out.stderr
    saved = json.loads(report.read_text())
    assert saved["false_accept_rate"] == 1.0 and saved["examples"]["false_accept"]


def test_audit_data_names_and_perturbations():
    assert resolve_data("gsm8k").name == "test.jsonl" and resolve_data("math500").name == "math500_test.jsonl"
    assert resolve_data("x/y.jsonl") == Path("x/y.jsonl")
    assert perturbations("18") == ["19", "-18"]
    assert perturbations(r"\frac{1}{2}") == [r"\frac{1}{3}", r"-(\frac{1}{2})"]
    assert perturbations("(1,2)") == ["(1,3)"]
    assert perturbations(r"\text{Evelyn}") == []
    assert perturbations("0") == ["1"]


def test_audit_reader_errors_name_the_line(tmp_path):
    bad = write_jsonl(tmp_path / "g.jsonl", [{"reference": "1"}, {"question": "?"}])
    with pytest.raises(ValueError, match=r"g.jsonl:2: expected"):
        read_gold(bad)
    cases = build_cases(read_gold(write_jsonl(tmp_path / "ok.jsonl", [{"reference": "5"}])))
    assert [(c.kind, c.expect, c.sample.completion) for c in cases] == [
        ("gold", True, r"\boxed{5}"),
        ("rewritten", True, r"\boxed{5.0}"),
        ("rewritten", True, r"\boxed{x = 5}"),
        ("perturbed", False, r"\boxed{6}"),
        ("perturbed", False, r"\boxed{-5}"),
        ("hedging", False, r"It is \boxed{5} or maybe \boxed{6}."),
    ]


def test_rewrites_are_equivalent_spellings():
    assert rewrites(r"\frac{3}{8}") == ["3/8", "0.375", r"\dfrac{3}{8}"]
    assert rewrites("1, 2") == ["2, 1"]
    assert rewrites("58,500") == []  # a thousands separator, not a list


def test_audit_reads_olympiadbench_final_answers_and_units(tmp_path):
    """OlympiadBench: `final_answer` is a list of LaTeX strings (one may hold `$69$,$84$`), the
    reference is the list joined; a row with a `unit` also gets a gold completion with the unit."""
    data = write_jsonl(tmp_path / "ob.jsonl", [
        {"final_answer": ["$69$,$84$"], "unit": None, "solution": ["We find 69 and 84."]},
        {"final_answer": ["45"], "unit": "minute", "solution": ["It takes 45 minutes."]},
        {"final_answer": ["$3$", "$5$"], "unit": "$cm^2$", "solution": []},
        {"final_answer": ["$221,$8$"], "unit": None},  # a stray `$`, as in the data set
        {"final_answer": ["$f(x)=x$, where $x$ is real"], "unit": None},
    ])
    items = read_gold(data)
    assert [i.reference for i in items][:3] == ["$69$,$84$", "45", "$3$, $5$"]
    assert items[3].completions == [r"The answer is \boxed{221,8}."]
    assert items[4].completions == [r"The answer is \boxed{f(x)=x, where x is real}."]
    assert items[0].completions == [r"The answer is \boxed{69, 84}."]
    assert items[1].completions == [
        r"The answer is \boxed{45}.", r"The answer is \boxed{45\ \mathrm{minute}}."]
    assert items[2].completions[1] == r"The answer is \boxed{3\ \mathrm{cm^2}, 5\ \mathrm{cm^2}}."
    cases = build_cases(items)
    assert ("rewritten", r"\boxed{84, 69}") in [(c.kind, c.sample.completion) for c in cases if c.row == 1]
    verifier = load_verifier("math")
    gold = [c for c in cases if c.kind == "gold" and c.row < 5]  # row 5: prose, no verifier's business
    assert [verifier.verify(c.sample).correct for c in gold] == [True] * len(gold)


def test_audit_json_number_answers_and_leading_zeros(tmp_path):
    """AIME25/AMC23 store answers as JSON numbers (70.0 is the integer 70); AIME24 as strings that
    may carry leading zeros (`073`): the bare integer is an equivalent spelling the audit must try."""
    rows = [{"answer": 70.0}, {"answer": 27}, {"answer": "073", "solution": "x"}]
    data = write_jsonl(tmp_path / "a.jsonl", rows)
    items = read_gold(data)
    assert [i.reference for i in items] == ["70.0", "27", "073"]
    rewritten = [(c.row, c.sample.completion) for c in build_cases(items) if c.kind == "rewritten"]
    assert (1, r"\boxed{70}") in rewritten and (3, r"\boxed{73}") in rewritten
    assert rewrites("70.0")[0] == "70" and rewrites("-3.00")[0] == "-3" and rewrites("073")[0] == "73"
    assert rewrites("0")[0] == "0.0" and rewrites("0.0")[0] == "0" and rewrites("-007")[0] == "-7"
    assert "70" not in rewrites("70.5") and "3" not in rewrites("30")


def test_rewrites_write_e_notation_as_a_power_of_ten():
    """Minerva's references are often e-notation (`4.5e33`); a model writes `4.5 \\times 10^{33}`."""
    assert rewrites("4.5e33")[0] == r"4.5 \times 10^{33}"
    assert rewrites("1e-5")[0] == r"1 \times 10^{-5}"
    assert rewrites("-2.7778E+6")[0] == r"-2.7778 \times 10^{6}"
    assert not any("times" in r for r in rewrites("e3")) and not any("times" in r for r in rewrites("3e"))


def test_audit_prefers_the_answer_field_to_the_worked_solution(tmp_path):
    """Where a row has both, `answer` is the gold: a solution with no box, or with boxes that differ
    (AIME24's concatenated AoPS solutions box `073` and `\\textbf{(073)}`), is no gold completion."""
    data = write_jsonl(tmp_path / "s.jsonl", [
        {"answer": "204", "solution": "so $180 + 24 = 204$."},
        {"answer": "073", "solution": r"$\boxed{073}$. Another way: $d = \boxed{\textbf{(073)}}$."},
        {"answer": "5", "solution": r"so $\boxed{5}$, again $\boxed{ 5 }$"},
    ])
    items = read_gold(data)
    assert [i.reference for i in items] == ["204", "073", "5"]
    assert [len(i.completions) for i in items] == [1, 1, 2]
    assert items[2].completions[0].startswith("so ")
    assert [i.skipped for i in items] == [
        "solution has no \\boxed{}", "solution boxes 2 different answers", ""]


def test_audit_report_counts_each_kind(tmp_path):
    """Per kind, the report says how many verdicts were right: gold/rewritten accepted, the rest rejected."""
    rows = [{"answer": "204", "solution": "no box"}, {"reference": "7"}]
    items = read_gold(write_jsonl(tmp_path / "r.jsonl", rows))
    cases = build_cases(items)
    verifier = load_verifier("math")
    scores = [verifier.verify(c.sample) for c in cases]
    scores[0] = Score(reward=0.0, correct=False, reason="forced")
    report = summarize(cases, scores, 0.1, items=items)
    assert report["by_kind"]["gold"] == {"cases": 2, "errors": 1, "as_expected": 1}
    assert report["solutions_skipped"] == 1
    text = format_report(report)
    assert re.search(r"gold +1/2 accepted", text) and re.search(r"perturbed +4/4 rejected", text)
    assert "solutions left out (no box, or boxes that differ): 1" in text


def test_audit_names_the_math_eval_files():
    for name in ("aime24", "aime25", "amc23", "minerva_math", "olympiadbench"):
        assert resolve_data(name).parts[-2:] == ("math_eval", f"{name}.jsonl")
