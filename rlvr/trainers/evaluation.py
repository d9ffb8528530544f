"""Held-out accuracy inside training: which rows are held out, and greedy answers to them, judged, counted
over ranks."""
from __future__ import annotations

import dataclasses
from typing import Callable

from rlvr import distributed as D
from rlvr.data import Rows, load_rows, render_prompt
from rlvr.errors import UserError
from rlvr.generation.base import Engine, Sample, SamplingParams

Judge = Callable[[list[dict], list[Sample]], list[bool]]


def training_and_held_out(data, need: dict, eval_limit: int | None) -> tuple[Rows, Rows, str | None]:
    """(training rows, held-out rows, a line for the log or None).

    A local file with no separate data.eval_source has no test split of its own: it is carved in two by a
    hash of each prompt, as preference pairs are (rlvr.data.preferences.in_test), and the held-out share
    is never trained on, so its accuracy is a held-out one. The arith and pyfunc tasks, the benchmarks and hub data
    sets have test splits of their own. `eval_limit` None: data.max_samples, as for load_rows."""
    from rlvr.data import benchmarks
    from rlvr.data.loading import is_file_source
    from rlvr.data.preferences import in_test

    source = data.source
    local = (source not in ("arith", "pyfunc") and source not in benchmarks.BENCHMARKS
             and is_file_source(source))
    if not local or (data.eval_source and data.eval_source != source):
        return (load_rows(data, data.split, need),
                load_rows(data, data.eval_split, need, source=data.eval_source or source, limit=eval_limit),
                None)
    whole = load_rows(dataclasses.replace(data, max_samples=None), data.split, need)
    held = [r for r in whole.rows if in_test(r["prompt"])]
    train = [r for r in whole.rows if not in_test(r["prompt"])]
    note = (f"data: {whole.origin} has no separate data.eval_source: {len(held)} of its {len(whole.rows)} "
            "rows (by a hash of each prompt, as for preference pairs) are held out for evaluation and not "
            "trained on")
    eval_limit = eval_limit if eval_limit is not None else data.max_samples
    return (Rows(train[: data.max_samples], whole.skipped, whole.origin),
            Rows(held[:eval_limit], 0, whole.origin), note)


def check_batch(key: str, batch: int, rows: int, what: str, origin: str) -> None:
    """A batch larger than the data set repeats every row within each step: a mistake, not a plan."""
    if batch > rows:
        raise UserError(f"{key}: {batch} {what} per step, but {origin} has {rows} training "
                        f"{what}; lower {key} or add data")


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


class VerifierJudge:
    """Correctness by the verifiers of a reward section, scored as RL scores its rewards (a VerifierPool
    of reward.workers processes, reward.timeout per sample), so that an SFT model's held-out accuracy
    and an RL model's are judged alike. Workers start on first use; close() ends them."""

    def __init__(self, reward):
        import verifiers

        try:
            self.verifier = verifiers.compose([{k: v for k, v in vars(s).items() if v is not None}
                                               for s in reward.verifiers])
        except verifiers.VerifierError as e:
            raise UserError(f"reward.verifiers: {e}") from None
        self.workers, self.timeout = reward.workers, reward.timeout
        self._pool = None

    def __call__(self, rows: list[dict], samples: list[Sample]) -> list[bool]:
        import verifiers

        if self._pool is None:
            from rlvr.rollouts import rank_cpus

            self._pool = verifiers.VerifierPool(self.verifier, workers=self.workers, timeout=self.timeout,
                                                cpus=rank_cpus())
        scores = self._pool.score([verifiers.Sample.from_row(r, s.text) for r, s in zip(rows, samples)])
        return [bool(score.correct) for score in scores]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def exact_match(rows: list[dict], samples: list[Sample]) -> list[bool]:
    """Whitespace-normalised response == reference."""
    return [" ".join(s.text.split()) == " ".join(str(r["reference"]).split()) for r, s in zip(rows, samples)]
