"""`rlvr verify NAME`: score a jsonl file with a verifier, or audit a verifier against gold answers.

    rlvr verify math --input in.jsonl --output out.jsonl [--workers N] [--timeout S] [--option k=v ...]
    rlvr verify math --audit math500 [--report audit.json]

Nothing here destroys input: outputs are checked before any scoring and written atomically, never over
the input. Rows the verifier cannot judge are said to be so: skipped (no reference or tests) or errored
(the verifier raised or crashed), reward null; most rows erroring fails the command.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, Any, NamedTuple

import yaml
from tqdm import tqdm

from rlvr.atomic import atomic_open
from rlvr.errors import UserError

BATCH = 64  # samples per pool call: keeps the progress bar moving without starving the workers
MAX_WORKERS = 64  # or 4 per CPU, if more: each worker holds its own copy of the verifier (sympy: ~100 MB)
MAX_TIMEOUT = 86400.0
FAILED = ("exception", "crash")  # the pool's statuses for a sample the verifier raised or died on


class Needs(NamedTuple):
    """Fields a verifier needs in a row (any one of `keys`); a row with none is skipped, not scored."""

    keys: tuple[str, ...]
    short: str  # for the summary
    long: str   # for the row's reason and the error when no row has it


# By verifier name: the verifiers that judge against something in the row. Others (format, length, a
# reward model) judge the completion alone.
NEEDS = {
    "math": Needs(("reference",), "no 'reference'", "'reference'"),
    "code": Needs(("tests", "test_list", "test", "cases"), "no tests",
                  "tests ('tests', 'test_list', 'test' + 'entry_point', or 'cases')"),
}


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
    p.add_argument("--audit", metavar="DATA",
                   help="audit against gold answers: gsm8k, math500, aime24, aime25, amc23, minerva_math, "
                   "olympiadbench or a jsonl file")
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


def check_ranges(args: argparse.Namespace) -> None:
    """One-line errors for numbers the pool would only refuse (or silently misuse) after the work began."""
    most = max(MAX_WORKERS, 4 * (os.cpu_count() or 1))
    if not 0 <= args.workers <= most:
        raise UserError(f"--workers {args.workers}: expected 0 (in-process) to {most} (4 per CPU, at least "
                        f"{MAX_WORKERS})")
    # nan compares false with every deadline (the hard timeout would never fire); past a day the
    # poll() timeout in milliseconds overflows
    if not 0 < args.timeout <= MAX_TIMEOUT:
        raise UserError(f"--timeout {args.timeout:g}: expected seconds per sample, > 0 and at most "
                        f"{MAX_TIMEOUT:g}")


def same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


@contextmanager
def output_file(path: Path, flag: str, source: Path, source_flag: str) -> Iterator[IO[str]]:
    """`path` opened for an atomic write (see rlvr.atomic.atomic_open), refused with a one-line error
    before any work when it is the input or cannot be written."""
    if same_file(path, source):
        # refused rather than replaced atomically: output rows overwrite the input's columns of the same
        # names (reward, correct, reason, status, the verifier's details), and a run whose rows mostly
        # failed would already have replaced its input
        raise UserError(f"{flag} {path} is the {source_flag} file; verify never writes over its input "
                        f"(write elsewhere, then move it)")
    try:
        opened = atomic_open(path)
        f = opened.__enter__()
    except OSError as e:
        raise UserError(f"{flag} {path}: {e.strerror or e}") from None
    try:
        yield f
    except BaseException:
        if not opened.__exit__(*sys.exc_info()):
            raise
    else:
        try:
            opened.__exit__(None, None, None)
        except OSError as e:
            raise UserError(f"{flag} {path}: cannot write: {e.strerror or e}") from None


def to_json(obj: Any, indent: int | None = None) -> str:
    """JSON with non-ASCII text as itself; an object holding a lone surrogate (valid JSON, but no UTF-8
    can encode it) is written with \\u escapes instead, so it is kept and reads back equal."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, indent=indent, ensure_ascii=True, default=str)
    return text


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) of a jsonl file; a bad file or line is a UserError naming it."""
    from rlvr.data.loading import json_records

    records = json_records(path)
    for n, row in records:
        if "completion" not in row:
            raise UserError(f"{path} line {n}: expected a JSON object with a 'completion' key "
                            f"(and 'reference')")
    if not records:
        raise UserError(f"{path} has no rows: expected a JSON object per line with 'completion' (and "
                        f"'reference')")
    return records


def lacks(row: dict, needs: Needs | None) -> bool:
    """True when the row has none of the fields the verifier needs to judge it (absent, null or empty)."""
    def empty(value: Any) -> bool:
        return value is None or (isinstance(value, str) and not value.strip()) or value == []

    return needs is not None and all(empty(row.get(k)) for k in needs.keys)


def to_sample(row: dict):  # type: ignore[no-untyped-def]
    from verifiers import Sample

    return Sample.from_row(row, row["completion"])


def output_row(row: dict, score: Any, seconds: float) -> dict:
    """Input row + reward, correct, reason, seconds, with the score's details as top-level keys.
    A row the verifier failed on (status exception or crash) has no verdict: reward and correct null."""
    out = {**row, "reward": score.reward, "correct": score.correct, "reason": score.reason,
           "seconds": round(seconds, 4), **score.details}
    if failed(score):
        out.update(reward=None, correct=None)
    return out


def skipped_row(row: dict, needs: Needs) -> dict:
    return {**row, "reward": None, "correct": None, "reason": f"skipped: no {needs.long}", "seconds": 0.0,
            "status": "skipped"}


def failed(score: Any) -> bool:
    return score.details.get("status") in FAILED


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    from verifiers import VerifierError

    check_ranges(args)
    if args.report and not args.audit:
        raise UserError("--report goes with --audit DATA (scores go to --output)")
    try:
        verifier = verifiers.load(args.name, **parse_options(args.option))
    except VerifierError as e:
        raise UserError(str(e)) from None
    if args.audit:
        return run_audit(verifier, args)
    if not args.input or not args.output:
        raise UserError("rlvr verify needs --input and --output (or --audit DATA)")
    with output_file(args.output, "--output", args.input, "--input") as out:
        failures = score_file(verifier, args, read_rows(args.input), out)
    if failures:  # raised once the output is in place: each row's reason is there to read
        raise UserError(f"{failures}; each row's reason is in {args.output}")
    return 0


def score_file(verifier: Any, args: argparse.Namespace, records: list[tuple[int, dict]], out: IO[str]) -> str:
    """Score the rows that have what the verifier needs, write every row to `out` in order, print the
    summary. A UserError when no row can be scored; returns the failure when the verifier failed on most
    rows (a reward that errors for most samples is an error the user sees, not a silent zero), else ""."""
    from verifiers import VerifierPool

    needs = NEEDS.get(verifier.name)
    todo = [(n, row) for n, row in records if not lacks(row, needs)]
    if not todo:
        raise UserError(f"none of the {len(records)} rows of {args.input} has {needs.long}, which "
                        f"verifier {args.name!r} needs to score a row")
    start = time.perf_counter()
    with VerifierPool(verifier, workers=min(args.workers, len(todo)), timeout=args.timeout) as pool:
        scores, seconds = score_all(pool, [to_sample(row) for _, row in todo], f"verify {args.name}")
    elapsed = time.perf_counter() - start
    by_line = {n: (score, sec) for (n, _), score, sec in zip(todo, scores, seconds)}
    for n, row in records:
        out.write(to_json(output_row(row, *by_line[n]) if n in by_line else skipped_row(row, needs)) + "\n")

    errors = [(n, s) for (n, _), s in zip(todo, scores) if failed(s)]
    judged = [s for s in scores if not failed(s)]
    right = [s for s in judged if s.correct is not None]
    accuracy = sum(bool(s.correct) for s in right) / len(right) if right else float("nan")
    mean_reward = sum(s.reward for s in judged) / len(judged) if judged else float("nan")
    timeouts = sum(s.details.get("status") == "timeout" for s in scores)
    skipped = len(records) - len(todo)
    why_skipped = f" ({needs.short})" if skipped else ""
    print(f"verified {len(records)} rows with {args.name}: {len(judged)} scored, {skipped} skipped"
          f"{why_skipped}, {len(errors)} error{'' if len(errors) == 1 else 's'}; accuracy {accuracy:.4f}, "
          f"mean reward {mean_reward:.4f} (of the scored), timeouts {timeouts}, {elapsed:.1f}s "
          f"-> {args.output}", file=sys.stderr)
    if errors:
        failures = (f"verifier {args.name!r} failed on {len(errors)} of {len(todo)} rows "
                    f"(first: line {errors[0][0]}: {one_line(errors[0][1].reason)})")
        if 2 * len(errors) > len(todo):
            return failures
        print(f"rlvr: warning: {failures}; their reward is null", file=sys.stderr)
    return ""


def run_audit(verifier: Any, args: argparse.Namespace) -> int:
    from verifiers import VerifierPool
    from verifiers.audit import build_cases, format_report, read_gold, resolve_data, summarize

    path = resolve_data(args.audit)
    try:
        items = read_gold(path)
    except ValueError as e:
        raise UserError(str(e)) from None
    cases = build_cases(items)
    with output_file(args.report, "--report", path, "--audit") if args.report else nullcontext() as out:
        start = time.perf_counter()
        with VerifierPool(verifier, workers=min(args.workers, len(cases)), timeout=args.timeout) as pool:
            scores, _ = score_all(pool, [c.sample for c in cases], f"audit {args.name}")
        elapsed = time.perf_counter() - start
        report = {"verifier": args.name, "data": str(path), **summarize(cases, scores, elapsed, items=items)}
        print(format_report(report))
        if out is not None:
            out.write(to_json(report, indent=2))
    return 0

