"""util-linux `unshare` backend, for machines without bubblewrap.

Same namespaces as bwrap (user mapped to the leased uid, pid, net, mount, ipc, uts), but the
filesystem view starts from the host's and hides it: every top-level directory except the system
ones is covered by an empty tmpfs (files by /dev/null), then the program runs with an empty
capability bounding set and no_new_privs, so it cannot unmount the covers. No seccomp filter.
"""
from __future__ import annotations

import shlex
import shutil

from sandbox.backends import SANDBOX_ENV, WORKDIR, Launch

KEPT = ("/usr", "/bin", "/lib", "/lib64", "/sbin", "/dev", "/proc")
MASKED = ("/usr/local", "/usr/lib/python3/dist-packages", "/dev/shm", "/dev/mqueue")
SETUP_FAILED_EXIT = 125
SETUP_FAILED_MESSAGE = "rlvr-sandbox: setup failed"


def binary() -> str | None:
    return shutil.which("unshare") if shutil.which("setpriv") and shutil.which("bash") else None


def setup_script(launch: Launch) -> str:
    """The shell script that hides the host, fills the working directory and execs the program."""
    keep = "|".join(KEPT)
    lines = [
        f"fail() {{ echo '{SETUP_FAILED_MESSAGE}' >&2; exit {SETUP_FAILED_EXIT}; }}",
        "for p in /*; do",
        f"  case \"$p\" in {keep}) continue;; esac",
        "  if [ -L \"$p\" ]; then continue; fi",
        "  if [ -d \"$p\" ]; then mount -t tmpfs -o size=4k,mode=0555 none \"$p\" || fail;",
        "  elif [ -e \"$p\" ]; then mount --bind /dev/null \"$p\" || fail; fi",
        "done",
        f"for p in {' '.join(MASKED)}; do",
        "  if [ -d \"$p\" ]; then mount -t tmpfs -o size=4k,mode=0555 none \"$p\" || fail; fi",
        "done",
        f"mount -t tmpfs -o size={launch.disk_bytes},mode=0755 none /tmp || fail",
        "cd /tmp || fail",
    ]
    for name, fd in launch.files:
        # Copy, then close: the program must not find its inputs (e.g. a harness's tests) on an open fd.
        lines.append(f"cat /proc/self/fd/{fd} > {shlex.quote(name)} || fail")
        lines.append(f"exec {fd}<&-")
        if name in launch.executables:
            lines.append(f"chmod 755 {shlex.quote(name)} || fail")
    env = " ".join(f"{k}={shlex.quote(v if v != WORKDIR else '/tmp')}" for k, v in SANDBOX_ENV.items())
    # setsid: the program must not share the outer unshare's process group (kill(0) would reach it).
    lines.append(f"exec env -i {env} setsid setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- "
                 + " ".join(shlex.quote(c) for c in launch.command))
    return "\n".join(lines)


def argv(launch: Launch) -> list[str]:
    # bash, because closing an inherited fd above 9 (`exec 57<&-`) is beyond dash.
    return [binary() or "unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child",
            "--mount-proc", "--net", "--ipc", "--uts", "--mount", "--propagation", "private",
            shutil.which("bash") or "/bin/bash", "-c", setup_script(launch)]
