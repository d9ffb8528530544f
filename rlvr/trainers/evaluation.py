"""Held-out accuracy inside training: greedy answers to the eval rows, judged, counted over ranks."""
from __future__ import annotations

from typing import Callable

from rlvr import distributed as D
from rlvr.data import render_prompt
from rlvr.generation.base import Engine, Sample, SamplingParams

Judge = Callable[[list[dict], list[Sample]], list[bool]]


def rank_shard(n: int) -> tuple[list[int], int]:
    """(this rank's indices of n items, items per rank). Every rank gets the same count, so that ZeRO-3
    forwards (collectives) line up; the caller pads its list and ignores the padding."""
    per_rank = -(-n // D.world_size())
    start = D.rank() * per_rank
    return list(range(start, min(n, start + per_rank))), per_rank


def greedy_accuracy(engine: Engine, tokenizer, rows: list[dict], data_cfg, max_new_tokens: int,
                    judge: Judge) -> float:
    if not rows:
        return float("nan")
    mine, per_rank = rank_shard(len(rows))
    padded = mine + [0] * (per_rank - len(mine))
    prompts = [render_prompt(tokenizer, rows[i]["prompt"], data_cfg) for i in padded]
    samples = engine.generate(prompts, 1, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    verdicts = judge([rows[i] for i in mine], samples[: len(mine)]) if mine else []
    (hits,) = D.all_sum([float(sum(verdicts))])
    return hits / len(rows)


def exact_match(rows: list[dict], samples: list[Sample]) -> list[bool]:
    """Whitespace-normalised response == reference."""
    return [" ".join(s.text.split()) == " ".join(str(r["reference"]).split()) for r, s in zip(rows, samples)]
