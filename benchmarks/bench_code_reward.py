"""Code programs per second through the verifier pool, exactly as an RL step scores them: before and after.

The workload is HumanEval: for each of the 164 problems a group of `--samples` (8) completions, as GRPO
samples a group per prompt. A group cycles through the canonical solution, a "return None" body and the
next problem's solution bound to the expected name (the broken variants of
tests/test_code_verifier.py::test_all_humaneval_canonical_solutions_pass_and_broken_variants_fail), each
made distinct by a trailing comment, so no program repeats ("distinct"). The "repeats" workload drops the
comments: a group then holds 3 distinct texts, as a tiny model's group often does. "finishing" is
"distinct" without the programs that run into their time limit (two in HumanEval: the next problem's
solution loops forever on HumanEval/155's tests), found by the profile pass: each costs its 3 s limit
on any sandbox, about half the CPU of a "distinct" round, so they measure the limit, not the sandbox.

Each side is a checkout imported in its own process: "before" is a `git worktree` of `--before` (today's
main), "after" is this checkout. Each builds `Rollouts.pool` from a RewardConfig (reward.workers,
reward.timeout, the quickstart code reward) and calls the checkout's own `Rollouts.score` on
rlvr.generation Samples in generation-batch chunks (`--chunk` samples: generation.batch_size), as
`Rollouts.sample` does. The pool's start-up (processes, warm sandboxes, a first group) is timed apart;
then the two sides alternate rounds over the same workload and the best round of each counts, so load
from other processes hits both alike. Both sides must give the same rewards.

The per-phase table comes from a separate in-process pass, run first of each side (`verify_batch` on one sandbox,
one program at a time), timing its functions from the outside: host prepare, the sandbox round trip and
scoring; for a side whose sandbox reports them, the host's encode/wait/decode and the server's
write/fork/child/kill+wipe.

    python benchmarks/bench_code_reward.py [--rounds 3] [--limit N] [--before 5ce3279]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HUMANEVAL = "/work/shared/data/humaneval/HumanEval.jsonl.gz"
RESULTS = REPO / "benchmarks" / "results" / "code_reward.json"
BEFORE = "5ce3279"
# The code quickstart's reward (rlvr quickstart --task code), with HumanEval's usual 3 s per problem.
CODE_OPTIONS = {"extract": "raw", "reward": "share", "timeout": 3, "memory_mb": 256}


def load_problems(path: str, limit: int | None) -> list[dict]:
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    return rows[:limit] if limit else rows


def completion(rows: list[dict], i: int, k: int, distinct: bool) -> str:
    """The k-th completion of problem i's group: canonical, 'return None', or the next problem's solution."""
    row, other = rows[i], rows[(i + 1) % len(rows)]
    text = [row["canonical_solution"], "    return None\n",
            other["prompt"] + other["canonical_solution"] + f"\n{row['entry_point']} = {other['entry_point']}\n"][k % 3]
    return text + (f"\n# sample {k}\n" if distinct else "")


def workload(rows: list[dict], samples: int, distinct: bool) -> tuple[list[dict], list[tuple[int, str]]]:
    """(data rows, (prompt index, completion) in group order)."""
    data = [{k: r[k] for k in ("task_id", "prompt", "test", "entry_point")} for r in rows]
    return data, [(i, completion(rows, i, k, distinct)) for i in range(len(rows)) for k in range(samples)]


# ------------------------------------------------------------------ one side (runs in its own process)


def _generation_samples(items: list[tuple[int, str]]) -> list:
    from rlvr.generation.base import Sample

    return [Sample(prompt="", prompt_ids=[], response_ids=[], text=t, logprobs=[], finish_reason="stop",
                   prompt_index=i) for i, t in items]


class _Timer:
    """Wraps `owner.name` to add its wall time to `totals[label]`."""

    def __init__(self, totals: dict, owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                totals[label] = totals.get(label, 0.0) + time.perf_counter() - start

        setattr(owner, name, timed)


def _profile(rows: list[dict], items: list[tuple[int, str]]) -> tuple[dict, list[int]]:
    """Milliseconds per program of each phase, one program at a time in this process; and the indices
    of the items whose program ran into its time limit."""
    import verifiers
    from sandbox import warm
    from verifiers.code import CodeVerifier

    totals: dict[str, float] = {}
    _Timer(totals, CodeVerifier, "_prepare", "host prepare (extract, plan, job)")
    _Timer(totals, warm.WarmSandbox, "run", "sandbox round trip (host view)")
    _Timer(totals, CodeVerifier, "_score", "host scoring (parse the result line)")
    server: dict[str, float] = {}
    read_line = warm.WarmSandbox._read_line

    def reading(self, deadline):
        answer = read_line(self, deadline)
        for key, seconds in (answer.get("timing") or {}).items():
            server[key] = server.get(key, 0.0) + seconds
        if "cpu_seconds" in answer:
            server["job cpu (user+sys)"] = server.get("job cpu (user+sys)", 0.0) + answer["cpu_seconds"]
        return answer

    warm.WarmSandbox._read_line = reading
    verifier = CodeVerifier(**{**CODE_OPTIONS, "workers": 1})
    samples = [verifiers.Sample.from_row(rows[i], t) for i, t in items]
    verifier.verify_batch(samples[:2])  # start the sandbox outside the timings
    totals.clear(), server.clear()
    before_host = dict(getattr(warm, "HOST_PHASES", {}))
    start = time.perf_counter()
    scores = verifier.verify_batch(samples)
    total = time.perf_counter() - start
    verifier.close()
    n = len(samples)
    phases = {k: 1000 * v / n for k, v in totals.items()}
    for key, seconds in getattr(warm, "HOST_PHASES", {}).items():
        phases[f"  host {key}"] = 1000 * (seconds - before_host.get(key, 0.0)) / n
    for key, seconds in server.items():
        phases[f"  server {key}"] = 1000 * seconds / n
    phases["total (one program at a time)"] = 1000 * total / n
    timed_out = [j for j, score in enumerate(scores) if (score.details or {}).get("status") == "timeout"]
    return {k: round(v, 3) for k, v in phases.items()}, timed_out


def side_main(args: argparse.Namespace) -> None:
    """Serve rounds for one checkout: commands on stdin, one JSON answer per line on stdout."""
    from types import SimpleNamespace

    from rlvr.config.rl import RewardConfig, VerifierSpec
    from rlvr.rollouts import Rollouts

    import verifiers

    rows = load_problems(args.data, args.limit)
    cfg = RewardConfig(verifiers=[VerifierSpec(name="code", options=dict(CODE_OPTIONS))], workers=args.workers,
                       timeout=args.reward_timeout)
    rollouts = object.__new__(Rollouts)  # the scoring half of Rollouts: no model, no engine
    rollouts.cfg, rollouts.part_names, rollouts._pool = SimpleNamespace(reward=cfg), ["code"], None
    rollouts._verifier = verifiers.compose([{"name": "code", "options": dict(CODE_OPTIONS)}])
    answer = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write on the answer channel

    def reply(message: dict) -> None:
        answer.write(json.dumps(message) + "\n")
        answer.flush()

    reply({"imported": True})  # the sides import at once; each then starts alone, when told to
    sys.stdin.readline()
    start = time.perf_counter()
    data, first = workload(rows, args.samples, True)
    rollouts.score(_generation_samples(first[: args.samples]), data)  # processes, sandboxes, a first group
    reply({"startup_seconds": time.perf_counter() - start})
    for line in sys.stdin:
        command, kind, *skip = line.split()
        data, items = workload(rows, args.samples, kind != "repeats")
        if command == "profile":
            phases, timed_out = _profile(data, items)
            reply({"phases_ms": phases, "timed_out": timed_out})
            continue
        skipped = {int(j) for j in skip}
        items = [item for j, item in enumerate(items) if j not in skipped]
        samples = _generation_samples(items)
        start = time.perf_counter()
        for at in range(0, len(samples), args.chunk):
            rollouts.score(samples[at : at + args.chunk], data)
        reply({"seconds": time.perf_counter() - start, "rewards": [s.reward for s in samples],
               "correct": sum(bool(s.correct) for s in samples)})
    rollouts._pool.close()


# ------------------------------------------------------------------ the driver


def before_checkout(ref: str, where: Path) -> Path:
    """A detached `git worktree` of `ref` (made once, reused)."""
    path = where / f"rlvr-{ref}"
    if not (path / "sandbox").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), ref], check=True,
                       capture_output=True)
    return path


class Side:
    def __init__(self, name: str, root: Path, args: argparse.Namespace) -> None:
        self.name, self.root = name, root
        argv = [sys.executable, str(Path(__file__).resolve()), "--side", "--data", args.data, "--samples",
                str(args.samples), "--chunk", str(args.chunk), "--workers", str(args.workers),
                "--reward-timeout", str(args.reward_timeout)] + (["--limit", str(args.limit)] if args.limit else [])
        env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(argv, cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.rounds: dict[str, list[float]] = {}

    def start(self) -> None:
        """Once imported: start the pool (timed alone, the other side idle)."""
        self._answer()
        self.proc.stdin.write("start\n")
        self.proc.stdin.flush()
        self.startup = self._answer()["startup_seconds"]

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.name} side ({self.root}) died; see its stderr above")
        return json.loads(line)

    def ask(self, command: str, kind: str, skip: list[int] = ()) -> dict:
        self.proc.stdin.write(" ".join([command, kind, *map(str, skip)]) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def phase_table(profiles: dict[str, dict]) -> str:
    names = list(dict.fromkeys(k for p in profiles.values() for k in p))
    lines = ["| phase (ms per program) | " + " | ".join(profiles) + " |", "|---|" + "---:|" * len(profiles)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{p[name]:.2f}" if name in p else "" for p in profiles.values())
                     + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="first N HumanEval problems (default: all 164)")
    parser.add_argument("--samples", type=int, default=8, help="completions per problem (the group size)")
    parser.add_argument("--chunk", type=int, default=512, help="samples per Rollouts.score call (generation batch)")
    parser.add_argument("--workers", type=int, default=1, help="reward.workers")
    parser.add_argument("--reward-timeout", type=float, default=10.0, help="reward.timeout")
    parser.add_argument("--before", default=BEFORE, help="git ref of the 'before' side; '' for after only")
    parser.add_argument("--workloads", default="distinct,finishing,repeats")
    parser.add_argument("--data", default=HUMANEVAL)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side_main(args)
        return 0

    kinds = args.workloads.split(",")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-code-reward-") as tmp:
        roots = {"after": REPO}
        if args.before:
            roots = {"before": before_checkout(args.before, Path(tmp)), **roots}
        try:
            sides = {name: Side(name, root, args) for name, root in roots.items()}
            for side in sides.values():
                side.start()
            # The profile pass first: it also finds the programs that run to their time limit, which the
            # "finishing" workload leaves out (their cost is the limit, on any sandbox).
            asked = {name: side.ask("profile", "distinct") for name, side in sides.items()}
            profiles = {name: got["phases_ms"] for name, got in asked.items()}
            timed_out = sorted({j for got in asked.values() for j in got["timed_out"]})
            results: dict[str, dict] = {}
            for r in range(args.rounds):
                for kind in kinds:
                    for side in sides.values():
                        got = side.ask("round", kind, timed_out if kind == "finishing" else ())
                        side.rounds.setdefault(kind, []).append(got["seconds"])
                        results.setdefault(kind, {})[side.name] = got
                        print(f"round {r + 1} {kind:8s} {side.name:6s} {got['seconds']:6.2f} s "
                              f"({got['correct']} correct)", file=sys.stderr)
            for side in sides.values():
                side.close()
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(roots["before"])],
                               check=False, capture_output=True)
    rows = load_problems(args.data, args.limit)
    n_all = len(rows) * args.samples
    report: dict = {
        "benchmark": "HumanEval programs per second through Rollouts.score -> VerifierPool.score",
        "problems": len(rows), "samples_per_problem": args.samples, "programs_per_round": n_all,
        "at_time_limit": [{"task_id": rows[j // args.samples]["task_id"], "sample": j % args.samples}
                          for j in timed_out],
        "chunk": args.chunk, "reward": {"workers": args.workers, "timeout": args.reward_timeout,
                                        "verifiers": [{"name": "code", "options": CODE_OPTIONS}]},
        "rounds": args.rounds, "before": args.before or None,
    }
    agree = True
    for kind in kinds:
        per = {}
        n = n_all - len(timed_out) if kind == "finishing" else n_all
        for name, side in sides.items():
            best = min(side.rounds[kind])
            per[name] = {"programs": n, "programs_per_second": round(n / best, 1), "best_seconds": round(best, 3),
                         "round_seconds": [round(t, 3) for t in side.rounds[kind]],
                         "correct": results[kind][name]["correct"]}
        if "before" in per:
            per["ratio_after_over_before"] = round(per["after"]["programs_per_second"]
                                                   / per["before"]["programs_per_second"], 2)
            agree &= results[kind]["before"]["rewards"] == results[kind]["after"]["rewards"]
        report[kind] = per
    report["startup_seconds"] = {name: round(side.startup, 3) for name, side in sides.items()}
    report["same_rewards"] = agree
    report["phases_ms_per_program"] = profiles
    report["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "load_average_before": [round(x, 2) for x in load_before],
                         "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for kind in kinds:
        line = ", ".join(f"{name} {report[kind][name]['programs_per_second']}/s" for name in sides)
        ratio = report[kind].get("ratio_after_over_before")
        print(f"{kind}: {line}" + (f", ratio {ratio}x" if ratio else ""))
    print(phase_table(profiles))
    print(f"load average {report['machine']['load_average_before']} -> {report['machine']['load_average_after']}"
          f"; written to {args.out}")
    if not agree:
        print("WARNING: the two sides gave different rewards")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
