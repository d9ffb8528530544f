"""Audit a verifier against gold answers: what it must accept and what it must reject.

For every problem of a data set the audit builds
  - gold completions (must accept): the row's own worked solution, `\\boxed{answer}`, and for GSM8K
    `#### answer`;
  - perturbed answers (must reject): the last number + 1, a fraction with denominator + 1, a sign flip;
  - rewritten answers (must accept): the gold answer in another equivalent notation (a/b for
    \\frac{a}{b}, a terminating decimal, \\dfrac, `x = answer`, a reordered list, \\left( \\right));
  - a hedging completion (must reject): the gold answer and a perturbed one, both boxed;
and reports the false-accept and false-reject rates with examples.

Data (a minimal reader of its own; rlvr.data is the general one): a jsonl file of rows holding either
  - MATH style: `answer` (LaTeX, or a JSON number as in AIME25/AMC23: 70.0) and optionally `solution`,
    or
  - GSM8K style: `answer` with the final value after `####` on its last line, or
  - MATH train / Minerva style: only `solution`, the answer being its last \\boxed{}, or
  - OlympiadBench style: `final_answer`, a list of LaTeX strings (joined with ", " as the reference),
    and optionally `unit`, or
  - plain: `reference` and optionally `completion` (a completion that must be accepted);
or one of the names in DATA_FILES.

Where a row has both an answer and a worked solution, the answer is the gold: the solution is a gold
completion only when it boxes one answer (AIME24's solutions are several AoPS write-ups run together,
some with no box, some boxing `073` and `\\textbf{(073)}`: a completion like that is hedging).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from verifiers.base import Sample, Score
from verifiers.math_extract import boxed_contents, hash_answer

DATA_ROOT = Path(os.environ.get("RLVR_SHARED_DATA", "/work/shared/data"))
DATA_FILES = {
    "gsm8k": "gsm8k/test.jsonl",
    "math500": "math/math500_test.jsonl",
    **{name: f"math_eval/{name}.jsonl"
       for name in ("aime24", "aime25", "amc23", "minerva_math", "olympiadbench")},
}
DOLLAR = re.compile(r"(?<!\\)\$")
MATH_SEGMENTS = re.compile(r"\s*\$[^$]*\$(?:\s*,\s*\$[^$]*\$)*\s*")
LAST_NUMBER = re.compile(r"\d+(?:\.\d+)?(?!.*\d)", re.DOTALL)
FRACTION = re.compile(r"\\frac\{([^{}]*)\}\{(\d+)\}")
NOT_FLIPPABLE = re.compile(r"[,=]|\\in|\\text|\\begin|\\cup|\\le|\\ge|<|>|\\pm")


@dataclass
class GoldItem:
    """One problem: its reference answer and completions that must be accepted."""

    reference: str
    completions: list[str] = field(default_factory=list)
    row: int = 0
    latex: str = ""  # the answer as a model would box it (the reference less its `$`); default: reference
    skipped: str = ""  # why the row's worked solution is not a gold completion, if it is not

    def __post_init__(self) -> None:
        self.latex = self.latex or self.reference


@dataclass
class Case:
    """One verifier call of the audit and the verdict it must get."""

    kind: str  # gold / perturbed / hedging
    expect: bool
    sample: Sample
    row: int


def resolve_data(name_or_path: str) -> Path:
    """`gsm8k` / `math500` -> the shared test file; anything else is taken as a path."""
    if name_or_path in DATA_FILES:
        return DATA_ROOT / DATA_FILES[name_or_path]
    return Path(name_or_path)


def read_gold(path: Path) -> list[GoldItem]:
    """Gold items of a jsonl file (formats in the module docstring); ValueError names file:line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ValueError(f"cannot read audit data {path}: {e.strerror}") from None
    items = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        item = _gold_item(row, n)
        if item is None:
            raise ValueError(
                f"{path}:{n}: expected a JSON object with 'answer' (MATH or GSM8K style), 'reference', "
                "'final_answer' (a list of strings) or a 'solution' with a \\boxed{}"
            )
        items.append(item)
    return items


def _gold_item(row: object, n: int) -> GoldItem | None:
    if not isinstance(row, dict):
        return None
    if "reference" in row:
        ref = str(row["reference"])
        extra = [row["completion"]] if isinstance(row.get("completion"), str) else []
        return GoldItem(ref, extra + [f"\\boxed{{{ref}}}"], n)
    if "final_answer" in row:
        return _olympiad_item(row, n)
    if "answer" not in row:
        boxes = boxed_contents(row["solution"]) if isinstance(row.get("solution"), str) else []
        if not boxes:
            return None
        return GoldItem(boxes[-1], [row["solution"], f"The answer is \\boxed{{{boxes[-1]}}}."], n)
    answer = str(row["answer"])
    if "####" in answer:
        ref = hash_answer(answer) or ""
        return GoldItem(ref, [answer, f"#### {ref}", f"The answer is \\boxed{{{ref}}}."], n)
    solution, skipped = _solution_completion(row.get("solution"))
    return GoldItem(answer, solution + [f"The answer is \\boxed{{{answer}}}."], n, skipped=skipped)


def _solution_completion(solution: object) -> tuple[list[str], str]:
    """([solution], "") when the worked solution boxes exactly one answer, else ([], why not)."""
    if not isinstance(solution, str):
        return [], ""
    boxes = {b.strip() for b in boxed_contents(solution)}
    if not boxes:
        return [], "solution has no \\boxed{}"
    if len(boxes) > 1:
        return [], f"solution boxes {len(boxes)} different answers"
    return [solution], ""


def _math_parts(answer: str) -> list[str]:
    """`$69$,$84$` -> ["69", "84"]; anything else (prose around math, a stray `$`) -> itself less its `$`."""
    if MATH_SEGMENTS.fullmatch(answer):
        return [m.strip() for m in re.findall(r"(?<!\\)\$([^$]*)\$", answer)]
    return [DOLLAR.sub("", answer).strip()]


def _olympiad_item(row: dict, n: int) -> GoldItem | None:
    """OlympiadBench: the list of final answers joined; with a unit, also a completion carrying it."""
    answers = row["final_answer"]
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        return None
    parts = [part for a in answers for part in _math_parts(a)]
    latex = ", ".join(parts)
    completions = [f"The answer is \\boxed{{{latex}}}."]
    unit = DOLLAR.sub("", row["unit"]).strip() if isinstance(row.get("unit"), str) else ""
    if unit:
        with_unit = ", ".join(f"{p}\\ \\mathrm{{{unit}}}" for p in parts)
        completions.append(f"The answer is \\boxed{{{with_unit}}}.")
    return GoldItem(", ".join(answers), completions, n, latex=latex)


def plus_one(answer: str) -> str | None:
    """The last number of the answer increased by 1 (`\\frac{1}{2}` -> `\\frac{1}{3}`, `x^2` -> `x^3`)."""
    m = LAST_NUMBER.search(answer)
    if m and answer[: m.start()].rstrip().endswith("^") and re.search(r"\\(?:text|mbox)", answer):
        m = LAST_NUMBER.search(answer[: m.start()])  # `cm^2`: the unit's power is not the answer
    if not m:
        return None
    text = m.group(0)
    bumped = str(int(text) + 1) if "." not in text else _bump_decimal(text)
    return answer[: m.start()] + bumped + answer[m.end() :]


def _bump_decimal(text: str) -> str:
    whole, frac = text.split(".")
    return f"{int(whole) + 1}.{frac}"


def change_fraction(answer: str) -> str | None:
    """The first \\frac{a}{b} becomes \\frac{a}{b+1}."""
    m = FRACTION.search(answer)
    if not m:
        return None
    return answer[: m.start()] + f"\\frac{{{m.group(1)}}}{{{int(m.group(2)) + 1}}}" + answer[m.end() :]


def flip_sign(answer: str) -> str | None:
    """-(answer), for a single non-zero value (not a list, interval, equation or text)."""
    a = answer.strip()
    if NOT_FLIPPABLE.search(a) or not re.search(r"[1-9a-zA-Z]", a) or re.fullmatch(r"[0.]+", a):
        return None
    if a.startswith("-") and not re.search(r"[+-]", a[1:]):
        return a[1:]
    return f"-{a}" if re.fullmatch(r"[\d.]+", a) else f"-({a})"


def perturbations(answer: str) -> list[str]:
    """Distinct wrong answers derived from `answer` (none for pure text such as a name)."""
    found = [p(answer) for p in (plus_one, change_fraction, flip_sign)]
    return list(dict.fromkeys(p for p in found if p is not None and p != answer))


WHOLE_FRACTION = re.compile(r"^(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$")
THOUSANDS_GROUPS = re.compile(r",(?:\\!)?\s*\d{3}(?!\d)")
TOP_LEVEL_LIST = re.compile(r"^[^()\[\]{}=]+(?:,[^()\[\]{}=]+)+$")
ZERO_FRACTION = re.compile(r"^(-?\d+)\.0+$")
LEADING_ZEROS = re.compile(r"^(-?)0+(\d+)$")
E_NOTATION = re.compile(r"^(-?\d+(?:\.\d+)?)[eE]\+?(-?\d+)$")


def terminating_decimal(p: int, q: int) -> str | None:
    """p/q as an exact decimal string when q = 2^a 5^b, else None."""
    r = q
    for f in (2, 5):
        while r % f == 0:
            r //= f
    if r != 1 or q == 0:
        return None
    digits = max(len(str(q)), 1) + 2
    text = f"{p / q:.{digits}f}".rstrip("0").rstrip(".")
    return text if float(text) * q == p else None


def rewrites(answer: str) -> list[str]:
    """Equivalent spellings of `answer` that a model might write instead (must all be accepted)."""
    a = answer.strip()
    found = []
    m = ZERO_FRACTION.match(a) or LEADING_ZEROS.match(a)  # AMC's `70.0`, AIME's `073`: the integer
    if m:
        found.append("".join(m.groups()))
    m = E_NOTATION.match(a)
    if m:
        found.append(f"{m.group(1)} \\times 10^{{{m.group(2)}}}")
    m = WHOLE_FRACTION.match(a)
    if m:
        found.append(f"{m.group(1)}{m.group(2)}/{m.group(3)}")
        decimal = terminating_decimal(int(m.group(2)), int(m.group(3)))
        if decimal:
            found.append(m.group(1) + decimal)
    if "\\frac" in a:
        found.append(re.sub(r"\\[dt]?frac(?![a-zA-Z])", r"\\dfrac", a))
    if re.fullmatch(r"-?\d+", a):
        found.append(f"{a}.0")
    if not NOT_FLIPPABLE.search(a) and "x" not in a and "\\" not in a[:1] and re.search(r"\d", a):
        found.append(f"x = {a}")
    if TOP_LEVEL_LIST.match(a) and not THOUSANDS_GROUPS.search(a):
        found.append(", ".join(reversed([part.strip() for part in a.split(",")])))
    if a.startswith("(") and a.endswith(")") and "\\left" not in a:
        found.append(f"\\left( {a[1:-1]} \\right)")
    return list(dict.fromkeys(r for r in found if r != a))


def build_cases(items: list[GoldItem], rewritten: bool = True) -> list[Case]:
    """Gold, rewritten (optional), perturbed and hedging cases for each item."""
    cases = []
    for item in items:
        for completion in item.completions:
            cases.append(Case("gold", True, Sample(completion=completion, reference=item.reference), item.row))
        for r in rewrites(item.latex) if rewritten else []:
            cases.append(Case("rewritten", True, Sample(completion=f"\\boxed{{{r}}}", reference=item.reference), item.row))
        wrong = perturbations(item.latex)
        for p in wrong:
            cases.append(Case("perturbed", False, Sample(completion=f"\\boxed{{{p}}}", reference=item.reference), item.row))
        if wrong:
            hedge = f"It is \\boxed{{{item.latex}}} or maybe \\boxed{{{wrong[0]}}}."
            cases.append(Case("hedging", False, Sample(completion=hedge, reference=item.reference), item.row))
    return cases


def summarize(
    cases: list[Case], scores: list[Score], seconds: float, max_examples: int = 20, items: list[GoldItem] = ()
) -> dict:
    """Counts, false-accept / false-reject rates and examples of each error kind."""
    report: dict = {"cases": len(cases), "seconds": round(seconds, 2), "by_kind": {}}
    report["solutions_skipped"] = sum(bool(item.skipped) for item in items)
    false_accepts, false_rejects = [], []
    for case, score in zip(cases, scores):
        accepted = bool(score.correct)
        kind = report["by_kind"].setdefault(case.kind, {"cases": 0, "errors": 0, "as_expected": 0})
        kind["cases"] += 1
        kind["as_expected"] += accepted == case.expect
        if accepted != case.expect:
            kind["errors"] += 1
            example = {
                "row": case.row,
                "kind": case.kind,
                "reference": case.sample.reference,
                "completion": case.sample.completion[-300:],
                "reason": score.reason,
            }
            (false_rejects if case.expect else false_accepts).append(example)
    must_accept = sum(c.expect for c in cases)
    must_reject = len(cases) - must_accept
    report["false_reject_rate"] = len(false_rejects) / must_accept if must_accept else 0.0
    report["false_accept_rate"] = len(false_accepts) / must_reject if must_reject else 0.0
    report["false_rejects"] = len(false_rejects)
    report["false_accepts"] = len(false_accepts)
    report["timeouts"] = sum(s.details.get("status") == "timeout" for s in scores)
    report["examples"] = {"false_reject": false_rejects[:max_examples], "false_accept": false_accepts[:max_examples]}
    return report


def format_report(report: dict) -> str:
    """The human-readable summary printed by `rlvr verify NAME --audit DATA`."""
    lines = [
        f"audit of {report.get('data', '?')} with verifier {report.get('verifier', '?')}: "
        f"{report['cases']} cases in {report['seconds']}s",
    ]
    for kind, c in report["by_kind"].items():
        verdict = "accepted" if kind in ("gold", "rewritten") else "rejected"
        lines.append(f"  {kind:<10} {c['as_expected']:>6}/{c['cases']} {verdict}")
    if report.get("solutions_skipped"):
        lines.append(f"  solutions left out (no box, or boxes that differ): {report['solutions_skipped']}")
    lines.append(f"  false-reject rate {report['false_reject_rate']:.4f} ({report['false_rejects']})")
    lines.append(f"  false-accept rate {report['false_accept_rate']:.4f} ({report['false_accepts']})")
    lines.append(f"  timeouts {report['timeouts']}")
    for label, examples in report["examples"].items():
        for ex in examples:
            tail = ex["completion"][-80:].replace("\n", " ")
            lines.append(f"  {label}: row {ex['row']} ({ex['kind']}) ref={ex['reference']!r} ...{tail!r}: {ex['reason']}")
    return "\n".join(lines)

