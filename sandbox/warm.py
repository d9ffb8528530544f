"""Warm sandboxes: one bubblewrap sandbox that runs many Python programs one after another, each in a
process forked from a resident interpreter (see zygote.py for what is reset between programs).

Same protections as a cold run (private uid, user/pid/net/mount/ipc/uts namespaces, seccomp, read-only
system view, per-program rlimits, wall and output limits, every process of a program killed when it
ends, working directory and /dev/shm wiped), minus the interpreter start-up and namespace set-up per
program. Used by `Pool(warm=True)`; any failure of the server falls back to a cold run.
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import selectors
import signal
import subprocess
import time
from pathlib import Path

from sandbox import languages, seccomp
from sandbox.backends import Launch, bwrap
from sandbox.capabilities import capabilities, choose_backend
from sandbox.limits import Isolation, Limits
from sandbox.result import Result, Status, classify, exit_signal
from sandbox.files import as_bytes, check_name, memfd
from sandbox.runner import within_caller_limit
from sandbox.uids import UidLease, as_user, can_switch_uid, kill_leftovers, processes_of

ZYGOTE_SOURCE = (Path(__file__).parent / "zygote.py").read_bytes()
STARTUP_SECONDS = 20.0
ANSWER_GRACE_SECONDS = 10.0  # beyond a job's wall time, before the server is presumed stuck
_BACKEND_PROCESSES = 2
# Ceilings for the whole server; each job lowers its own limits below them.
_SERVER_NPROC = 1024
_SERVER_NOFILE = 1024


# Host seconds per phase of WarmSandbox.run, summed over this process's jobs (read by
# benchmarks/bench_code_reward.py): encode the job, wait for the answer, decode it.
HOST_PHASES = {"encode": 0.0, "wait": 0.0, "decode": 0.0}


class WarmSandboxBroken(RuntimeError):
    """The server died or stopped answering; the sandbox has been torn down."""


def supported(isolation: Isolation) -> bool:
    """Warm runs need bubblewrap (the server must be its namespace's pid 1) and a uid switch."""
    try:
        return choose_backend(isolation, capabilities()) == "bwrap" and can_switch_uid()
    except Exception:
        return False


class WarmSandbox:
    """A resident sandbox for Python jobs; not thread-safe (one job at a time)."""

    def __init__(self, disk_bytes: int, isolation: Isolation) -> None:
        caps = capabilities()
        self.disk_bytes = disk_bytes
        self._lease = UidLease().__enter__()
        self.uid = self._lease.uid
        self._seccomp = isolation.seccomp and caps.seccomp
        fds = [memfd("zygote", ZYGOTE_SOURCE)]
        if self._seccomp:
            fds.append(memfd("seccomp", seccomp.deny_filter()))
        interp = caps.interpreter
        root = languages.interpreter_root(interp)
        launch = Launch(command=(interp, "-B", "-E", "-s", "zygote.py"), files=(("zygote.py", fds[0]),),
                        disk_bytes=disk_bytes, seccomp_fd=fds[1] if self._seccomp else None,
                        extra_ro_binds=() if root.startswith("/usr") else (root,))
        # Ceilings for the server; the other limits are the caller's own, and each job lowers them all.
        prlimit = ["prlimit", f"--nproc={within_caller_limit(resource.RLIMIT_NPROC, _SERVER_NPROC)}",
                   f"--nofile={within_caller_limit(resource.RLIMIT_NOFILE, _SERVER_NOFILE)}", "--core=0", "--"]
        try:
            self.proc = subprocess.Popen(prlimit + as_user(self.uid) + bwrap.argv(launch), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, pass_fds=tuple(fds),
                                         env={}, start_new_session=True, cwd="/")
        finally:
            for fd in fds:
                os.close(fd)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._buffer = b""
        self._trusted_sent: set[str] = set()  # digests of trusted mains the server holds
        try:
            ready = self._read_line(time.monotonic() + STARTUP_SECONDS)
        except WarmSandboxBroken:
            raise WarmSandboxBroken("warm sandbox server did not start") from None
        if not ready.get("ready"):
            self.close()
            raise WarmSandboxBroken(f"warm sandbox server said {ready!r} instead of ready")

    def _read_line(self, deadline: float) -> dict:
        while b"\n" not in self._buffer:
            self._read_more(deadline)
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _read_exact(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            self._read_more(deadline)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_more(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self._selector.select(timeout=remaining):
            self.close()
            raise WarmSandboxBroken("warm sandbox server stopped answering")
        chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
        if not chunk:
            self.close()
            raise WarmSandboxBroken("warm sandbox server exited")
        self._buffer += chunk

    def run(self, program: str | bytes, stdin: str | bytes | None, files: dict, limits: Limits,
            trusted: bool = False, report_pipe: bool = False, stop_seconds: float | None = None) -> Result:
        """Run a Python program like sandbox.run would; raises WarmSandboxBroken if the server fails.
        `trusted` programs (a harness, never model output) are compiled once by the server and reused;
        with `report_pipe` the program gets one (see sandbox.Job) and Result.reports holds its bytes;
        `stop_seconds` ends it sooner than the wall limit (sandbox.Job)."""
        t0 = time.perf_counter()
        payload = {check_name(n): (as_bytes(c), 0o644) for n, c in (files or {}).items()}
        payload["main.py"] = (as_bytes(program), 0o644)
        digest = hashlib.sha256(payload["main.py"][0]).hexdigest() if trusted else None
        if digest in self._trusted_sent:  # the server has this source already: send its digest only
            del payload["main.py"]
        job = {
            "main": "main.py",
            "trusted_main": trusted,
            "trusted_digest": digest if "main.py" not in payload else None,
            "report_pipe": report_pipe,
            "stop_seconds": stop_seconds,
            # names, sizes and modes; the bytes follow the job raw, as the stdin does (see zygote.run_job)
            "files": [[n, len(d), mode] for n, (d, mode) in payload.items()],
            "wall_seconds": limits.wall_seconds,
            "output_bytes": limits.output_bytes,
            "limits": {"cpu": max(1, int(-(-limits.cpu // 1))), "memory": limits.memory_bytes,
                       "file_size": limits.file_size_bytes, "open_files": limits.open_files,
                       "processes": limits.processes + _BACKEND_PROCESSES},
        }
        # The stdin travels last, raw: the server reads it only once the job's process exists.
        encoded, stdin_bytes = json.dumps(job).encode(), as_bytes(stdin or b"")
        t1 = time.perf_counter()
        try:
            self.proc.stdin.write(b"".join([f"{len(encoded)} {len(stdin_bytes)}\n".encode(), encoded,
                                            *(d for d, _ in payload.values()), stdin_bytes]))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()
            raise WarmSandboxBroken("warm sandbox server is gone") from None
        deadline = time.monotonic() + limits.wall_seconds + ANSWER_GRACE_SECONDS
        answer = self._read_line(deadline)
        if "error" in answer:
            self.close()
            raise WarmSandboxBroken(f"warm sandbox server failed: {answer['error']}")
        answer["streams"] = [self._read_exact(size, deadline) for size in answer["sizes"]]
        t2 = time.perf_counter()
        if trusted:
            self._trusted_sent.add(digest)
        result = self._result(answer, limits)
        if answer.get("retire"):
            self.close()
        t3 = time.perf_counter()
        for key, seconds in (("encode", t1 - t0), ("wait", t2 - t1), ("decode", t3 - t2)):
            HOST_PHASES[key] += seconds
        return result

    @property
    def alive(self) -> bool:
        return self._lease is not None

    def _result(self, answer: dict, limits: Limits) -> Result:
        out, err, *reports = answer["streams"]
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        killed_for = {"timeout": Status.TIMEOUT, "output_limit": Status.OUTPUT_LIMIT}.get(answer["killed_for"])
        status = classify(exit_code=answer["exit_code"], killed_for=killed_for, stderr=stderr,
                          cpu_seconds=answer["cpu_seconds"], cpu_limit=limits.cpu,
                          peak_memory_bytes=answer["peak_memory_bytes"], memory_limit=limits.memory_bytes)
        return Result(status=status, exit_code=answer["exit_code"], stdout=stdout, stderr=stderr,
                      wall_seconds=answer["wall_seconds"], cpu_seconds=answer["cpu_seconds"],
                      peak_memory_bytes=answer["peak_memory_bytes"], signal=exit_signal(answer["exit_code"]),
                      stdout_truncated=answer["stdout_truncated"], stderr_truncated=answer["stderr_truncated"],
                      reports=reports[0] if reports else None,
                      isolation={"backend": "bwrap", "warm": True, "seccomp": self._seccomp, "private_uid": True,
                                 "leftover_processes_killed": [], "uid": self.uid})

    def server_pids(self) -> set[int]:
        """Host pids of the server's own processes (bwrap and the resident interpreter)."""
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                return {self.proc.pid, *map(int, f.read().split())}
        except FileNotFoundError:
            return set()

    def close(self) -> list[str]:
        """End the server and its namespace; returns processes that had to be swept (there should be none)."""
        if self._lease is None:
            return []
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self._selector.close()
        self.proc.stdout.close()
        # The namespace's init may still be exiting (e.g. killed by PDEATHSIG when the thread that started
        # the server ended first): give it a moment before calling anything a leftover.
        deadline = time.monotonic() + 2.0
        while processes_of(self.uid) and time.monotonic() < deadline:
            time.sleep(0.01)
        leftovers = kill_leftovers(self.uid)
        self._lease.__exit__(None, None, None)
        self._lease = None
        return leftovers
