"""`run`: one program, isolated and bounded, to a Result."""
from __future__ import annotations

import math
import os
import resource
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sandbox import languages, seccomp
from sandbox.backends import SANDBOX_ENV, Launch, bwrap, unshare
from sandbox.capabilities import capabilities, choose_backend
from sandbox.limits import Isolation, Limits
from sandbox.result import Result, Status, classify, exit_signal
from sandbox.supervisor import Outcome, supervise
from sandbox.files import FileContent, as_bytes, check_name, memfd
from sandbox.uids import UidLease, as_user, can_switch_uid, kill_leftovers, processes_of

# Processes a backend adds around the program (outer process and the namespace's init).
_BACKEND_PROCESSES = 2

def within_caller_limit(resource_id: int, value: int) -> int:
    """`value`, lowered to the caller's own hard limit: raising it needs CAP_SYS_RESOURCE, which even
    root lacks in a default container (a verifier worker may also run under a lower RLIMIT_AS)."""
    hard = resource.getrlimit(resource_id)[1]
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def prlimit_argv(limits: Limits, extra_seconds: float, uid: int | None) -> list[str]:
    """rlimits for the whole tree, then the switch to `uid`. CPU: soft = hard, so the kernel sends
    SIGKILL (the program may be its namespace's pid 1, which ignores SIGXCPU)."""
    cpu = within_caller_limit(resource.RLIMIT_CPU, math.ceil(limits.cpu + extra_seconds))
    nproc = limits.processes + _BACKEND_PROCESSES
    if uid is None:  # not root: RLIMIT_NPROC counts every process of the caller's uid
        nproc += len(processes_of(os.getuid()))
    values = {"as": (resource.RLIMIT_AS, limits.memory_bytes), "nproc": (resource.RLIMIT_NPROC, nproc),
              "fsize": (resource.RLIMIT_FSIZE, limits.file_size_bytes),
              "nofile": (resource.RLIMIT_NOFILE, limits.open_files)}
    return [shutil.which("prlimit") or "prlimit", f"--cpu={cpu}:{cpu}",
            *(f"--{name}={within_caller_limit(rid, v)}" for name, (rid, v) in values.items()),
            "--core=0", "--", *(as_user(uid) if uid is not None else [])]


def _run_rlimits_only(command: tuple[str, ...], payload: dict[str, bytes], executables: frozenset[str],
                      prefix: list[str], uid: int | None, stdin: bytes, wall: float, output_bytes: int) -> Outcome:
    """No namespaces: a fresh host directory owned by the run's uid, removed afterwards."""
    workdir = tempfile.mkdtemp(prefix="rlvr-sandbox-")
    try:
        for name, data in payload.items():
            with open(os.path.join(workdir, name), "wb") as f:
                f.write(data)
            os.chmod(os.path.join(workdir, name), 0o755 if name in executables else 0o644)
        if uid is not None:
            for path in [workdir, *(os.path.join(workdir, n) for n in payload)]:
                os.chown(path, uid, uid)
        env_cmd = ["/usr/bin/env", "-i", *(f"{k}={workdir if v == '/box' else v}" for k, v in SANDBOX_ENV.items())]
        argv = prefix + ["/bin/sh", "-c", 'cd "$0" && exec "$@"', workdir, *env_cmd, *command]
        return supervise(argv, stdin=stdin, pass_fds=(), wall_seconds=wall, output_bytes=output_bytes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class _Execution:
    outcome: Outcome
    isolation: dict


def _execute(command: tuple[str, ...], payload: dict[str, bytes], executables: frozenset[str], stdin: bytes,
             limits: Limits, isolation: Isolation, extra_seconds: float, output_bytes: int) -> _Execution:
    """Run `command` in a fresh sandbox whose working directory holds `payload`."""
    caps = capabilities()
    backend = choose_backend(isolation, caps)
    wall = limits.wall_seconds + extra_seconds
    use_seccomp = backend == "bwrap" and isolation.seccomp and caps.seccomp
    interp_root = languages.interpreter_root(caps.interpreter)
    fds: list[int] = []
    try:
        with UidLease() as lease:
            uid = lease.uid if can_switch_uid() else None
            prefix = prlimit_argv(limits, extra_seconds, uid)
            if backend is None:
                outcome = _run_rlimits_only(command, payload, executables, prefix, uid, stdin, wall, output_bytes)
            else:
                files_fds = tuple((name, memfd(name, data)) for name, data in payload.items())
                fds += [fd for _, fd in files_fds]
                seccomp_fd = memfd("seccomp", seccomp.deny_filter()) if use_seccomp else None
                if seccomp_fd is not None:
                    fds.append(seccomp_fd)
                launch = Launch(command=command, files=files_fds, executables=executables,
                                disk_bytes=limits.disk_bytes, seccomp_fd=seccomp_fd,
                                extra_ro_binds=() if interp_root.startswith("/usr") else (interp_root,))
                module = bwrap if backend == "bwrap" else unshare
                outcome = supervise(prefix + module.argv(launch), stdin=stdin, pass_fds=tuple(fds),
                                    wall_seconds=wall, output_bytes=output_bytes)
            leftovers = kill_leftovers(uid) if uid is not None else []
    finally:
        for fd in fds:
            os.close(fd)
    if backend == "unshare" and outcome.exit_code == unshare.SETUP_FAILED_EXIT \
            and unshare.SETUP_FAILED_MESSAGE.encode() in outcome.stderr:
        outcome.killed_for = Status.SANDBOX_ERROR
    return _Execution(outcome, {"backend": backend or "rlimits", "seccomp": use_seccomp, "private_uid": uid is not None,
                                "leftover_processes_killed": leftovers, "uid": uid})


def _result(execution: _Execution, limits: Limits, extra_seconds: float, keep_stdout: bool = True) -> Result:
    outcome = execution.outcome
    stderr = outcome.stderr.decode(errors="replace")
    status = classify(exit_code=outcome.exit_code, killed_for=outcome.killed_for, stderr=stderr,
                      cpu_seconds=outcome.cpu_seconds, cpu_limit=limits.cpu + extra_seconds,
                      peak_memory_bytes=outcome.peak_memory_bytes, memory_limit=limits.memory_bytes)
    return Result(
        status=status, exit_code=outcome.exit_code,
        stdout=outcome.stdout.decode(errors="replace") if keep_stdout else "", stderr=stderr,
        wall_seconds=outcome.wall_seconds, cpu_seconds=outcome.cpu_seconds,
        peak_memory_bytes=outcome.peak_memory_bytes, signal=exit_signal(outcome.exit_code),
        stdout_truncated=outcome.stdout_truncated, stderr_truncated=outcome.stderr_truncated,
        isolation=execution.isolation,
    )


def _payload(program: FileContent, lang: languages.Language, files: Mapping[str, FileContent] | None) -> dict[str, bytes]:
    payload = {check_name(n): as_bytes(c) for n, c in (files or {}).items()}
    payload[lang.source_name] = as_bytes(program)
    return payload


def run(program: FileContent, language: str = "python", stdin: FileContent | None = None,
        files: Mapping[str, FileContent] | None = None, limits: Limits | None = None,
        isolation: Isolation | None = None) -> Result:
    """Run `program` (source text; for language "binary", an executable from `build`) with `stdin`, extra
    `files` in its working directory, under `limits`. C and C++ are compiled first, inside the same
    sandbox, with `limits.compile_seconds` of extra wall and CPU time.

    Raises SandboxUnavailable when the machine cannot give `isolation`; every failure of the program
    itself is a Result status, never an exception.
    """
    limits = limits or Limits()
    lang = languages.get(language)
    extra = limits.compile_seconds if lang.compiled else 0.0
    executables = frozenset({lang.source_name}) if lang.executable else frozenset()
    execution = _execute(lang.command, _payload(program, lang, files), executables, as_bytes(stdin or b""),
                         limits, isolation or Isolation(), extra, limits.output_bytes)
    return _result(execution, limits, extra)


@dataclass
class Build:
    """A compile run: its Result (stderr holds the diagnostics) and, when it succeeded, the executable."""

    result: Result
    binary: bytes | None


MAX_BINARY_BYTES = 64 << 20


def build(program: FileContent, language: str, limits: Limits | None = None,
          isolation: Isolation | None = None) -> Build:
    """Compile `program` once inside the sandbox (within `limits.compile_seconds`), so many inputs can
    then be run against `Build.binary` with run(binary, language="binary")."""
    limits = limits or Limits()
    lang = languages.get(language)
    if lang.build_command is None:
        raise ValueError(f"language {language!r} is not compiled")
    compile_limits = replace(limits, wall_seconds=limits.compile_seconds, cpu_seconds=limits.compile_seconds)
    execution = _execute(lang.build_command, _payload(program, lang, None), frozenset(), b"", compile_limits,
                         isolation or Isolation(), 0.0, MAX_BINARY_BYTES)
    result = _result(execution, compile_limits, 0.0, keep_stdout=False)
    ok = result.status is Status.OK and not execution.outcome.stdout_truncated
    return Build(result, execution.outcome.stdout if ok else None)
