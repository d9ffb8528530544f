"""`arith`: integer arithmetic problems of configurable difficulty, deterministic by seed.

Train and test are disjoint by construction: an expression belongs to the test split exactly when a hash
of its text says so, whatever the seed and sizes, so no test problem can ever leak into training.
"""
from __future__ import annotations

import hashlib
import random

from rlvr.config import ArithConfig
from rlvr.errors import UserError

TEST_SHARE = 0.1  # share of the expression space that belongs to the test split


def _in_test(expr: str) -> bool:
    h = int.from_bytes(hashlib.blake2b(expr.encode(), digest_size=8).digest(), "big")
    return h % 1000 < TEST_SHARE * 1000


def space_size(cfg: ArithConfig) -> int:
    """How many distinct expressions the config can draw (both splits)."""
    return (10**cfg.digits) ** cfg.operands * len(cfg.ops) ** (cfg.operands - 1)


def make_expression(rng: random.Random, cfg: ArithConfig) -> str:
    terms = [str(rng.randrange(10**cfg.digits)) for _ in range(cfg.operands)]
    expr = terms[0]
    for t in terms[1:]:
        expr += rng.choice(cfg.ops) + t
    return expr


def generate(cfg: ArithConfig, split: str) -> list[dict]:
    """Rows {prompt: '12+34', response: '46', reference: '46'} for split 'train' or 'test'."""
    if split not in ("train", "test"):
        raise UserError(f"data.split: the arith task has splits 'train' and 'test', got {split!r}")
    if bad := set(cfg.ops) - set("+-*"):
        raise UserError(f"data.arith.ops: expected characters from '+-*', got {''.join(sorted(bad))!r}")
    if cfg.operands < 1 or cfg.digits < 1:
        raise UserError("data.arith.operands and data.arith.digits: expected at least 1")
    want = cfg.train_size if split == "train" else cfg.test_size
    share = TEST_SHARE if split == "test" else 1 - TEST_SHARE
    if want > 0.9 * share * space_size(cfg):
        raise UserError(
            f"data.arith.{split}_size: {want} is too many for {cfg.operands} operands of {cfg.digits} "
            f"digit(s) (about {int(share * space_size(cfg))} distinct {split} problems); raise digits or operands"
        )
    rng = random.Random(f"arith-{cfg.seed}-{split}")
    seen: set[str] = set()
    rows = []
    while len(rows) < want:
        expr = make_expression(rng, cfg)
        if expr in seen or _in_test(expr) != (split == "test"):
            continue
        seen.add(expr)
        answer = str(eval(expr, {"__builtins__": {}}))  # our own digits and operators only
        rows.append({"prompt": expr, "response": answer, "reference": answer})
    return rows
