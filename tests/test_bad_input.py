"""The bad-input suite: every case in tests/bad_inputs/ run as a real `rlvr` subprocess.

A case passes when the command exits with its code, says what went wrong in exactly one
`rlvr: error:` line (no traceback anywhere), leaves the named inputs byte for byte as they were, and
keeps the whole process tree's memory under the case's bound (it is killed past it, so a case that
would eat the machine fails instead). The README gives the count of cases.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import bad_inputs
from tests.bad_inputs import Case
from tests.conftest import pythonpath


def all_cases() -> list[Case]:
    cases = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(bad_inputs.__path__)):
        cases += importlib.import_module(f"tests.bad_inputs.{mod}").CASES
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), f"duplicate case ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    return cases


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float


def _tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21])  # pages
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def _as_in_a_terminal() -> None:
    """Ctrl-C's default action in the child, as for a command typed in a terminal: a test run started in
    the background (`make test &`) inherits SIGINT ignored, and the run would rightly ignore it too."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_case(case: Case, case_dir: Path, model: str | None) -> Result:
    argv = [a.replace("{dir}", str(case_dir)).replace("{model}", model or "") for a in case.argv]
    wrap = [a.replace("{dir}", str(case_dir)) for a in case.wrap]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath(), "PYTHONUNBUFFERED": "1",
           **{k: v.replace("{dir}", str(case_dir)) for k, v in case.env.items()}}
    proc = subprocess.Popen([*wrap, sys.executable, "-m", "rlvr", *argv], cwd=case_dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="backslashreplace", start_new_session=True, preexec_fn=_as_in_a_terminal)
    out: dict[str, list[str]] = {"stdout": [], "stderr": []}
    interrupted = threading.Event()

    def pump(name):
        for line in getattr(proc, name):
            out[name].append(line)
            if case.interrupt_on and not interrupted.is_set() and re.search(case.interrupt_on, line):
                interrupted.set()
                os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group

    readers = [threading.Thread(target=pump, args=(n,), daemon=True) for n in out]
    for t in readers:
        t.start()
    peak, deadline, killed = 0.0, time.time() + case.timeout, ""
    while proc.poll() is None:
        peak = max(peak, _tree_rss_mb(proc.pid))
        if peak > case.max_rss_mb:
            killed = f"killed: the process tree reached {peak:.0f} MB (bound {case.max_rss_mb} MB)"
        elif time.time() > deadline:
            killed = f"killed: still running after {case.timeout:.0f} s (a hang?)"
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    proc.wait()
    for t in readers:
        t.join(timeout=10)
    stdout, stderr = "".join(out["stdout"]), "".join(out["stderr"])
    assert not killed, f"{killed}\n--- stderr (tail) ---\n{stderr[-3000:]}"
    if case.interrupt_on:
        assert interrupted.is_set(), f"never saw {case.interrupt_on!r} to interrupt on:\n{stderr[-3000:]}"
    return Result(proc.returncode, stdout, stderr, peak)


def write_files(case: Case, case_dir: Path) -> dict[str, bytes]:
    for rel, spec in case.files.items():
        path = case_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(spec):
            spec(case_dir)
        elif isinstance(spec, bytes):
            path.write_bytes(spec)
        else:
            path.write_text(spec)
    return {rel: (case_dir / rel).read_bytes() for rel in case.unchanged}


CASES = all_cases()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_bad_input(case: Case, tmp_path, request):
    model = request.getfixturevalue("tiny_model_dir") if any("{model}" in a for a in case.argv) else None
    before = write_files(case, tmp_path)
    res = run_case(case, tmp_path, model)
    both = res.stdout + res.stderr
    tail = f"\n--- stdout ---\n{res.stdout[-2000:]}\n--- stderr ---\n{res.stderr[-3000:]}"
    assert "Traceback (most recent call last)" not in both, f"a traceback reached the user{tail}"
    assert res.returncode == case.exit, f"exit code {res.returncode}, expected {case.exit}{tail}"
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("rlvr: error:")]
    if case.error is None:
        assert not errors, f"unexpected error line{tail}"
    else:
        assert len(errors) == 1, f"expected one 'rlvr: error:' line, got {len(errors)}{tail}"
        assert re.search(case.error, errors[0]), f"{errors[0]!r} does not match {case.error!r}"
    if case.output is not None:
        assert re.search(case.output, both), f"the output does not match {case.output!r}{tail}"
    for rel, data in before.items():
        path = tmp_path / rel
        assert path.is_file() and path.read_bytes() == data, f"{rel} was changed or removed{tail}"
    if case.check is not None:
        case.check(tmp_path, res)
