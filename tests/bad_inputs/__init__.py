"""The bad-input suite's cases, run by tests/test_bad_input.py.

Each module here holds `CASES`, a list of `Case`: a command as a hostile or careless user would type
it, the files it is given, and what must come out: the exit code, one `rlvr: error:` line (no
traceback), the named input files byte for byte unchanged, and a bounded peak memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# Files a case starts with: bytes or text, or a function that writes into the case's folder.
FileSpec = str | bytes | Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    id: str
    # After `python -m rlvr`. "{dir}" is the case's folder (also the working directory), "{model}" a
    # tiny model folder built once per session.
    argv: list[str]
    files: dict = field(default_factory=dict)   # relative path -> str | bytes | fn(case_dir)
    exit: int = 2
    # A regex that the one `rlvr: error:` line must match (re.search); None: no such line may appear.
    error: str | None = ".+"
    # A regex that stdout + stderr must match (re.search), e.g. a warning a run that goes on prints.
    output: str | None = None
    unchanged: tuple = ()                        # relative paths whose bytes must not change
    max_rss_mb: int = 3000                       # the whole process tree, sampled every 0.1 s
    env: dict = field(default_factory=dict)
    timeout: float = 120
    interrupt_on: str | None = None              # a regex on the output: SIGINT the run when it appears
    wrap: list = field(default_factory=list)     # argv before python (e.g. unshare ... for a full disk)
    check: Callable | None = None                # fn(case_dir, result) for anything else, asserts
    slow: bool = False                           # builds or trains a model: kept to the few that need it
