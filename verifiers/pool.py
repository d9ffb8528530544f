"""A pool of worker processes that scores samples with a HARD per-sample timeout.

Why processes and not signal.alarm: signal-based timeouts only work in the main thread, and trainers
call reward functions from worker threads, where such a timeout silently never fires (or raises and the
reward becomes 0 for every sample). Here the parent watches a deadline per sample and SIGKILLs a worker
that overruns, then starts a replacement; a crash (os._exit, segfault, OOM kill) is seen as a closed
pipe. Either way the sample gets reward 0 with the reason, and the caller never goes down.

Workers are started with 'forkserver' (default) or 'spawn': the parent usually holds torch and threads,
which makes plain fork unsafe. With forkserver the verifier's module is preloaded into the server, so a
restart after a timeout costs a fork, not a fresh sympy import.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Any

from verifiers.base import Sample, Score, Verifier, failure, verify_chunk, verify_safely

STARTUP_TIMEOUT = 120.0  # seconds a new worker may take to import its verifier
BATCH_CHUNK = 256  # samples per message to a verifier that batches


def machine_cpus() -> int:
    """CPUs this process may run on (its affinity, which a container or taskset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _worker_main(conn: Connection, verifier: Verifier, memory_mb: int | None, cpus: int) -> None:
    # Ctrl-C reaches the whole foreground process group: the parent turns it into its one-line exit and
    # closes the pool; a worker's own KeyboardInterrupt would only add a traceback per worker. A worker
    # whose parent is gone without closing it still ends: its pipe reads EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_mb:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    set_concurrency = getattr(verifier, "set_concurrency", None)
    if callable(set_concurrency):
        set_concurrency(cpus)
    warmup = getattr(verifier, "warmup", None)
    if callable(warmup):
        warmup()
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        if getattr(verifier, "batched", False):
            for (index, _), score in zip(msg, verify_chunk(verifier, [sample for _, sample in msg])):
                conn.send((index, score))
        else:  # each result as soon as it exists: the next sample's deadline starts from it
            for index, sample in msg:
                conn.send((index, verify_safely(verifier, sample)))


class _Worker:
    """One process, its pipe end, and the samples sent to it that have no result yet (in order).

    The sample at the head of `tasks` is the one running; its deadline starts when the previous
    result arrived (or the chunk was sent), so each sample gets the full timeout.
    """

    def __init__(self, ctx: Any, verifier: Verifier, memory_mb: int | None, cpus: int) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, verifier, memory_mb, cpus), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.started = time.monotonic()
        self.tasks: deque[int] = deque()
        self.deadline = float("inf")

    def send(self, chunk: list[tuple[int, Sample]], timeout: float) -> None:
        self.tasks.extend(i for i, _ in chunk)
        self.deadline = time.monotonic() + timeout
        self.conn.send(chunk)

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class VerifierPool:
    """Score samples with `verifier` in `workers` processes, each sample limited to `timeout` seconds.

    `workers=0` runs in-process (no hard timeout; exceptions are still caught) for debugging.
    A verifier with `batched = True` gets whole chunks (up to BATCH_CHUNK samples) in one verify_batch
    call, with `timeout` per sample for the chunk, and a timeout costs the whole chunk.
    `memory_mb` optionally caps each worker's address space. `cpus` (default: this machine's, see
    machine_cpus) is the budget of concurrent work the workers share: each worker's verifier gets
    `cpus // workers` (at least 1) through `set_concurrency`, so a verifier with processes of its own (the
    code sandbox) never starts cpus x workers of them. Thread-safe: calls are serialized.
    As with any forkserver/spawn pool, a script that creates one needs the `if __name__ == "__main__":`
    guard (workers re-import the main module).
    """

    def __init__(
        self,
        verifier: Verifier,
        workers: int = 2,
        timeout: float = 5.0,
        start_method: str = "forkserver",
        memory_mb: int | None = None,
        cpus: int | None = None,
    ) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if not 0 < timeout <= 86400:  # NaN fails this too: it would switch the hard timeout off
            raise ValueError(f"timeout must be > 0 seconds and at most a day, got {timeout}")
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method must be 'forkserver' or 'spawn' (fork is unsafe), got {start_method!r}")
        self.verifier, self.timeout, self.memory_mb = verifier, float(timeout), memory_mb
        self.n_workers = workers
        self.cpus_per_worker = max(1, (cpus or machine_cpus()) // max(workers, 1))
        if workers == 0 and callable(getattr(verifier, "set_concurrency", None)):
            verifier.set_concurrency(self.cpus_per_worker)
        self.batched = bool(getattr(verifier, "batched", False))
        self._ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload([type(verifier).__module__])
        self._lock = threading.Lock()
        self._workers: list[_Worker] = [self._spawn() for _ in range(workers)]
        self.restarts = 0

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self.verifier, self.memory_mb, self.cpus_per_worker)

    def score(self, samples: list[Sample]) -> list[Score]:
        """Scores in input order; never raises for a verifier's hang, crash or exception."""
        with self._lock:
            if self.n_workers == 0:
                return verify_chunk(self.verifier, list(samples))
            if not self._workers:
                raise RuntimeError("VerifierPool.score called after close()")
            return self._score(list(samples))

    def _chunk_size(self, waiting: int) -> int:
        """Samples per message: a few, so a worker never idles waiting for the parent, but small enough
        to keep the load balanced (at most half a worker's fair share, at most 16). A batching verifier
        gets its fair share, up to BATCH_CHUNK."""
        if self.batched:
            return max(1, min(BATCH_CHUNK, -(-waiting // len(self._workers))))
        return max(1, min(16, waiting // (2 * len(self._workers))))

    def _score(self, samples: list[Sample]) -> list[Score]:
        results: list[Score | None] = [None] * len(samples)
        todo = deque(range(len(samples)))
        remaining = len(samples)
        while remaining:
            for w in self._workers:
                if w.ready and not w.tasks and todo:
                    n = self._chunk_size(len(todo))
                    chunk = [(i, samples[i]) for i in (todo.popleft() for _ in range(min(n, len(todo))))]
                    try:
                        w.send(chunk, self.timeout * (len(chunk) if self.batched else 1))
                    except (BrokenPipeError, OSError):
                        todo.extendleft(reversed([i for i, _ in chunk]))
                        w.tasks.clear()
                        self._replace(w)
            now = time.monotonic()
            next_deadline = min(
                [w.deadline for w in self._workers if w.tasks]
                + [w.started + STARTUP_TIMEOUT for w in self._workers if not w.ready],
                default=now + self.timeout,
            )
            ready = wait([w.conn for w in self._workers], timeout=max(0.0, next_deadline - now))
            for w in list(self._workers):
                if w.conn in ready:
                    remaining -= self._receive(w, results, todo)
            now = time.monotonic()
            for w in list(self._workers):
                if w.tasks and now > w.deadline:
                    # the running sample, or a batching verifier's whole chunk, runs out of time
                    for _ in range(len(w.tasks) if self.batched else 1):
                        results[w.tasks.popleft()] = failure(
                            "timeout", f"timeout: verifier took over {self.timeout:g}s per sample")
                        remaining -= 1
                    self._requeue(w, todo)
                elif not w.ready and now > w.started + STARTUP_TIMEOUT:
                    raise RuntimeError(f"verifier worker did not start within {STARTUP_TIMEOUT:g}s")
        return results  # type: ignore[return-value]

    def _receive(self, w: _Worker, results: list, todo: deque) -> int:
        """Handle messages (or a dead pipe) from `w`; returns how many samples got a result."""
        done = 0
        while True:
            try:
                kind, payload = w.conn.recv()
            except (EOFError, OSError):
                if w.tasks:
                    w.proc.join(timeout=1)
                    reason = f"crash: verifier worker died (exit code {w.proc.exitcode})"
                    for _ in range(len(w.tasks) if self.batched else 1):  # a batch dies as one
                        results[w.tasks.popleft()] = failure("crash", reason)
                        done += 1
                elif not w.ready:
                    raise RuntimeError("verifier worker died while starting (does the verifier import?)")
                self._requeue(w, todo)
                return done
            if kind == "ready":
                w.ready = True
            else:
                w.tasks.remove(kind)  # results come in the order sent: this is the head
                results[kind] = payload
                w.deadline = time.monotonic() + self.timeout if w.tasks else float("inf")
                done += 1
            if not w.conn.poll():
                return done

    def _requeue(self, w: _Worker, todo: deque) -> None:
        """Replace a dead or killed worker; the samples it had not started go back to the queue front."""
        todo.extendleft(reversed(w.tasks))
        w.tasks.clear()
        self._replace(w)

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers[self._workers.index(w)] = self._spawn()
        self.restarts += 1

    def close(self) -> None:
        with self._lock:
            for w in self._workers:
                try:
                    w.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
            for w in self._workers:
                w.proc.join(timeout=2)
                w.kill()
            self._workers = []

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_workers", None):
            self.close()
