"""Range checks of every numeric config field (rlvr/config/parts.py validate_sections, each kind's validate()):
one line naming the key and what was expected, at load time, before any model or data is touched."""
from __future__ import annotations

import dataclasses
import types
import typing

import pytest

from rlvr.config import KINDS, config_from_dict
from rlvr.errors import UserError

# Numeric fields that take any value: a reward the user chooses, a margin that may be negative.
UNBOUNDED = {"reward.truncation_penalty", "trainer.margin"}


def numeric_fields(cls: type, prefix: str = "") -> list[tuple[str, type]]:
    """(dotted key, int or float) of every numeric field under `cls`, through nested sections."""
    out = []
    for name, tp in typing.get_type_hints(cls).items():
        if name not in {f.name for f in dataclasses.fields(cls)}:
            continue
        key = f"{prefix}{name}"
        args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
        if dataclasses.is_dataclass(tp):
            out += numeric_fields(tp, key + ".")
        elif int in args or float in args:
            out.append((key, float if float in args else int))
    return out


ALL_FIELDS = [(kind, key, tp) for kind, cls in KINDS.items() for key, tp in numeric_fields(cls)
              if key not in UNBOUNDED]


def nested(key: str, value) -> dict:
    head, _, rest = key.partition(".")
    return {head: nested(rest, value) if rest else value}


@pytest.mark.parametrize("kind, key, tp", ALL_FIELDS, ids=[f"{k}:{key}" for k, key, _ in ALL_FIELDS])
def test_every_numeric_field_has_a_range(kind, key, tp):
    """A value far below any sensible range is refused in one line naming the key."""
    bad = -(2**40) if tp is int else -1e300
    with pytest.raises(UserError) as e:
        config_from_dict({"kind": kind, **nested(key, bad)})
    assert f"{key}: expected" in str(e.value)


@pytest.mark.parametrize("kind, key, value, message", [
    ("sft", "trainer.lr", -1e-3, "trainer.lr: expected a number above 0, got -0.001"),
    ("sft", "trainer.lr", 0, "trainer.lr: expected a number above 0, got 0.0"),
    ("sft", "trainer.lr", ".nan", "trainer.lr: expected a number above 0, got nan"),
    ("sft", "trainer.lr", ".inf", "trainer.lr: expected a number above 0, got inf"),
    ("sft", "trainer.batch_size", 0, "trainer.batch_size: expected 1 or more, got 0"),
    ("sft", "trainer.max_steps", 0, "trainer.max_steps: expected 1 or more, got 0"),
    ("sft", "trainer.min_lr_ratio", 1.5, "trainer.min_lr_ratio: expected a share in [0, 1], got 1.5"),
    ("sft", "trainer.seed", -1, "trainer.seed: expected an integer in [0, 2**32), got -1"),
    ("sft", "logging.log_every", 0, "logging.log_every: expected 1 or more, got 0"),
    ("rl", "generation.top_p", 1.5, "generation.top_p: expected a share in (0, 1], got 1.5"),
    ("rl", "generation.temperature", -0.5, "generation.temperature: expected 0 or more, got -0.5"),
    ("rl", "trainer.gamma", 1.01, "trainer.gamma: expected a share in [0, 1], got 1.01"),
    ("rl", "trainer.clip_low", 1.0, "trainer.clip_low: expected a number in [0, 1), got 1.0"),
    ("rl", "trainer.dual_clip", 1.0, "trainer.dual_clip: expected a number above 1, got 1.0"),
    ("rl", "reward.timeout", 0, "reward.timeout: expected a number above 0, got 0.0"),
    ("preference", "trainer.label_smoothing", 0.5, "trainer.label_smoothing: expected a number in [0, 0.5)"),
    ("preference", "trainer.beta", 0, "trainer.beta: expected a number above 0, got 0.0"),
    ("reward_model", "trainer.max_seq_len", 1, "trainer.max_seq_len: expected 2 or more, got 1"),
    ("eval", "eval.limit", 0, "eval.limit: expected 1 or more, got 0"),
    ("eval", "eval.k", [1, 0], "eval.k: expected a list of sample counts, each 1 or more, got [1, 0]"),
    ("eval", "eval.k", [], "eval.k: expected a list of sample counts"),
    ("sft", "trainer.betas", [0.9], "trainer.betas: expected two numbers in [0, 1)"),
    ("rl", "trainer.betas", [0.9, 1.0], "trainer.betas: expected two numbers in [0, 1)"),
    ("sft", "model.tiny.num_heads", 3, "model.tiny.hidden_size: expected an even number of dimensions per head"),
    ("sft", "model.tiny.hidden_size", 36, "model.tiny.hidden_size: expected an even number of dimensions"),
])
def test_out_of_range_values_name_the_key(kind, key, value, message):
    # lists as YAML would hold them; scalars as dotted overrides (".nan" is YAML's NaN)
    data, overrides = ({"kind": kind, **nested(key, value)}, []) if isinstance(value, list) else \
        ({"kind": kind}, [f"{key}={value}"])
    with pytest.raises(UserError) as e:
        config_from_dict(data, overrides)
    assert message in str(e.value)


@pytest.mark.parametrize("kind, overrides", [
    ("sft", ["trainer.lr=1e-9", "trainer.min_lr_ratio=0", "trainer.min_lr_ratio=1", "trainer.warmup_steps=0",
             "trainer.eval_every=0", "trainer.keep_checkpoints=0", "trainer.grad_clip=0", "trainer.seed=0",
             "generation.temperature=0", "generation.top_p=1", "data.eval_samples=0", "trainer.max_seq_len=2"]),
    ("rl", ["trainer.kl_coef=0", "trainer.gamma=1", "trainer.lam=0", "trainer.clip_high=0.28",
            "trainer.dual_clip=3", "reward.workers=0", "trainer.max_refill_rounds=0", "trainer.max_seconds=0.5"]),
    ("preference", ["trainer.label_smoothing=0.49", "trainer.offline_prompts=1", "trainer.nll_coef=0"]),
    ("eval", ["eval.limit=1", "few_shot.count=0", "verifier.workers=0"]),
])
def test_edges_of_the_ranges_are_accepted(kind, overrides):
    config_from_dict({"kind": kind}, overrides)
