"""Preference pairs for reward models and the DPO family: rows {prompt, chosen, rejected, ...}.

    pairs = load_pairs(cfg.data, "train")          # or cfg.data.eval_split for the held-out pairs

Sources (`data.source`):
- `arith`: synthetic pairs, the correct answer of an expression against a plausible wrong one (off by
  one or ten, a dropped carry, swapped digits). Deterministic by `data.arith.seed`; train and test are
  disjoint by expression (the arith task's own split).
- `hh-rlhf` / `hh-rlhf-harmless`: Anthropic HH dialogues; the prompt is the shared prefix up to the last
  "Assistant:", chosen/rejected the rest. Only the test files are shared, so `train` and `test` are carved
  out of that one file by a hash of the prompt: reproducible, independent of any seed, and a prompt never
  lands on both sides.
- a local .jsonl/.json(.gz)/.parquet file with prompt/chosen/rejected fields (renamed by `data.fields`).
  With `data.eval_source` set, the held-out split (`data.eval_split`) is that file taken whole and every
  other split the source file taken whole; without it the one file is carved into train/test like hh-rlhf.
- a hub data set name: its own splits, fields as for a file.

A bad row stops the run naming the file, line and field (or is skipped under `data.on_bad_row: skip`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import random

from rlvr.config import DataConfig
from rlvr.data import benchmarks
from rlvr.data.loading import is_file_source, load_rows
from rlvr.data.tasks import arith
from rlvr.errors import UserError

PAIR_FIELDS = {"prompt": str, "chosen": str, "rejected": str}
HH_SOURCES = ("hh-rlhf", "hh-rlhf-harmless")
TEST_SHARE = 0.2  # share of the prompts of a carved file that are held out


def in_test(prompt: str, share: float = TEST_SHARE) -> bool:
    """A prompt is held out when blake2b(prompt) mod 1000 < share * 1000: fixed by the text alone."""
    h = int.from_bytes(hashlib.blake2b(prompt.encode(), digest_size=8).digest(), "big")
    return h % 1000 < share * 1000


def carve(rows: list[dict], split: str, origin: str) -> list[dict]:
    """The `split` ('train' or 'test') share of `rows`, by a hash of each prompt."""
    if split not in ("train", "test"):
        raise UserError(f"data.split: {origin} is carved into 'train' and 'test', got {split!r}")
    return [r for r in rows if in_test(r["prompt"]) == (split == "test")]


# ---- arith ----------------------------------------------------------------------------------------
def _without_carry(expr: str) -> int | None:
    """a+b+... summed digit by digit, each column mod 10: the answer of a student who drops carries."""
    if not expr.replace("+", "").isdigit():
        return None
    terms = expr.split("+")
    width = max(len(t) for t in terms)
    columns = zip(*(t.zfill(width) for t in terms))
    return int("".join(str(sum(int(d) for d in col) % 10) for col in columns))


def _swapped_digits(answer: int, rng: random.Random) -> int | None:
    """Two adjacent, different digits of |answer| exchanged (sign kept)."""
    digits = list(str(abs(answer)))
    spots = [i for i in range(len(digits) - 1) if digits[i] != digits[i + 1] and (i or digits[1] != "0")]
    if not spots:
        return None
    i = rng.choice(spots)
    digits[i], digits[i + 1] = digits[i + 1], digits[i]
    return int("".join(digits)) * (-1 if answer < 0 else 1)


def wrong_answers(expr: str, answer: int, rng: random.Random) -> list[int]:
    """Plausible mistakes for `expr`, none equal to `answer`, without repeats, in a fixed order."""
    candidates = [answer + 1, answer - 1, answer + 10, answer - 10, _without_carry(expr),
                  _swapped_digits(answer, rng)]
    out: list[int] = []
    for c in candidates:
        if c is not None and c != answer and c not in out:
            out.append(c)
    return out


def arith_pairs(cfg: DataConfig, split: str) -> list[dict]:
    """One pair per arith problem: the reference answer against one of its plausible wrong answers."""
    rng = random.Random(f"arith-pairs-{cfg.arith.seed}-{split}")
    pairs = []
    for row in arith.generate(cfg.arith, split):
        answer = int(row["reference"])
        wrong = rng.choice(wrong_answers(row["prompt"], answer, rng))
        pairs.append({"prompt": row["prompt"], "chosen": row["reference"], "rejected": str(wrong),
                      "reference": row["reference"]})
    return pairs


# ---- any source -----------------------------------------------------------------------------------
def load_pairs(cfg: DataConfig, split: str, limit: int | None = None) -> list[dict]:
    """Checked pairs of `cfg` for `split`; at most `limit` (default `cfg.max_samples`) of them."""
    whole = dataclasses.replace(cfg, max_samples=None)  # the limit applies after carving, not before
    separate = bool(cfg.eval_source) and cfg.eval_source != cfg.source
    source = cfg.eval_source if separate and split == cfg.eval_split else cfg.source
    if source == "arith":
        pairs = arith_pairs(cfg, split)
    elif source in HH_SOURCES:
        # the shipped files are the test split of HH; both our splits come out of them
        path = benchmarks.benchmark_file(source, "test")
        pairs = carve(load_rows(whole, "test", PAIR_FIELDS, source=source).rows, split, str(path))
    elif is_file_source(source):
        rows = load_rows(whole, split, PAIR_FIELDS, source=source).rows
        pairs = rows if separate else carve(rows, split, source)
    else:  # a hub data set has splits of its own
        pairs = load_rows(whole, split, PAIR_FIELDS, source=source).rows
    limit = limit if limit is not None else cfg.max_samples
    return pairs[:limit] if limit is not None else pairs
