"""A full disk, told in one line: which file could not be written and how much room was left.

Libraries report a full disk in their own ways: an OSError with errno ENOSPC (often without the file's
name), torch's zip writer as `RuntimeError: ... unexpected pos 92160 vs 92048`, safetensors as its own
error. `writing(path)` turns any of them into `NoSpace`, which the CLI prints as one line.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Callable

# Below this much free room on the file system a failed write is taken for a full disk: a writer that
# filled it leaves at most a few blocks.
NEARLY_FULL = 1 << 20


class NoSpace(OSError):
    def __init__(self, path: str | Path, free_mb: float | None):
        super().__init__(errno.ENOSPC, "No space left on device", str(path))
        self.free_mb = free_mb

    def __str__(self) -> str:
        return line(self.filename, self.free_mb)


def line(path, free: float | None) -> str:
    room = "" if free is None else f" ({free:.1f} MB free)"
    return f"no space left on device writing {path}{room}"


def free_mb(path: str | Path) -> float | None:
    """Free room (for an unprivileged writer) on the file system that holds `path` or its nearest parent."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize / 2**20


def told(exc: BaseException) -> str:
    """The one line for a full disk, from the ENOSPC error in `exc`'s chain (see `is_enospc`)."""
    while not (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
        exc = exc.__cause__ or exc.__context__
    if exc.filename is None:
        return "no space left on device"
    free = exc.free_mb if isinstance(exc, NoSpace) else free_mb(exc.filename)
    return line(exc.filename, free)


def is_enospc(exc: BaseException | None) -> bool:
    """Whether ENOSPC is the error or any error it was raised from."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def writing(path: str | Path, cleanup: Callable[[], None] | None = None):
    """Raise NoSpace for a write under `path` that failed on a full disk (after `cleanup`, which removes
    the partial output); any other error goes on unchanged."""
    try:
        yield
    except NoSpace:
        if cleanup is not None:
            cleanup()
        raise
    except Exception as e:
        free = free_mb(path)
        if not (is_enospc(e) or (free is not None and free * 2**20 < NEARLY_FULL)):
            raise
        if cleanup is not None:
            cleanup()
        raise NoSpace(path, free) from e


def remover(path: str | Path) -> Callable[[], None]:
    """A cleanup for `writing`: removes the file or folder at `path`, if any."""
    def remove() -> None:
        if Path(path).is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            Path(path).unlink(missing_ok=True)
    return remove
