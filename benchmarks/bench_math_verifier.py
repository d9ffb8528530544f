"""rlvr's math verifier against Math-Verify on MATH-500: agreement with expected verdicts, and speed.

Cases (verifiers.audit.build_cases on MATH-500): gold (the row's own solution, and `\\boxed{answer}`),
rewritten gold (equivalent notations), perturbed answers and hedging completions. The expected verdict
is accept for the first two and reject for the last two.

Both checkers run in this one process, one case at a time, after a warm-up, on the same cases:
  - Math-Verify: parse(gold wrapped in $...$), parse(completion), verify(gold, pred) with its defaults;
  - rlvr: MathVerifier.verify(Sample), timed twice: "cold" with its parse cache cleared before every
    case (so a reference is parsed anew each time, as Math-Verify does), and "warm" with the cache as
    it is used in training (a reference is shared by every completion of its prompt).
Speed is reported as a ratio (Math-Verify seconds / rlvr seconds), measured in the same run.
Also reported: rlvr's throughput through VerifierPool with 1 and 2 workers.

    .venv/bin/python benchmarks/bench_math_verifier.py [--limit N]
Needs the `bench` extra (math-verify[antlr4_13_2]). Writes benchmarks/results/math_verifier.json.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from verifiers import Sample, VerifierPool, load
from verifiers.audit import Case, build_cases, read_gold, resolve_data
from verifiers.math_parse import parse as rlvr_parse

RESULTS = Path(__file__).resolve().parent / "results" / "math_verifier.json"


def math_verify_judge():  # type: ignore[no-untyped-def]
    from math_verify import parse, verify

    def judge(sample: Sample) -> bool:
        gold = parse(f"${sample.reference}$")
        pred = parse(sample.completion)
        return bool(verify(gold, pred))

    return judge


def rlvr_judge(cold: bool):  # type: ignore[no-untyped-def]
    verifier = load("math")
    verifier.warmup()

    def judge(sample: Sample) -> bool:
        if cold:
            rlvr_parse.cache_clear()
        return bool(verifier.verify(sample).correct)

    return judge


def run(judge, cases: list[Case]) -> tuple[list[bool], list[float]]:  # type: ignore[no-untyped-def]
    """Verdicts and seconds per case, one case at a time (after three warm-up calls)."""
    for case in cases[:3]:
        judge(case.sample)
    verdicts, seconds = [], []
    for case in cases:
        start = time.perf_counter()
        try:
            verdicts.append(judge(case.sample))
        except Exception:
            verdicts.append(False)
        seconds.append(time.perf_counter() - start)
    return verdicts, seconds


def ms_by_kind(cases: list[Case], seconds: list[float]) -> dict[str, float]:
    """Mean milliseconds per case of each kind (gold is mostly an exact string match for rlvr; the
    rewritten and perturbed kinds need real parsing and comparison)."""
    kinds = dict.fromkeys(c.kind for c in cases)
    return {k: 1000 * sum(t for c, t in zip(cases, seconds) if c.kind == k) / sum(c.kind == k for c in cases)
            for k in kinds}


def agreement(cases: list[Case], verdicts: list[bool]) -> dict:
    """Overall and per-kind fraction of verdicts equal to the expected one, with the disagreements."""
    out: dict = {"overall": sum(v == c.expect for c, v in zip(cases, verdicts)) / len(cases), "by_kind": {}}
    for kind in dict.fromkeys(c.kind for c in cases):
        pairs = [(c, v) for c, v in zip(cases, verdicts) if c.kind == kind]
        out["by_kind"][kind] = sum(v == c.expect for c, v in pairs) / len(pairs)
    no_hedge = [(c, v) for c, v in zip(cases, verdicts) if c.kind != "hedging"]
    out["without_hedging"] = sum(v == c.expect for c, v in no_hedge) / len(no_hedge)
    out["disagreements"] = [
        {"row": c.row, "kind": c.kind, "reference": c.sample.reference, "completion": c.sample.completion[-120:],
         "verdict": v}
        for c, v in zip(cases, verdicts) if v != c.expect
    ]
    return out


def pool_throughput(cases: list[Case], workers: int) -> dict[str, float]:
    """Cases per second through VerifierPool (workers started and warmed before timing): a first pass
    (each worker's parse cache cold) and a repeat pass (caches warm, as for repeated references)."""
    with VerifierPool(load("math"), workers=workers, timeout=10.0) as pool:
        pool.score([c.sample for c in cases[: workers * 2]])
        rates = {}
        for label in ("first_pass", "repeat_pass"):
            start = time.perf_counter()
            pool.score([c.sample for c in cases])
            rates[label] = len(cases) / (time.perf_counter() - start)
        return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    args = parser.parse_args()
    items = read_gold(resolve_data("math500"))[: args.limit]
    cases = build_cases(items)
    print(f"{len(cases)} cases from {len(items)} MATH-500 problems")

    results: dict = {"cases": len(cases), "problems": len(items), "checkers": {}}
    for label, judge in (
        ("math_verify", math_verify_judge()),
        ("rlvr_cold", rlvr_judge(cold=True)),
        ("rlvr_warm", rlvr_judge(cold=False)),
    ):
        verdicts, seconds = run(judge, cases)
        results["checkers"][label] = {
            "ms_per_case": 1000 * sum(seconds) / len(cases),
            "ms_per_case_by_kind": ms_by_kind(cases, seconds),
            **agreement(cases, verdicts),
        }
        print(f"  {label}: {1000 * sum(seconds) / len(cases):.2f} ms/case")
    mv = results["checkers"]["math_verify"]["ms_per_case"]
    results["speedup_cold"] = mv / results["checkers"]["rlvr_cold"]["ms_per_case"]
    results["speedup_warm"] = mv / results["checkers"]["rlvr_warm"]["ms_per_case"]
    results["pool_cases_per_second"] = {str(w): pool_throughput(cases, w) for w in (1, 2)}
    results["load_average_at_end"] = os.getloadavg()

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print_table(results)
    print(f"written to {RESULTS}")


def print_table(results: dict) -> None:
    kinds = list(results["checkers"]["math_verify"]["by_kind"])
    header = f"{'checker':<12} {'ms/case':>8} {'agree':>7} {'no-hedge':>8} " + " ".join(f"{k:>10}" for k in kinds)
    print(header)
    print("-" * len(header))
    for label, r in results["checkers"].items():
        row = f"{label:<12} {r['ms_per_case']:>8.2f} {r['overall']:>7.4f} {r['without_hedging']:>8.4f} "
        print(row + " ".join(f"{r['by_kind'][k]:>10.4f}" for k in kinds))
    print("ms/case by kind: " + "; ".join(
        f"{label} " + ", ".join(f"{k} {v:.2f}" for k, v in r["ms_per_case_by_kind"].items())
        for label, r in results["checkers"].items()))
    print(f"speed-up over Math-Verify (1 process): cold cache {results['speedup_cold']:.1f}x, "
          f"warm cache {results['speedup_warm']:.1f}x")
    for w, rates in results["pool_cases_per_second"].items():
        print(f"rlvr VerifierPool, {w} worker(s): first pass {rates['first_pass']:.0f} cases/s, "
              f"repeat pass {rates['repeat_pass']:.0f} cases/s")
    print(f"(machine load average {results['load_average_at_end'][0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
