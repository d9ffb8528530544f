"""Readers for the standard benchmark files: GSM8K, MATH-500, MATH train, HumanEval, MBPP (full, sanitized,
and full with the sanitized edits), the CodeContests sample, hh-rlhf.

Each reader turns the file's own format into rlvr rows: `prompt`, `response` (a reference solution, where
there is one), `reference` (what a verifier checks against), plus the fields a verifier needs (tests).
Files are found in $RLVR_DATA_DIR, or in a `shared/data` folder beside the checkout.
"""
from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path

from rlvr.errors import UserError


def data_dir() -> Path:
    if env := os.environ.get("RLVR_DATA_DIR"):
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    for candidate in (repo.parent / "shared" / "data", repo / "data", Path.cwd() / "data"):
        if candidate.is_dir():
            return candidate
    return repo.parent / "shared" / "data"


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} in `text`, braces balanced."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def gsm8k(row: dict) -> dict:
    answer = row["answer"]
    final = answer.rsplit("####", 1)[-1].strip().replace(",", "")
    return {"prompt": row["question"], "response": answer, "reference": final}


def math500(row: dict) -> dict:
    return {**row, "prompt": row["problem"], "response": row["solution"], "reference": row["answer"]}


def math_train(row: dict) -> dict:
    return {**row, "prompt": row["problem"], "response": row["solution"], "reference": last_boxed(row["solution"])}


def humaneval(row: dict) -> dict:
    return {**row, "response": row["canonical_solution"], "reference": None}


# An MBPP description alone does not name the function its asserts call; as EvalPlus does, the prompt
# shows the first assert after it. That assert is a visible test, so RL on MBPP rewards `all` the tests
# (with `share`, hard-coding the shown case would earn a third).
MBPP_PROMPT = "{description}\n{first_test}"


def mbpp_prompt(description: str, tests: list[str]) -> str:
    return MBPP_PROMPT.format(description=description.strip(), first_test=tests[0].strip())


def mbpp(row: dict) -> dict:
    return {"prompt": mbpp_prompt(row["text"], row["test_list"]), "response": row["code"], "reference": None,
            "tests": row["test_list"], "setup": row.get("test_setup_code", ""), "task_id": row["task_id"]}


def mbpp_sanitized(row: dict) -> dict:
    """The hand-edited subset: `prompt` is the edited description; `test_imports` run before the asserts."""
    return {"prompt": mbpp_prompt(row["prompt"], row["test_list"]), "response": row["code"],
            "reference": None, "tests": row["test_list"], "test_imports": row["test_imports"],
            "task_id": row["task_id"]}


@functools.cache
def _sanitized_by_id(path: Path) -> dict[int, dict]:
    with open(path, encoding="utf-8") as f:
        return {row["task_id"]: row for row in json.load(f)}


def mbpp_edited(row: dict) -> dict:
    """An mbpp.jsonl task in the sanitized set's hand-edited form (description, asserts, the imports they
    need) where that set holds it (427 of the 974 tasks), else as it is."""
    edited = _sanitized_by_id(benchmark_file("mbpp_sanitized", "test")).get(row["task_id"])
    return mbpp_sanitized(edited) if edited else mbpp(row)


def code_contests(row: dict) -> dict:
    """A stdin/stdout problem: `test` stays the JSON list of cases the code verifier reads."""
    labels = json.loads(row["labels"])
    return {"prompt": row["content"], "reference": None, "test": row["test"], "task_id": row["id"],
            "name": labels.get("name"), "difficulty": labels.get("difficulty"),
            "source": labels.get("source")}


HH_ASSISTANT = "\n\nAssistant:"


def hh_rlhf(row: dict) -> dict:
    """The prompt is the dialogues' shared prefix up to (and including) the last 'Assistant:'."""
    chosen, rejected = row["chosen"], row["rejected"]
    cut = chosen.rfind(HH_ASSISTANT)
    if cut < 0 or rejected[: cut + len(HH_ASSISTANT)] != chosen[: cut + len(HH_ASSISTANT)]:
        # the rejected dialogue diverges earlier: use the longest common prefix ending in 'Assistant:'
        common = os.path.commonprefix([chosen, rejected])
        cut = common.rfind(HH_ASSISTANT)
        if cut < 0:
            raise KeyError("chosen/rejected share no prefix ending in 'Assistant:'")
    end = cut + len(HH_ASSISTANT)
    return {"prompt": chosen[:end], "chosen": chosen[end:].strip(), "rejected": rejected[end:].strip(),
            "reference": None}


# name -> {split: relative path}, reader
BENCHMARKS: dict[str, tuple[dict[str, str], Callable[[dict], dict]]] = {
    "gsm8k": ({"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"}, gsm8k),
    "math500": ({"test": "math/math500_test.jsonl"}, math500),
    "math": ({"train": "math/hendrycks_math_train.jsonl", "test": "math/math500_test.jsonl"}, math_train),
    "humaneval": ({"test": "humaneval/HumanEval.jsonl.gz"}, humaneval),
    "mbpp": ({"train": "mbpp/mbpp.jsonl", "test": "mbpp/mbpp.jsonl"}, mbpp),
    "mbpp_sanitized": ({"train": "mbpp/sanitized-mbpp.json", "test": "mbpp/sanitized-mbpp.json"},
                       mbpp_sanitized),
    "mbpp_edited": ({"train": "mbpp/mbpp.jsonl", "test": "mbpp/mbpp.jsonl"}, mbpp_edited),
    "code_contests": ({"test": "code_contests/code_eval_code_contests.jsonl"}, code_contests),
    "hh-rlhf": ({"test": "hh-rlhf/helpful-base-test.jsonl.gz"}, hh_rlhf),
    "hh-rlhf-harmless": ({"test": "hh-rlhf/harmless-base-test.jsonl.gz"}, hh_rlhf),
}


def benchmark_file(name: str, split: str) -> Path:
    files, _ = BENCHMARKS[name]
    if split not in files:
        raise UserError(f"data.split: benchmark '{name}' has splits {', '.join(files)}, got {split!r}")
    path = data_dir() / files[split]
    if not path.is_file():
        raise UserError(f"benchmark '{name}': file not found: {path} (set RLVR_DATA_DIR to the data folder)")
    return path


_MBPP_SPLITS = {"test": range(11, 511), "train": range(601, 975)}


def split_filter(name: str, split: str) -> Callable[[dict], bool]:
    """MBPP (both files) keeps all splits in one file, told apart by task_id ranges."""
    if name in ("mbpp", "mbpp_sanitized", "mbpp_edited"):
        ids = _MBPP_SPLITS[split]
        return lambda row: row.get("task_id") in ids
    return lambda row: True

