"""VerifierPool: hard per-sample timeout, crash and exception isolation, order, threads, reuse."""
import ctypes
import os
import threading
import time

import pytest

from verifiers import Sample, Score, Verifier, VerifierPool, load


class Hostile(Verifier):
    """Behaves as the completion says: hang, exit, segfault, raise, or sleep then echo a number."""

    name = "hostile"
    defaults = {}

    def verify(self, sample):
        action = sample.completion
        if action == "hang":
            time.sleep(3600)
        if action == "exit":
            os._exit(3)
        if action == "segfault":
            ctypes.string_at(0)
        if action == "raise":
            raise KeyError("boom")
        if action.startswith("sleep"):
            time.sleep(float(action.split()[1]))
            return Score(reward=float(action.split()[2]), correct=True)
        return Score(reward=float(action), correct=True, details={"pid": os.getpid()})


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(Hostile(), workers=2, timeout=1.0) as p:
        yield p


@pytest.mark.slow
def test_hang_crash_and_exception_cost_one_sample_each(pool):
    actions = ["1", "hang", "2", "exit", "3", "segfault", "4", "raise", "5"]
    scores = pool.score([Sample(completion=a) for a in actions])
    by_action = dict(zip(actions, scores))
    assert [by_action[a].reward for a in "12345"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert by_action["hang"].details["status"] == "timeout" and by_action["hang"].reward == 0.0
    assert "timeout" in by_action["hang"].reason
    for crash in ("exit", "segfault"):
        assert by_action[crash].details["status"] == "crash" and by_action[crash].reward == 0.0
    assert by_action["raise"].details["status"] == "exception"
    assert "KeyError" in by_action["raise"].reason and "boom" in by_action["raise"].reason
    # the pool still works after replacing the dead workers
    assert [s.reward for s in pool.score([Sample(completion="7"), Sample(completion="8")])] == [7.0, 8.0]


def test_order_preserved_when_workers_finish_out_of_order(pool):
    actions = [f"sleep {0.05 * ((7 * i) % 5)} {i}" for i in range(12)]
    scores = pool.score([Sample(completion=a) for a in actions])
    assert [s.reward for s in scores] == [float(i) for i in range(12)]


def test_workers_are_reused_across_calls(pool):
    before = pool.restarts
    pids_a = {s.details["pid"] for s in pool.score([Sample(completion="1")] * 6)}
    pids_b = {s.details["pid"] for s in pool.score([Sample(completion="1")] * 6)}
    assert pool.restarts == before
    assert pids_a | pids_b <= {w.proc.pid for w in pool._workers}


@pytest.mark.slow
def test_called_from_a_non_main_thread_timeout_still_fires():
    """Where signal-based timeouts fail: the pool must still kill the hang and score the math."""
    samples = [
        Sample(completion=r"\boxed{\frac{1}{2}}", reference="0.5"),
        Sample(completion=r"\boxed{3}", reference="4"),
    ]
    results = {}

    def work():
        with VerifierPool(load("math"), workers=1, timeout=5.0) as math_pool:
            results["math"] = math_pool.score(samples)
        with VerifierPool(Hostile(), workers=1, timeout=0.5) as hostile_pool:
            results["hostile"] = hostile_pool.score([Sample(completion="hang"), Sample(completion="6")])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert [s.reward for s in results["math"]] == [1.0, 0.0]
    hang, six = results["hostile"]
    assert hang.details["status"] == "timeout" and six.reward == 6.0


def test_in_process_mode_catches_exceptions():
    with VerifierPool(Hostile(), workers=0) as p:
        scores = p.score([Sample(completion="raise"), Sample(completion="2")])
    assert scores[0].details["status"] == "exception" and scores[1].reward == 2.0


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="fork"):
        VerifierPool(Hostile(), workers=1, start_method="fork")
    with pytest.raises(ValueError, match="timeout"):
        VerifierPool(Hostile(), workers=1, timeout=0)


def test_score_after_close_raises():
    p = VerifierPool(Hostile(), workers=1, timeout=1.0)
    p.close()
    with pytest.raises(RuntimeError, match="after close"):
        p.score([Sample(completion="1")])


class BatchCounter(Verifier):
    """Batched: each score records the size of the verify_batch call it came from; "hang" hangs the batch."""

    name = "batch_counter"
    defaults = {}
    batched = True

    def verify(self, sample):
        return self.verify_batch([sample])[0]

    def verify_batch(self, samples):
        if any(s.completion == "hang" for s in samples):
            time.sleep(3600)
        if any(s.completion == "raise" for s in samples):
            raise KeyError("boom")
        return [Score(reward=float(s.completion), details={"batch": len(samples)}) for s in samples]


def test_a_batching_verifier_gets_whole_chunks_and_a_failure_costs_its_chunk():
    with VerifierPool(BatchCounter(), workers=2, timeout=0.5) as p:
        scores = p.score([Sample(completion=str(i)) for i in range(300)])
        assert [s.reward for s in scores] == [float(i) for i in range(300)]
        calls = sum(1 / s.details["batch"] for s in scores)  # each call contributes 1 over its samples
        assert round(calls) <= 12, calls  # chunks of up to half the queue, not 300 calls of one
        hung = p.score([Sample(completion="hang")] + [Sample(completion="1")] * 3)
        # chunks of 2 per worker: the hanging one's chunk times out (2 x 0.5 s), the other's is scored
        assert [s.details.get("status") for s in hung] == ["timeout", "timeout", None, None]
        assert [s.reward for s in hung[2:]] == [1.0, 1.0]
        raised = p.score([Sample(completion=c) for c in ("raise", "1", "2", "3")])
        assert all(s.reward == 0 and "KeyError" in s.reason for s in raised[:2])  # the raising chunk
        assert [s.reward for s in raised[2:]] == [2.0, 3.0]
        assert p.score([Sample(completion="2")])[0].reward == 2.0  # the pool recovered


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan"), float("inf")])
def test_a_timeout_that_would_not_fire_is_refused(timeout):
    with pytest.raises(ValueError, match="timeout must be > 0"):
        VerifierPool(Hostile(), workers=1, timeout=timeout)


class Concurrency(Verifier):
    """Reports the CPU share it was given, and what it had when it warmed up."""

    name = "concurrency"
    defaults = {}

    def set_concurrency(self, cpus):
        self.cpus = cpus

    def warmup(self):
        self.at_warmup = getattr(self, "cpus", None)

    def verify(self, sample):
        return Score(reward=1.0, details={"cpus": self.cpus, "at_warmup": self.at_warmup, "pid": os.getpid()})


def test_the_cpu_budget_is_divided_among_the_workers_before_they_warm_up():
    with VerifierPool(Concurrency(), workers=2, timeout=5.0, cpus=7) as p:
        scores = p.score([Sample(completion=str(i)) for i in range(8)])
    assert {(s.details["cpus"], s.details["at_warmup"]) for s in scores} == {(3, 3)}  # 7 // 2
    with VerifierPool(Concurrency(), workers=3, timeout=5.0, cpus=2) as p:  # never below one
        assert p.score([Sample(completion="1")])[0].details["cpus"] == 1
    in_process = Concurrency()
    VerifierPool(in_process, workers=0, cpus=5)
    assert in_process.cpus == 5
    from verifiers.pool import machine_cpus

    VerifierPool(in_process, workers=0)  # default: the CPUs this process may use
    assert in_process.cpus == machine_cpus() == len(os.sched_getaffinity(0))


def test_a_rank_gets_its_share_of_the_machine(monkeypatch):
    from rlvr.rollouts import rank_cpus
    from verifiers.pool import machine_cpus

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert rank_cpus() == max(1, machine_cpus() // 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(10 * machine_cpus()))
    assert rank_cpus() == 1
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert rank_cpus() == machine_cpus()
