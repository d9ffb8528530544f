"""rlvr's `math` verifier against the public math graders' own test cases (tests/data/math_graders).

Each suite file holds (pred, gold, expected) cases exactly as the grader's test suite states them
(SOURCES.md there: repo, path, commit, license). Every case is judged twice:
  - as-is: the completion is `pred` unchanged (a bare answer such as `-5`, or text such as
    `Answer $ 9 $`), the reference is `gold` unchanged;
  - boxed: the completion is `\\boxed{pred}` (one enclosing `$...$`, `$$...$$`, `\\(...\\)` or `\\[...\\]`
    around the whole pred removed first), so only equivalence is measured, not answer extraction; a pred
    that already holds a `\\boxed` is given as it is (boxing a worked solution measures nothing), and so is
    one the suite marks `pred_is_completion` (its grader is tested on whole completions there).
The headline mode of a suite is the one its grader is tested in: these graders compare answers already
extracted, so boxed (a suite whose tests pass whole completions would go in HEADLINE as as-is).

    python benchmarks/math_grader_suites.py [--suites a,b] [--mode as-is|boxed|both]
    python benchmarks/math_grader_suites.py --diff SUITE [--mode ...]   # every disagreement, with reasons
    python benchmarks/math_grader_suites.py --json out.json             # every verdict, for analysis

Table columns: cases, agreed, correct answers rejected (expected true, rlvr false), wrong answers
accepted (expected false, rlvr true).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's verifiers, not the installed copy

from verifiers import Sample, load

DATA = REPO / "tests" / "data" / "math_graders"
HEADLINE: dict[str, str] = {"areal": "as-is"}  # suite -> mode, where not boxed (AReaL grades completions)
MODES = ("as-is", "boxed")
WHOLE_MATH = re.compile(r"^\s*(?:\$\$(.*)\$\$|\$(.*)\$|\\\((.*)\\\)|\\\[(.*)\\\])\s*$", re.DOTALL)


def suite_names() -> list[str]:
    return sorted(p.stem for p in DATA.glob("*.jsonl"))


def read_suite(name: str) -> list[dict]:
    path = DATA / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def headline(name: str) -> str:
    return HEADLINE.get(name, "boxed")


def unwrap_math(pred: str) -> str:
    """`$x$` -> `x` when one math span is the whole pred (`$1$ and $2$` is left as it is)."""
    m = WHOLE_MATH.match(pred)
    if not m:
        return pred
    inner = next(g for g in m.groups() if g is not None)
    return pred if re.search(r"\$|\\\(|\\\[", inner) else inner.strip()


def completion(case: dict, mode: str) -> str:
    """What rlvr is given as the model's completion; a pred the suite gives as None is an empty text."""
    text = "" if case["pred"] is None else str(case["pred"])
    if mode == "as-is" or "\\boxed" in text or case.get("pred_is_completion"):
        return text
    inner = unwrap_math(text)
    # a pred ending in a lone backslash (`185\\`) would escape the box's closing brace
    return f"\\boxed{{{inner} }}" if inner.endswith("\\") else f"\\boxed{{{inner}}}"


def judge_suite(verifier, cases: list[dict], mode: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """One verdict per case: the case plus rlvr's `accepted`, `reason`, `extracted`."""
    out = []
    for case in cases:
        score = verifier.verify(Sample(completion=completion(case, mode), reference=case["gold"]))
        out.append({**case, "mode": mode, "accepted": bool(score.correct), "reason": score.reason,
                    "extracted": score.details.get("extracted")})
    return out


def tally(verdicts: list[dict]) -> dict:
    rejected = sum(v["expected"] and not v["accepted"] for v in verdicts)
    accepted = sum(v["accepted"] and not v["expected"] for v in verdicts)
    return {"cases": len(verdicts), "agreed": len(verdicts) - rejected - accepted,
            "correct_rejected": rejected, "wrong_accepted": accepted}


def print_table(rows: list[tuple[str, str, dict, float]]) -> None:
    print(f"{'suite':<16} {'mode':<6} {'cases':>5} {'agreed':>7} {'%':>6} {'correct rejected':>17} "
          f"{'wrong accepted':>15} {'s':>6}")
    for name, mode, t, seconds in rows:
        mark = "*" if mode == headline(name) else " "
        pct = 100 * t["agreed"] / t["cases"] if t["cases"] else 0.0
        print(f"{name:<16} {mode:<5}{mark} {t['cases']:>5} {t['agreed']:>7} {pct:>5.1f}% "
              f"{t['correct_rejected']:>17} {t['wrong_accepted']:>15} {seconds:>6.2f}")
    print("* headline mode of the suite (see the module docstring)")


def print_diff(verdicts: list[dict]) -> None:
    for v in verdicts:
        if v["accepted"] == v["expected"]:
            continue
        kind = "CORRECT REJECTED" if v["expected"] else "WRONG ACCEPTED"
        print(f"[{kind}] {v.get('source_line', '')} ({v['mode']})")
        print(f"  pred:     {v['pred']!r}")
        print(f"  gold:     {v['gold']!r}")
        print(f"  rlvr:     {v['reason']} (extracted {v['extracted']!r})")
        if v.get("note"):
            print(f"  note:     {v['note']}")
        if v.get("options"):
            print(f"  options:  {v['options']} (the suite runs this case with a non-default grader option)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suites", help="comma-separated suite names (default: every file in the data folder)")
    p.add_argument("--mode", choices=(*MODES, "both", "headline"), default="both")
    p.add_argument("--diff", metavar="SUITE", help="list every disagreement of this suite")
    p.add_argument("--json", type=Path, help="write every verdict here")
    args = p.parse_args(argv)
    names = [args.diff] if args.diff else (args.suites.split(",") if args.suites else suite_names())
    unknown = [n for n in names if n not in suite_names()]
    if unknown:
        p.error(f"unknown suite(s) {unknown}; have {suite_names()}")
    verifier = load("math")
    verifier.warmup()
    rows, everything = [], []
    for name in names:
        cases = read_suite(name)
        modes = {"both": MODES, "headline": (headline(name),)}.get(args.mode, (args.mode,))
        for mode in modes:
            start = time.perf_counter()
            verdicts = [{**v, "suite": name} for v in judge_suite(verifier, cases, mode)]
            rows.append((name, mode, tally(verdicts), time.perf_counter() - start))
            everything += verdicts
    if args.diff:
        print_diff(everything)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(everything, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
