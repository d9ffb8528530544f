"""The sandbox's rules, each on its own against exact values: naming outcomes, validating limits, file
names, languages, the seccomp filter (executed here by a small BPF interpreter), the launch command
lines, uid leases and the choice of backend."""
from __future__ import annotations

import errno
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from sandbox import Isolation, Limits, Status, languages, seccomp, supervisor
from sandbox.backends import SANDBOX_ENV, Launch, bwrap, unshare
from sandbox.capabilities import Capabilities, SandboxUnavailable, choose_backend
from sandbox.files import as_bytes, check_name, memfd
from sandbox.result import Result, classify, exit_signal
from sandbox.runner import prlimit_argv
from sandbox.uids import UID_BASE, UID_SPAN, UidLease, as_user, can_switch_uid, kill_leftovers, processes_of

# ------------------------------------------------------------------ naming the outcome


def named(exit_code, killed_for=None, stderr="", cpu=0.0, peak=0) -> Status:
    return classify(exit_code=exit_code, killed_for=killed_for, stderr=stderr, cpu_seconds=cpu, cpu_limit=10.0,
                    peak_memory_bytes=peak, memory_limit=1000)


def test_exit_signal_bounds():
    assert [exit_signal(c) for c in (None, 0, 1, 128, 129, 137, 192, 193, 255)] == [
        None, None, None, None, 1, 9, 64, None, None]


def test_classify_precedence():
    assert named(0, killed_for=Status.TIMEOUT) is Status.TIMEOUT  # the supervisor's own kill first
    assert named(137, killed_for=Status.OUTPUT_LIMIT, stderr="MemoryError") is Status.OUTPUT_LIMIT
    assert named(0, stderr="MemoryError File too large", peak=1000) is Status.OK  # text never fails a clean exit
    assert named(128 + signal.SIGXCPU) is Status.TIMEOUT
    assert named(137, cpu=9.0) is Status.TIMEOUT and named(137, cpu=8.99) is Status.KILLED  # 0.9 * cpu limit
    assert named(128 + signal.SIGXFSZ, stderr="MemoryError") is Status.OUTPUT_LIMIT
    assert named(1, stderr="OSError: [Errno 27] File too large") is Status.OUTPUT_LIMIT
    assert named(1, stderr="No space left on device") is Status.OUTPUT_LIMIT
    for marker in ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory"):
        assert named(1, stderr=f"x {marker} y") is Status.MEMORY_LIMIT, marker
    assert named(137, peak=900) is Status.MEMORY_LIMIT and named(137, peak=899) is Status.KILLED
    assert named(139, peak=900) is Status.MEMORY_LIMIT and named(139, peak=899) is Status.RUNTIME_ERROR
    assert named(1, peak=1000) is Status.RUNTIME_ERROR  # a plain exit is no memory kill, whatever the peak
    assert named(1) is Status.RUNTIME_ERROR and named(None) is Status.RUNTIME_ERROR


def test_result_ok_property():
    r = Result(Status.OK, 0, "", "", 0.0, 0.0, 0)
    assert r.ok and not Result(Status.TIMEOUT, None, "", "", 0.0, 0.0, 0).ok
    assert r.signal is None and r.isolation == {} and not r.stdout_truncated


def test_exit_code_of_a_wait_status():
    assert supervisor.exit_code_of(3 << 8) == 3 and supervisor.exit_code_of(0) == 0
    assert supervisor.exit_code_of(signal.SIGKILL) == 137 and supervisor.exit_code_of(signal.SIGSEGV) == 139


def test_capture_keeps_exactly_the_cap():
    c = supervisor._Capture(5)
    assert c.add(b"abc") is False and c.add(b"de") is False and not c.truncated
    assert c.data() == b"abcde"
    assert c.add(b"f") is True and c.truncated and c.data() == b"abcde" and c.size == 5
    c = supervisor._Capture(4)
    assert c.add(b"abcdef") is True and c.data() == b"abcd"


def test_read_report():
    for data, value in ((b"123", 123), (b"", 0), (b"12x", 0), (b" 7\n", 7)):
        r, w = os.pipe()
        os.write(w, data)
        os.close(w)
        assert supervisor._read_report(r) == value, data
        with pytest.raises(OSError):
            os.fstat(r)  # closed
    r, w = os.pipe()  # nothing written, writer still open: no report, no blocking
    assert supervisor._read_report(r) == 0
    os.close(w)


def test_supervise_reports_exit_codes_and_signals():
    out = supervisor.supervise(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], stdin=b"", pass_fds=(),
                               wall_seconds=5.0, output_bytes=100)
    assert (out.exit_code, out.stdout, out.stderr, out.killed_for) == (3, b"out\n", b"err\n", None)
    out = supervisor.supervise(["/bin/sh", "-c", "kill -SEGV $$"], stdin=b"", pass_fds=(), wall_seconds=5.0,
                               output_bytes=100)
    assert out.exit_code == 139
    out = supervisor.supervise(["/bin/cat"], stdin=b"x" * 200_000, pass_fds=(), wall_seconds=5.0,
                               output_bytes=1 << 20)
    assert out.exit_code == 0 and out.stdout == b"x" * 200_000 and out.wall_seconds < 5.0


# ------------------------------------------------------------------ limits and isolation


@pytest.mark.parametrize("name", ["wall_seconds", "memory_bytes", "output_bytes", "processes", "file_size_bytes",
                                  "open_files", "disk_bytes"])
def test_every_limit_must_be_positive(name):
    with pytest.raises(ValueError, match=f"Limits.{name} must be positive, got 0"):
        Limits(**{name: 0})
    with pytest.raises(ValueError, match=f"Limits.{name} must be positive"):
        Limits(**{name: -1})
    Limits(**{name: 1})


def test_cpu_limit():
    with pytest.raises(ValueError, match="cpu_seconds must be positive or None, got 0"):
        Limits(cpu_seconds=0)
    assert Limits(wall_seconds=3.0).cpu == 3.0 and Limits(wall_seconds=3.0, cpu_seconds=0.5).cpu == 0.5
    assert Limits() == Limits(10.0, None, 512 << 20, 1 << 20, 32, 16 << 20, 64, 64 << 20, 10.0)


def test_isolation_values():
    assert Isolation() == Isolation("namespaces", False, "auto", True, False)
    for backend in ("auto", "none", "bwrap", "unshare"):
        Isolation(backend=backend)
    with pytest.raises(ValueError, match="Isolation.backend must be one of auto, none, bwrap, unshare; got 'x'"):
        Isolation(backend="x")
    with pytest.raises(ValueError, match="Isolation.require must be 'namespaces' or 'rlimits', got 'all'"):
        Isolation(require="all")
    Isolation(require="rlimits")


# ------------------------------------------------------------------ files and languages


def test_file_names():
    assert check_name("a.py") == "a.py" and check_name("..a") == "..a" and check_name(".hidden") == ".hidden"
    for bad in ("", ".", "..", "a/b", "/a", "a\0b"):
        with pytest.raises(ValueError, match="must be a plain file name"):
            check_name(bad)


def test_file_bytes_and_memfds():
    assert as_bytes("é") == "é".encode() and as_bytes(b"\0x") == b"\0x" and as_bytes(bytearray(b"y")) == b"y"
    data = os.urandom(200_000)
    fd = memfd("data", data)
    try:
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0 and os.read(fd, 300_000) == data
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:rlvr-data")
    finally:
        os.close(fd)


def test_languages(monkeypatch):
    monkeypatch.delenv("RLVR_SANDBOX_PYTHON", raising=False)
    py = languages.get("python")
    assert py.command == (os.path.realpath("/usr/bin/python3"), "-B", "-E", "-s", "main.py")
    assert py.source_name == "main.py" and not py.compiled and not py.executable and py.build_command is None
    c, cpp = languages.get("c"), languages.get("cpp")
    assert c.command == ("/bin/sh", "-c", "gcc -O2 -std=gnu17 -pipe -o prog main.c -lm && exec ./prog")
    assert c.build_command == ("/bin/sh", "-c", "gcc -O2 -std=gnu17 -pipe -o prog main.c -lm >&2 && exec cat prog")
    assert cpp.command == ("/bin/sh", "-c", "g++ -O2 -std=gnu++17 -pipe -o prog main.cpp -lm && exec ./prog")
    assert (c.source_name, cpp.source_name, c.compiled, cpp.compiled) == ("main.c", "main.cpp", True, True)
    assert languages.get("c++") == cpp
    binary = languages.get("binary")
    assert binary == languages.Language("binary", "prog", ("./prog",), executable=True)
    with pytest.raises(ValueError, match="unknown sandbox language 'cobol': expected python, c, cpp or binary"):
        languages.get("cobol")


def test_interpreter_choice(monkeypatch, tmp_path):
    monkeypatch.setenv("RLVR_SANDBOX_PYTHON", str(tmp_path / "bin" / "python"))
    assert languages.python_interpreter() == str(tmp_path / "bin" / "python")
    assert languages.get("python").command[0] == str(tmp_path / "bin" / "python")
    assert not languages.available("python")
    monkeypatch.setenv("RLVR_SANDBOX_PYTHON", "")
    assert languages.python_interpreter() == os.path.realpath(languages.DEFAULT_PYTHON)
    assert languages.interpreter_root("/opt/py/bin/python3") == "/opt/py"
    assert languages.available("c") == (shutil.which("gcc") is not None)
    assert languages.available("cpp") == (shutil.which("g++") is not None)


# ------------------------------------------------------------------ seccomp, executed


def run_filter(program: bytes, nr: int, arch: int = seccomp.AUDIT_ARCH_X86_64) -> int:
    """What the kernel would return for syscall `nr`: classic BPF over (nr, arch)."""
    insns = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    data = {seccomp._OFFSET_NR: nr, seccomp._OFFSET_ARCH: arch}
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == seccomp._LD_W_ABS:
            acc = data[k]
        elif code == seccomp._RET_K:
            return k
        elif code in (seccomp._JEQ_K, seccomp._JGE_K):
            hit = acc == k if code == seccomp._JEQ_K else acc >= k
            pc += jt if hit else jf
        else:
            raise AssertionError(f"unknown opcode {code:#x}")
        pc += 1


def test_seccomp_filter_denies_exactly_the_list():
    program = seccomp.deny_filter()
    denied = set(seccomp.DENIED_SYSCALLS.values())
    eperm = seccomp._RET_ERRNO | errno.EPERM
    for nr in range(0, 460):
        assert run_filter(program, nr) == (eperm if nr in denied else seccomp._RET_ALLOW), nr
    assert run_filter(program, 0, arch=0x40000003) == seccomp._RET_KILL_PROCESS  # i386
    assert run_filter(program, seccomp.X32_SYSCALL_BIT | 1) == seccomp._RET_KILL_PROCESS  # x32
    assert run_filter(program, seccomp.X32_SYSCALL_BIT - 1) == seccomp._RET_ALLOW
    small = seccomp.deny_filter({"a": 7, "b": 3, "c": 7})
    assert [run_filter(small, nr) for nr in (2, 3, 4, 7, 8)] == [seccomp._RET_ALLOW, eperm, seccomp._RET_ALLOW,
                                                                  eperm, seccomp._RET_ALLOW]
    assert len(small) == 8 * (6 + 2 + 2)


def test_seccomp_constants():
    assert (seccomp._RET_KILL_PROCESS, seccomp._RET_ALLOW, seccomp._RET_ERRNO) == (0x80000000, 0x7FFF0000, 0x50000)
    assert (seccomp._LD_W_ABS, seccomp._JEQ_K, seccomp._JGE_K, seccomp._RET_K) == (0x20, 0x15, 0x35, 0x06)
    assert seccomp.supported() == (platform.machine() == "x86_64")


# ------------------------------------------------------------------ launch command lines


def test_prlimit_argv():
    limits = Limits(wall_seconds=2.5, memory_bytes=300 << 20, processes=7, file_size_bytes=3 << 20, open_files=37)
    argv = prlimit_argv(limits, 1.2, 2_100_000_123)
    assert argv[1:] == ["--cpu=4:4", f"--as={300 << 20}", "--nproc=9", f"--fsize={3 << 20}", "--nofile=37",
                        "--core=0", "--", *as_user(2_100_000_123)]
    assert argv[0] == shutil.which("prlimit")
    mine = prlimit_argv(limits, 0.0, None)  # no uid switch: the caller's own processes count too
    nproc = int(next(a for a in mine if a.startswith("--nproc=")).split("=")[1])
    assert nproc >= 9 + len(processes_of(os.getuid())) - 2 and mine[1] == "--cpu=3:3" and mine[-1] == "--"


def test_bwrap_argv():
    launch = Launch(command=("run", "it"), files=(("a.py", 11), ("prog", 12)), disk_bytes=12345, seccomp_fd=13,
                    extra_ro_binds=("/opt/py",), executables=frozenset({"prog"}))
    args = bwrap.argv(launch)
    joined = " ".join(args)
    for flag in ("--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                 "--disable-userns", "--die-with-parent", "--new-session", "--as-pid-1", "--clearenv"):
        assert flag in args, flag
    assert "--ro-bind /opt/py /opt/py" in joined and "--ro-bind /usr /usr" in joined
    assert "--size 12345 --tmpfs /box" in joined and f"--size {1 << 20} --tmpfs /dev/shm" in joined
    assert "--perms 0644 --file 11 /box/a.py" in joined and "--perms 0755 --file 12 /box/prog" in joined
    assert "--seccomp 13" in joined and args[-3:] == ["--", "run", "it"]
    assert "--remount-ro / --chdir /box" in joined
    for key, value in SANDBOX_ENV.items():
        assert f"--setenv {key} {value}" in joined
    assert "--seccomp" not in bwrap.argv(Launch(command=("x",), files=(), disk_bytes=1, seccomp_fd=None))


@pytest.mark.skipif(not all(map(shutil.which, ("unshare", "setpriv", "bash"))), reason="util-linux tools")
def test_the_unshare_backend_needs_setpriv_and_bash_as_well(tmp_path, monkeypatch):
    where = {tool: shutil.which(tool) for tool in ("unshare", "setpriv", "bash")}
    for tools in (("unshare", "bash"), ("unshare", "setpriv"), ("unshare", "setpriv", "bash")):
        folder = tmp_path / "-".join(tools)
        folder.mkdir()
        for tool in tools:
            (folder / tool).symlink_to(where[tool])
        monkeypatch.setenv("PATH", str(folder))
        assert unshare.binary() == (str(folder / "unshare") if len(tools) == 3 else None), tools


def test_pool_size():
    from sandbox.pool import Pool

    for workers, expected in ((7, 7), (None, os.cpu_count() or 1), (0, os.cpu_count() or 1)):
        pool = Pool(workers)
        assert pool.workers == expected, workers
        pool.close()


def test_the_interpreter_version_is_read_as_text():
    from sandbox.capabilities import _interpreter_version

    assert _interpreter_version(sys.executable) == platform.python_version()
    assert _interpreter_version("/nonexistent/python").startswith("not runnable: ")


def test_unshare_script():
    launch = Launch(command=("./prog", "a b"), files=(("in put", 57), ("prog", 58)), disk_bytes=4096,
                    seccomp_fd=None, executables=frozenset({"prog"}))
    script = unshare.setup_script(launch)
    assert "mount -t tmpfs -o size=4096,mode=0755 none /tmp || fail" in script
    assert "cat /proc/self/fd/57 > 'in put' || fail\nexec 57<&-" in script
    assert "chmod 755 prog || fail" in script and "chmod 755 'in put'" not in script
    assert script.endswith("setsid setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- ./prog 'a b'")
    assert "HOME=/tmp" in script and "TMPDIR=/tmp" in script and "PATH=/usr/bin:/bin" in script
    assert f"exit {unshare.SETUP_FAILED_EXIT}" in script and unshare.SETUP_FAILED_MESSAGE in script
    args = unshare.argv(launch)
    for flag in ("--user", "--pid", "--fork", "--kill-child", "--net", "--ipc", "--uts", "--mount"):
        assert flag in args, flag
    assert args[-1] == script


# ------------------------------------------------------------------ uids


def test_uid_leases_are_private_and_released():
    assert UidLease().uid < 0  # no uid before the lease is taken (never 0, which is root)
    with UidLease() as a, UidLease() as b:
        assert UID_BASE <= a.uid < UID_BASE + UID_SPAN and UID_BASE <= b.uid < UID_BASE + UID_SPAN
        assert a.uid != b.uid
        taken = a.uid
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as rival, pytest.raises(OSError):
            rival.bind(f"\0rlvr-sandbox-uid-{taken}")  # held: nobody else can take the same uid
    assert a._sock is None and b._sock is None
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.bind(f"\0rlvr-sandbox-uid-{taken}")  # free again once released
    probe.close()


def test_as_user():
    assert as_user(5) == [shutil.which("setpriv"), "--reuid=5", "--regid=5", "--clear-groups", "--"]
    assert can_switch_uid() == (os.geteuid() == 0)


def test_processes_of_and_kill_leftovers():
    assert os.getpid() in processes_of(os.getuid())
    if not can_switch_uid():
        pytest.skip("starting a process as another uid needs root")
    with UidLease() as lease:
        assert processes_of(lease.uid) == [] and kill_leftovers(lease.uid) == []
        sleeper = subprocess.Popen(as_user(lease.uid) + ["sleep", "30"])
        deadline = time.monotonic() + 5
        while not processes_of(lease.uid) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            assert processes_of(lease.uid) == [sleeper.pid]
            found = kill_leftovers(lease.uid)
            assert len(found) == 1 and found[0].startswith(f"{sleeper.pid}:sleep:")
            assert sleeper.wait(timeout=5) == -signal.SIGKILL
        finally:
            sleeper.kill()
            sleeper.wait()


# ------------------------------------------------------------------ choosing a backend


def caps(bwrap_state="ok", unshare_state="ok", prlimit=True, seccomp_ok=True) -> Capabilities:
    return Capabilities(backends={"bwrap": bwrap_state, "unshare": unshare_state}, private_uid=True,
                        prlimit=prlimit, seccomp=seccomp_ok, interpreter="/usr/bin/python3", interpreter_version="3")


def test_choose_backend():
    assert caps().best_backend == "bwrap" and caps("no").best_backend == "unshare"
    assert caps("no", "no").best_backend is None
    assert choose_backend(Isolation(), caps()) == "bwrap"
    assert choose_backend(Isolation(backend="unshare"), caps()) == "unshare"
    assert choose_backend(Isolation(), caps("no")) == "unshare"
    assert choose_backend(Isolation(require_seccomp=True), caps()) == "bwrap"
    with pytest.raises(SandboxUnavailable, match="seccomp required but backend bwrap"):
        choose_backend(Isolation(require_seccomp=True), caps(seccomp_ok=False))
    with pytest.raises(SandboxUnavailable, match="prlimit"):
        choose_backend(Isolation(allow_weaker=True), caps(prlimit=False))
    with pytest.raises(SandboxUnavailable, match="gives rlimits only"):
        choose_backend(Isolation(backend="none"), caps())
    assert choose_backend(Isolation(backend="none", allow_weaker=True), caps()) is None
    assert choose_backend(Isolation(backend="none", require="rlimits"), caps()) is None
    # a forced backend that does not work: refused, or the best one that does when weaker is accepted
    with pytest.raises(SandboxUnavailable, match=r"namespace isolation \(bwrap\).*bwrap: no; unshare: ok"):
        choose_backend(Isolation(backend="bwrap"), caps("no"))
    assert choose_backend(Isolation(backend="bwrap", allow_weaker=True), caps("no")) == "unshare"
    assert choose_backend(Isolation(require="rlimits"), caps("no", "no")) is None


def test_capability_lines():
    text = "\n".join(caps().lines())
    assert "backend: bwrap" in text and "seccomp filter: yes" in text and "network: none" in text
    assert "warm sandboxes (Pool(warm=True)): yes" in text and "namespaces: user, pid, net" in text
    text = "\n".join(caps("no", "no", seccomp_ok=False).lines())
    assert "backend: none (rlimits only)" in text and "network: HOST NETWORK REACHABLE" in text
    assert "namespaces: none" in text and "seccomp filter: no" in text and "warm sandboxes (Pool(warm=True)): no" in text
    assert "seccomp filter: no" in "\n".join(caps("no").lines())  # unshare cannot install it
