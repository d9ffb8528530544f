"""The lock torch takes while it builds or loads a JIT-compiled op, and what rlvr does when its owner is gone.

torch.utils.cpp_extension creates `<build dir>/lock` (O_CREAT | O_EXCL, FileBaton) on every load of a
JIT-built op, built or not, keeps that file open until it is done, then closes and removes it; any other
process finding the file waits, with no timeout and no output, until it disappears. A run killed in
that window leaves the file behind and every later load waits forever.

Who owns a lock is read from /proc: the process that created it has it open for the whole build, and
ninja and the compilers it starts run with the build dir as their working directory (they may outlive
a killed parent). A lock that no process holds or works under, on a local filesystem where every
process of its owner's user could be inspected, and still there after a grace period (the holder closes
the file just before it removes it), is stale: rlvr removes it and says so in one line. The lock holds
no state, the dead build's half-written outputs are rebuilt by ninja (it only trusts outputs whose
commands it logged as finished), and a refusal would only ask the user to run the same `rm` by hand,
on every rank. Where ownership cannot be proven (a network filesystem whose other clients are
invisible here, processes that cannot be inspected), rlvr waits as torch would, after one line naming
the file.
"""
from __future__ import annotations

import fcntl
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Filesystems shared between machines: a build on another machine is invisible in this one's /proc.
SHARED_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
                      "9p", "afs", "virtiofs", "panfs", "orangefs", "wekafs"}


def build_dir(name: str) -> Path:
    """torch's build folder for op `name` (under $TORCH_EXTENSIONS_DIR when set), as torch computes it."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(name, verbose=False))


@dataclass(frozen=True)
class Owners:
    """Processes that hold `lock` open or work in its folder, and how many of the lock owner's user's
    processes could not be inspected."""

    pids: tuple[int, ...]
    uninspected: int


def _file_id(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def find_owners(lock: Path) -> Owners:
    """Scan /proc for processes that have `lock` open or have its folder as their working directory."""
    lock_st = os.stat(lock)
    lock_id, dir_id = _file_id(lock_st), _file_id(os.stat(lock.parent))
    pids, uninspected = [], 0
    # rlvr itself (it may run from the build folder) and its ancestors cannot hold the lock it waits on:
    # one that did would wait on rlvr in turn. An init with more privileges than rlvr is one of those.
    mine = _ancestors(os.getpid())
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        proc = f"/proc/{entry.name}"
        try:
            if _file_id(os.stat(f"{proc}/cwd")) == dir_id or _holds(proc, lock_id):
                pids.append(int(entry.name))
        except PermissionError:
            try:
                uninspected += os.stat(proc).st_uid == lock_st.st_uid
            except OSError:
                pass
        except OSError:  # the process exited meanwhile
            pass
    return Owners(tuple(pids), uninspected)


def _ancestors(pid: int) -> set[int]:
    """`pid` and its parent, grandparent, ... (from /proc/PID/stat, readable for any process)."""
    chain = set()
    while pid > 0 and pid not in chain:
        chain.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return chain


def _holds(proc: str, lock_id: tuple[int, int]) -> bool:
    for fd in os.listdir(f"{proc}/fd"):
        try:
            # the kernel names an open file by its path: stat only those called `lock`, not every socket
            if os.path.basename(os.readlink(f"{proc}/fd/{fd}")) == "lock" and \
                    _file_id(os.stat(f"{proc}/fd/{fd}")) == lock_id:
                return True
        except OSError:
            continue
    return False


def filesystem_type(path: Path, mountinfo: str | None = None) -> str:
    """The type of the filesystem holding `path`, from /proc/self/mountinfo (the longest mount point that
    contains it)."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    target, best, kind = os.path.realpath(path), "", ""
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])  # a space is \040 there
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, right.split()[0]
    return kind


def _unprovable(lock: Path, owners: Owners) -> str | None:
    """Why a lock nobody here holds might still be held (None: it is provably stale)."""
    kind = filesystem_type(lock.parent)
    if kind in SHARED_FILESYSTEMS or kind.startswith("fuse."):
        return f"it is on a shared filesystem ({kind}), where a build on another machine is invisible"
    if owners.uninspected:
        return f"{owners.uninspected} of its owner's processes could not be inspected"
    return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _say(line: str) -> None:
    print(f"[rlvr] {line}", file=sys.stderr, flush=True)


def wait_for_lock(name: str, folder: Path | None = None, poll: float = 1.0, grace: float = 2.0) -> None:
    """Return once op `name`'s build lock is free: wait while its owner lives, remove it once proven stale.

    Each change of what it waits on is said in one line; a lock that cannot be judged is waited on (as
    torch would) after a line that names it."""
    lock = (folder or build_dir(name)) / "lock"
    said = set()  # what it has said it waits on: "owner" and/or "unknown", once each
    while True:
        try:
            seen = os.stat(lock)
            owners = find_owners(lock)
        except FileNotFoundError:
            return
        if owners.pids:
            if "owner" not in said:  # the pids change as ninja starts compilers: named once, as first seen
                who = ", ".join(f"pid {p} ({_comm(p)})" for p in owners.pids)
                _say(f"waiting for the {name} build by {who} (lock {lock})")
                said.add("owner")
        elif why := _unprovable(lock, owners):
            if "unknown" not in said:
                _say(f"waiting on {lock}: no process here holds it, but {why}; delete it if no {name} build "
                     f"is running")
                said.add("unknown")
        else:
            time.sleep(grace)
            if _remove_if_stale(lock, seen):
                _say(f"removed {lock}: a lock left by a {name} build that was killed (no process holds it)")
                return
            continue
        time.sleep(poll)


def _remove_if_stale(lock: Path, seen: os.stat_result) -> bool:
    """Remove `lock` if it is still the file judged stale and still has no owner. An flock on the build
    folder lets one rlvr process at a time judge it: another that judged the same file stale meanwhile
    finds it gone, or replaced by the fresh lock of the build that followed, and leaves that alone."""
    fd = os.open(lock.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            now = os.stat(lock)
            same = _file_id(now) == _file_id(seen) and now.st_ctime_ns == seen.st_ctime_ns
            if not same or find_owners(lock).pids:
                return False
        except FileNotFoundError:
            return False
        os.remove(lock)
        return True
    finally:
        os.close(fd)  # closing the folder releases the flock
