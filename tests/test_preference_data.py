import gzip
import json
import random

import pytest

from rlvr.config import ArithConfig, DataConfig, FieldsConfig
from rlvr.data.benchmarks import data_dir
from rlvr.data.preferences import carve, load_pairs, wrong_answers
from rlvr.errors import UserError

needs_hh = pytest.mark.skipif(not (data_dir() / "hh-rlhf" / "harmless-base-test.jsonl.gz").is_file(),
                              reason="benchmark data folder not found")


def arith_cfg(seed: int = 0) -> DataConfig:
    return DataConfig(source="arith", arith=ArithConfig(digits=2, train_size=2000, test_size=200, seed=seed))


def test_arith_pairs_are_correct_against_wrong_deterministic_and_disjoint():
    train, test = load_pairs(arith_cfg(), "train"), load_pairs(arith_cfg(), "test")
    assert len(train) == 2000 and len(test) == 200
    assert train == load_pairs(arith_cfg(), "train")
    assert load_pairs(arith_cfg(seed=1), "train") != train
    assert not {p["prompt"] for p in train} & {p["prompt"] for p in test}
    for p in train + test:
        truth = eval(p["prompt"])
        assert int(p["chosen"]) == truth == int(p["reference"])
        assert int(p["rejected"]) != truth
    # the wrong answers are a mix of the kinds of mistakes, not one kind
    gaps = {abs(int(p["rejected"]) - int(p["chosen"])) for p in train}
    assert {1, 10} <= gaps and len(gaps) > 10


def test_wrong_answers_hand_cases():
    rng = random.Random(0)
    # 58+67 = 125; dropping the carries gives 15 (5+6=11 -> 1, 8+7=15 -> 5); swaps: 215 or 152
    assert wrong_answers("58+67", 125, rng)[:5] == [126, 124, 135, 115, 15]
    assert wrong_answers("58+67", 125, rng)[5] in (215, 152)
    # no carry to drop, and no swap for a one-digit answer: only the off-by-one/ten mistakes
    assert wrong_answers("3+4", 7, rng) == [8, 6, 17, -3]
    # a swap never makes a leading zero: 103 -> 130 only
    assert wrong_answers("50*2+3", 103, rng)[-1] == 130


def test_a_file_is_carved_by_prompt_hash_and_limits_apply_after(tmp_path):
    path = tmp_path / "prefs.jsonl"
    rows = [{"q": f"question {i}", "good": f"yes {i}", "bad": f"no {i}"} for i in range(300)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = DataConfig(source=str(path), fields=FieldsConfig(prompt="q", chosen="good", rejected="bad"))
    train, test = load_pairs(cfg, "train"), load_pairs(cfg, "test")
    assert len(train) + len(test) == 300 and 30 < len(test) < 90
    assert {p["prompt"] for p in train}.isdisjoint({p["prompt"] for p in test})
    assert train[0]["chosen"].startswith("yes") and train[0]["rejected"].startswith("no")
    # the carve depends on the prompt text only: shuffling the file changes nothing
    assert carve(list(reversed(train + test)), "test", "x") == list(reversed(test))
    assert len(load_pairs(cfg, "train", limit=5)) == 5
    with pytest.raises(UserError, match="carved into 'train' and 'test'"):
        load_pairs(cfg, "validation")


def test_a_separate_eval_file_is_taken_whole(tmp_path):
    train_file, eval_file = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train_file.write_text("".join(json.dumps({"prompt": f"p{i}", "chosen": "a", "rejected": "b"}) + "\n"
                                  for i in range(40)))
    eval_file.write_text(json.dumps({"prompt": "held", "chosen": "a", "rejected": "b"}) + "\n")
    cfg = DataConfig(source=str(train_file), eval_source=str(eval_file))
    assert len(load_pairs(cfg, cfg.split)) == 40
    assert [p["prompt"] for p in load_pairs(cfg, cfg.eval_split)] == ["held"]


def test_a_bad_row_names_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n"
                    + json.dumps({"prompt": "a", "chosen": "b"}) + "\n"
                    + json.dumps({"prompt": "a", "chosen": "b", "rejected": 3}) + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl line 2: missing field 'rejected'") as e:
        load_pairs(DataConfig(source=str(path)), "train")
    assert "\n" not in str(e.value)
    cfg = DataConfig(source=str(path), on_bad_row="skip")
    assert len(load_pairs(cfg, "train")) + len(load_pairs(cfg, "test")) == 1


@needs_hh
def test_hh_harmless_split_is_reproducible_and_disjoint():
    cfg = DataConfig(source="hh-rlhf-harmless")
    train, test = load_pairs(cfg, "train"), load_pairs(cfg, "test")
    with gzip.open(data_dir() / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt") as f:
        total = sum(1 for _ in f)
    assert len(train) + len(test) == total == 2312
    assert (len(train), len(test)) == (1862, 450)  # fixed by the prompts' hashes, whatever the seed
    assert {p["prompt"] for p in train}.isdisjoint({p["prompt"] for p in test})
    p = test[0]
    assert p["prompt"].endswith("Assistant:") and p["prompt"].lstrip().startswith("Human:")
    assert p["chosen"] != p["rejected"] and "Human:" not in p["chosen"][:20]
