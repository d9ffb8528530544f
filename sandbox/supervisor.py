"""Start one isolated process tree, feed its stdin, collect capped output, and end it at the deadline.

The supervisor never runs sandboxed code itself: it starts `prlimit ... setpriv ... <backend argv>`
(limits set as root, then the switch to the leased uid), watches the stdout/stderr pipes and a pidfd in one poll loop, and kills the backend's outermost
process on the deadline or on too much output. Killing it takes the pid namespace with it (bwrap's
--die-with-parent / unshare's --kill-child deliver SIGKILL to the namespace's init, and the kernel
then kills every process in the namespace).
"""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass

from sandbox.result import Status

# After the process exits, how long to keep draining pipes (only a leaked descendant could hold them).
_DRAIN_SECONDS = 0.5
_CHUNK = 65536
_KILL_GRACE_SECONDS = 1.0


@dataclass
class Outcome:
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    killed_for: Status | None
    wall_seconds: float
    cpu_seconds: float
    peak_memory_bytes: int


def exit_code_of(wait_status: int) -> int:
    """Exit code in shell convention: the code itself, or 128 + N when signal N ended the process."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


class _Capture:
    def __init__(self, cap: int) -> None:
        self.cap, self.parts, self.size, self.truncated = cap, [], 0, False

    def add(self, chunk: bytes) -> bool:
        """Keep what fits under the cap; True when the cap was crossed."""
        room = self.cap - self.size
        if len(chunk) > room:
            self.parts.append(chunk[:room])
            self.size, self.truncated = self.cap, True
            return True
        self.parts.append(chunk)
        self.size += len(chunk)
        return False

    def data(self) -> bytes:
        return b"".join(self.parts)


def supervise(argv: list[str], *, stdin: bytes, pass_fds: tuple[int, ...], wall_seconds: float,
              output_bytes: int) -> Outcome:
    """Run argv to completion or to the deadline; see the module docstring."""
    start = time.monotonic()
    caller_rss = _resident_bytes()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            pass_fds=pass_fds, env={}, start_new_session=True, cwd="/")
    pidfd = os.pidfd_open(proc.pid)
    killed_for: Status | None = None
    exited_at: float | None = None
    out, err = _Capture(output_bytes), _Capture(output_bytes)
    sel = selectors.DefaultSelector()
    try:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        sel.register(pidfd, selectors.EVENT_READ, None)
        pending = memoryview(stdin)
        if pending:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE, "stdin")
        else:
            proc.stdin.close()
        deadline = start + wall_seconds
        while sel.get_map():
            now = time.monotonic()
            limit = deadline if exited_at is None else min(deadline, exited_at + _DRAIN_SECONDS)
            if now >= limit:
                if exited_at is None:
                    killed_for = Status.TIMEOUT
                break
            for key, _ in sel.select(timeout=limit - now):
                if key.data is None:  # pidfd readable: the process exited
                    sel.unregister(pidfd)
                    exited_at = time.monotonic()
                elif key.data == "stdin":
                    try:
                        pending = pending[os.write(key.fd, pending[:_CHUNK]):]
                    except (BrokenPipeError, BlockingIOError) as e:
                        pending = pending[:0] if isinstance(e, BrokenPipeError) else pending
                    if not pending:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                else:
                    chunk = os.read(key.fd, _CHUNK)
                    if not chunk:
                        sel.unregister(key.fileobj)
                    elif key.data.add(chunk):
                        killed_for = Status.OUTPUT_LIMIT
                        raise _Overflow
    except _Overflow:
        pass
    finally:
        if exited_at is None:
            _end_tree(proc.pid, pidfd)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = exit_code_of(status)
        sel.close()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None and not f.closed:
                f.close()
        os.close(pidfd)
    return Outcome(
        exit_code=proc.returncode, stdout=out.data(), stderr=err.data(),
        stdout_truncated=out.truncated, stderr_truncated=err.truncated, killed_for=killed_for,
        wall_seconds=time.monotonic() - start, cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_memory_bytes=_program_peak(usage.ru_maxrss * 1024, caller_rss),
    )


# The launcher is forked from this process, and Linux counts the forked copy's resident size in its
# ru_maxrss (and folds it in again at exec). A caller holding a model in memory would make every run look
# like it used that much; so a peak no higher than the caller's own footprint is reported as 0 (unknown)
# rather than as a figure that would turn every crash into a "memory_limit".
_FORK_SLACK = 16 << 20


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _program_peak(maxrss: int, caller_rss: int) -> int:
    return 0 if maxrss <= caller_rss + _FORK_SLACK else maxrss


class _Overflow(Exception):
    pass


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _signal(kill, target: int) -> None:
    try:
        kill(target, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _end_tree(pid: int, pidfd: int) -> None:
    """SIGKILL the namespace's init (the backend's child): the kernel then kills every process in the
    namespace and the backend reaps its child, so its rusage covers the program. If the backend is
    still alive after a grace period (or had no child yet), kill its process group too."""
    for child in _children(pid):
        _signal(os.kill, child)
    ready = selectors.DefaultSelector()
    ready.register(pidfd, selectors.EVENT_READ)
    if not ready.select(timeout=_KILL_GRACE_SECONDS):
        _signal(os.killpg, pid)
    ready.close()
