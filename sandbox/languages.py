"""How each language is laid out in the working directory and started.

Python programs run on the plain system interpreter (/usr/bin/python3 by default, overridable with
RLVR_SANDBOX_PYTHON), never the project's venv: the sandbox shows it read-only with the standard library
only (site-packages directories are masked), so programs see neither /work nor $HOME nor installed
packages. C and C++ are compiled inside the sandbox by the system gcc/g++.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

DEFAULT_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class Language:
    name: str
    source_name: str
    command: tuple[str, ...]
    compiled: bool = False
    build_command: tuple[str, ...] | None = None  # compiles only, writing the executable to stdout
    executable: bool = False  # the source file itself is run (a prebuilt binary)


def python_interpreter() -> str:
    """The interpreter sandboxed Python runs on: $RLVR_SANDBOX_PYTHON, else the system python3."""
    path = os.environ.get("RLVR_SANDBOX_PYTHON") or DEFAULT_PYTHON
    return os.path.realpath(path)


def interpreter_root(path: str) -> str:
    """The installation prefix to show read-only: /usr for /usr/bin/python3.11, PREFIX for PREFIX/bin/python."""
    return os.path.dirname(os.path.dirname(os.path.realpath(path)))


def _compile_then_run(compiler: str, source: str, flags: str) -> tuple[str, ...]:
    # The compiler's diagnostics go to stderr; its exit code 1 is reported like a runtime error.
    return ("/bin/sh", "-c", f"{compiler} {flags} -o prog {source} -lm && exec ./prog")


def _compile_to_stdout(compiler: str, source: str, flags: str) -> tuple[str, ...]:
    return ("/bin/sh", "-c", f"{compiler} {flags} -o prog {source} -lm >&2 && exec cat prog")


def get(name: str) -> Language:
    """The Language called `name` (python, c, cpp)."""
    if name == "python":
        # -B: no .pyc writes; -E -s: ignore environment and user site.
        return Language("python", "main.py", (python_interpreter(), "-B", "-E", "-s", "main.py"))
    if name == "c":
        flags = "-O2 -std=gnu17 -pipe"
        return Language("c", "main.c", _compile_then_run("gcc", "main.c", flags), compiled=True,
                        build_command=_compile_to_stdout("gcc", "main.c", flags))
    if name in ("cpp", "c++"):
        flags = "-O2 -std=gnu++17 -pipe"
        return Language("cpp", "main.cpp", _compile_then_run("g++", "main.cpp", flags), compiled=True,
                        build_command=_compile_to_stdout("g++", "main.cpp", flags))
    if name == "binary":  # an executable made by sandbox.build
        return Language("binary", "prog", ("./prog",), executable=True)
    raise ValueError(f"unknown sandbox language {name!r}: expected python, c, cpp or binary")


def available(name: str) -> bool:
    """Whether the toolchain for `name` is installed on this machine."""
    if name == "python":
        return os.access(python_interpreter(), os.X_OK)
    return shutil.which({"c": "gcc", "cpp": "g++"}[name]) is not None
