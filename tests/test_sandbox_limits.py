"""The limits a caller configures are exactly the ones in force inside the sandbox, in every mode, and
the supervisor's kills end a run on time."""
from __future__ import annotations

import math
import resource
import textwrap

import pytest

import sandbox
from sandbox import Isolation, Limits, Status, supervisor, warm

CAPS = sandbox.capabilities()
BACKENDS = [b for b, state in CAPS.backends.items() if state == "ok"]
MODES = BACKENDS + ["rlimits"] + (["warm"] if warm.supported(Isolation()) else [])
pytestmark = pytest.mark.skipif(not CAPS.prlimit, reason="prlimit not installed")

# Odd values, none of them a default, so a limit taken from the wrong place shows.
ODD = Limits(wall_seconds=5.0, cpu_seconds=2.5, memory_bytes=300 << 20, processes=7, open_files=37,
             file_size_bytes=3 << 20, disk_bytes=5 << 20, output_bytes=1 << 16)

SHOW_LIMITS = textwrap.dedent("""
    import os, resource
    names = ("RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_CPU", "RLIMIT_CORE")
    print(*(resource.getrlimit(getattr(resource, n)) for n in names), sep=";")
    box = os.statvfs(".")
    print(box.f_blocks * box.f_frsize)
    print(oct(os.stat("data.txt").st_mode & 0o777))
""")


def run_in(mode: str, program: str, limits: Limits, files: dict | None = None) -> sandbox.Result:
    if mode == "warm":
        box = warm.WarmSandbox(limits.disk_bytes, Isolation())
        try:
            return box.run(program, None, files or {}, limits)
        finally:
            assert box.close() == []
    isolation = Isolation(backend="none", require="rlimits") if mode == "rlimits" else Isolation(backend=mode)
    return sandbox.run(program, files=files, limits=limits, isolation=isolation)


def expected_rlimits(limits: Limits, extra_seconds: float = 0.0) -> list[tuple[int, int]]:
    def both(v: int) -> tuple[int, int]:
        return (v, v)

    cpu = math.ceil(limits.cpu + extra_seconds)
    # prlimit sets soft = hard for each; the backend adds 2 processes (outer process, namespace init)
    return [both(limits.memory_bytes), both(limits.processes + 2), both(limits.open_files),
            both(limits.file_size_bytes), both(cpu), (0, 0)]


@pytest.mark.parametrize("mode", MODES)
def test_configured_limits_are_the_ones_in_force(mode):
    r = run_in(mode, SHOW_LIMITS, ODD, files={"data.txt": "x"})
    assert r.status is Status.OK, r.stderr
    rlimits, disk, perms = r.stdout.splitlines()
    got = [tuple(int(x) for x in part.strip("()").split(", ")) for part in rlimits.split(";")]
    assert got == expected_rlimits(ODD)
    if mode != "rlimits":  # the only writable place is a tmpfs of exactly disk_bytes
        assert int(disk) == ODD.disk_bytes
    assert perms == "0o644"


@pytest.mark.skipif(not CAPS.compilers.get("gcc") or not BACKENDS, reason="needs gcc and a namespace backend")
def test_compiled_languages_get_compile_seconds_of_extra_cpu():
    src = ('#include <stdio.h>\n#include <sys/resource.h>\n'
           'int main(){struct rlimit r; getrlimit(RLIMIT_CPU,&r); printf("%ld %ld\\n",(long)r.rlim_cur,(long)r.rlim_max);}')
    r = sandbox.run(src, language="c", limits=Limits(wall_seconds=5.0, cpu_seconds=2.5, compile_seconds=4.0))
    assert r.stdout == "7 7\n"  # ceil(2.5 + 4)
    built = sandbox.build(src, "c", limits=Limits(cpu_seconds=2.5, compile_seconds=4.0))
    r = sandbox.run(built.binary, language="binary", limits=Limits(wall_seconds=5.0, cpu_seconds=2.5))
    assert r.stdout == "3 3\n"  # a prebuilt binary gets no compile time


@pytest.mark.parametrize("mode", MODES)
def test_the_wall_limit_ends_a_sleeping_program(mode):
    r = run_in(mode, "import time\ntime.sleep(30)", Limits(wall_seconds=1.0))
    assert r.status is Status.TIMEOUT
    assert 1.0 <= r.wall_seconds < 4.0


def test_without_namespaces_the_process_group_kill_ends_the_run():
    """With rlimits only there is no namespace init to kill: the program is the launcher's only child and
    it has no children, so only the kill of the launcher's process group (after the grace period) ends it
    at the deadline rather than when it chooses to exit."""
    r = sandbox.run("import time\ntime.sleep(8)", limits=Limits(wall_seconds=1.0),
                    isolation=Isolation(backend="none", require="rlimits"))
    assert r.status is Status.TIMEOUT
    assert r.wall_seconds < 1.0 + supervisor._KILL_GRACE_SECONDS + 2.0


@pytest.mark.skipif(not BACKENDS, reason="no namespace backend")
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_namespace_init_is_killed_at_the_deadline_without_waiting_for_the_grace(backend, monkeypatch):
    """The deadline kill goes to the namespace's init first; the process-group kill is only a fallback
    after a grace period, here made long enough that waiting for it would show."""
    monkeypatch.setattr(supervisor, "_KILL_GRACE_SECONDS", 30.0)
    r = sandbox.run("import time\ntime.sleep(60)", limits=Limits(wall_seconds=1.0),
                    isolation=Isolation(backend=backend))
    assert r.status is Status.TIMEOUT and r.wall_seconds < 10.0


@pytest.mark.parametrize("mode", MODES)
def test_output_limit_is_exact(mode):
    r = run_in(mode, "import sys\nsys.stdout.write('x' * 5000)\nsys.stdout.flush()\nimport time\ntime.sleep(30)",
               Limits(wall_seconds=5.0, output_bytes=4096))
    assert r.status is Status.OUTPUT_LIMIT and r.stdout == "x" * 4096 and r.stdout_truncated
    assert not r.stderr_truncated
    r = run_in(mode, "import sys\nsys.stdout.write('x' * 4096)", Limits(wall_seconds=5.0, output_bytes=4096))
    assert r.status is Status.OK and r.stdout == "x" * 4096 and not r.stdout_truncated


@pytest.mark.parametrize("mode", MODES)
def test_stderr_is_capped_too(mode):
    r = run_in(mode, "import sys\nsys.stderr.write('e' * 5000)\nsys.stderr.flush()\nimport time\ntime.sleep(30)",
               Limits(wall_seconds=5.0, output_bytes=4096))
    assert r.status is Status.OUTPUT_LIMIT and r.stderr == "e" * 4096 and r.stderr_truncated
    assert not r.stdout_truncated


def test_caller_hard_limits_cap_the_sandbox():
    from sandbox.runner import within_caller_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert within_caller_limit(resource.RLIMIT_NOFILE, hard + 100) == hard
    assert within_caller_limit(resource.RLIMIT_NOFILE, 5) == 5
    assert within_caller_limit(resource.RLIMIT_NOFILE, hard) == hard


@pytest.mark.parametrize("mode", MODES)
def test_exit_codes_and_peak_memory_as_a_cold_python_reports_them(mode):
    limits = Limits(wall_seconds=5.0)
    r = run_in(mode, "raise SystemExit('bye')", limits)
    assert (r.status, r.exit_code, r.stderr) == (Status.RUNTIME_ERROR, 1, "bye\n")
    assert run_in(mode, "import sys\nsys.exit(3)", limits).exit_code == 3
    r = run_in(mode, "x = bytearray(64 << 20)\nx[::4096] = b'x' * len(x[::4096])\nraise SystemExit", limits)
    assert r.status is Status.OK and r.exit_code == 0
    assert 64 << 20 <= r.peak_memory_bytes < limits.memory_bytes  # in bytes (rusage counts KiB)


@pytest.mark.parametrize("mode", MODES)
def test_a_child_left_holding_stdout_delays_the_result_by_the_drain_not_the_wall_limit(mode):
    """After the program exits, output is read for supervisor._DRAIN_SECONDS more, then the rest is
    killed: a background process that keeps stdout open must not hold the result until the wall limit."""
    program = ("import subprocess, sys\n"
               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
               "print('done', flush=True)")
    r = run_in(mode, program, Limits(wall_seconds=20.0))
    assert r.status is Status.OK and r.stdout == "done\n", (r.status, r.stderr)
    assert r.wall_seconds < 10.0, r.wall_seconds


@pytest.mark.parametrize("mode", MODES)
def test_a_program_that_stops_reading_a_large_stdin_is_still_stopped_at_the_wall_limit(mode):
    """Stdin is written without blocking: a pipe with a little room (the program read 10 kB, then stopped)
    must not stall the supervisor in a write past the deadline."""
    program = "import os, time\nos.read(0, 10000)\ntime.sleep(60)"
    r = run_in_with_stdin(mode, program, "x" * (4 << 20), Limits(wall_seconds=2.0))
    assert r.status is Status.TIMEOUT, (r.status, r.stderr)
    assert r.wall_seconds < 10.0, r.wall_seconds


def run_in_with_stdin(mode: str, program: str, stdin: str, limits: Limits) -> sandbox.Result:
    if mode == "warm":
        box = warm.WarmSandbox(limits.disk_bytes, Isolation())
        try:
            return box.run(program, stdin, {}, limits)
        finally:
            assert box.close() == []
    isolation = Isolation(backend="none", require="rlimits") if mode == "rlimits" else Isolation(backend=mode)
    return sandbox.run(program, stdin=stdin, limits=limits, isolation=isolation)


@pytest.mark.skipif("warm" not in MODES, reason="warm sandboxes need bwrap")
def test_a_warm_result_says_it_ran_warm():
    r = run_in("warm", "print(1)", Limits(wall_seconds=5.0))
    assert r.status is Status.OK and r.isolation["warm"] is True and r.isolation["backend"] == "bwrap"
    assert r.isolation["private_uid"] is True and r.isolation["uid"] >= 2_100_000_000


@pytest.mark.parametrize("mode", MODES)
def test_the_program_inherits_no_file_descriptors_past_stdio(mode):
    """Only 0, 1 and 2 are open when the program starts (3 is the listing's own descriptor)."""
    r = run_in(mode, "import os\nprint(sorted(int(f) for f in os.listdir('/proc/self/fd')))",
               Limits(wall_seconds=5.0))
    assert r.status is Status.OK and r.stdout == "[0, 1, 2, 3]\n", (r.stdout, r.stderr)


@pytest.mark.skipif("unshare" not in BACKENDS, reason="the unshare backend does not work here")
def test_an_unshare_setup_failure_is_a_sandbox_error():
    """Files larger than the sandbox's disk fail the backend's setup: that is the sandbox's error (with
    the backend's own exit code), not the program's."""
    r = sandbox.run("print(1)", files={"big.bin": b"x" * (2 << 20)}, limits=Limits(disk_bytes=1 << 20),
                    isolation=Isolation(backend="unshare"))
    assert (r.status, r.exit_code) == (Status.SANDBOX_ERROR, 125) and "setup failed" in r.stderr
