import pytest

from rlvr.config import SFTConfig, config_from_dict, load_config, parse_override
from rlvr.errors import UserError
from tests.conftest import REPO, run_rlvr


def test_yaml_and_dotted_overrides():
    cfg = load_config(REPO / "configs/sft_arith.yaml", ["trainer.lr=3e-4", "data.max_samples=200",
                                                        "generation.stop=[x, y]"])
    assert isinstance(cfg, SFTConfig)
    assert cfg.trainer.lr == pytest.approx(3e-4)
    assert cfg.data.max_samples == 200
    assert cfg.generation.stop == ["x", "y"]
    assert cfg.model.name == "tiny"


def test_dotted_overrides_index_lists():
    cfg = load_config(REPO / "configs/grpo_arith_rm.yaml", ["reward.verifiers.0.weight=2",
                                                            "reward.verifiers.1.options.model=rm/final"])
    assert [v.weight for v in cfg.reward.verifiers] == [2.0, 1.0]
    assert cfg.reward.verifiers[1].options == {"model": "rm/final", "batch_size": 256}
    with pytest.raises(UserError, match=r"'reward.verifiers' is a list of 2, so '3' must be an index from 0 to 1"):
        load_config(REPO / "configs/grpo_arith_rm.yaml", ["reward.verifiers.3.weight=2"])
    with pytest.raises(UserError, match="sets no list 'reward.verifiers' to index"):
        config_from_dict({"kind": "rl"}, ["reward.verifiers.0.weight=2"])
    with pytest.raises(UserError, match="'trainer.lr' is not a section"):
        config_from_dict({"kind": "rl", "trainer": {"lr": 1e-4}}, ["trainer.lr.x=1"])


@pytest.mark.parametrize("data, message", [
    ({"trainer": {"lrr": 1}}, "unknown key 'trainer.lrr' (valid keys under 'trainer': lr,"),
    ({"trainer": {"lr": "fast"}}, "trainer.lr: expected float, got 'fast'"),
    ({"trainer": {"max_steps": 1.5}}, "trainer.max_steps: expected int, got 1.5"),
    ({"deepspeed": {"stage": 4}}, "deepspeed.stage: expected one of 0, 1, 2, 3, got 4"),
    ({"data": {"template": "fancy"}}, "data.template: expected one of 'chat', 'plain', got 'fancy'"),
    ({"model": 3}, "model: expected a mapping, got 3"),
    ({"kind": "magic"}, "kind: expected one of 'sft', 'generate'"),
])
def test_bad_values_name_the_key(data, message):
    with pytest.raises(UserError) as e:
        config_from_dict(data)
    assert message in str(e.value)


def test_optional_and_bool_types():
    cfg = config_from_dict({"data": {"max_samples": None}, "trainer": {"resume": True}})
    assert cfg.data.max_samples is None and cfg.trainer.resume is True
    with pytest.raises(UserError, match="trainer.resume: expected bool"):
        config_from_dict({"trainer": {"resume": "yes please"}})


def test_override_parsing():
    assert parse_override("trainer.lr=3e-4") == ("trainer.lr", "3e-4")  # converted by the float field
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_override("trainer.lr")


@pytest.mark.parametrize("args, needle", [
    (["configs/sft_arith.yaml", "trainer.lrr=1"], "unknown key 'trainer.lrr'"),
    (["configs/sft_arith.yaml", "trainer.max_steps=many"], "trainer.max_steps: expected int, got 'many'"),
    (["configs/does_not_exist.yaml"], "config file not found: configs/does_not_exist.yaml"),
])
def test_cli_reports_one_line_and_exit_2(args, needle):
    proc = run_rlvr("train", *args)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0] and "Traceback" not in proc.stderr


def test_bad_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  lr: [1, 2\n")
    proc = run_rlvr("train", str(bad))
    assert proc.returncode == 2
    assert f"{bad} line" in proc.stderr and "not valid YAML" in proc.stderr


def test_a_partial_section_keeps_the_kinds_own_defaults():
    # RLConfig's logging defaults to log_every=1 and SFTConfig's generation to greedy; setting another
    # key of the section must not reset those to the section class's defaults
    rl = config_from_dict({"kind": "rl", "logging": {"out_dir": "x"}})
    assert rl.logging.log_every == 1 and rl.logging.out_dir == "x"
    sft = config_from_dict({"generation": {"max_new_tokens": 5}})
    assert sft.generation.temperature == 0.0 and sft.generation.max_new_tokens == 5


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    assert load_config(path).kind in path.read_text()


@pytest.mark.parametrize("text, needle", [
    (b"", r"c\.yaml: the file is empty"),
    (b"# kind: rl\n\n", r"c\.yaml: the file is empty"),
    (b"model: {name: tiny}\n", r"c\.yaml: no `kind:` key; expected one of 'sft'"),
    (b"kind: sft\n\n# caf\xe9\n", r"c\.yaml line 3: not UTF-8 text \(byte 0xe9\)"),
])
def test_a_config_file_must_be_utf8_and_say_its_kind(tmp_path, text, needle):
    path = tmp_path / "c.yaml"
    path.write_bytes(text)
    with pytest.raises(UserError, match=needle):
        load_config(path)


def test_kind_may_come_from_an_override_and_a_bom_is_fine(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbfmodel: {name: tiny}\n")
    assert load_config(path, ["kind=rl"]).kind == "rl"
    assert config_from_dict({}).kind == "sft"  # configs built in code keep their default
