"""Writes that are either complete or absent: a crash never leaves half a file behind."""
from __future__ import annotations

import errno
import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_open(path: str | Path, encoding: str | None = "utf-8") -> Iterator[IO[str]]:
    """A text file to write `path` through: a temporary file in `path`'s folder, flushed to disk and
    renamed over `path` when the block ends cleanly, removed when it raises (or on Ctrl-C), so `path` is
    either its old self or complete, never half-written (a SIGKILL can leave the hidden temporary file).

    Entering does the checks: a bad path (a folder, a parent that is a file, a folder that cannot be
    created or written) raises OSError here, before the caller spends work on what it will write.
    A symlink's target is replaced (not the link); a new file gets the mode a plain open() would give it,
    a replaced one keeps its mode. A path that exists but is no regular file (/dev/null, a fifo) is
    written directly: there is no content there to protect, and a rename would replace the device.
    """
    _check_target(Path(path))
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():
        with open(target, "w", encoding=encoding) as f:
            yield f
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise type(e)(e.errno, f"cannot create the folder {target.parent}: {e.strerror}", str(path)) from None
    tmp, fd = _create_temp(target)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as f:
            if target.exists():
                os.chmod(f.fileno(), stat.S_IMODE(target.stat().st_mode))
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_target(path: Path) -> None:
    """OSError with a plain-words strerror when `path` is a folder or lies under a file."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file path", str(path))
    for parent in path.parents:  # nearest first: the first one that exists must be a folder
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{parent} is a file, not a folder", str(path))
            return


def _create_temp(target: Path) -> tuple[Path, int]:
    """A new hidden file next to `target`, opened for writing with the mode that umask allows (mkstemp
    would make it 0600)."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(target))


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, encoding=None) as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def append_jsonl(path: str | Path, records: list[dict]) -> None:
    """Append records as JSON lines, flushed to disk: a crash can cut only the last line short, and
    `read_jsonl` skips such a line."""
    with open(path, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    """The records `append_jsonl` wrote, without a line a crash cut short; [] when there is no file."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
