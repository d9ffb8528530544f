"""Which rows a trainer holds out (rlvr/trainers/evaluation.py training_and_held_out): a local file with no
separate eval source is carved in two, so its 'held-out' accuracy is never measured on trained rows."""
import json

from rlvr.config import ArithConfig, DataConfig
from rlvr.data.preferences import in_test
from rlvr.trainers.evaluation import training_and_held_out


def test_a_local_file_without_eval_source_is_carved(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"prompt": f"{a}+{b}", "reference": str(a + b)} for a in range(10) for b in range(10)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for eval_source in (None, str(path)):  # unset, or the same file named again
        train, held, note = training_and_held_out(DataConfig(source=str(path), eval_source=eval_source),
                                                  {"prompt": str}, None)
        assert held.rows == [r for r in rows if in_test(r["prompt"])] and len(held.rows) == 23
        assert train.rows == [r for r in rows if not in_test(r["prompt"])]
        assert note == (f"data: {path} has no separate data.eval_source: 23 of its 100 rows (by a hash of each "
                        "prompt, as for preference pairs) are held out for evaluation and not trained on")
    # the limits apply after carving: max_samples to the training rows, the eval limit to the held-out ones
    train, held, _ = training_and_held_out(DataConfig(source=str(path), max_samples=5), {"prompt": str}, 3)
    assert len(train.rows) == 5 and len(held.rows) == 3 and not {r["prompt"] for r in train.rows} & {
        r["prompt"] for r in held.rows}


def test_sources_with_their_own_test_split_are_left_alone(tmp_path):
    other = tmp_path / "test.jsonl"
    other.write_text('{"prompt": "1+1"}\n')
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "2+2"}\n{"prompt": "1+1"}\n')
    train, held, note = training_and_held_out(DataConfig(source=str(path), eval_source=str(other)),
                                              {"prompt": str}, None)
    assert [r["prompt"] for r in train.rows] == ["2+2", "1+1"] and held.rows == [{"prompt": "1+1"}]
    assert note is None
    arith = DataConfig(arith=ArithConfig(train_size=50, test_size=10))
    train, held, note = training_and_held_out(arith, {"prompt": str}, None)
    assert len(train.rows) == 50 and len(held.rows) == 10 and note is None
