"""Warm-sandbox server. Runs INSIDE a bubblewrap sandbox (system python, standard library only) as pid 1.

Starting an interpreter and a namespace per program costs tens of milliseconds; forking an interpreter that
is already running costs one. The host starts this server once in a sandbox (private uid, namespaces,
seccomp, tmpfs /box) and sends it Python jobs on stdin, each a header line `<json size> <stdin size>\n`, the
job's JSON, then the job's stdin bytes. The server reads the stdin only after forking the job's process,
so, as in a cold run, the program never finds its stdin (e.g. a harness's secret nonce) in its own memory
before reading it from the pipe. For each job it forks a child
that lowers its rlimits, takes fresh pipes as stdin/stdout/stderr, and runs the program as __main__;
the server enforces wall time and output size, then, as pid 1, kills every other process in the
namespace, reaps them, and wipes /box and /dev/shm before answering with one JSON line on stdout. So each
job starts from the same state as a cold run: no process, file or shared memory of an earlier job remains,
nor its bytes in this server's memory, which every job inherits: a job's files, stdin and output pass
through mappings of their own, never the heap, and are unmapped before the next fork (_Region).
A job may ask for a report pipe (fd 3, `--report-fd=3` in its argv): what it writes there comes back in
the answer apart from its stdout, so a trusted harness can report to the host through this server, which
never runs job code, instead of forking a guard process of its own (see verifiers/code_harness.py).

The server never runs job code itself, is non-dumpable (its memory and fds cannot be opened through /proc)
and, as its namespace's init, ignores signals from jobs. SysV IPC is refused by the seccomp filter, since
its objects would outlive a job.
"""
from __future__ import annotations

import ast  # noqa: F401  (pre-imported for jobs: the code verifier's harness uses these)
import atexit
import builtins
import gc
import hashlib
import json
import mmap
import operator  # noqa: F401
import os
import resource
import select
import shutil
import signal
import sys
import time
import traceback
import types
import typing  # noqa: F401  (pre-imported for jobs: HumanEval's programs start with `from typing import`)
# Modules programs and tests often import (HumanEval, MBPP): a forked job finds them loaded. `random`
# reseeds itself in every forked child (os.register_at_fork), so jobs do not share a random sequence.
import bisect, collections, copy, functools, heapq, itertools, math, random, re, string  # noqa: E401,F401

CONTROL_IN, CONTROL_OUT = 200, 201
REPORT_FD = 3  # a job's report pipe (job["report_pipe"]), returned to the host apart from its stdout
WORKDIR = "/box"
SHM = "/dev/shm"
_CHUNK = 65536

RLIMITS = {  # job limit key -> resource
    "cpu": resource.RLIMIT_CPU, "memory": resource.RLIMIT_AS, "file_size": resource.RLIMIT_FSIZE,
    "open_files": resource.RLIMIT_NOFILE, "processes": resource.RLIMIT_NPROC,
}


def _set_dumpable(flag: bool) -> None:
    import ctypes

    ctypes.CDLL(None).prctl(4, int(flag), 0, 0, 0)  # PR_SET_DUMPABLE


def _exit_code(status: int) -> int:
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


# ------------------------------------------------------------------ the job's process


def _run_main(path: str, code: types.CodeType | None, args: list[str]) -> int:
    """Run `path` (already compiled as `code`, if given) as __main__ the way `python path *args` would;
    the exit code."""
    module = types.ModuleType("__main__")
    module.__file__, module.__builtins__ = path, builtins
    sys.modules["__main__"] = module
    sys.argv, sys.path[0] = [path, *args], os.path.dirname(path)
    try:
        if code is None:
            with open(path, "rb") as f:
                code = compile(f.read(), path, "exec")
        exec(code, module.__dict__)
        return 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1


def _job_child(job: dict, main_code: types.CodeType | None, fds: tuple[int, ...]) -> None:
    """The job's process: `fds` become its stdin, stdout, stderr and, when the job asked for one, its
    report pipe (fd REPORT_FD, named in argv)."""
    exit_code = 1
    try:
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(len(fds), 1 << 16)
        os.chdir(WORKDIR)
        _set_dumpable(True)
        for key, value in job["limits"].items():
            hard = resource.getrlimit(RLIMITS[key])[1]  # never above the server's own ceiling
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(RLIMITS[key], (value, value))
        atexit._clear()
        args = [f"--report-fd={REPORT_FD}"] if len(fds) > REPORT_FD else []
        exit_code = _run_main(os.path.join(WORKDIR, job["main"]), main_code, args)
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(exit_code)


# ------------------------------------------------------------------ the server


def _kill_all_but_me() -> None:
    """As pid 1: SIGKILL every other process in the namespace and reap them (orphans are ours)."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        others = [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]
        if not others:
            return
        time.sleep(0.001)


def _wipe(directory: str) -> None:
    """Remove everything in `directory`, whatever permissions the job left on it."""
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            for root, dirs, _ in os.walk(path):
                for d in dirs:
                    try:
                        os.chmod(os.path.join(root, d), 0o700)
                    except OSError:
                        pass
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


# Trusted mains (the host marks them: e.g. the code verifier's harness), source and compiled code by the
# source's sha256: the host sends a source once, then only its digest. Only trusted source is compiled
# here, outside any job's rlimits; a job's own code is compiled in its child.
_TRUSTED: dict[str, tuple[bytes, types.CodeType]] = {}


def _trusted(source: bytes, path: str) -> types.CodeType:
    digest = hashlib.sha256(source).hexdigest()
    if digest not in _TRUSTED:
        _TRUSTED[digest] = source, compile(source, path, "exec")
        gc.freeze()  # the new code objects join the heap that forked jobs share but never collect
    return _TRUSTED[digest][1]


def _read_exact(fd: int, size: int) -> bytearray:
    """`size` bytes from `fd` (a job's header)."""
    data = bytearray(size)
    _fill(fd, memoryview(data))
    return data


def _fill(fd: int, view: memoryview) -> None:
    """Read from `fd` straight into `view` until it is full."""
    got = 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if n == 0:
            raise EOFError("control pipe ended inside a job")
        got += n


class _Region:
    """A job's bytes (its files, stdin, output) in an anonymous mapping of their own, read into and
    written from without a copy on the heap, and unmapped when the job ends. So no later job, a fork of
    this server, finds an earlier job's programs, stdin or output in its memory: the heap never held
    them, and the mapping is gone (or, for the job itself, wiped in the fork) before it starts."""

    def __init__(self, size: int) -> None:
        self.map = mmap.mmap(-1, max(size, 1))
        try:  # a second guard: no job is forked while a region is mapped anyway
            self.map.madvise(mmap.MADV_WIPEONFORK)
        except (AttributeError, OSError):
            pass
        self.view = memoryview(self.map)

    def close(self) -> None:
        self.view.release()
        self.map.close()


class _Output:
    """One output stream of the job, up to `cap` bytes, in a _Region."""

    def __init__(self, cap: int) -> None:
        self.cap, self.size, self.region = cap, 0, _Region(cap + 1)  # one byte more: to see an overflow

    def read(self, fd: int) -> bool:
        """Read what `fd` has; False at end of file. Past the cap the stream is `overflowed`."""
        if self.size > self.cap:
            return False
        n = os.readv(fd, [self.region.view[self.size : self.cap + 1]])
        self.size += n
        return n > 0

    @property
    def overflowed(self) -> bool:
        return self.size > self.cap

    def data(self) -> memoryview:
        return self.region.view[: min(self.size, self.cap)]


def run_job(job: dict, stdin_size: int = 0, control: int = CONTROL_IN) -> tuple[dict, list[memoryview]]:
    """Run one job whose files (sizes in the job) then stdin (`stdin_size` bytes) follow on `control`;
    the answer the host turns into a Result, and the output bytes that follow it (stdout, stderr and
    the report pipe's, sizes in the answer). The caller writes both, then calls the answer's `close`."""
    code, t0 = None, time.monotonic()
    if job.get("trusted_digest"):  # a trusted main sent before: its source and code are here
        source, code = _TRUSTED[job["trusted_digest"]]
        with open(os.path.join(WORKDIR, job["main"]), "wb") as f:
            f.write(source)
    for name, size, mode in job["files"]:
        path = os.path.join(WORKDIR, name)
        region = _Region(size)
        try:
            _fill(control, region.view[:size])
            with open(path, "wb") as f:
                f.write(region.view[:size])
            if name == job["main"] and job.get("trusted_main") and code is None:
                code = _trusted(bytes(region.view[:size]), path)  # a harness: public, kept on purpose
        finally:
            region.close()
        os.chmod(path, mode)
    pipes = [os.pipe() for _ in range(4 if job.get("report_pipe") else 3)]  # stdin, stdout, stderr, report
    child_ends = (pipes[0][0], *(w for _, w in pipes[1:]))
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _job_child(job, code, child_ends)
    forked = time.monotonic()
    for fd in child_ends:
        os.close(fd)
    stdin_w = pipes[0][1]
    outputs = {r: _Output(job["output_bytes"]) for r, _ in pipes[1:]}
    readers = set(outputs)
    stdin = _Region(stdin_size)  # only now: the job's process never held it
    _fill(control, stdin.view[:stdin_size])
    pending = stdin.view[:stdin_size]
    killed_for, status, usage = None, None, None
    deadline = start + min(job["wall_seconds"], job.get("stop_seconds") or job["wall_seconds"])
    pidfd = os.pidfd_open(pid)
    writer = stdin_w if pending else None
    if writer is None:
        os.close(stdin_w)
    else:
        os.set_blocking(stdin_w, False)
    while status is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            killed_for = "timeout"
            break
        r, w, _ = select.select([*readers, pidfd], [writer] if writer is not None else [], [], remaining)
        if pidfd in r:
            _, status, usage = os.wait4(pid, 0)
            break
        if w:
            try:
                pending = pending[os.write(writer, pending[:_CHUNK]):]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                pending = pending[:0]
            if not pending:
                os.close(writer)
                writer = None
        for fd in r:
            if fd in readers and not outputs[fd].read(fd):
                readers.discard(fd)
            if outputs.get(fd) is not None and outputs[fd].overflowed:
                killed_for = "output_limit"
        if killed_for:
            break
    if status is None:
        os.kill(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
    ended = time.monotonic()
    wall = ended - start
    pending.release()
    stdin.close()
    # Like a cold run's namespace ending with its program: nothing of the job outlives it.
    _kill_all_but_me()
    for fd in list(readers):  # the writers are all dead: drain to EOF
        while outputs[fd].read(fd):
            pass
    for fd in (*outputs, pidfd) + ((writer,) if writer is not None else ()):
        try:
            os.close(fd)
        except OSError:
            pass
    _wipe(WORKDIR)
    _wipe(SHM)
    timing = {"write files": start - t0, "fork": forked - start, "child (fork to exit)": ended - forked,
              "kill + wipe": time.monotonic() - ended}
    out, err, *report = outputs.values()
    streams = [out, err, *report]
    answer = {
        "timing": timing,
        # Whatever could not be wiped would reach the next job: then this server must not serve again.
        "retire": bool(os.listdir(WORKDIR) or os.listdir(SHM)),
        "exit_code": _exit_code(status), "killed_for": killed_for, "wall_seconds": wall,
        "cpu_seconds": (usage.ru_utime + usage.ru_stime) if usage else 0.0,
        "peak_memory_bytes": usage.ru_maxrss * 1024 if usage else 0,
        "sizes": [len(s.data()) for s in streams],  # stdout, stderr[, reports]: their bytes follow
        "stdout_truncated": out.overflowed, "stderr_truncated": err.overflowed,
    }
    return answer, streams


def main() -> None:
    os.dup2(0, CONTROL_IN)
    os.dup2(1, CONTROL_OUT)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    _set_dumpable(False)
    os.unlink(os.path.abspath(__file__))
    # Everything so far lives as long as the server: the collector never needs to walk it again, and a
    # forked job that collects would otherwise write to (and so copy) every page of it.
    gc.freeze()
    os.write(CONTROL_OUT, b'{"ready": true}\n')
    while True:
        header = b""
        while not header.endswith(b"\n"):  # byte by byte: nothing past the header may be read yet
            byte = os.read(CONTROL_IN, 1)
            if not byte:
                return
            header += byte
        streams: list[_Output] = []
        try:
            json_size, stdin_size = map(int, header.split())
            answer, streams = run_job(json.loads(_read_exact(CONTROL_IN, json_size)), stdin_size)
        except Exception as e:  # a server bug: answer it, the host replaces this sandbox
            answer = {"error": f"{type(e).__name__}: {e}"}
        _write_all(memoryview(json.dumps(answer).encode() + b"\n"))
        for stream in streams:  # raw, from their own mappings: no copy of a job's output on the heap
            data = stream.data()
            _write_all(data)
            data.release()
            stream.region.close()


def _write_all(data: memoryview) -> None:
    while data:
        data = data[os.write(CONTROL_OUT, data):]


if __name__ == "__main__":
    main()
