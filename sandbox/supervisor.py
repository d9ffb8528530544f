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
import sys
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
    report_r, report_w = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(report_w), *argv],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(*pass_fds, report_w), env={}, start_new_session=True, cwd="/")
    finally:
        os.close(report_w)
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
        launcher_maxrss = _read_report(report_r)
    return Outcome(
        exit_code=proc.returncode, stdout=out.data(), stderr=err.data(),
        stdout_truncated=out.truncated, stderr_truncated=err.truncated, killed_for=killed_for,
        wall_seconds=time.monotonic() - start, cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_memory_bytes=launcher_maxrss * 1024,
    )


# Why a trampoline: Linux counts in a process's ru_maxrss the resident size of the memory it was forked
# with (and folds it in again at exec). Forked straight from a caller that holds a model, the launcher
# would report the caller's size as the program's peak, and every crash would look like a memory-limit
# kill. A small fresh interpreter forks the launcher instead and reports the launcher's own rusage (its
# tree, program included) on a pipe; it exits the way the launcher did, so exit codes are unchanged.
_TRAMPOLINE = r"""
import os, resource, signal, sys
report = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(report)
    os.execvp(sys.argv[2], sys.argv[2:])
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)  # hold no end of the supervisor's pipes
_, status, usage = os.wait4(pid, 0)
os.write(report, str(usage.ru_maxrss).encode())
if os.WIFSIGNALED(status):
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    except (OSError, ValueError):
        pass
    os.kill(os.getpid(), os.WTERMSIG(status))
os._exit(os.WEXITSTATUS(status))
"""


def _read_report(fd: int) -> int:
    """The launcher's ru_maxrss in KiB, or 0 when the trampoline was killed before it could report."""
    try:
        os.set_blocking(fd, False)
        data = os.read(fd, 64)
    except BlockingIOError:
        data = b""
    finally:
        os.close(fd)
    return int(data) if data.strip().isdigit() else 0


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
    """SIGKILL the namespace's init (the backend's child; the backend is the trampoline's child): the
    kernel then kills every process in the namespace and the backend reaps its child, so its rusage
    covers the program. If the backend is still alive after a grace period (or had no child yet), kill
    the process group too."""
    for backend in _children(pid):
        for child in _children(backend):
            _signal(os.kill, child)
    ready = selectors.DefaultSelector()
    ready.register(pidfd, selectors.EVENT_READ)
    if not ready.select(timeout=_KILL_GRACE_SECONDS):
        _signal(os.killpg, pid)
    ready.close()
