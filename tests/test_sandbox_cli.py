"""`rlvr sandbox doctor` reports the protections and exits 0 when the default isolation works."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import rlvr.cli
import rlvr.cli.sandbox
import sandbox
from tests.conftest import pythonpath


def test_doctor_reports_protections(capsys):
    parser = argparse.ArgumentParser(prog="rlvr")
    rlvr.cli.sandbox.register(parser.add_subparsers())
    args = parser.parse_args(["sandbox", "doctor"])
    code = args.func(args)
    out = capsys.readouterr().out
    assert "backend:" in out and "interpreter:" in out and "seccomp filter:" in out
    expected = 0 if sandbox.capabilities().best_backend else 1
    assert code == expected
    assert ("default isolation: available" in out) == (expected == 0)


def test_doctor_through_the_rlvr_command():
    assert "sandbox" in rlvr.cli.COMMANDS
    done = subprocess.run([sys.executable, "-m", "rlvr", "sandbox", "doctor"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": pythonpath()})
    assert done.returncode == (0 if sandbox.capabilities().best_backend else 1), done.stderr
    assert "backend:" in done.stdout
