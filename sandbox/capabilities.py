"""What isolation this machine can give, found by trying it once per process."""
from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass, field

from sandbox import languages, seccomp
from sandbox.backends import Launch, bwrap, unshare
from sandbox.limits import BACKENDS, Isolation
from sandbox.supervisor import supervise
from sandbox.uids import UidLease, as_user, can_switch_uid

NAMESPACES = ("user", "pid", "net", "mount", "ipc", "uts")


class SandboxUnavailable(RuntimeError):
    """The machine cannot give the isolation the caller requires."""


@dataclass(frozen=True)
class Capabilities:
    backends: dict[str, str]  # name -> "ok" or why it does not work
    private_uid: bool          # runs as a leased unprivileged uid, so RLIMIT_NPROC holds
    prlimit: bool
    seccomp: bool              # a filter can be installed (bwrap on x86_64)
    interpreter: str
    interpreter_version: str
    compilers: dict[str, bool] = field(default_factory=dict)

    @property
    def best_backend(self) -> str | None:
        return next((b for b in BACKENDS if self.backends.get(b) == "ok"), None)

    def lines(self) -> list[str]:
        best = self.best_backend
        out = [f"backend: {best or 'none (rlimits only)'}"]
        for name in BACKENDS:
            out.append(f"  {name}: {self.backends.get(name)}")
        ns = ", ".join(NAMESPACES) if best else "none"
        out += [
            f"namespaces: {ns}",
            f"private unprivileged uid: {'yes' if self.private_uid else 'no (runs as the caller uid)'}",
            f"rlimits (prlimit): {'yes' if self.prlimit else 'no'}",
            f"seccomp filter: {'yes' if self.seccomp and best == 'bwrap' else 'no'}",
            "network: none (empty net namespace)" if best else "network: HOST NETWORK REACHABLE",
            f"warm sandboxes (Pool(warm=True)): {'yes' if best == 'bwrap' and self.private_uid else 'no (cold runs only)'}",
            f"interpreter: {self.interpreter} ({self.interpreter_version})",
            "compilers: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in self.compilers.items()),
        ]
        return out


def _probe(name: str) -> str:
    """'ok' when a trivial program runs under backend `name`, else the reason."""
    module = {"bwrap": bwrap, "unshare": unshare}[name]
    if module.binary() is None:
        return "not installed" if name == "bwrap" else "unshare or setpriv not installed"
    launch = Launch(command=("/bin/echo", "ok"), files=(), disk_bytes=1 << 20, seccomp_fd=None)
    try:
        with UidLease() as lease:
            switch = as_user(lease.uid) if can_switch_uid() else []
            outcome = supervise(switch + module.argv(launch), stdin=b"",
                                pass_fds=(), wall_seconds=10.0, output_bytes=4096)
    except OSError as e:
        return f"cannot start: {e}"
    if outcome.exit_code == 0 and outcome.stdout.strip() == b"ok":
        return "ok"
    reason = outcome.stderr.decode(errors="replace").strip().splitlines()
    return f"fails: {reason[-1] if reason else f'exit code {outcome.exit_code}'}"


def _interpreter_version(path: str) -> str:
    try:
        done = subprocess.run([path, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                              text=True, timeout=10, env={})
        return done.stdout.strip() or "unknown"
    except OSError as e:
        return f"not runnable: {e}"


@functools.lru_cache(maxsize=1)
def capabilities() -> Capabilities:
    """Probe once per process (a few milliseconds per backend)."""
    interp = languages.python_interpreter()
    return Capabilities(
        backends={name: _probe(name) for name in BACKENDS},
        private_uid=can_switch_uid(),
        prlimit=shutil.which("prlimit") is not None,
        seccomp=seccomp.supported(),
        interpreter=interp,
        interpreter_version=_interpreter_version(interp),
        compilers={"gcc": languages.available("c"), "g++": languages.available("cpp")},
    )


def choose_backend(isolation: Isolation, caps: Capabilities) -> str | None:
    """The backend to use, or None for rlimits only; raises SandboxUnavailable when the requirement
    is not met and weaker isolation was not explicitly accepted."""
    if not caps.prlimit:
        raise SandboxUnavailable("prlimit (util-linux) is not installed: no resource limits can be applied")
    weaker_ok = isolation.allow_weaker or isolation.require == "rlimits"
    if isolation.backend == "none":
        if not weaker_ok:
            raise SandboxUnavailable("Isolation(backend='none') gives rlimits only: it needs require='rlimits' "
                                     "or allow_weaker=True")
        return None
    wanted = caps.best_backend if isolation.backend == "auto" else isolation.backend
    if wanted is not None and caps.backends.get(wanted) == "ok":
        if isolation.require_seccomp and not (wanted == "bwrap" and caps.seccomp):
            raise SandboxUnavailable(f"seccomp required but backend {wanted} on this machine cannot install it")
        return wanted
    if weaker_ok:
        return caps.best_backend
    detail = "; ".join(f"{k}: {v}" for k, v in caps.backends.items())
    raise SandboxUnavailable(
        f"sandbox needs namespace isolation ({isolation.backend}) but none works here ({detail}); "
        "install bubblewrap (apt-get install bubblewrap) or pass Isolation(allow_weaker=True) for trusted code")
