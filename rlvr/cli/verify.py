"""`rlvr verify NAME`: score a jsonl file with a verifier, or audit a verifier against gold answers.

    rlvr verify math --input in.jsonl --output out.jsonl [--workers N] [--timeout S] [--option k=v ...]
    rlvr verify math --audit math500 [--report audit.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from rlvr.errors import UserError

BATCH = 64  # samples per pool call: keeps the progress bar moving without starving the workers


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="score completions with a verifier, or audit a verifier against gold answers",
        description="Score a jsonl file of {completion, reference, ...} rows with a verifier "
        "(output: each row plus reward, correct, reason, seconds and the verifier's details), "
        "or with --audit check it accepts gold answers and rejects perturbed and hedging ones.",
    )
    p.add_argument("name", help="verifier name (installed under the entry-point group rlvr.verifiers)")
    p.add_argument("--input", type=Path, help="jsonl file with completion and reference per line")
    p.add_argument("--output", type=Path, help="jsonl file to write (input rows plus the scores)")
    p.add_argument("--audit", metavar="DATA", help="audit against gold answers: gsm8k, math500 or a jsonl file")
    p.add_argument("--report", type=Path, help="with --audit: also write the full report as JSON here")
    p.add_argument("--workers", type=int, default=2, help="worker processes (0: in-process, no hard timeout)")
    p.add_argument("--timeout", type=float, default=5.0, help="hard limit in seconds per sample")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="verifier option (value parsed as a YAML scalar); repeatable")
    p.set_defaults(func=run)


def parse_scalar(text: str) -> Any:
    """A YAML scalar (`3` -> 3, `true` -> True, `abc` -> "abc"), plus `1e-3` -> 0.001, which YAML 1.1
    leaves a string."""
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """`["k=3", "flag=true", "s=abc"]` -> {"k": 3, "flag": True, "s": "abc"}."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key] = parse_scalar(value)
    return options


def read_rows(path: Path) -> list[dict]:
    """Rows of a jsonl file; a bad file or line is a UserError naming it."""
    from rlvr.data.loading import json_records

    records = json_records(path)
    for n, row in records:
        if "completion" not in row:
            raise UserError(f"{path} line {n}: expected a JSON object with a 'completion' key (and 'reference')")
    return [row for _, row in records]


def to_sample(row: dict):  # type: ignore[no-untyped-def]
    from verifiers import Sample

    return Sample.from_row(row, row["completion"])


def output_row(row: dict, score: Any, seconds: float) -> dict:
    """Input row + reward, correct, reason, seconds, with the score's details as top-level keys."""
    return {**row, "reward": score.reward, "correct": score.correct, "reason": score.reason,
            "seconds": round(seconds, 4), **score.details}


def score_all(pool: Any, samples: list, desc: str) -> tuple[list, list[float]]:
    """Scores in order, in batches (for the progress bar); per-sample seconds = batch time / size."""
    scores, seconds = [], []
    with tqdm(total=len(samples), desc=desc, unit="sample", file=sys.stderr) as bar:
        for start in range(0, len(samples), BATCH):
            batch = samples[start : start + BATCH]
            t0 = time.perf_counter()
            scores.extend(pool.score(batch))
            per = (time.perf_counter() - t0) / max(len(batch), 1)
            seconds.extend([per] * len(batch))
            bar.update(len(batch))
    return scores, seconds


def run(args: argparse.Namespace) -> int:
    import verifiers
    from verifiers import VerifierError, VerifierPool

    try:
        verifier = verifiers.load(args.name, **parse_options(args.option))
    except VerifierError as e:
        raise UserError(str(e)) from None
    if args.audit:
        return run_audit(verifier, args)
    if not args.input or not args.output:
        raise UserError("rlvr verify needs --input and --output (or --audit DATA)")
    rows = read_rows(args.input)
    start = time.perf_counter()
    with VerifierPool(verifier, workers=args.workers, timeout=args.timeout) as pool:
        scores, seconds = score_all(pool, [to_sample(r) for r in rows], f"verify {args.name}")
    elapsed = time.perf_counter() - start
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8") as f:
        for row, score, sec in zip(rows, scores, seconds):
            f.write(json.dumps(output_row(row, score, sec), ensure_ascii=False, default=str) + "\n")
    judged = [s for s in scores if s.correct is not None]
    accuracy = sum(bool(s.correct) for s in judged) / len(judged) if judged else float("nan")
    timeouts = sum(s.details.get("status") == "timeout" for s in scores)
    print(f"verified {len(rows)} samples with {args.name}: accuracy {accuracy:.4f}, "
          f"mean reward {sum(s.reward for s in scores) / max(len(scores), 1):.4f}, "
          f"timeouts {timeouts}, {elapsed:.1f}s -> {args.output}", file=sys.stderr)
    return 0


def run_audit(verifier: Any, args: argparse.Namespace) -> int:
    from verifiers import VerifierPool
    from verifiers.audit import build_cases, format_report, read_gold, resolve_data, summarize

    path = resolve_data(args.audit)
    try:
        items = read_gold(path)
    except ValueError as e:
        raise UserError(str(e)) from None
    cases = build_cases(items)
    start = time.perf_counter()
    with VerifierPool(verifier, workers=args.workers, timeout=args.timeout) as pool:
        scores, _ = score_all(pool, [c.sample for c in cases], f"audit {args.name}")
    report = {"verifier": args.name, "data": str(path), **summarize(cases, scores, time.perf_counter() - start)}
    print(format_report(report))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0
