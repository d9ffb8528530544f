"""Turning `data:` config into checked rows: {prompt, response, reference, ...other fields}.

Sources: the built-in `arith` task, a benchmark by name (rlvr.data.benchmarks), a local .jsonl / .json /
.jsonl.gz / .json.gz / .parquet file, or a hub data set. Files go through the `datasets` library; a bad
row stops the run naming the file, line and field, or is skipped and counted (`on_bad_row: skip`).
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from rlvr.config import DataConfig
from rlvr.data import benchmarks
from rlvr.data.tasks import arith
from rlvr.errors import UserError

FILE_SUFFIXES = {".jsonl": "json", ".json": "json", ".gz": "json", ".parquet": "parquet"}


@dataclass
class Rows:
    rows: list[dict]
    skipped: int = 0
    origin: str = ""


def json_records(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) of a JSONL file or JSON array, optionally gzipped; errors name the file and
    line. Also what reads a file when `datasets` cannot parse it."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if text.lstrip().startswith("["):
        try:
            return list(enumerate(json.loads(text), 1))
        except json.JSONDecodeError as e:
            raise UserError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
    records = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path} line {i}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path} line {i}: expected a JSON object, got {type(row).__name__}")
        records.append((i, row))
    return records


def read_file(path: str | Path) -> list[dict]:
    """All records of a local data file, through `datasets` (falling back to a reader that names lines)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    kind = FILE_SUFFIXES.get(path.suffix)
    if kind is None:
        raise UserError(f"{path}: expected a .jsonl, .json, .jsonl.gz or .parquet file")
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(kind, data_files=str(path), split="train")
        return ds.to_list()
    except Exception as e:  # noqa: BLE001 - datasets raises many types; find the line ourselves
        if kind != "json":
            raise UserError(f"{path}: cannot read ({type(e).__name__}: {str(e).splitlines()[0]})") from None
        return [row for _, row in json_records(path)]


def _load_hub(name: str, split: str) -> list[dict]:
    import datasets

    try:
        return datasets.load_dataset(name, split=split).to_list()
    except Exception as e:  # noqa: BLE001
        raise UserError(f"data.source: cannot load hub data set '{name}' split '{split}': "
                        f"{str(e).splitlines()[0]}") from None


def _check(rows: Iterable[dict], convert: Callable[[dict], dict], need: dict[str, type | tuple],
           origin: str, on_bad_row: str, line_of: Callable[[int], str]) -> Rows:
    """Convert each raw row and check the fields in `need` (canonical name -> accepted types)."""
    out, skipped = [], 0
    for i, raw in enumerate(rows):
        try:
            row = convert(raw)
            problem = None
            for name, types_ in need.items():
                if row.get(name) is None:
                    problem = f"missing field '{name}'"
                elif not isinstance(row[name], types_):
                    expected = getattr(types_, "__name__", types_)
                    problem = f"field '{name}': expected {expected}, got {type(row[name]).__name__}"
                if problem:
                    break
        except KeyError as e:
            problem = f"missing field {e}"
        if problem:
            if on_bad_row == "skip":
                skipped += 1
                continue
            raise UserError(f"{origin} {line_of(i)}: {problem} (set data.on_bad_row: skip to skip such rows)")
        out.append(row)
    return Rows(out, skipped, origin)


def mapper(fields) -> Callable[[dict], dict]:
    """Rename a file's own field names to rlvr's canonical ones (the rest pass through)."""
    names = {"prompt": fields.prompt, "response": fields.response, "reference": fields.reference,
             "chosen": fields.chosen, "rejected": fields.rejected, "tests": fields.tests}

    def convert(raw: dict) -> dict:
        row = dict(raw)
        for canonical, own in names.items():
            if own in raw:
                row[canonical] = raw[own]
            elif canonical != own:
                row.pop(canonical, None)
        return row

    return convert


def load_rows(cfg: DataConfig, split: str | None = None, need: dict[str, Any] | None = None,
              source: str | None = None, limit: int | None = None) -> Rows:
    """Rows of `source` (default cfg.source) for `split`, with the fields in `need` checked."""
    source = source or cfg.source
    split = split or cfg.split
    need = need or {"prompt": str}
    if source == "arith":
        loaded = _check(arith.generate(cfg.arith, split), dict, need, "arith", cfg.on_bad_row,
                        lambda i: f"row {i}")
    elif source in benchmarks.BENCHMARKS:
        path = benchmarks.benchmark_file(source, split)
        keep = benchmarks.split_filter(source, split)
        _, reader = benchmarks.BENCHMARKS[source]
        raw = [r for r in read_file(path) if keep(r)]
        loaded = _check(raw, reader, need, str(path), cfg.on_bad_row, lambda i: f"record {i + 1}")
    elif Path(source).suffix in FILE_SUFFIXES or Path(source).exists():
        loaded = _check(read_file(source), mapper(cfg.fields), need, source, cfg.on_bad_row,
                        lambda i: f"line {i + 1}")
    else:
        loaded = _check(_load_hub(source, split), mapper(cfg.fields), need, f"{source}[{split}]",
                        cfg.on_bad_row, lambda i: f"row {i}")
    limit = limit if limit is not None else cfg.max_samples
    if limit is not None:
        loaded.rows = loaded.rows[:limit]
    return loaded
