"""Run many programs at once.

Each run is a child process tree watched by a supervisor loop that mostly sleeps in poll(), so a
thread per concurrent run is enough: the work happens in the sandboxed processes, not under the GIL.

With `warm=True`, Python jobs run in resident sandboxes (sandbox.warm), by fork instead of a fresh
interpreter and namespace per job; other jobs, and any job whose warm sandbox failed, run cold. Idle warm
sandboxes wait in a free list, at most one per worker. They are started from one spawner thread that lives
as long as the pool, because bwrap's --die-with-parent follows the thread that started it: started from a
worker, a sandbox would die with that worker at shutdown, leaving its init for the host's init to reap.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sandbox.limits import Isolation, Limits
from sandbox.result import Result
from sandbox.files import FileContent
from sandbox.runner import Build, build, run
from sandbox.warm import WarmSandbox, WarmSandboxBroken, supported


@dataclass(frozen=True)
class Job:
    program: FileContent
    language: str = "python"
    stdin: FileContent | None = None
    files: Mapping[str, FileContent] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    isolation: Isolation = field(default_factory=Isolation)
    # The program is trusted code (e.g. a test harness that loads the untrusted program itself): a warm
    # sandbox may compile it once and reuse it. Never set this for model output.
    trusted: bool = False
    # A warm run gives the program a pipe on fd 3 (`--report-fd=3` in its argv), whose bytes come back as
    # Result.reports; a cold run gives none (Result.reports is None), so the program must also work without.
    report_pipe: bool = False
    # A warm run ends the program here (a TIMEOUT) rather than at limits.wall_seconds: where a program that
    # guards itself in a cold run (the code harness) stops at its own deadline, so both score alike.
    stop_seconds: float | None = None


def _run_job(job: Job) -> Result:
    return run(job.program, job.language, job.stdin, job.files, job.limits, job.isolation)


class Pool:
    """`workers` runs at a time (default: the number of CPUs). Use as a context manager."""

    def __init__(self, workers: int | None = None, warm: bool = False) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.warm = warm
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox")
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="sandbox-spawner") if warm else None
        self._warm_lock = threading.Lock()
        self._idle: dict[tuple, list[WarmSandbox]] = {}
        self._warm_sandboxes: list[WarmSandbox] = []
        self.leftovers: list[str] = []  # processes swept when warm sandboxes closed (should stay empty)

    def _checkout(self, key: tuple, job: Job) -> WarmSandbox:
        with self._warm_lock:
            if self._idle.get(key):
                return self._idle[key].pop()
        box = self._spawner.submit(WarmSandbox, job.limits.disk_bytes, job.isolation).result()
        with self._warm_lock:
            self._warm_sandboxes.append(box)
        return box

    def warm_up(self, count: int | None = None, disk_bytes: int | None = None,
                isolation: Isolation | None = None) -> int:
        """Start warm sandboxes ahead of the first job (default: one per worker) for jobs with these
        limits' disk and this isolation, so that start-up leaves the first jobs' time alone; returns how
        many are idle for them now. Nothing starts in a cold pool or where warm runs are unsupported."""
        isolation = isolation or Isolation()
        key = (Limits().disk_bytes if disk_bytes is None else disk_bytes, isolation)
        if not (self.warm and supported(isolation)):
            return 0
        with self._warm_lock:
            missing = (count or self.workers) - len(self._idle.get(key, []))
        started = [self._spawner.submit(WarmSandbox, key[0], isolation) for _ in range(missing)]
        for future in started:
            try:
                box = future.result()
            except WarmSandboxBroken:
                continue  # the jobs will try again, or run cold
            with self._warm_lock:
                self._warm_sandboxes.append(box)
                self._idle.setdefault(key, []).append(box)
        with self._warm_lock:
            return len(self._idle.get(key, []))

    def _warm_run(self, job: Job) -> Result:
        key = (job.limits.disk_bytes, job.isolation)
        try:
            box = self._checkout(key, job)
            result = box.run(job.program, job.stdin, dict(job.files), job.limits, job.trusted, job.report_pipe,
                             job.stop_seconds)
        except WarmSandboxBroken:
            return _run_job(job)
        if box.alive:  # a server that could not wipe after a job has retired itself
            with self._warm_lock:
                self._idle.setdefault(key, []).append(box)
        return result

    def _dispatch(self, job: Job) -> Result:
        if self.warm and job.language == "python" and supported(job.isolation):
            return self._warm_run(job)
        return _run_job(job)

    def map(self, jobs: Iterable[Job]) -> Iterator[Result]:
        """Results in job order."""
        return self._executor.map(self._dispatch, jobs)

    def submit(self, job: Job) -> Future:
        return self._executor.submit(self._dispatch, job)

    def build(self, program: FileContent, language: str, limits: Limits, isolation: Isolation) -> "Future[Build]":
        """Compile in the background; see sandbox.build."""
        return self._executor.submit(build, program, language, limits, isolation)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._warm_lock:
            for box in self._warm_sandboxes:
                self.leftovers += box.close()
            self._warm_sandboxes.clear()
            self._idle.clear()
        if self._spawner is not None:
            self._spawner.shutdown(wait=True)

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_many(jobs: Iterable[Job], workers: int | None = None, warm: bool = False) -> list[Result]:
    with Pool(workers, warm) as pool:
        return list(pool.map(jobs))
