"""Run many programs at once.

Each run is a child process tree watched by a supervisor loop that mostly sleeps in poll(), so a
thread per concurrent run is enough: the work happens in the sandboxed processes, not under the GIL.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sandbox.limits import Isolation, Limits
from sandbox.result import Result
from sandbox.runner import Build, FileContent, build, run


@dataclass(frozen=True)
class Job:
    program: FileContent
    language: str = "python"
    stdin: FileContent | None = None
    files: Mapping[str, FileContent] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    isolation: Isolation = field(default_factory=Isolation)


def _run_job(job: Job) -> Result:
    return run(job.program, job.language, job.stdin, job.files, job.limits, job.isolation)


class Pool:
    """`workers` runs at a time (default: the number of CPUs). Use as a context manager."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox")

    def map(self, jobs: Iterable[Job]) -> Iterator[Result]:
        """Results in job order."""
        return self._executor.map(_run_job, jobs)

    def submit(self, job: Job) -> Future:
        return self._executor.submit(_run_job, job)

    def build(self, program: FileContent, language: str, limits: Limits, isolation: Isolation) -> "Future[Build]":
        """Compile in the background; see sandbox.build."""
        return self._executor.submit(build, program, language, limits, isolation)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_many(jobs: Iterable[Job], workers: int | None = None) -> list[Result]:
    with Pool(workers) as pool:
        return list(pool.map(jobs))
