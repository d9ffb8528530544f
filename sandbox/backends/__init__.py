"""Backends turn one run into the argv that starts it isolated. Both take program files as inherited
file descriptors (memfds), so nothing of a run is ever written to the host's disk."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    """What a backend needs to know about one run."""

    command: tuple[str, ...]          # the program's command, relative to the working directory
    files: tuple[tuple[str, int], ...]  # (name in the working directory, fd holding its bytes)
    disk_bytes: int
    seccomp_fd: int | None
    extra_ro_binds: tuple[str, ...] = ()  # host directories the interpreter needs besides /usr
    executables: frozenset[str] = frozenset()  # names among files to make executable


# The environment every sandboxed program starts with. MALLOC_ARENA_MAX keeps glibc from reserving
# 64 MiB of address space per thread, which RLIMIT_AS would otherwise count.
SANDBOX_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/box",
    "TMPDIR": "/box",
    "LANG": "C.UTF-8",
    "PYTHONIOENCODING": "utf-8",
    "MALLOC_ARENA_MAX": "2",
}
WORKDIR = "/box"
