"""Benchmark metrics as pure functions over per-sample verdicts.

A problem's record holds the verdicts of its sampled responses (`correct`, in sampling order) and the
answer each one gave (`answers`, None when no answer could be extracted); the metrics below turn those
into pass@k and maj@k, and a run's records into per-group means.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., 2021, eq. 1):

        pass@k = 1 - C(n - c, k) / C(n, k)

    the probability that a random size-k subset of the n samples holds at least one correct one.
    When fewer than k samples are wrong (n - c < k) every subset holds a correct one: 1.0.
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass@k: need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k: need 1 <= k <= n, got k={k} with n={n} samples")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_answer(answers: Sequence[Hashable | None]) -> int | None:
    """Index of the first response that gave the most frequent answer (None answers do not vote).

    Ties go to the answer that appeared first, so the result depends only on the sampling order.
    None when no response gave an answer.
    """
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None
    top = max(votes.values())
    return next(i for i, a in enumerate(answers) if a is not None and votes[a] == top)


def maj_at_k(answers: Sequence[Hashable | None], correct: Sequence[bool], k: int) -> float:
    """maj@k: 1.0 when the majority answer among the first k responses is correct, else 0.0.

        maj@k = correct[argmax_a |{i < k : answers[i] = a}|]

    Responses with the same answer share one verdict (the verifier judged that answer), so the verdict
    of the first response giving the winning answer is the verdict of the vote.
    """
    if not 1 <= k <= len(answers):
        raise ValueError(f"maj@k: need 1 <= k <= {len(answers)} samples, got k={k}")
    winner = majority_answer(answers[:k])
    return float(winner is not None and bool(correct[winner]))


def mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def problem_scores(correct: Sequence[bool], answers: Sequence[Hashable | None] | None,
                   ks: Sequence[int]) -> dict[str, float]:
    """pass@k (and maj@k for k > 1 when answers are known) of one problem, for each k <= the samples."""
    n, c = len(correct), sum(bool(x) for x in correct)
    out: dict[str, float] = {}
    for k in ks:
        if k > n:
            continue
        out[f"pass@{k}"] = pass_at_k(n, c, k)
        if answers is not None and k > 1:  # maj@1 is the first sample's verdict: pass@1 says more
            out[f"maj@{k}"] = maj_at_k(answers, correct, k)
    return out


def group_means(records: Sequence[dict], keys: Sequence[str], by: str | None = None) -> dict:
    """Mean of each metric in `keys` over records, overall (by=None) or per value of record[by]."""
    if by is None:
        return {k: mean(r[k] for r in records if r.get(k) is not None) for k in keys}
    groups: dict[str, list[dict]] = {}
    for r in records:
        if r.get(by) is not None:
            groups.setdefault(str(r[by]), []).append(r)
    return {g: {"n": len(rs), **group_means(rs, keys)} for g, rs in sorted(groups.items(), key=_natural)}


def _natural(item: tuple[str, list]) -> tuple:
    """'Level 2' before 'Level 10': order by the text with its digits read as a number."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", item[0]))
