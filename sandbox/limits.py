"""What a sandboxed run may use (Limits) and how strongly it must be isolated (Isolation)."""
from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20

# Backends, strongest first. "bwrap" builds a private filesystem view from nothing; "unshare" hides
# the host by mounting over it, which is weaker (it starts from the host view).
BACKENDS = ("bwrap", "unshare")


@dataclass(frozen=True)
class Limits:
    """Resource bounds of one run. Every bound is enforced by the kernel (rlimits, tmpfs size) or by
    the supervisor (wall time, output), never by the program itself.

    `memory_bytes` is the address-space limit of each process (RLIMIT_AS), so a tree of processes is
    bounded by `processes * memory_bytes`. `processes` counts processes and threads (RLIMIT_NPROC held
    by an unprivileged uid of its own). `disk_bytes` sizes the only writable place, the tmpfs working
    directory. `compile_seconds` is extra wall time granted to languages that compile first.
    """

    wall_seconds: float = 10.0
    cpu_seconds: float | None = None  # None: same as wall_seconds
    memory_bytes: int = 512 * MiB
    output_bytes: int = 1 * MiB
    processes: int = 32
    file_size_bytes: int = 16 * MiB
    open_files: int = 64
    disk_bytes: int = 64 * MiB
    compile_seconds: float = 10.0

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "memory_bytes", "output_bytes", "processes", "file_size_bytes",
                     "open_files", "disk_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)!r}")
        if self.cpu_seconds is not None and self.cpu_seconds <= 0:
            raise ValueError(f"Limits.cpu_seconds must be positive or None, got {self.cpu_seconds!r}")

    @property
    def cpu(self) -> float:
        return self.wall_seconds if self.cpu_seconds is None else self.cpu_seconds


@dataclass(frozen=True)
class Isolation:
    """How much isolation a run requires.

    require="namespaces" (the default) refuses to run unless a backend gives user, pid, net, mount, ipc
    and uts namespaces, rlimits and a private uid. `allow_weaker=True` runs anyway with the best the
    machine offers (down to rlimits only) and says so in `Result.isolation`: use it only for trusted
    code. `backend` forces one backend ("bwrap" or "unshare"); "auto" takes the strongest available.
    backend="none" runs with rlimits only (a fresh host directory, no namespaces): it needs
    require="rlimits" or allow_weaker. `seccomp` installs a syscall deny-list when the backend and architecture support it; with
    `require_seccomp` its absence refuses the run.
    """

    require: str = "namespaces"
    allow_weaker: bool = False
    backend: str = "auto"
    seccomp: bool = True
    require_seccomp: bool = False

    def __post_init__(self) -> None:
        if self.require not in ("namespaces", "rlimits"):
            raise ValueError(f"Isolation.require must be 'namespaces' or 'rlimits', got {self.require!r}")
        if self.backend not in ("auto", "none", *BACKENDS):
            raise ValueError(f"Isolation.backend must be one of auto, none, {', '.join(BACKENDS)}; "
                             f"got {self.backend!r}")
