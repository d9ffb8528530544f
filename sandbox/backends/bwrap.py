"""bubblewrap backend: a filesystem view built from nothing but the read-only system directories.

Namespaces: user (run as the leased unprivileged uid, no capabilities, no nested user namespaces),
pid (bwrap's init is pid 1: when the program exits or the outer bwrap is killed, the kernel kills
every process left in the namespace, setsid or not), net (only an unconnected loopback, so the host's
127.0.0.1 is unreachable), mount, ipc, uts, cgroup.
"""
from __future__ import annotations

import os
import shutil

from sandbox.backends import SANDBOX_ENV, WORKDIR, Launch

# Host directories masked with an empty tmpfs: locally installed software and system site-packages,
# so the interpreter shows only its standard library.
MASKED = ("/usr/local", "/usr/lib/python3/dist-packages")
# /bin, /lib... are symlinks into /usr on merged-/usr systems and directories elsewhere.
ROOT_LINKS = ("/bin", "/lib", "/lib64", "/sbin")


def binary() -> str | None:
    return shutil.which("bwrap")


def argv(launch: Launch) -> list[str]:
    """The bwrap command line for `launch` (options only reference fds listed in the launch)."""
    args = [binary() or "bwrap",
            "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--new-session", "--as-pid-1",
            "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr"]
    for path in launch.extra_ro_binds:
        args += ["--ro-bind", path, path]
    for path in MASKED:
        if os.path.isdir(path):
            args += ["--tmpfs", path, "--remount-ro", path]
    for path in ROOT_LINKS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(1 << 20), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
             "--size", str(launch.disk_bytes), "--tmpfs", WORKDIR, "--symlink", WORKDIR, "/tmp"]
    for name, fd in launch.files:
        args += ["--perms", "0755" if name in launch.executables else "0644", "--file", str(fd), f"{WORKDIR}/{name}"]
    # The root is bwrap's own tmpfs: read-only, so /box and /dev/shm stay the only writable places
    # (a warm sandbox wipes exactly those between programs).
    args += ["--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
    for key, value in SANDBOX_ENV.items():
        args += ["--setenv", key, value]
    if launch.seccomp_fd is not None:
        args += ["--seccomp", str(launch.seccomp_fd)]
    return args + ["--", *launch.command]
