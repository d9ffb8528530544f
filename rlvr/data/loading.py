"""Turning `data:` config into checked rows: {prompt, response, reference, ...other fields}.

Sources: the built-in `arith` and `pyfunc` tasks, a benchmark by name (rlvr.data.benchmarks), a local .jsonl / .json /
.jsonl.gz / .json.gz / .parquet file, or a hub data set. JSON files are read here, a line at a time, so a
bad row stops the run naming the file, its real line number and the field (or is skipped and counted,
`on_bad_row: skip`); an empty file stops it at once.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from rlvr.config import DataConfig
from rlvr.data import benchmarks
from rlvr.data.tasks import arith, pyfunc
from rlvr.errors import UserError

FILE_SUFFIXES = {".jsonl": "json", ".json": "json", ".gz": "json", ".parquet": "parquet"}


def is_file_source(source: str) -> bool:
    """Whether data.source names a local file (one that is missing too, by its suffix), not a hub set."""
    return Path(source).suffix in FILE_SUFFIXES or Path(source).exists()


@dataclass
class Rows:
    rows: list[dict]
    skipped: int = 0
    origin: str = ""


def json_records(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) of a JSONL file, or (element number, record) of a JSON array, optionally
    gzipped; errors name the file and line. Line numbers are the file's own, blank lines counted."""
    return [(n, row) for _, n, row in _json_rows(Path(path))]


def _json_rows(path: Path) -> list[tuple[str, int, dict]]:
    """('line' or 'element', number, record) of every record of a JSON Lines file or a JSON array. Read
    as bytes and decoded a line at a time, so that an encoding error names its real line."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            first = b""
            while not first and (chunk := f.read(4096)):
                first = chunk.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]  # the BOM too
        with opener(path, "rb") as f:
            if first == b"[":
                return _json_array(path, f.read())
            records = []
            for line, raw in enumerate(f, 1):  # split at \n only: the numbers an editor and wc -l show
                text = _decode(path, raw, line)
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as e:
                    if first == b"{" and not records:
                        _reject_one_object(path)
                    raise UserError(f"{path} line {line}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise UserError(f"{path} line {line}: expected a JSON object, got {type(row).__name__}")
                records.append(("line", line, row))
            return records
    except (OSError, EOFError) as e:  # EOFError: a truncated .gz
        raise UserError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None


def _decode(path: Path, raw: bytes, line: int) -> str:
    try:
        return raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} line {line}: not UTF-8 text (byte {raw[e.start]:#04x} at column "
                        f"{e.start + 1})") from None


def _json_array(path: Path, data: bytes) -> list[tuple[str, int, dict]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(f"{path} line {line}: not UTF-8 text (byte {data[e.start]:#04x})") from None
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
    for i, row in enumerate(items, 1):
        if not isinstance(row, dict):
            raise UserError(f"{path} element {i}: expected a JSON object, got {type(row).__name__} "
                            f"{_short(row)}")
    return [("element", i, row) for i, row in enumerate(items, 1)]


def _reject_one_object(path: Path) -> None:
    """A file that is one JSON object over many lines (a pretty-printed record, or {"data": [...]}) reads
    as broken JSON Lines; say what it is instead."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            whole = json.loads(f.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return
    if isinstance(whole, dict):
        raise UserError(f"{path}: one JSON object over several lines (keys: {', '.join(list(whole)[:5])}); "
                        "expected JSON Lines (one object per line) or a JSON array of objects")


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_located(path: str | Path) -> list[tuple[str, dict]]:
    """(where, record) of every record of a local data file: where is 'line N' (the file's own line
    number, blank lines counted), 'element N' of a JSON array, or 'row N' of a parquet file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    kind = FILE_SUFFIXES.get(path.suffix)
    if kind is None:
        raise UserError(f"{path}: expected a .jsonl, .json, .jsonl.gz or .parquet file")
    if kind == "json":
        located = [(f"{unit} {n}", row) for unit, n, row in _json_rows(path)]
    else:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - arrow raises many types for a bad file
            raise UserError(f"{path}: cannot read ({type(e).__name__}: {str(e).splitlines()[0]})") from None
        located = [(f"row {i}", row) for i, row in enumerate(table.to_pylist(), 1)]
    if not located:
        what = "it is empty, blank lines only, or an empty array" if kind == "json" else "an empty table"
        raise UserError(f"{path}: no rows in the file ({what})")
    return located


def read_file(path: str | Path) -> list[dict]:
    """All records of a local data file (.jsonl, .json array, gzipped either, .parquet); at least one."""
    return [row for _, row in read_located(path)]


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
    elif source == "pyfunc":
        loaded = _check(pyfunc.generate(cfg.pyfunc, split), dict, need, "pyfunc", cfg.on_bad_row,
                        lambda i: f"row {i}")
    elif source in benchmarks.BENCHMARKS:
        path = benchmarks.benchmark_file(source, split)
        keep = benchmarks.split_filter(source, split)
        _, reader = benchmarks.BENCHMARKS[source]
        located = [(where, r) for where, r in read_located(path) if keep(r)]
        loaded = _check([r for _, r in located], reader, need, str(path), cfg.on_bad_row,
                        lambda i: located[i][0])
    elif is_file_source(source):
        located = read_located(source)
        loaded = _check([r for _, r in located], mapper(cfg.fields), need, source, cfg.on_bad_row,
                        lambda i: located[i][0])
    else:
        rows = _load_hub(source, split)
        if not rows:
            raise UserError(f"data.source: hub data set '{source}' split '{split}' has no rows")
        loaded = _check(rows, mapper(cfg.fields), need, f"{source}[{split}]", cfg.on_bad_row,
                        lambda i: f"row {i}")
    if loaded.skipped and not loaded.rows:
        raise UserError(f"{loaded.origin}: every row is bad (all {loaded.skipped} skipped under "
                        "data.on_bad_row: skip); set data.on_bad_row: error to see the first")
    limit = limit if limit is not None else cfg.max_samples
    if limit is not None:
        loaded.rows = loaded.rows[:limit]
    return loaded
