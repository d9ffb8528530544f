import gzip
import json

import pytest

from rlvr.config import ArithConfig, DataConfig
from rlvr.data import load_rows, render_prompt
from rlvr.data.benchmarks import data_dir, hh_rlhf, last_boxed
from rlvr.data.tasks import arith
from rlvr.errors import UserError

HAVE_DATA = (data_dir() / "gsm8k" / "test.jsonl").is_file()
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="benchmark data folder not found")


def test_arith_is_deterministic_disjoint_and_correct():
    cfg = ArithConfig(operands=3, digits=2, ops="+-*", train_size=3000, test_size=300, seed=7)
    train, test = arith.generate(cfg, "train"), arith.generate(cfg, "test")
    assert train == arith.generate(cfg, "train")
    assert len(train) == 3000 and len(test) == 300
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    for row in train[:200]:
        assert int(row["reference"]) == eval(row["prompt"])
    other = arith.generate(ArithConfig(operands=3, digits=2, ops="+-*", train_size=3000, test_size=300, seed=8),
                           "train")
    assert other != train
    # the split of an expression never depends on the seed
    assert not {r["prompt"] for r in other} & {r["prompt"] for r in test}


def test_arith_rejects_impossible_sizes():
    with pytest.raises(UserError, match="data.arith.test_size: 5000 is too many"):
        arith.generate(ArithConfig(digits=1, test_size=5000), "test")
    with pytest.raises(UserError, match="data.arith.ops"):
        arith.generate(ArithConfig(ops="+/"), "train")


@needs_data
def test_gsm8k_reader_takes_the_final_answer():
    rows = load_rows(DataConfig(source="gsm8k"), "test").rows
    assert len(rows) == 1319
    assert rows[0]["reference"] == "18" and "Janet" in rows[0]["prompt"]
    assert all("," not in r["reference"] for r in rows)


@needs_data
def test_math500_and_humaneval_readers():
    rows = load_rows(DataConfig(source="math500"), "test").rows
    assert len(rows) == 500 and rows[0]["reference"] == rows[0]["answer"]
    assert last_boxed(rows[0]["solution"]) is not None
    he = load_rows(DataConfig(source="humaneval"), "test").rows
    assert len(he) == 164 and {"prompt", "test", "entry_point"} <= set(he[0])


def test_an_mbpp_prompt_is_the_description_then_the_first_assert():
    from rlvr.data.benchmarks import mbpp, mbpp_sanitized

    tests = ["assert add(1, 2) == 3 ", "assert add(0, 0) == 0", "assert add(-1, 1) == 0"]
    row = mbpp({"text": " Write a function to add two numbers. ", "code": "def add(a, b): return a + b",
                "test_list": tests, "test_setup_code": "", "task_id": 601})
    assert row == {"prompt": "Write a function to add two numbers.\nassert add(1, 2) == 3",
                   "response": "def add(a, b): return a + b", "reference": None, "tests": tests, "setup": "",
                   "task_id": 601}
    edited = mbpp_sanitized({"source_file": "x", "task_id": 11, "prompt": "Add two numbers.", "code": "C",
                             "test_imports": ["import math"], "test_list": tests})
    assert edited == {"prompt": "Add two numbers.\nassert add(1, 2) == 3", "response": "C", "reference": None,
                      "tests": tests, "test_imports": ["import math"], "task_id": 11}


@needs_data
def test_mbpp_readers_split_by_task_id_and_show_one_assert():
    """Sanitized MBPP: 257 test tasks (task_ids 11-510) and 120 train (601-974), as Hugging Face's
    `sanitized` splits; mbpp_edited: all 974 tasks, the sanitized set's edits where it has them."""
    from rlvr.data import read_file
    from rlvr.data.benchmarks import benchmark_file

    raw = {r["task_id"]: r for r in read_file(benchmark_file("mbpp_sanitized", "test"))}
    sizes = {}
    for split, ids in (("test", range(11, 511)), ("train", range(601, 975))):
        rows = load_rows(DataConfig(source="mbpp_sanitized"), split).rows
        sizes[split] = len(rows)
        for r in rows:
            original = raw[r["task_id"]]
            assert r["task_id"] in ids and r["tests"] == original["test_list"]
            assert r["test_imports"] == original["test_imports"] and r["response"] == original["code"]
            assert r["prompt"] == original["prompt"].strip() + "\n" + original["test_list"][0].strip()
            # the other asserts stay hidden
            assert not any(t.strip() in r["prompt"] for t in original["test_list"][1:])
    assert sizes == {"test": 257, "train": 120}
    assert sum(bool(r["test_imports"]) for r in raw.values()) == 13

    full = load_rows(DataConfig(source="mbpp"), "train").rows
    edited = load_rows(DataConfig(source="mbpp_edited"), "train").rows
    assert len(full) == len(edited) == 374 and [r["task_id"] for r in full] == [r["task_id"] for r in edited]
    assert all(r["prompt"].endswith("\n" + r["tests"][0].strip()) for r in full)
    sanitized = {r["task_id"]: r for r in load_rows(DataConfig(source="mbpp_sanitized"), "train").rows}
    for plain, r in zip(full, edited):
        assert r == sanitized.get(r["task_id"], plain)
    assert sum(r["task_id"] in sanitized for r in edited) == 120
    assert len(load_rows(DataConfig(source="mbpp_edited"), "test").rows) == 500


@needs_data
def test_code_contests_reader_keeps_the_cases_for_the_code_verifier():
    from verifiers.code_plan import plan

    rows = load_rows(DataConfig(source="code_contests"), "test").rows
    assert len(rows) == 20 and rows[17]["name"] == "12_B. Correct Solution?"
    assert (rows[17]["difficulty"], rows[17]["source"], rows[0]["source"]) == ("B", "CODEFORCES", "CODECHEF")
    assert rows[17]["prompt"].startswith("One cold winter evening Alice and her older brother Bob")
    fields = {k: v for k, v in rows[17].items() if k not in ("prompt", "reference")}
    p = plan(fields, "print(1)", "python", 4.0)
    assert p.kind == "stdio" and len(p.cases) == 132 and p.cases[0] == ("0\n00\n", "WRONG_ANSWER\n")
    with pytest.raises(UserError, match="benchmark 'code_contests' has splits test, got 'train'"):
        load_rows(DataConfig(source="code_contests"), "train")


@needs_data
def test_hh_rlhf_prompt_is_the_shared_prefix():
    from rlvr.data import read_file
    from rlvr.data.benchmarks import benchmark_file

    rows = load_rows(DataConfig(source="hh-rlhf"), "test", {"prompt": str, "chosen": str}).rows
    raw = read_file(benchmark_file("hh-rlhf", "test"))
    assert len(rows) == len(raw) == 2354
    for r, original in zip(rows[:200], raw):
        assert r["prompt"].endswith("Assistant:")
        for side in ("chosen", "rejected"):
            assert original[side].startswith(r["prompt"])
            assert original[side][len(r["prompt"]):].strip() == r[side]


def test_hh_rlhf_prefix_hand_case():
    row = hh_rlhf({"chosen": "\n\nHuman: hi\n\nAssistant: hello!", "rejected": "\n\nHuman: hi\n\nAssistant: go away"})
    assert row == {"prompt": "\n\nHuman: hi\n\nAssistant:", "chosen": "hello!", "rejected": "go away",
                   "reference": None}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_local_file_with_field_mapping(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"q": "1+1", "a": "2"}, {"q": "2+2", "a": "4"}])
    cfg = DataConfig(source=path)
    cfg.fields.prompt, cfg.fields.response = "q", "a"
    rows = load_rows(cfg, need={"prompt": str, "response": str}).rows
    assert [(r["prompt"], r["response"]) for r in rows] == [("1+1", "2"), ("2+2", "4")]


def test_gzipped_jsonl(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"prompt": "x", "response": "y"}) + "\n")
    assert load_rows(DataConfig(source=str(path))).rows[0]["response"] == "y"


def test_bad_row_names_file_line_and_field(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "c"},
                                               {"prompt": "d", "response": "e"}])
    with pytest.raises(UserError) as e:
        load_rows(DataConfig(source=path), need={"prompt": str, "response": str})
    assert f"{path} line 2: missing field 'response'" in str(e.value)
    skipped = load_rows(DataConfig(source=path, on_bad_row="skip"), need={"prompt": str, "response": str})
    assert skipped.skipped == 1 and [r["prompt"] for r in skipped.rows] == ["a", "d"]


def test_wrong_type_is_named(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a"}, {"prompt": ["not", "text"]}])
    with pytest.raises(UserError, match=r"line 2: field 'prompt': expected str, got list"):
        load_rows(DataConfig(source=path))


def test_malformed_json_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": \n')
    with pytest.raises(UserError, match=r"d.jsonl line 2: not valid JSON"):
        load_rows(DataConfig(source=str(path)))


def test_missing_file():
    with pytest.raises(UserError, match="data file not found: nowhere.jsonl"):
        load_rows(DataConfig(source="nowhere.jsonl"))


def test_templates(tiny_model_dir):
    from rlvr.models import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    assert render_prompt(tok, "1+2", DataConfig()) == "<|user|>1+2<|assistant|>"
    assert render_prompt(tok, "1+2", DataConfig(system_prompt="be brief")) == \
        "<|system|>be brief<|user|>1+2<|assistant|>"
    assert render_prompt(tok, "1+2", DataConfig(template="plain", prompt_format="Q: {prompt}\nA:")) == "Q: 1+2\nA:"


def test_line_numbers_count_blank_lines_and_carriage_returns(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"prompt": "a"}\r\n\r\n\n{"prompt": 5}\n')
    with pytest.raises(UserError, match=r"d\.jsonl line 4: field 'prompt': expected str, got int"):
        load_rows(DataConfig(source=str(path)))
    skipped = load_rows(DataConfig(source=str(path), on_bad_row="skip"))
    assert skipped.skipped == 1 and [r["prompt"] for r in skipped.rows] == ["a"]


def test_a_line_separator_inside_a_string_is_not_a_new_line(tmp_path):
    # U+2028 is valid raw inside a JSON string; str.splitlines() would cut the row in two
    path = tmp_path / "d.jsonl"
    row = json.dumps({"prompt": "a\u2028b"}, ensure_ascii=False) + "\n"
    path.write_text(row + json.dumps({"prompt": 1}) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"line 2: field 'prompt'"):
        load_rows(DataConfig(source=str(path)))
    path.write_text(json.dumps({"prompt": "a\u2028b"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_rows(DataConfig(source=str(path))).rows[0]["prompt"] == "a\u2028b"


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(UserError, match=r"d\.jsonl line 3: not UTF-8 text \(byte 0xe9"):
        load_rows(DataConfig(source=str(path)))
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "a"}\n')  # a BOM, as some editors write, is fine
    assert load_rows(DataConfig(source=str(path))).rows == [{"prompt": "a"}]


@pytest.mark.parametrize("text, needle", [
    ("[1, 2, 3]", r"d\.json element 1: expected a JSON object, got int 1"),
    ('[{"prompt": "a"}, ["x"]]', r"d\.json element 2: expected a JSON object, got list \[\"x\"\]"),
    ('{"prompt": "a"}\n"b"\n', r"d\.json line 2: expected a JSON object, got str"),
    ('{\n "rows": [{"prompt": "a"}]\n}\n', r"d\.json: one JSON object over several lines \(keys: rows\)"),
    ('{"prompt": "a"\n', r"d\.json line 1: not valid JSON"),
])
def test_json_that_is_not_rows_of_objects(tmp_path, text, needle):
    path = tmp_path / "d.json"
    path.write_text(text)
    with pytest.raises(UserError, match=needle):
        load_rows(DataConfig(source=str(path)))


def test_a_json_array_and_one_object_on_one_line_are_rows(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('\n  [{"prompt": "a"},\n   {"prompt": "b"}]\n')
    assert [r["prompt"] for r in load_rows(DataConfig(source=str(path))).rows] == ["a", "b"]
    path.write_text('{"prompt": "a"}')
    assert load_rows(DataConfig(source=str(path))).rows == [{"prompt": "a"}]


@pytest.mark.parametrize("name, data", [("d.jsonl", b""), ("d.jsonl", b"\n \n\t\n"), ("d.json", b" [ ] "),
                                        ("d.jsonl.gz", gzip.compress(b"\n"))])
def test_an_empty_data_file_is_named(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UserError, match=rf"{name}: no rows in the file"):
        load_rows(DataConfig(source=str(path)))


def test_every_row_skipped_is_an_error_not_an_empty_run(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"q": "a"}, {"q": "b"}])
    with pytest.raises(UserError, match=r"d\.jsonl: every row is bad \(all 2 skipped"):
        load_rows(DataConfig(source=path, on_bad_row="skip"))


def test_a_truncated_gzip_is_named(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"prompt": "a"}\n' * 100)[:-30])
    with pytest.raises(UserError, match=r"cannot read .*d\.jsonl\.gz"):
        load_rows(DataConfig(source=str(path)))


def test_parquet_rows_are_named_by_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"prompt": ["a", None, "c"]}), path)
    with pytest.raises(UserError, match=r"d\.parquet row 2: missing field 'prompt'"):
        load_rows(DataConfig(source=str(path)))
    pq.write_table(pa.table({"prompt": pa.array([], pa.string())}), path)
    with pytest.raises(UserError, match=r"d\.parquet: no rows in the file"):
        load_rows(DataConfig(source=str(path)))
