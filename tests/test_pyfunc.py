"""The `pyfunc` code task: deterministic, disjoint by behaviour, hidden tests never shown, every canonical
body passing its own tests in the sandbox and wrong ones failing; its plumbing (config, loading, eval)."""
import ast
import dataclasses

import pytest

import verifiers
from rlvr.config import DataConfig, config_from_dict
from rlvr.config.parts import PyfuncConfig
from rlvr.data import load_rows, render_prompt
from rlvr.data.tasks import pyfunc
from rlvr.errors import UserError
from rlvr.eval.benchmarks import DEFAULTS
from rlvr.generation.base import Sample
from rlvr.trainers.evaluation import training_and_held_out
from rlvr.trainers.sft import SFTTrainer
from tests.conftest import run_rlvr
from tests.device_audit import WORLD_OF_ONE

CFG = PyfuncConfig(train_size=1500, test_size=300, seed=3)


@pytest.fixture(scope="module")
def splits():
    return pyfunc.generate(CFG, "train"), pyfunc.generate(CFG, "test")


def hidden_cases(row: dict) -> list[tuple]:
    """(input, output) of each `assert candidate(<lit>)==<lit>` of the row's check()."""
    check = ast.parse(row["test"]).body[0]
    assert isinstance(check, ast.FunctionDef) and check.name == "check"
    cases = []
    for stmt in check.body:
        compare = stmt.test
        assert isinstance(stmt, ast.Assert) and isinstance(compare.ops[0], ast.Eq)
        assert compare.left.func.id == "candidate"
        cases.append((ast.literal_eval(compare.left.args[0]), ast.literal_eval(compare.comparators[0])))
    return cases


def test_pyfunc_is_deterministic_and_disjoint_by_behaviour(splits):
    train, test = splits
    assert (train, test) == (pyfunc.generate(CFG, "train"), pyfunc.generate(CFG, "test"))
    assert len(train) == 1500 and len(test) == 300
    assert len({r["prompt"] for r in train}) == 1500
    other = pyfunc.generate(dataclasses.replace(CFG, seed=4), "train")
    assert other != train
    # disjoint by what a function computes, whatever the seed: no held-out fn_id in either training set
    held = {r["fn_id"] for r in test}
    assert not held & ({r["fn_id"] for r in train} | {r["fn_id"] for r in other})
    assert not held & {f.fn_id for f in pyfunc.split_functions("train", list(pyfunc.FAMILIES))}
    assert {r["family"] for r in test} == {"int", "str", "list"}
    # behaviour, not text: x*2 and x+x are one function, so they fall in one split
    by_id = {f.fn_id: f for f in pyfunc.functions()}
    twice = pyfunc.Function("int", "x+x", "x+x", "")
    same = [f for f in by_id.values()
            if f.family == "int" and all(pyfunc.apply(f, p) == pyfunc.apply(twice, p) for p in range(-50, 50))]
    assert [f.body for f in same] == ["x*2"]
    # every function has a behaviour of its own on the probes
    assert len(by_id) == len(pyfunc.functions())


def test_demonstrated_and_practised_functions_are_disjoint_halves_of_the_training_functions():
    demo = pyfunc.generate(dataclasses.replace(CFG, train_size=600, train_functions=[0.0, 0.5]), "train")
    practice = pyfunc.generate(dataclasses.replace(CFG, train_size=600, train_functions=[0.5, 1.0]), "train")
    many = {f.shape for f in pyfunc.functions() if pyfunc.in_test(f)}  # shapes with held-out functions
    ids = [{r["fn_id"] for r in rows if r["shape"] in many} for rows in (demo, practice)]
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    # a shape of one function (sorted(a)) is in both halves: RL could never discover it otherwise
    shapes = [{r["shape"] for r in rows} for rows in (demo, practice)]
    assert {"sorted(a)", "s.upper()", "len(s)"} <= shapes[0] & shapes[1]
    assert shapes[0] == shapes[1]
    everything = {f.fn_id for f in pyfunc.split_functions("train", list(pyfunc.FAMILIES))}
    halves = [{f.fn_id for f in pyfunc.split_functions("train", list(pyfunc.FAMILIES), p)}
              for p in ((0.0, 0.5), (0.5, 1.0))]
    assert halves[0] | halves[1] == everything
    with pytest.raises(UserError, match=r"data.pyfunc.train_functions: expected \[from, to\] with 0 <= from"):
        pyfunc.generate(dataclasses.replace(CFG, train_functions=[0.5, 0.5]), "train")


def test_hidden_tests_are_never_in_the_prompt_and_the_examples_are_right(splits):
    train, test = splits
    for row in train[:600] + test:
        fn = next(f for f in pyfunc.functions() if f.fn_id == row["fn_id"])
        assert row["response"] == fn.body and row["entry_point"] == "f"
        comment, header = row["prompt"].split("\n")
        assert header == f"f=lambda {pyfunc.ARG[row['family']]}:"
        shown = [pair.split(">") for pair in comment[1:].split(" ")]
        for given, out in shown:
            value = given if row["family"] == "str" else ast.literal_eval(given)
            assert pyfunc.shown(pyfunc.apply(fn, value)) == out
        cases = hidden_cases(row)
        assert len(cases) == pyfunc.HIDDEN_TESTS
        inputs = [given for given, _ in shown]
        for given, out in cases:
            assert out == pyfunc.apply(fn, given)
            assert pyfunc.shown(given) not in inputs
            if row["family"] != "int":  # a word or a list is nowhere in the prompt (digits are everywhere)
                assert pyfunc.shown(given) not in row["prompt"]
        # no field the model's prompt is rendered from holds the tests
        assert "candidate" not in row["prompt"] and "assert" not in row["prompt"]


def test_an_example_set_that_fits_two_functions_is_refused():
    """With this grammar a random example set almost never fits two functions, so the guard is tested
    directly: sum(a) and max(a) agree on [0,5] and [7]."""
    by_body = {f.body: f for f in pyfunc.functions()}
    assert pyfunc.ambiguous(by_body["sum(a)"], [([0, 5], 5), ([7], 7)])
    assert not pyfunc.ambiguous(by_body["sum(a)"], [([0, 5], 5), ([2, 3], 5)])
    assert pyfunc.make_problem(FixedInputs([[0, 5], [7], [9]]), by_body["max(a)"], set()) is None


class FixedInputs:
    """A random.Random whose draws give the listed lists in turn (for shown_inputs)."""

    def __init__(self, values):
        self.values = list(values)

    def randint(self, lo, hi):
        return len(self.values[0])

    def randrange(self, n):
        value = self.values[0].pop(0)
        if not self.values[0]:
            self.values.pop(0)
        return value


def test_no_example_set_fits_two_functions(splits):
    train, test = splits
    for row in train[:300] + test[:100]:
        comment = row["prompt"].split("\n")[0][1:]
        examples = [tuple(pair.split(">")) for pair in comment.split(" ")]
        fits = [f for f in pyfunc.functions() if f.family == row["family"]
                and all(pyfunc.shown(pyfunc.apply(f, g if f.family == "str" else ast.literal_eval(g))) == o
                        for g, o in examples)]
        assert [f.fn_id for f in fits] == [row["fn_id"]]


def test_prompts_fit_the_alphabet_and_the_quickstart_model(splits):
    train, test = splits
    text = "".join(r["prompt"] + r["response"] for r in train + test)
    assert set(text) <= set(pyfunc.ALPHABET)
    # the quickstart's tiny model: 160 positions, 24 new tokens, 3 chat tokens
    assert max(len(r["prompt"]) for r in train + test) + 3 + 24 <= 160
    assert max(len(r["response"]) for r in train + test) < 24


def test_canonical_bodies_pass_their_hidden_tests_and_wrong_ones_fail(splits):
    train, test = splits
    rows = train[:100] + test[:100]
    code = verifiers.compose([{"name": "code", "options": DEFAULTS["pyfunc"].options}])
    try:
        good = code.verify_batch([verifiers.Sample.from_row(r, r["response"]) for r in rows])
        # another function of the same family (the next one of the grammar): some hidden test fails
        family = {f: [g for g in pyfunc.functions() if g.family == f] for f in pyfunc.FAMILIES}
        wrong = []
        for r in rows[:60]:
            fns = family[r["family"]]
            i = next(i for i, f in enumerate(fns) if f.fn_id == r["fn_id"])
            wrong.append(fns[(i + 1) % len(fns)].body)
        bad = code.verify_batch([verifiers.Sample.from_row(r, w) for r, w in zip(rows, wrong)])
    finally:
        code.close()
    assert [s.correct for s in good] == [True] * len(rows), [s.reason for s in good if not s.correct][:3]
    assert not any(s.correct for s in bad)
    assert all(s.details["tests_total"] == pyfunc.HIDDEN_TESTS for s in good + bad)


def test_pyfunc_plumbing_config_loading_and_held_out_split():
    cfg = config_from_dict({"kind": "sft", "data": {"source": "pyfunc",
                                                     "pyfunc": {"train_size": 50, "test_size": 20}}})
    train, held, note = training_and_held_out(cfg.data, {"prompt": str, "response": str}, None)
    assert (len(train.rows), len(held.rows), note) == (50, 20, None)
    assert not {r["fn_id"] for r in train.rows} & {r["fn_id"] for r in held.rows}
    assert load_rows(cfg.data, "test").rows == held.rows
    with pytest.raises(UserError, match="data.pyfunc.test_size: expected 0 or more"):
        config_from_dict({"kind": "sft", "data": {"source": "pyfunc", "pyfunc": {"test_size": -1}}})
    with pytest.raises(UserError, match="data.pyfunc.families: expected a non-empty list of int, str, list"):
        load_rows(DataConfig(source="pyfunc", pyfunc=PyfuncConfig(families=["int", "dict"])), "train")
    # held-out int problems: about 40 functions x 28 example sets (0, 1 and two of 2..9)
    with pytest.raises(UserError, match="data.pyfunc.test_size: 2000 is too many distinct test problems"):
        pyfunc.generate(PyfuncConfig(families=["int"], test_size=2000), "test")
    with pytest.raises(UserError, match="data.split: the pyfunc task has splits"):
        pyfunc.generate(CFG, "validation")
    assert DEFAULTS["pyfunc"].verifier == "code" and DEFAULTS["pyfunc"].options["extract"] == "raw"


class Answers:
    """An engine that answers each prompt with a given text (the judge, not the model, is under test)."""

    def __init__(self, texts: dict[str, str]):
        self.texts = texts

    def generate(self, prompts, n, params):
        return [Sample(p, [], [], self.texts[p], [], "stop", i) for i, p in enumerate(prompts)]


def test_sft_accuracy_on_code_is_judged_by_the_verifier_not_by_exact_match(tmp_path, monkeypatch):
    """`(x*3+4)` is not the reference text `x*3+4`, but it passes every hidden test: with a reward section
    the SFT trainer counts it (and a wrong body not), without one it falls back to exact match."""
    base = {"kind": "sft", "model": {"name": "tiny", "tiny": {"hidden_size": 16, "num_layers": 1,
                                                               "num_heads": 2, "intermediate_size": 32,
                                                               "max_position_embeddings": 160,
                                                               "alphabet": pyfunc.ALPHABET}},
            "data": {"source": "pyfunc", "pyfunc": {"train_size": 40, "test_size": 12}},
            "trainer": {"max_steps": 1, "batch_size": 8, "micro_batch_size": 8},
            "logging": {"out_dir": str(tmp_path / "sft"), "progress": False, "tensorboard": False}}
    reward = {"verifiers": [{"name": "code", "options": DEFAULTS["pyfunc"].options}], "workers": 0}
    for key, value in WORLD_OF_ONE.items():  # one rank, even after an earlier test left its process group
        monkeypatch.setenv(key, value)
    trainer = SFTTrainer(config_from_dict({**base, "reward": reward}))
    try:
        rows = trainer.eval_rows
        prompts = [render_prompt(trainer.tokenizer, r["prompt"], trainer.cfg.data) for r in rows]
        trainer.generator = Answers({p: f"({r['response']})" for p, r in zip(prompts, rows)})
        assert trainer.accuracy() == 1.0
        trainer.generator = Answers({p: f"({r['response']})" if i % 3 else "0" for i, (p, r)
                                     in enumerate(zip(prompts, rows))})
        assert trainer.accuracy() == pytest.approx(8 / 12)
        trainer.judge = None  # the config without a reward section: exact match of the reference text
        assert trainer.accuracy() == 0.0
    finally:
        trainer.close()


def test_quickstart_code_refuses_arith_options():
    for option in (["--digits", "3"], ["--operands", "3"], ["--ops", "+-"]):
        proc = run_rlvr("quickstart", "--task", "code", *option, "--out", "/nonexistent/qs")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"rlvr: error: {option[0]}: an arith option; --task code (pyfunc) has no operands, digits or ops"]
    from rlvr import quickstart
    from rlvr.cli import quickstart as cli
    assert (cli.CODE_SFT_STEPS, cli.CODE_RL_STEPS) == (quickstart.CODE_SFT_STEPS, quickstart.CODE_RL_STEPS)
