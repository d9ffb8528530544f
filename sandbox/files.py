"""Program files: how their bytes reach a sandbox (memfds inherited by the backend, never the host disk)."""
from __future__ import annotations

import os

FileContent = str | bytes


def as_bytes(content: FileContent) -> bytes:
    return content.encode() if isinstance(content, str) else bytes(content)


def check_name(name: str) -> str:
    """`name` itself, when it is a plain file name for the working directory; else ValueError."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise ValueError(f"sandbox file name {name!r} must be a plain file name (no '/', not '.' or '..')")
    return name


def memfd(name: str, data: bytes) -> int:
    """An anonymous in-memory file holding `data`, positioned at its start."""
    fd = os.memfd_create(f"rlvr-{name}", 0)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
