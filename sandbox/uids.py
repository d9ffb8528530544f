"""A private unprivileged uid per run.

The kernel does not apply RLIMIT_NPROC to root (nor to a user namespace whose ids map back to root),
so a fork bomb is only bounded when the sandbox runs as a real unprivileged uid. Each concurrent run
leases its own uid from a range no account uses, so runs never share a process budget and a run's
processes can be found (and killed) by uid afterwards.

The lease is an abstract unix socket named after the uid: binding it is atomic across processes,
and the kernel releases it when its holder exits, so no lock file is ever left behind.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket

UID_BASE = 2_100_000_000
UID_SPAN = 1_000_000


class UidLease:
    """Holds one uid from [UID_BASE, UID_BASE + UID_SPAN) until released."""

    def __init__(self) -> None:
        self.uid = -1
        self._sock: socket.socket | None = None

    def __enter__(self) -> "UidLease":
        rng = random.Random()
        for _ in range(1000):
            uid = UID_BASE + rng.randrange(UID_SPAN)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(f"\0rlvr-sandbox-uid-{uid}")
            except OSError:
                sock.close()
                continue
            self.uid, self._sock = uid, sock
            return self
        raise RuntimeError("no free sandbox uid after 1000 tries")

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def can_switch_uid() -> bool:
    """Only root can run a child as another uid."""
    return os.geteuid() == 0


def processes_of(uid: int) -> list[int]:
    """Pids (host view) of live processes owned by `uid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except FileNotFoundError:
                pass
    return pids


def kill_leftovers(uid: int) -> list[str]:
    """Belt and braces after the namespace is gone: kill anything still owned by the run's uid.
    Returns "pid:name:state" of each, for the record (there should never be any)."""
    found = []
    for pid in processes_of(uid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)
            found.append(f"{pid}:{fields[0].split('(', 1)[1]}:{fields[1].split()[0]}")
            os.kill(pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def as_user(uid: int) -> list[str]:
    """Switch to `uid` (gid = uid, no supplementary groups) by exec'ing setpriv rather than asking Popen to
    do it: Popen may then use vfork, which stays cheap however large the calling process (a trainer holding
    gigabytes) is, where a uid switch forces a full fork."""
    return [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
