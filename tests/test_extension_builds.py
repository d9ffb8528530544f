"""torch's JIT build lock: a lock whose owner is gone is removed in one line, a live owner is waited on.

Owners are real processes: one holding the lock through torch's own FileBaton (as a build does), one
working in the build folder (as ninja and the compilers do, also after their parent was killed).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from rlvr import extension_builds as E
from tests.conftest import REPO, run_rlvr

# A build as torch runs it: take the baton, say so, hold it for argv[2] seconds, release (close, remove).
# torch's own FileBaton, loaded from its file: importing torch would cost seconds per holder.
HOLDER = """
import importlib.util, os, sys, time
path = os.path.join(importlib.util.find_spec("torch").submodule_search_locations[0], "utils", "file_baton.py")
spec = importlib.util.spec_from_file_location("file_baton", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
FileBaton = module.FileBaton
baton = FileBaton(sys.argv[1])
assert baton.try_acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
baton.release()
"""


def hold(lock, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def timed(fn, *args, **kw) -> float:
    start = time.monotonic()
    fn(*args, **kw)
    return time.monotonic() - start


def test_no_lock_returns_at_once_without_a_word(tmp_path, capsys):
    assert timed(E.wait_for_lock, "op", tmp_path) < 0.1
    assert capsys.readouterr().err == ""


def test_a_lock_nobody_holds_is_removed_in_one_line(tmp_path, capsys):
    (tmp_path / "lock").touch()
    assert timed(E.wait_for_lock, "op", tmp_path, grace=0.3) >= 0.3
    assert not (tmp_path / "lock").exists()
    why = "a lock left by a op build that was killed (no process holds it)"
    assert capsys.readouterr().err.splitlines() == [f"[rlvr] removed {tmp_path / 'lock'}: {why}"]


def test_a_live_build_is_waited_for_and_its_lock_left_to_it(tmp_path, capsys):
    holder = hold(tmp_path / "lock", 1.5)
    assert E.find_owners(tmp_path / "lock").pids == (holder.pid,)
    assert timed(E.wait_for_lock, "op", tmp_path, poll=0.1, grace=0.1) > 1.0
    assert holder.wait() == 0  # its release found its own lock: rlvr removed nothing
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"[rlvr] waiting for the op build by pid {holder.pid} (")


def test_a_build_killed_while_waited_on_leaves_a_lock_that_is_then_removed(tmp_path, capsys):
    holder = hold(tmp_path / "lock", 60)
    threading.Timer(1.0, holder.kill).start()
    assert timed(E.wait_for_lock, "op", tmp_path, poll=0.1, grace=0.2) < 10
    assert holder.wait() == -signal.SIGKILL
    assert not (tmp_path / "lock").exists()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "waiting for the op build" in err[0] and err[1].startswith("[rlvr] removed")


def test_a_process_working_in_the_build_folder_owns_its_lock(tmp_path, capsys):
    """ninja and the compilers of a build whose parent was killed: the lock is theirs until they exit."""
    (tmp_path / "lock").touch()
    worker = subprocess.Popen(["sleep", "1.5"], cwd=tmp_path)
    assert E.find_owners(tmp_path / "lock").pids == (worker.pid,)
    assert timed(E.wait_for_lock, "op", tmp_path, poll=0.1, grace=0.1) > 1.0
    assert worker.poll() == 0 and not (tmp_path / "lock").exists()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and f"pid {worker.pid} (sleep)" in err[0] and err[1].startswith("[rlvr] removed")


def test_a_lock_replaced_during_the_grace_period_is_left_alone(tmp_path):
    """Another rlvr removed the stale lock meanwhile and a build (here invisible) took a fresh one."""
    lock = tmp_path / "lock"
    lock.touch()
    seen = os.stat(lock)
    lock.unlink()
    time.sleep(0.05)  # past the filesystem's timestamp tick, should the inode number come back
    lock.touch()
    assert not E._remove_if_stale(lock, seen)
    assert lock.exists()


def test_a_lock_that_gained_an_owner_during_the_grace_period_is_left_alone(tmp_path):
    lock = tmp_path / "lock"
    lock.touch()
    seen = os.stat(lock)
    worker = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    try:
        time.sleep(0.1)
        assert not E._remove_if_stale(lock, seen)
        assert lock.exists()
    finally:
        worker.kill()
        worker.wait()


def test_a_lock_that_cannot_be_judged_is_waited_on_after_one_line(tmp_path, monkeypatch, capsys):
    """On a filesystem shared with other machines a build there is invisible: wait, say on what."""
    monkeypatch.setattr(E, "SHARED_FILESYSTEMS", {E.filesystem_type(tmp_path)})
    (tmp_path / "lock").touch()
    threading.Timer(1.0, (tmp_path / "lock").unlink).start()  # the other machine's build finishes
    assert timed(E.wait_for_lock, "op", tmp_path, poll=0.1, grace=0.1) > 0.9
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"[rlvr] waiting on {tmp_path / 'lock'}: no process here "
                                                f"holds it, but it is on a shared filesystem"), err


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /rlvrhome rw,relatime shared:2 - nfs4 server:/rlvrhome rw,vers=4.2
41 40 0:36 / /rlvrhome/me/scratch\\040space rw - tmpfs tmpfs rw
42 22 0:37 / /rlvrmnt/dätä rw - xfs /dev/sdb rw
"""


@pytest.mark.parametrize("path,kind", [("/rlvrvar/x", "ext4"), ("/rlvrhome/me/.cache/lock", "nfs4"),
                                       ("/rlvrhomer", "ext4"), ("/rlvrhome/me/scratch space/x", "tmpfs"),
                                       ("/rlvrmnt/dätä/x", "xfs")])
def test_filesystem_type_is_that_of_the_innermost_mount(path, kind):
    assert E.filesystem_type(path, MOUNTINFO) == kind


def test_the_build_dir_is_torchs(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert E.build_dir("cpu_adam") == tmp_path / "cpu_adam"


@pytest.mark.slow
def test_offloaded_optimizer_judges_the_cpu_adam_lock_before_torch_waits_on_it(tmp_path):
    """engines.make_engine calls the guard: with a stale lock in the cpu_adam build folder the run goes on
    to the build, which takes torch's lock and runs ninja (here made to fail at once by a compiler that
    refuses to compile, to skip a minute of compiling; its version queries go to the real one)."""
    ext = tmp_path / "ext"
    (ext / "cpu_adam").mkdir(parents=True)
    (ext / "cpu_adam" / "lock").touch()
    cxx = tmp_path / "cxx"
    cxx.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -c ] && exit 1; done\nexec c++ "$@"\n')
    cxx.chmod(0o755)
    proc = run_rlvr("train", str(REPO / "configs/sft_arith.yaml"), "model.tiny.hidden_size=32",
                    "model.tiny.intermediate_size=64", "data.arith.train_size=64", "data.arith.test_size=8",
                    "data.eval_samples=8", "trainer.batch_size=8", "trainer.micro_batch_size=8",
                    "trainer.max_steps=1", "deepspeed.stage=1", "deepspeed.offload_optimizer=true",
                    f"logging.out_dir={tmp_path / 'run'}", "logging.progress=false",
                    "logging.tensorboard=false",
                    env={"TORCH_EXTENSIONS_DIR": str(ext), "CXX": str(cxx)}, timeout=60)
    assert f"[rlvr] removed {ext / 'cpu_adam' / 'lock'}" in proc.stderr, proc.stderr[-3000:]
    assert "Error building extension 'cpu_adam'" in proc.stderr, proc.stderr[-3000:]
    assert not (ext / "cpu_adam" / "lock").exists()  # the failed build released its own
