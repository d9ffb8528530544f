"""One eval: load the problems, generate, judge, append to generations.jsonl chunk by chunk, report.

Out folder:
    eval_config.yaml    the resolved config (a continuation must match it)
    generations.jsonl   one line per response: the problem, the completion and its verdict
    timing.jsonl        seconds spent per chunk (generation, judging)
    results.json        metrics overall and per subject/level; results.md the same as tables

Resuming: a problem counts as done when all its responses are in generations.jsonl; a killed eval
regenerates only the rest (a line cut short by the kill is ignored). Chunk c of the sampled responses
is seeded with generation.seed + its first problem index, so it samples the same way when rerun.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from rlvr.atomic import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from rlvr.config import to_dict
from rlvr.config.eval import EvalConfig
from rlvr.errors import UserError
from rlvr.eval.benchmarks import GROUP_FIELDS, Judge, judge_for
from rlvr.eval.prompts import pick_examples, render_with_examples
from rlvr.eval.report import markdown, problem_record, summarize

GENERATIONS, TIMING, RESULTS, CONFIG = "generations.jsonl", "timing.jsonl", "results.json", "eval_config.yaml"

# Settings a continuation may change: they alter how fast or how much is done, not what any response is.
ADJUSTABLE = {("eval", "limit"), ("eval", "resume"), ("eval", "progress"), ("eval", "chunk"), ("eval", "out_dir"),
              ("generation", "batch_size"), ("verifier", "workers"), ("verifier", "timeout")}


def benchmark_of(cfg: EvalConfig) -> str:
    return cfg.eval.benchmark or cfg.data.source


def fingerprint(cfg: EvalConfig, model_path: str) -> dict:
    """The settings every response in an out folder must share."""
    tree = to_dict(cfg)
    for section, key in ADJUSTABLE:
        tree[section].pop(key, None)
    if not samples_per_problem(cfg):  # greedy only: the sampling settings shape no response
        for key in ("temperature", "top_p", "top_k", "seed"):
            tree["generation"].pop(key)
    return {**tree, "model_path": model_path}


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resumable(out: Path, stamp: dict) -> None:
    """Refuse to mix responses of different settings in one folder.

    Only settings both configs know are compared: a setting added to rlvr since the first part ran
    has its default, which is how that part ran."""
    saved = out / CONFIG
    if not saved.is_file():
        return
    old, new = flatten(yaml.safe_load(saved.read_text()) or {}), flatten(stamp)
    diff = sorted(k for k in new if k in old and old[k] != new[k])
    if diff:
        raise UserError(f"{out} holds an eval with other settings ({', '.join(diff)}); "
                        f"use another eval.out_dir, or eval.resume=false to start over")


def read_records(path: Path) -> dict[tuple, dict]:
    """Judged responses by (problem, mode, sample); the last line for a key wins."""
    out: dict[tuple, dict] = {}
    for r in read_jsonl(path):  # skips a line cut short by a kill
        try:
            out[(r["problem"], r["mode"], r["sample"])] = r
        except (KeyError, TypeError):
            continue
    return out


def expected_keys(problem: int, greedy: bool, n: int) -> list[tuple]:
    return ([(problem, "greedy", 0)] if greedy else []) + [(problem, "sample", j) for j in range(n)]


def samples_per_problem(cfg: EvalConfig) -> int:
    """max(k) samples when some k > 1; none when k = [1] (greedy accuracy is then pass@1)."""
    ks = cfg.eval.k
    if not ks or any(k < 1 for k in ks):
        raise UserError(f"eval.k: expected a list of integers >= 1, got {ks}")
    n = max(ks)
    if n == 1 and cfg.eval.greedy:
        return 0
    return n


def make_verifier(judge: Judge):
    import verifiers

    try:
        return verifiers.load(judge.verifier, **judge.options)
    except verifiers.VerifierError as e:
        raise UserError(f"verifier: {e}") from None


@contextmanager
def open_judge(judge: Judge, timeout: float, verifier=None) -> Iterator[Callable[[list], list]]:
    """A function scoring verifiers.Samples: in a VerifierPool (hard timeouts) or the verifier's own batch."""
    import verifiers

    verifier = verifier or make_verifier(judge)
    if judge.workers > 0:
        with verifiers.VerifierPool(verifier, workers=judge.workers, timeout=timeout) as pool:
            yield pool.score
    else:
        def score(samples: list) -> list:
            try:
                return verifier.verify_batch(samples)
            except verifiers.VerifierError as e:
                raise UserError(f"verifier {judge.verifier}: {e}") from None
        yield score


def load_problems(cfg: EvalConfig, benchmark: str, judge: Judge) -> list[dict]:
    from rlvr.data import load_rows

    need = {"prompt": str}
    if judge.verifier == "math":
        need["reference"] = (str, int, float)
    data = dataclasses.replace(cfg.data, max_samples=None)  # only eval.limit cuts the problems
    rows = load_rows(data, split=cfg.eval.split, need=need, source=benchmark, limit=cfg.eval.limit).rows
    if not rows:
        raise UserError(f"eval.benchmark: '{benchmark}' split '{cfg.eval.split}' has no problems")
    return rows


def few_shot_examples(cfg: EvalConfig, benchmark: str) -> list[dict]:
    shot = cfg.few_shot
    if shot.count <= 0:
        return []
    from rlvr.data import load_rows

    source = shot.source or benchmark
    data = dataclasses.replace(cfg.data, max_samples=None)
    rows = load_rows(data, split=shot.split, need={"prompt": str}, source=source).rows
    return pick_examples(rows, shot.count, f"{source} split '{shot.split}'")


def run_eval(cfg: EvalConfig, label: str | None = None) -> dict:
    """Evaluate cfg.model on the benchmark into cfg.eval.out_dir (continuing an unfinished eval there);
    returns results.json's content."""
    from rlvr.models import prepare_model

    out = Path(cfg.eval.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    benchmark = benchmark_of(cfg)
    judge = judge_for(benchmark, cfg.verifier.name, cfg.verifier.options, cfg.verifier.workers)
    n = samples_per_problem(cfg)
    verifier = make_verifier(judge)  # a wrong name or option fails before any model loads
    rows = load_problems(cfg, benchmark, judge)
    model_path = prepare_model(cfg.model, out)
    stamp = fingerprint(cfg, model_path)
    if not cfg.eval.resume:
        for name in (GENERATIONS, TIMING, RESULTS, CONFIG, "results.md"):
            (out / name).unlink(missing_ok=True)
    check_resumable(out, stamp)
    atomic_write_text(out / CONFIG, yaml.safe_dump(stamp, sort_keys=False))

    records = read_records(out / GENERATIONS)
    todo = [i for i in range(len(rows)) if any(k not in records for k in expected_keys(i, cfg.eval.greedy, n))]
    if todo:
        _generate_and_judge(cfg, rows, todo, n, model_path, judge, verifier, out, benchmark, label)
        records = read_records(out / GENERATIONS)

    ks = [k for k in sorted(set(cfg.eval.k)) if k <= n]
    problems = []
    for i, row in enumerate(rows):
        mine = [records[k] for k in expected_keys(i, cfg.eval.greedy, n)]
        problems.append(problem_record(row, mine, ks, GROUP_FIELDS))
    timing = [json.loads(line) for line in (out / TIMING).read_text().splitlines() if line.strip()] \
        if (out / TIMING).is_file() else []
    results = {
        "benchmark": benchmark, "split": cfg.eval.split, "problems": len(rows),
        "model": label or cfg.model.name, "model_path": model_path,
        "verifier": {"name": judge.verifier, "options": judge.options},
        "samples_per_problem": n, "greedy": cfg.eval.greedy, "k": ks,
        "few_shot": cfg.few_shot.count, "template": cfg.data.template, "question_format": cfg.eval.question_format,
        "max_new_tokens": cfg.generation.max_new_tokens,
        "sampling": {"temperature": cfg.generation.temperature, "top_p": cfg.generation.top_p,
                     "top_k": cfg.generation.top_k, "seed": cfg.generation.seed or 0} if n else None,
        **{key: spent(timing, key, len(rows)) for key in ("seconds", "generation_seconds", "judge_seconds")},
        **summarize(problems, GROUP_FIELDS),
    }
    atomic_write_json(out / RESULTS, results)
    atomic_write_text(out / "results.md", markdown(results))
    return results


def spent(timing: list[dict], key: str, problems: int) -> float:
    """Seconds spent on the first `problems` problems: each chunk's time shared evenly by its problems,
    the last timing of a problem counting (a chunk killed after its timing was written is redone)."""
    per_problem: dict[int, float] = {}
    for t in timing:
        ids = t.get("ids") or []
        for i in ids:
            per_problem[i] = t.get(key, 0.0) / len(ids)
    return round(sum(v for i, v in per_problem.items() if i < problems), 3)


def _generate_and_judge(cfg: EvalConfig, rows: list[dict], todo: list[int], n: int, model_path: str,
                        judge: Judge, verifier, out: Path, benchmark: str, label: str | None) -> None:
    from tqdm import tqdm

    import verifiers
    from rlvr.generation import sampling_params
    from rlvr.generation.factory import make_engine
    from rlvr.models import load_tokenizer

    tokenizer = load_tokenizer(model_path)
    examples = few_shot_examples(cfg, benchmark)
    engine = make_engine(cfg, model_path, tokenizer)
    sampled = sampling_params(cfg.generation)
    greedy = dataclasses.replace(sampled, temperature=0.0)
    chunk = max(1, cfg.eval.chunk)
    try:
        with open_judge(judge, cfg.verifier.timeout, verifier) as score, \
                tqdm(total=len(rows), initial=len(rows) - len(todo), disable=not cfg.eval.progress,
                     desc=f"eval {label or cfg.model.name} on {benchmark}", unit="problem") as bar:
            for start in range(0, len(todo), chunk):
                ids = todo[start : start + chunk]
                t0 = time.perf_counter()
                prompts = [render_with_examples(tokenizer, rows[i]["prompt"], cfg.data, examples, cfg.few_shot,
                                                cfg.eval.question_format)
                           for i in ids]
                made: list[tuple[int, str, int, object]] = []
                if cfg.eval.greedy:
                    made += [(ids[s.prompt_index], "greedy", 0, s) for s in engine.generate(prompts, 1, greedy)]
                if n:
                    sampled.seed = (cfg.generation.seed or 0) + ids[0]
                    gen = engine.generate(prompts, n, sampled)
                    made += [(ids[s.prompt_index], "sample", j % n, s) for j, s in enumerate(gen)]
                t1 = time.perf_counter()
                scores = score([verifiers.Sample.from_row(rows[i], s.text) for i, _, _, s in made])
                t2 = time.perf_counter()
                # timing first: a kill between the two writes redoes the chunk, whose new timing then wins
                append_jsonl(out / TIMING, [{"problems": len(ids), "ids": ids, "responses": len(made),
                                             "generation_seconds": round(t1 - t0, 3),
                                             "judge_seconds": round(t2 - t1, 3), "seconds": round(t2 - t0, 3)}])
                append_jsonl(out / GENERATIONS, [record(i, rows[i], mode, j, s, v)
                                                 for (i, mode, j, s), v in zip(made, scores)])
                bar.update(len(ids))
    finally:
        engine.close()


def record(problem: int, row: dict, mode: str, sample: int, s, verdict) -> dict:
    """One line of generations.jsonl: which problem, the response, and the verifier's verdict."""
    answer = verdict.details.get("extracted") if isinstance(verdict.details, dict) else None
    return {"problem": problem, "id": row.get("task_id", row.get("unique_id", problem)), "mode": mode,
            "sample": sample, "prompt": row["prompt"], "reference": row.get("reference"),
            "completion": s.text, "num_tokens": len(s.response_ids), "finish_reason": s.finish_reason,
            "reward": verdict.reward, "correct": bool(verdict.correct), "reason": verdict.reason,
            "answer": answer}
