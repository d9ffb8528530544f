"""The sandbox doing ordinary work: languages, stdin, files, limits, pool hygiene, refusals."""
from __future__ import annotations

import os
import re
import tempfile
import threading

import pytest

import sandbox
import sandbox.warm
from sandbox import Isolation, Job, Limits, Pool, SandboxUnavailable, Status, run_many
from sandbox.capabilities import Capabilities, choose_backend
from sandbox.seccomp import DENIED_SYSCALLS, deny_filter
from sandbox.uids import processes_of

CAPS = sandbox.capabilities()
needs_backend = pytest.mark.skipif(CAPS.best_backend is None, reason="no namespace backend on this machine")
QUICK = Limits(wall_seconds=5.0)


@needs_backend
def test_python_echo_with_stdin_and_files():
    r = sandbox.run("import sys, helper\nprint(helper.shout(sys.stdin.read()))", stdin="hello",
                    files={"helper.py": "def shout(s):\n    return s.upper() + '!'\n"}, limits=QUICK)
    assert r.status is Status.OK and r.stdout == "HELLO!\n" and r.exit_code == 0
    assert r.isolation["backend"] == CAPS.best_backend and r.isolation["private_uid"]


@needs_backend
def test_large_stdin_unread_by_program_does_not_block():
    r = sandbox.run("print('done')", stdin="x" * (4 << 20), limits=QUICK)
    assert r.status is Status.OK and r.stdout == "done\n"


@needs_backend
def test_runtime_error_carries_exit_code_and_stderr():
    r = sandbox.run("import sys\nprint('partial')\nsys.exit(3)", limits=QUICK)
    assert r.status is Status.RUNTIME_ERROR and r.exit_code == 3 and r.stdout == "partial\n"
    r = sandbox.run("1/0", limits=QUICK)
    assert r.status is Status.RUNTIME_ERROR and "ZeroDivisionError" in r.stderr


@needs_backend
def test_sees_only_the_system_interpreter_and_stdlib():
    r = sandbox.run("import sys, os\nprint(sys.executable)\nprint(os.environ.get('VIRTUAL_ENV'))\n"
                    "import importlib.util as u\nprint(u.find_spec('yaml'), u.find_spec('torch'))", limits=QUICK)
    assert r.status is Status.OK
    assert r.stdout.splitlines() == [CAPS.interpreter, "None", "None None"]


@needs_backend
@pytest.mark.skipif(not CAPS.compilers.get("gcc"), reason="gcc not installed")
def test_c_program_compiles_and_runs_inside():
    src = '#include <stdio.h>\nint main(){int a,b; scanf("%d %d",&a,&b); printf("%d\\n", a+b); return 0;}\n'
    r = sandbox.run(src, language="c", stdin="2 40", limits=QUICK)
    assert r.status is Status.OK and r.stdout == "42\n"
    broken = sandbox.run("int main( { return 0; }", language="c", limits=QUICK)
    assert broken.status is Status.RUNTIME_ERROR and "error" in broken.stderr


@needs_backend
@pytest.mark.skipif(not CAPS.compilers.get("g++"), reason="g++ not installed")
def test_cpp_program_and_its_crash():
    src = "#include <iostream>\n#include <vector>\nint main(){std::vector<int> v(3,7); std::cout<<v[0]+v[2]<<'\\n';}"
    assert sandbox.run(src, language="cpp", limits=QUICK).stdout == "14\n"
    crash = "int main(){ volatile int *p = nullptr; return *p; }"
    r = sandbox.run(crash, language="cpp", limits=QUICK)
    assert r.status is Status.RUNTIME_ERROR and r.signal == 11


@needs_backend
def test_cpu_limit_is_a_timeout_even_before_the_wall_deadline():
    r = sandbox.run("while True: pass", limits=Limits(wall_seconds=10.0, cpu_seconds=1.0))
    assert r.status is Status.TIMEOUT and r.cpu_seconds >= 0.9
    assert r.wall_seconds < 10.0  # ended by the CPU limit, before the wall deadline


def _children_of_this_process() -> list[str]:
    kids = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            kids += f.read().split()
    return kids


@needs_backend
def test_pool_runs_many_and_leaves_nothing_behind():
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    kids_before = set(_children_of_this_process())  # e.g. a multiprocessing forkserver of earlier tests
    jobs = [Job(f"print({i} * {i})", limits=QUICK) for i in range(6)]
    jobs += [Job("import os, time\nos.fork(); os.fork(); time.sleep(60)", limits=Limits(wall_seconds=1.0))] * 2
    jobs += [Job("x = 'y' * 10**9", limits=Limits(wall_seconds=5.0, memory_bytes=64 << 20))]
    results = run_many(jobs, workers=4)
    assert [r.stdout for r in results[:6]] == [f"{i * i}\n" for i in range(6)]
    assert [r.status for r in results[6:]] == [Status.TIMEOUT, Status.TIMEOUT, Status.MEMORY_LIMIT]
    assert all(r.isolation["leftover_processes_killed"] == [] for r in results)
    assert all(processes_of(r.isolation["uid"]) == [] for r in results)
    assert len({r.isolation["uid"] for r in results}) == len(results)  # a private uid per run
    assert set(_children_of_this_process()) - kids_before == set()  # no zombie, no orphan of ours
    assert set(os.listdir(tempfile.gettempdir())) - tmp_before == set()
    assert not [t for t in threading.enumerate() if t.name.startswith("sandbox")]


def test_rlimits_only_mode_runs_in_a_removed_host_directory():
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    r = sandbox.run("import os\nprint(os.getcwd())\nopen('out.txt', 'w').write('x')", limits=QUICK,
                    isolation=Isolation(backend="none", require="rlimits"))
    assert r.status is Status.OK and r.isolation["backend"] == "rlimits"
    assert not os.path.exists(r.stdout.strip())
    assert set(os.listdir(tempfile.gettempdir())) - tmp_before == set()


def test_weaker_isolation_is_refused_unless_accepted():
    with pytest.raises(SandboxUnavailable, match="allow_weaker"):
        sandbox.run("print(1)", isolation=Isolation(backend="none"))
    nothing = Capabilities(backends={"bwrap": "not installed", "unshare": "fails: EPERM"}, private_uid=True,
                           prlimit=True, seccomp=True, interpreter="/usr/bin/python3", interpreter_version="3")
    with pytest.raises(SandboxUnavailable, match="install bubblewrap"):
        choose_backend(Isolation(), nothing)
    assert choose_backend(Isolation(allow_weaker=True), nothing) is None
    only_unshare = Capabilities(backends={"bwrap": "not installed", "unshare": "ok"}, private_uid=True,
                                prlimit=True, seccomp=True, interpreter="/usr/bin/python3", interpreter_version="3")
    assert choose_backend(Isolation(), only_unshare) == "unshare"
    with pytest.raises(SandboxUnavailable, match="seccomp"):
        choose_backend(Isolation(require_seccomp=True), only_unshare)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="plain file name"):
        sandbox.run("print(1)", files={"../escape.py": "x"})
    with pytest.raises(ValueError, match="unknown sandbox language 'cobol'"):
        sandbox.run("print(1)", language="cobol")
    with pytest.raises(ValueError, match="wall_seconds must be positive"):
        Limits(wall_seconds=0)


def test_seccomp_numbers_match_the_kernel_header():
    header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    if not os.path.exists(header):
        pytest.skip("no x86_64 kernel header installed")
    numbers = dict(re.findall(r"#define __NR_(\w+) (\d+)", open(header).read()))
    assert {name: int(numbers[name]) for name in DENIED_SYSCALLS} == DENIED_SYSCALLS
    assert len(deny_filter()) == 8 * (len(DENIED_SYSCALLS) + 8)  # 8-byte records: 6 head + list + 2 returns


@needs_backend
@pytest.mark.skipif(not CAPS.compilers.get("gcc"), reason="gcc not installed")
def test_build_once_then_run_the_binary_on_many_inputs():
    built = sandbox.build('#include <stdio.h>\nint main(){int a; scanf("%d",&a); printf("%d\\n", 2*a);}', "c")
    assert built.result.status is Status.OK and built.binary.startswith(b"\x7fELF")
    runs = run_many([Job(built.binary, "binary", stdin=str(i), limits=QUICK) for i in range(3)], workers=2)
    assert [r.stdout for r in runs] == ["0\n", "2\n", "4\n"]
    broken = sandbox.build("int main( {", "c")
    assert broken.binary is None and "error" in broken.result.stderr


needs_warm = pytest.mark.skipif(not sandbox.warm.supported(Isolation()), reason="warm sandboxes need bwrap as root")


@needs_warm
def test_warm_programs_start_from_a_clean_sandbox():
    leave_traces = """
import os, sys, time
open('left.txt', 'w').write('secret')
open('/dev/shm/shm-left', 'w').write('secret')
os.environ['LEFT'] = 'secret'
sys.modules['left'] = sys
if os.fork() == 0:
    os.setsid()
    time.sleep(30)
print(os.getpid())
"""
    look = """
import os, sys
print(sorted(os.listdir('.')), os.listdir('/dev/shm'), os.environ.get('LEFT'), 'left' in sys.modules)
print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()) == sorted({1, os.getpid()}))
"""
    kids_before = set(_children_of_this_process())
    with Pool(1, warm=True) as pool:
        first, second = pool.map([Job(leave_traces, limits=QUICK), Job(look, limits=QUICK)])
        assert first.isolation["warm"] and second.isolation["warm"]
        assert first.isolation["uid"] == second.isolation["uid"]  # the same resident sandbox
        assert second.stdout == "['main.py'] [] None False\nTrue\n"
    assert pool.leftovers == []
    assert processes_of(first.isolation["uid"]) == []
    assert set(_children_of_this_process()) - kids_before == set()


@needs_warm
def test_warm_pool_runs_other_languages_cold():
    with Pool(2, warm=True) as pool:
        py, c = pool.map([Job("print(6 * 7)", limits=QUICK),
                          Job('#include <stdio.h>\nint main(){puts("42");}', language="c", limits=QUICK)])
    assert py.stdout == c.stdout == "42\n"
    assert py.isolation.get("warm") and not c.isolation.get("warm")


@pytest.mark.parametrize("backend", [b for b, state in CAPS.backends.items() if state == "ok"])
def test_program_inherits_no_file_descriptors(backend):
    # High-numbered fds in the caller, as in a busy trainer: none may reach the program, nor may the
    # fds that carried its own files.
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(40)]
    try:
        r = sandbox.run("import os\nprint(len(os.listdir('/proc/self/fd')))", files={"data.txt": "x"},
                        limits=QUICK, isolation=Isolation(backend=backend))
    finally:
        for fd in held:
            os.close(fd)
    assert r.status is Status.OK and r.stdout == "4\n"  # 0, 1, 2 and the fd listdir itself opened


@needs_backend
def test_a_large_caller_does_not_turn_crashes_into_memory_limits():
    """The launcher is forked from the caller, and Linux counts the fork's copy of the caller's memory in
    its peak RSS: a trainer holding a model must not make every crash look like a memory-limit kill."""
    ballast = bytearray(400 << 20)
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])  # touch every page: resident, not just reserved
    r = sandbox.run("import ctypes; ctypes.string_at(0)", limits=Limits(wall_seconds=5.0, memory_bytes=256 << 20))
    assert r.status is Status.RUNTIME_ERROR and r.signal == 11
    assert r.peak_memory_bytes < 256 << 20
    del ballast


@needs_backend
def test_closing_a_pool_waits_for_the_jobs_it_has_started():
    pool = Pool(1)
    running = pool.submit(Job("import time\ntime.sleep(1)\nprint('done')", limits=QUICK))
    pool.close()
    assert running.done() and running.result().stdout == "done\n"


@needs_warm
def test_a_trusted_main_is_sent_once_and_every_main_runs_as_itself():
    def source(tag: str) -> str:  # prints its tag, its own file's state and where its code was compiled from
        return (f"# {tag}\nimport os, sys\nprint({tag!r}, open('main.py').read().startswith('# {tag}'), "
                "os.listdir('.'), sys._getframe().f_code.co_filename)\n")

    sent: list[bytes] = []
    with Pool(2, warm=False) as cold:
        assert cold.warm_up() == 0 and cold._warm_sandboxes == []  # a cold pool starts no server
    with Pool(1, warm=True) as pool:
        assert pool.warm_up() == 1 and pool.warm_up() == 1  # one per worker, started once
        box = pool._warm_sandboxes[0]

        class Recorder:  # what the host writes to the server
            def __init__(self, pipe):
                self.pipe = pipe

            def write(self, data):
                sent.append(bytes(data))
                return self.pipe.write(data)

            def __getattr__(self, name):
                return getattr(self.pipe, name)

        box.proc.stdin = Recorder(box.proc.stdin)
        jobs = [Job(source("A"), limits=QUICK, trusted=True), Job(source("A"), limits=QUICK, trusted=True),
                Job(source("B"), limits=QUICK, trusted=True), Job(source("A"), limits=QUICK),
                Job(source("A"), limits=QUICK, trusted=True)]
        outputs = [r.stdout for r in pool.map(jobs)]
        box.proc.stdin = box.proc.stdin.pipe
    ran = "True ['main.py'] /box/main.py\n"
    assert outputs == [f"A {ran}"] * 2 + [f"B {ran}"] + [f"A {ran}"] * 2
    raw = source("A").encode()  # files travel raw after the job's header
    assert [raw in data for data in sent] == [True, False, False, True, False]  # untrusted: always sent


@needs_warm
def test_a_warm_job_inherits_a_frozen_heap():
    """The server freezes its heap before serving: a job's collections never walk (and so copy) it."""
    with Pool(1, warm=True) as pool:
        result = pool.submit(Job("import gc\nprint(gc.get_freeze_count() > 1000)", limits=QUICK)).result()
    assert result.stdout == "True\n"


@needs_warm
def test_the_server_and_the_host_say_where_a_jobs_time_went():
    box = sandbox.warm.WarmSandbox(QUICK.disk_bytes, Isolation())
    answers, read = [], box._read_line
    box._read_line = lambda deadline: answers.append(read(deadline)) or answers[-1]
    host = dict(sandbox.warm.HOST_PHASES)
    try:
        for _ in range(2):
            result = box.run("import time\ntime.sleep(0.2)", None, {"data.txt": "x" * 100_000}, QUICK)
    finally:
        box.close()
    spent = {k: v - host[k] for k, v in sandbox.warm.HOST_PHASES.items()}
    timing = answers[-1]["timing"]
    assert set(timing) == {"write files", "fork", "child (fork to exit)", "kill + wipe"}
    assert all(0 < t < 5 for t in timing.values()), timing
    assert 0.2 <= timing["child (fork to exit)"] <= result.wall_seconds
    assert set(spent) == {"encode", "wait", "decode"} and all(0 < t < 5 for t in spent.values()), spent
    assert spent["wait"] >= sum(sum(a["timing"].values()) for a in answers) >= 0.4  # summed over the jobs


@needs_warm
def test_a_report_pipe_reaches_the_host_apart_from_stdout():
    """Job.report_pipe: fd 3, named in argv, whose bytes come back as Result.reports; a grandchild's late
    write is cut off with the job, a flood is an output-limit kill, and a cold run has no pipe."""
    report = ("import os, sys\nprint(sys.argv[1:])\nos.write(3, b'first\\n')\nos.write(3, b'second\\n')\n"
              "print(os.listdir('/proc/self/fd'))\n")
    late = ("import os, time\nif os.fork() == 0:\n    time.sleep(0.5)\n    os.write(3, b'late\\n')\n"
            "    os._exit(0)\nos.write(3, b'early\\n')\n")
    flood = "import os\nwhile True:\n    os.write(3, b'x' * 65536)\n"
    limits = Limits(wall_seconds=5.0, output_bytes=1 << 20)
    with Pool(1, warm=True) as pool:
        piped, plain, late_run, flooded = pool.map([
            Job(report, limits=limits, report_pipe=True), Job(report.replace("sys.argv[1:]", "0"), limits=limits),
            Job(late, limits=limits, report_pipe=True), Job(flood, limits=limits, report_pipe=True)])
    assert piped.status is Status.OK and piped.reports == b"first\nsecond\n"
    assert piped.stdout == "['--report-fd=3']\n['0', '1', '2', '3', '4']\n"  # 4: listdir's own fd
    assert plain.status is Status.RUNTIME_ERROR and plain.reports is None and "Bad file descriptor" in plain.stderr
    assert late_run.reports == b"early\n"
    assert flooded.status is Status.OUTPUT_LIMIT and len(flooded.reports) <= 1 << 20
    cold = sandbox.run(report, limits=limits)
    assert cold.reports is None and cold.status is Status.RUNTIME_ERROR  # no fd 3: no argv flag either


@needs_warm
def test_warm_jobs_do_not_share_a_random_sequence():
    """`random` is pre-imported by the server; each forked job must still draw its own numbers."""
    with Pool(1, warm=True) as pool:
        draws = [r.stdout for r in pool.map([Job("import random\nprint(random.random())", limits=QUICK)] * 3)]
    assert len(set(draws)) == 3, draws
