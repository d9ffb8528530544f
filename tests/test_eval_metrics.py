"""pass@k, maj@k and the per-problem/per-group aggregation, on cases worked out by hand."""
from __future__ import annotations

import itertools
from math import comb

import pytest

from rlvr.eval.metrics import (
    group_means,
    maj_at_k,
    majority_answer,
    pass_at_k,
    problem_scores,
)
from rlvr.eval.report import problem_record, summarize


@pytest.mark.parametrize("n,c,k,expected", [
    (1, 1, 1, 1.0),
    (1, 0, 1, 0.0),
    (4, 1, 1, 0.25),            # one right in four: c / n
    (4, 1, 2, 0.5),             # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (5, 2, 3, 0.9),             # 1 - C(3,3)/C(5,3) = 1 - 1/10
    (10, 3, 5, 1 - 21 / 252),   # 1 - C(7,5)/C(10,5)
    (3, 2, 2, 1.0),             # only one wrong: every pair holds a right one
    (8, 0, 8, 0.0),
])
def test_pass_at_k_closed_form(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_the_share_of_k_subsets_holding_a_correct_sample():
    """The estimator equals brute-force enumeration of all size-k subsets of the n samples."""
    for n in range(1, 8):
        for c in range(n + 1):
            verdicts = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(verdicts, k))
                assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / comb(n, k))


def test_pass_at_1_is_the_mean_of_the_verdicts():
    assert pass_at_k(7, 3, 1) == pytest.approx(3 / 7)


@pytest.mark.parametrize("n,c,k", [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)])
def test_pass_at_k_refuses_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_maj_at_k_hand_case():
    # answers of 5 samples; '12' is right, '7' is wrong
    answers = ["7", "12", "12", None, "7"]
    correct = [False, True, True, False, False]
    assert maj_at_k(answers, correct, 1) == 0.0       # one vote: '7'
    assert maj_at_k(answers, correct, 2) == 0.0       # '7' and '12' tie: the first given wins
    assert maj_at_k(answers, correct, 3) == 1.0       # '12' twice
    assert maj_at_k(answers, correct, 4) == 1.0       # None does not vote
    assert maj_at_k(answers, correct, 5) == 0.0       # '7' and '12' twice each: '7' came first


def test_majority_without_any_answer_is_wrong():
    assert majority_answer([None, None]) is None
    assert maj_at_k([None, None], [False, False], 2) == 0.0


def test_problem_scores_skips_k_above_the_samples_and_maj_at_1():
    s = problem_scores([True, False, False, False], ["3", "4", "4", "5"], [1, 2, 4, 8])
    assert s == {"pass@1": 0.25, "pass@2": 0.5, "pass@4": 1.0, "maj@2": 1.0, "maj@4": 0.0}


def test_problem_record_and_group_means():
    def rec(mode, j, ok, answer, tokens, finish="eos"):
        return {"mode": mode, "sample": j, "correct": ok, "reward": float(ok), "answer": answer,
                "num_tokens": tokens, "finish_reason": finish}

    p1 = problem_record({"subject": "Algebra", "level": 2},
                        [rec("greedy", 0, True, "1", 10), rec("sample", 1, False, "2", 20, "length"),
                         rec("sample", 0, True, "1", 30)], [1, 2], ["subject", "level"])
    assert p1 == {"subject": "Algebra", "level": 2, "accuracy": 1.0, "pass@1": 0.5, "pass@2": 1.0,
                  "maj@2": 1.0, "mean_reward": 1.0, "mean_tokens": 20.0, "truncated": pytest.approx(1 / 3)}
    p2 = {"subject": "Geometry", "level": 10, "accuracy": 0.0, "mean_tokens": 4.0, "truncated": 0.0}
    p3 = {"subject": "Algebra", "level": 10, "accuracy": 0.0, "mean_tokens": 6.0, "truncated": 1.0}
    out = summarize([p1, p2, p3], ["subject", "level"])
    assert out["metrics"]["accuracy"] == pytest.approx(1 / 3)
    assert out["metrics"]["pass@2"] == 1.0  # only problems that have the metric count
    assert out["by_subject"]["Algebra"]["n"] == 2 and out["by_subject"]["Algebra"]["accuracy"] == 0.5
    assert list(out["by_level"]) == ["2", "10"]  # numeric order, not text order
    assert group_means([], ["accuracy"]) == {"accuracy": None}
