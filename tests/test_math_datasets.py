"""The math verifier on real data: every GSM8K test answer and the MATH-500 solutions.

Thresholds are the project's done-when figures: GSM8K all gold accepted (as `#### N` and `\\boxed{N}`)
and all gold + 1 rejected; MATH-500 gold (the row's own solution) accepted for >= 498 of 500, perturbed
answers rejected for >= 99%.
"""
import json
from pathlib import Path

import pytest

from verifiers import Sample, VerifierPool, load
from verifiers.audit import DATA_FILES, DATA_ROOT, perturbations
from verifiers.math_extract import hash_answer

GSM8K = DATA_ROOT / DATA_FILES["gsm8k"]
MATH500 = DATA_ROOT / DATA_FILES["math500"]
needs_data = pytest.mark.skipif(not (GSM8K.exists() and MATH500.exists()), reason="shared data not present")


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(load("math"), workers=2, timeout=10.0) as p:
        yield p


@needs_data
@pytest.mark.slow
def test_gsm8k_gold_accepted_and_gold_plus_one_rejected(pool):
    data = rows(GSM8K)
    assert len(data) == 1319
    samples, expect = [], []
    for row in data:
        gold = hash_answer(row["answer"])
        plus_one = str(int(gold.replace(",", "")) + 1)
        for completion, ok in ((f"#### {gold}", True), (f"so \\boxed{{{gold}}}", True), (f"\\boxed{{{plus_one}}}", False)):
            samples.append(Sample(completion=completion, reference=row["answer"]))
            expect.append(ok)
    scores = pool.score(samples)
    wrong = [(s.completion, r.reason) for s, r, ok in zip(samples, scores, expect) if r.correct is not ok]
    assert wrong == []


@needs_data
@pytest.mark.slow
def test_math500_solutions_accepted_and_perturbed_rejected(pool):
    data = rows(MATH500)
    assert len(data) == 500
    gold = pool.score([Sample(completion=r["solution"], reference=r["answer"]) for r in data])
    misses = [(r["unique_id"], s.reason) for r, s in zip(data, gold) if not s.correct]
    assert len(misses) <= 2, misses
    wrong = [Sample(completion=f"\\boxed{{{p}}}", reference=r["answer"]) for r in data for p in perturbations(r["answer"])]
    assert len(wrong) > 900
    scores = pool.score(wrong)
    accepted = [(s.completion, s.reference) for s, r in zip(wrong, scores) if r.correct]
    assert len(accepted) <= 0.01 * len(wrong), accepted
