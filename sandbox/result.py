"""The outcome of a sandboxed run, and the rule that names it."""
from __future__ import annotations

import signal
from dataclasses import dataclass, field
from enum import Enum


class Status(str, Enum):
    OK = "ok"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    KILLED = "killed"
    SANDBOX_ERROR = "sandbox_error"


@dataclass
class Result:
    status: Status
    exit_code: int | None  # shell convention: 128 + N when ended by signal N
    stdout: str
    stderr: str
    wall_seconds: float
    cpu_seconds: float
    peak_memory_bytes: int
    signal: int | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    isolation: dict = field(default_factory=dict)  # protections that were active for this run
    # What the program wrote to its report pipe (Job.report_pipe), in a warm run; None when it had none.
    reports: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


# Messages the standard runtimes print when an rlimit refuses them. The program could print them itself,
# which only moves a failure between failure kinds: no text ever turns a run into OK.
_MEMORY_MARKERS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")
_OUTPUT_MARKERS = ("File too large", "No space left on device")


def exit_signal(exit_code: int | None) -> int | None:
    """The signal N that ended the run when exit_code = 128 + N (how bwrap and shells report it)."""
    if exit_code is not None and 128 < exit_code < 128 + 65:
        return exit_code - 128
    return None


def classify(*, exit_code: int | None, killed_for: Status | None, stderr: str, cpu_seconds: float,
             cpu_limit: float, peak_memory_bytes: int, memory_limit: int) -> Status:
    """Name the outcome. Precedence: the supervisor's own kill (timeout/output) > clean exit >
    CPU rlimit (SIGXCPU, or SIGKILL at the hard limit) > file-size rlimit (SIGXFSZ) > memory exhaustion >
    other signals (SIGKILL = killed, the rest = runtime_error) > nonzero exit."""
    if killed_for is not None:
        return killed_for
    if exit_code == 0:
        return Status.OK
    sig = exit_signal(exit_code)
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_seconds >= 0.9 * cpu_limit):
        return Status.TIMEOUT
    if sig == signal.SIGXFSZ or any(m in stderr for m in _OUTPUT_MARKERS):
        return Status.OUTPUT_LIMIT
    if any(m in stderr for m in _MEMORY_MARKERS) or (sig is not None and peak_memory_bytes >= 0.9 * memory_limit):
        return Status.MEMORY_LIMIT
    if sig == signal.SIGKILL:
        return Status.KILLED
    return Status.RUNTIME_ERROR
