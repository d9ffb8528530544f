"""Loading YAML into the typed configs: type checks, dotted overrides, one-line errors.

Every value is checked against its dataclass field's type while loading, so a typo or a wrong type
fails at once with one line naming the key and what was expected, never deep inside a run.
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from rlvr.errors import UserError


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against type `tp` and return it converted; raise UserError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, key)
            except UserError:
                continue
        raise UserError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise UserError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise UserError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{key}: expected a mapping, got {value!r}")
        _, item = typing.get_args(tp)
        return {k: _convert(v, item, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{key}: expected a mapping, got {value!r}")
        return _build(tp, value, key)
    if tp is type(None):
        if value is None:
            return None
    elif tp is Any:
        return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise UserError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, data: dict, prefix: str, base: Any = None) -> Any:
    """`cls` from a mapping, on top of `base` (default: cls()). Starting from the parent's default keeps
    a section's defaults when a file sets only some of its keys (e.g. RL logs every step by default)."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    base = base if base is not None else cls()
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in hints:
            where = f"under '{prefix}'" if prefix else "at the top level"
            raise UserError(f"unknown key '{key}' (valid keys {where}: {', '.join(names)})")
        tp = hints[k]
        if dataclasses.is_dataclass(tp) and isinstance(v, dict):
            kwargs[k] = _build(tp, v, key, getattr(base, k))
        else:
            kwargs[k] = _convert(v, tp, key)
    return dataclasses.replace(base, **kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    """Set `value` at `dotted` in the YAML tree; a number indexes a list (reward.verifiers.0.weight=2)."""
    parts = dotted.split(".")
    node: Any = tree
    for depth, p in enumerate(parts):
        where = ".".join(parts[:depth]) or "the config"
        if isinstance(node, list):
            if not (p.isdigit() and int(p) < len(node)):
                raise UserError(f"override '{dotted}': '{where}' is a list of {len(node)}, so '{p}' must be an "
                                f"index from 0 to {len(node) - 1}")
            key: Any = int(p)
        elif isinstance(node, dict):
            key = p
        else:
            raise UserError(f"override '{dotted}': '{where}' is not a section")
        if depth == len(parts) - 1:
            node[key] = value
        elif isinstance(node, dict) and node.get(key) is None:
            if parts[depth + 1].isdigit():
                raise UserError(f"override '{dotted}': the config file sets no list '{'.'.join(parts[:depth + 1])}' "
                                "to index; override the whole list instead")
            node[key] = {}
            node = node[key]
        else:
            node = node[key]


def parse_override(text: str) -> tuple[str, Any]:
    """'trainer.lr=3e-4' -> ('trainer.lr', 0.0003). Values parse as YAML scalars/lists."""
    if "=" not in text:
        raise UserError(f"override '{text}': expected KEY=VALUE, for example trainer.lr=3e-4")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def config_from_dict(data: dict, overrides: list[str] = (), source: str = "config") -> Any:
    """Build the typed config for `data['kind']` (default 'sft'), then apply dotted overrides."""
    data = copy.deepcopy(data)  # overrides must not reach into the caller's nested sections
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    from rlvr.config import KINDS

    kind = data.get("kind", "sft")
    if kind not in KINDS:
        raise UserError(f"{source}: kind: expected one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    try:
        cfg = _build(KINDS[kind], data, "")
        validate(cfg)
    except UserError as e:
        raise UserError(f"{source}: {e}") from None
    return cfg


def validate(cfg: Any) -> None:
    """What types cannot say: the shared sections' checks, then the kind's own `validate()`, if it has one."""
    from rlvr.config.parts import validate_sections

    validate_sections(cfg)
    if hasattr(cfg, "validate"):
        cfg.validate()


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise UserError(f"{path} line {line}: not UTF-8 text (byte {raw[e.start]:#04x}); save the file "
                        "as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        raise UserError(f"{path}: the file is empty (or only comments); a config needs at least `kind:`")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    return data


def load_config(path: str | Path, overrides: list[str] = ()) -> Any:
    """The typed config of a YAML file. The file must say its `kind`: a missing one would silently train
    with another kind's defaults (config_from_dict's default 'sft' is for configs built in code)."""
    data = read_yaml(path)
    if "kind" not in data and not any(parse_override(o)[0] == "kind" for o in overrides):
        from rlvr.config import KINDS

        raise UserError(f"{path}: no `kind:` key; expected one of {', '.join(map(repr, KINDS))}")
    return config_from_dict(data, list(overrides), source=str(path))


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
