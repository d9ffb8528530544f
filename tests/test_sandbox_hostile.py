"""Hostile programs, each run for real inside the sandbox: contained, named, and leaving nothing behind.

Every test checks the status, that the run ended within its limit + 2 s, that the namespace kill (not the
after-run sweep) ended every process, and that no process of the run's uid is alive afterwards.
Parametrised over every backend that works on this machine.
"""
from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import time
import uuid

import pytest

import sandbox
from sandbox import Isolation, Limits, Status, warm
from sandbox.uids import processes_of

BACKENDS = [b for b, state in sandbox.capabilities().backends.items() if state == "ok"]
MODES = BACKENDS + (["warm"] if warm.supported(Isolation()) else [])  # warm: resident bwrap sandbox
pytestmark = pytest.mark.skipif(not BACKENDS, reason="no namespace backend works on this machine")
_WARM: dict[str, warm.WarmSandbox] = {}


@pytest.fixture(scope="module", autouse=True)
def _close_warm_sandbox():
    yield
    for box in _WARM.values():
        assert box.close() == []


@pytest.fixture(params=MODES)
def backend(request) -> str:
    return request.param


def _warm_run(program: str, limits: Limits) -> tuple[sandbox.Result, set[int]]:
    box = _WARM.get("box")
    if box is None or box._lease is None:
        box = _WARM["box"] = warm.WarmSandbox(limits.disk_bytes, Isolation())
    result = box.run(program, None, {}, limits)
    return result, box.server_pids()


def contained(program: str, backend: str, **limits) -> sandbox.Result:
    """Run `program` hostile-style and check the run left nothing: no process of its uid (in warm mode,
    none besides the resident server's own two)."""
    limits = Limits(**{"wall_seconds": 2.0, "processes": 16, "memory_bytes": 256 << 20, **limits})
    if backend == "warm":
        result, server = _warm_run(textwrap.dedent(program), limits)
        assert len(server) == 2
    else:
        result = sandbox.run(textwrap.dedent(program), limits=limits, isolation=Isolation(backend=backend))
        server = set()
    assert result.wall_seconds <= limits.wall_seconds + 2.0
    assert result.isolation["leftover_processes_killed"] == []
    assert set(processes_of(result.isolation["uid"])) - server == set()
    return result


def test_infinite_loop(backend):
    assert contained("while True: pass", backend).status is Status.TIMEOUT


def test_long_sleep(backend):
    assert contained("import time; time.sleep(600)", backend).status is Status.TIMEOUT


def test_loop_ignoring_sigterm(backend):
    r = contained("""
        import signal
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):
            signal.signal(s, signal.SIG_IGN)
        while True: pass
    """, backend)
    assert r.status is Status.TIMEOUT


def test_fork_bomb(backend):
    r = contained("""
        import os
        while True:
            try: os.fork()
            except OSError: pass
    """, backend, processes=8)
    assert r.status is Status.TIMEOUT


def test_fork_bomb_with_setsid_children(backend):
    r = contained("""
        import os, time
        for _ in range(6):
            try:
                child = os.fork()
            except OSError:  # the bombs already hold every process slot
                break
            if child == 0:
                os.setsid()
                while True:
                    try: os.fork()
                    except OSError: time.sleep(0.01)
        time.sleep(600)
    """, backend, processes=8)
    assert r.status is Status.TIMEOUT


def test_thread_bomb(backend):
    r = contained("""
        import threading, time
        while True:
            threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    """, backend, processes=8)
    assert r.status is Status.RUNTIME_ERROR
    assert "can't start new thread" in r.stderr


def test_memory_bomb(backend):
    r = contained("""
        x = []
        while True: x.append(bytearray(50 << 20))
    """, backend, memory_bytes=128 << 20)
    assert r.status is Status.MEMORY_LIMIT


def test_slow_memory_creep(backend):
    r = contained("""
        import time
        x = []
        while True:
            x.append(bytearray(1 << 20)); time.sleep(0.002)
    """, backend, memory_bytes=128 << 20, wall_seconds=5.0)
    assert r.status is Status.MEMORY_LIMIT
    assert r.peak_memory_bytes > 64 << 20


def test_huge_stdout(backend):
    r = contained("while True: print('x' * 4096)", backend, output_bytes=1 << 20)
    assert r.status is Status.OUTPUT_LIMIT
    assert len(r.stdout) == 1 << 20 and r.stdout_truncated


def test_huge_file(backend):
    r = contained("""
        with open('big', 'wb') as f:
            while True: f.write(b'x' * (1 << 20))
    """, backend, file_size_bytes=8 << 20)
    assert r.status is Status.OUTPUT_LIMIT


def test_filling_the_disk_with_many_files(backend):
    r = contained("""
        i = 0
        while True:
            open(f'f{i}', 'wb').write(b'x' * (1 << 20)); i += 1
    """, backend, disk_bytes=16 << 20)
    assert r.status is Status.OUTPUT_LIMIT


def test_writes_outside_the_working_directory_never_reach_the_host(backend):
    token = uuid.uuid4().hex
    targets = [f"/work/main/{token}", f"/root/{token}", f"/usr/{token}", f"/etc/{token}", f"/{token}",
               f"/var/tmp/{token}", f"/dev/shm/{token}", f"/tmp/{token}"]
    r = contained(f"""
        import os
        for path in {targets!r}:
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, 'w').write('pwned')
                print('wrote', path)
            except OSError as e:
                print('refused', path, type(e).__name__)
    """, backend)
    assert r.status is Status.OK
    for path in targets:
        assert not os.path.exists(path), path


def test_cannot_read_home_or_checkout(backend):
    secrets = ["/work/main/pyproject.toml", "/work/HELPERS_BRIEF.md", os.path.expanduser("~/.bashrc"),
               "/root/.pyenv/version", "/etc/shadow", "/work/shared/data/SOURCES.md"]
    r = contained(f"""
        import os
        for path in {secrets!r}:
            try:
                print('READ', path, len(open(path).read()))
            except OSError as e:
                print('refused', path, type(e).__name__)
        print(sorted(os.listdir('/')))
        for path in ('/work', '/root', '/home'):
            print(os.listdir(path) if os.path.isdir(path) else 'absent')
    """, backend)
    assert r.status is Status.OK
    assert "READ" not in r.stdout, r.stdout
    root, *hidden = r.stdout.splitlines()[len(secrets):]
    if backend == "unshare":  # covers the host's directories with empty tmpfs instead of leaving them out
        assert hidden == ["[]", "[]", "[]"]
    else:
        assert hidden == ["absent"] * 3 and "work" not in root and "root" not in root


def test_cannot_connect_to_host_loopback(backend):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        r = contained(f"""
            import socket
            for host in ('127.0.0.1', 'localhost', '::1'):
                try:
                    socket.create_connection((host, {port}), timeout=1); print('CONNECTED', host)
                except OSError as e:
                    print('refused', host, type(e).__name__)
            try:
                socket.create_connection(('1.1.1.1', 80), timeout=1); print('CONNECTED internet')
            except OSError as e:
                print('refused internet', type(e).__name__)
        """, backend)
        assert "CONNECTED" not in r.stdout, r.stdout
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_double_forked_daemon_never_acts(backend, tmp_path):
    token = uuid.uuid4().hex
    r = contained(f"""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(1.5)
                for path in ('/tmp/{token}', '{tmp_path}/{token}', 'late-{token}'):
                    try: open(path, 'w').write('late')
                    except OSError: pass
                os._exit(0)
            os._exit(0)
        print('parent done')
    """, backend)
    assert r.status is Status.OK and "parent done" in r.stdout
    time.sleep(2.0)  # past the moment the daemon would have acted
    assert not os.path.exists(f"/tmp/{token}") and not os.path.exists(tmp_path / token)
    server = _WARM["box"].server_pids() if backend == "warm" else set()
    assert set(processes_of(r.isolation["uid"])) - server == set()
    if backend == "warm":  # nor did it write into the sandbox for the next program to find
        later = contained(f"import os\nprint(sorted(os.listdir('.')), os.path.exists('/tmp/{token}'))", backend)
        assert later.stdout == "['main.py'] False\n"


def test_killing_parent_and_everything_else(backend):
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        r = contained("""
            import os, signal
            for target in (os.getppid(), -1, 1):
                try: os.kill(target, signal.SIGKILL)
                except OSError as e: print('refused', target, type(e).__name__)
            print('still here')
        """, backend)
        assert r.status in (Status.OK, Status.KILLED)
        assert bystander.poll() is None  # host processes are out of reach
    finally:
        bystander.kill()
        bystander.wait()


def test_segfault(backend):
    r = contained("import ctypes; ctypes.string_at(0)", backend)
    assert r.status is Status.RUNTIME_ERROR and r.signal == 11


def test_deep_recursion(backend):
    r = contained("""
        def f(n): return f(n + 1) + 1
        f(0)
    """, backend)
    assert r.status is Status.RUNTIME_ERROR and "RecursionError" in r.stderr


def test_recursion_past_the_c_stack(backend):
    # map() puts a C frame between Python calls, so this overflows the native stack: SIGSEGV.
    r = contained("""
        import sys
        sys.setrecursionlimit(10**8)
        def f(n): return sum(map(f, [n + 1]))
        f(0)
    """, backend)
    assert r.status is Status.RUNTIME_ERROR and r.signal == 11


@pytest.mark.parametrize("mode", [m for m in MODES if m in ("bwrap", "warm")])
def test_seccomp_refuses_kernel_surface(mode):
    if not sandbox.capabilities().seccomp:
        pytest.skip("seccomp needs x86_64")
    r = contained("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        for name, nr in (('ptrace', 101), ('unshare', 272), ('bpf', 321), ('mount', 165), ('shmget', 29)):
            rc = libc.syscall(nr, 0, 0, 0, 0)
            print(name, rc, os.strerror(ctypes.get_errno()))
    """, mode)
    assert r.stdout.count("-1 Operation not permitted") == 5, r.stdout
