"""CodeVerifier's own rules, exactly: options, limits, what it sends to the sandbox, and how it turns
sandbox Results into a Score (Results built here by hand, so each rule is seen on its own)."""
from __future__ import annotations

import json
import pickle

import pytest

import sandbox
from sandbox import Result, Status
from verifiers.base import Sample, VerifierError
from verifiers import code
from verifiers.code import TIMED_OUT, CodeVerifier
from verifiers.code_harness import RESULT_TAG, NONCE_BYTES
from verifiers.code_plan import HARNESS_SOURCE, Plan

NONCE = "5a" * (NONCE_BYTES // 2)
MBPP = {"tests": ["assert f(1) == 2", "assert f(2) == 3", "assert f(3) == 4"]}


def result(status: Status = Status.OK, stdout: str = "", stderr: str = "") -> Result:
    return Result(status=status, exit_code=0 if status is Status.OK else 1, stdout=stdout, stderr=stderr,
                  wall_seconds=0.1, cpu_seconds=0.1, peak_memory_bytes=0)


def harness_line(tests: list[dict], complete: bool = True, timed_out: bool = False, nonce: str = NONCE) -> str:
    return f"program output\n{RESULT_TAG} {nonce} " + json.dumps(
        {"tests": tests, "complete": complete, "timed_out": timed_out}) + "\n"


def mbpp_plan(n: int = 3) -> Plan:
    return Plan("mbpp", "P", spec={"kind": "mbpp", "tests": [f"assert {i}" for i in range(n)]}, nonce=NONCE)


PASS3 = [{"test": 0, "passed": True}, {"test": 1, "passed": True}, {"test": 2, "passed": True}]


# ------------------------------------------------------------------ options


@pytest.mark.parametrize("options, message", [
    ({"reward": "most"}, "option reward='most': expected 'share' or 'all'"),
    ({"extract": "middle"}, "option extract='middle': expected one of last_block, first_block, raw"),
    ({"language": "java"}, "option language='java': expected python, c, cpp or auto"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(VerifierError, match=message):
        CodeVerifier(**options)


def test_good_options_are_accepted():
    for options in ({"reward": "share"}, {"reward": "all"}, {"extract": "raw"}, {"extract": "first_block"},
                    {"language": "c"}, {"language": "cpp"}, {"language": "auto"}, {"language": "python"}):
        CodeVerifier(**options)


def test_limits_from_options_and_fields():
    v = CodeVerifier(timeout=3.0, memory_mb=100)
    assert v._limits({}) == sandbox.Limits(wall_seconds=3.0, memory_bytes=100 << 20)
    assert v._limits({"timeout": 7, "memory_mb": "64"}) == sandbox.Limits(wall_seconds=7.0, memory_bytes=64 << 20)
    assert v._limits({"timeout": None, "memory_mb": 0}) == sandbox.Limits(wall_seconds=3.0, memory_bytes=100 << 20)
    for fields in ({"timeout": "soon"}, {"memory_mb": "lots"}, {"timeout": [1]}, {"memory_mb": [1]}):
        with pytest.raises(VerifierError, match="fields 'timeout' \\(seconds\\) and 'memory_mb' must be numbers"):
            v._limits(fields)


# ------------------------------------------------------------------ what is sent to the sandbox


def test_harness_job_carries_the_nonce_on_stdin_only():
    v = CodeVerifier(timeout=4.0, memory_mb=64)
    prepared = v._prepare(Sample(completion="```python\ndef f(x): return x + 1\n```", fields=MBPP))
    p, (job,) = prepared.plan, prepared.jobs
    assert prepared.failure is None and p.kind == "mbpp" and len(p.nonce) == NONCE_BYTES
    assert job.program == HARNESS_SOURCE and job.language == "python" and job.trusted is True
    assert job.stdin == p.nonce + "\n"
    assert json.loads(job.files["spec.json"]) == p.spec and p.nonce not in job.files["spec.json"]
    assert job.limits == sandbox.Limits(wall_seconds=4.0, memory_bytes=64 << 20)
    assert job.isolation == sandbox.Isolation(allow_weaker=False)
    assert p.spec["program"] == "def f(x): return x + 1\n"
    assert p.spec["deadline_seconds"] == 3.0  # a quarter of the wall time before the sandbox's deadline
    assert v._prepare(Sample(completion="x", fields={**MBPP, "timeout": 20})).plan.spec["deadline_seconds"] == 18.0


def test_stdio_jobs_one_per_case_with_the_programs_language():
    cases = [{"stdin": "1\n", "stdout": "2"}, {"stdin": "5\n", "stdout": "6"}]
    v = CodeVerifier(language="auto", allow_weaker_isolation=True)
    prepared = v._prepare(Sample(completion="```cpp\nint main(){}\n```", fields={"cases": cases}))
    assert [(j.program, j.language, j.stdin, j.trusted) for j in prepared.jobs] == [
        ("int main(){}\n", "cpp", "1\n", False), ("int main(){}\n", "cpp", "5\n", False)]
    assert prepared.jobs[0].isolation == sandbox.Isolation(allow_weaker=True)
    for tag, language in (("py", "python"), ("c", "c"), ("c++", "cpp"), ("rust", "python"), ("", "python")):
        prepared = v._prepare(Sample(completion=f"```{tag}\nx\n```", fields={"cases": cases}))
        assert prepared.plan.language == language, tag
    fixed = CodeVerifier(language="c")._prepare(Sample(completion="```cpp\nx\n```", fields={"cases": cases}))
    assert fixed.plan.language == "c"
    assert len(CodeVerifier(max_cases=1)._prepare(Sample(completion="x", fields={"cases": cases})).jobs) == 1


def test_completions_refused_before_running():
    v = CodeVerifier(max_completion_chars=16)
    assert v._prepare(Sample(completion="x" * 16, fields=MBPP)).failure is None
    for completion, reason in (("x" * 17, "completion longer than 16 characters"),
                               ("```python\n \n```", "no program found in the completion"),
                               ("   ", "no program found in the completion")):
        prepared = v._prepare(Sample(completion=completion, fields=MBPP))
        assert prepared.jobs == [] and prepared.plan is None
        assert prepared.failure.reward == 0.0 and prepared.failure.correct is False
        assert prepared.failure.reason == reason
        assert prepared.failure.details == {"passed": False, "status": "not_run", "tests": [], "tests_passed": 0,
                                            "tests_total": 0}
    # refused samples run nothing and keep their place in a batch
    scores = v.verify_batch([Sample(completion="x" * 17, fields=MBPP), Sample(completion="  ", fields=MBPP)])
    assert [s.reason for s in scores] == ["completion longer than 16 characters", "no program found in the completion"]


def test_extract_and_raw_fallback_options_reach_extraction():
    text = "```python\nA = 1\n```\n```python\nB = 2\n```"
    assert CodeVerifier()._prepare(Sample(completion=text, fields=MBPP)).plan.program == "B = 2\n"
    assert CodeVerifier(extract="first_block")._prepare(Sample(completion=text, fields=MBPP)).plan.program == "A = 1\n"
    assert CodeVerifier(extract="raw")._prepare(Sample(completion=text, fields=MBPP)).plan.program == text
    refused = CodeVerifier(raw_fallback=False)._prepare(Sample(completion="A = 1", fields=MBPP))
    assert refused.failure.reason == "no program found in the completion"


def test_humaneval_header_comes_from_the_prompt_unless_a_field_sets_it():
    fields = {"entry_point": "f", "test": "def check(c):\n    assert c() == 1\n"}
    p = CodeVerifier()._prepare(Sample(prompt="def f():\n", completion="    return 1\n", fields=fields)).plan
    assert p.program == "def f():\n    return 1\n"
    p = CodeVerifier()._prepare(Sample(prompt="IGNORED", completion="    return 1\n",
                                       fields={**fields, "prompt": "def f():\n"})).plan
    assert p.program == "def f():\n    return 1\n"


def test_picklable_without_its_pool():
    v = CodeVerifier(reward="all")
    v.__dict__["_pool"] = object()  # a live pool never travels to a worker process
    clone = pickle.loads(pickle.dumps(v))
    assert "_pool" not in clone.__dict__ and clone.reward == "all"
    v.__dict__.pop("_pool")
    v.close()  # no pool: nothing to close


# ------------------------------------------------------------------ harness runs to a Score


def test_all_reported_and_complete_is_passed():
    v = CodeVerifier()
    s = v._score(mbpp_plan(), [result(stdout=harness_line(PASS3))])
    assert (s.reward, s.correct, s.reason) == (1.0, True, "3/3 tests passed")
    assert s.details == {"passed": True, "status": "ok", "tests_passed": 3, "tests_total": 3, "kind": "mbpp",
                         "tests": [{"name": "test_0", "passed": True}, {"name": "test_1", "passed": True},
                                   {"name": "test_2", "passed": True}]}


def test_a_run_that_never_completed_is_never_passed():
    """Every test reported passing, but the child never reported reaching the end of the tests."""
    for reward in ("share", "all"):
        s = CodeVerifier(reward=reward)._score(mbpp_plan(), [result(stdout=harness_line(PASS3, complete=False))])
        assert s.correct is False and s.details["passed"] is False
        assert s.reason == "3/3 tests passed (the harness did not confirm that the tests ran)"
        assert s.reward == (1.0 if reward == "share" else 0.0)
    s = CodeVerifier()._score(mbpp_plan(), [result(Status.RUNTIME_ERROR, harness_line(PASS3, complete=False))])
    assert s.reason == "3/3 tests passed (runtime_error)" and s.correct is False


def test_only_the_result_line_with_the_plans_nonce_counts():
    fake = harness_line(PASS3, nonce="00" * (NONCE_BYTES // 2))
    for stdout in (fake, "", harness_line(PASS3).replace(NONCE, NONCE[:-1])):
        s = CodeVerifier()._score(mbpp_plan(), [result(Status.RUNTIME_ERROR, stdout)])
        assert s.reward == 0.0 and s.correct is False
        assert s.details["tests"] == [{"name": f"test_{i}", "passed": False,
                                       "error": "no harness result (runtime_error)"} for i in range(3)]
        assert s.reason == "0/3 tests passed (runtime_error)"
    # a run that ended well but printed no result line confirms nothing
    s = CodeVerifier()._score(mbpp_plan(), [result(stdout="program output\n")])
    assert s.reason == "0/3 tests passed (the harness did not confirm that the tests ran)"
    # a fake line after the real one is still not the real one
    s = CodeVerifier()._score(mbpp_plan(), [result(stdout=harness_line([], complete=False) + fake)])
    assert s.reward == 0.0 and s.correct is False


def test_unreported_tests_fail_and_timeouts_are_named():
    partial = [{"test": 0, "passed": True}, {"test": 2, "passed": False, "error": "E" * 400},
               {"test": "1", "passed": True}, {"test": 1.0, "passed": True}]
    s = CodeVerifier()._score(mbpp_plan(), [result(stdout=harness_line(partial, complete=False))])
    assert s.details["tests"] == [{"name": "test_0", "passed": True},
                                  {"name": "test_1", "passed": False, "error": "not run: the run ended first"},
                                  {"name": "test_2", "passed": False, "error": "E" * 300}]
    assert s.reward == pytest.approx(1 / 3) and s.details["status"] == "ok" and s.details["tests_passed"] == 1
    timed = CodeVerifier()._score(mbpp_plan(), [result(stdout=harness_line(partial[:1], False, timed_out=True))])
    assert timed.details["tests"][1] == {"name": "test_1", "passed": False, "error": TIMED_OUT}
    assert timed.details["status"] == "timeout" and timed.reason == "1/3 tests passed (timeout)"


def test_reported_outcomes_are_read_strictly():
    tests = [{"test": 0, "passed": 1}, {"test": 1, "passed": 0, "error": ""}, {"test": 2}]
    s = CodeVerifier()._score(mbpp_plan(), [result(stdout=harness_line(tests))])
    assert s.details["tests"] == [{"name": "test_0", "passed": True}, {"name": "test_1", "passed": False},
                                  {"name": "test_2", "passed": False}]
    no_tests_key = f"{RESULT_TAG} {NONCE} " + json.dumps({"complete": True})
    s = CodeVerifier()._score(mbpp_plan(1), [result(stdout=no_tests_key)])
    assert s.details["tests"][0]["error"] == "not run: the run ended first" and not s.correct


def test_share_and_all_rewards():
    half = [{"test": 0, "passed": True}, {"test": 1, "passed": False}]
    share = CodeVerifier(reward="share")._score(mbpp_plan(2), [result(stdout=harness_line(half))])
    strict = CodeVerifier(reward="all")._score(mbpp_plan(2), [result(stdout=harness_line(half))])
    assert (share.reward, share.correct) == (0.5, False) and (strict.reward, strict.correct) == (0.0, False)
    assert CodeVerifier(reward="all")._score(mbpp_plan(2), [result(stdout=harness_line(PASS3[:2]))]).reward == 1.0


# ------------------------------------------------------------------ stdin/stdout runs to a Score


def stdio_plan(*expected: str) -> Plan:
    return Plan("stdio", "P", cases=[("in", e) for e in expected])


def test_stdio_right_output_but_an_error_exit_fails():
    s = CodeVerifier()._score(stdio_plan("3"), [result(Status.RUNTIME_ERROR, "3\n", "Traceback\nValueError: x\n")])
    assert s.reward == 0.0 and s.correct is False and s.reason == "0/1 tests passed (runtime_error)"
    assert s.details["tests"] == [{"name": "case_0", "passed": False, "status": "runtime_error",
                                   "error": "ValueError: x"}]


def test_stdio_outcomes_and_their_errors():
    results = [result(stdout="1\n"), result(stdout="9\n"), result(Status.TIMEOUT, "3\n"),
               result(Status.MEMORY_LIMIT, "", "x\n" + "M" * 400 + "\n  \n"), result(stdout=" 5 ")]
    s = CodeVerifier()._score(stdio_plan("1", "2", "3", "4", "5"), results)
    assert s.details["tests"] == [
        {"name": "case_0", "passed": True, "status": "ok"},
        {"name": "case_1", "passed": False, "status": "ok", "error": "wrong output"},
        {"name": "case_2", "passed": False, "status": "timeout", "error": "timeout"},
        {"name": "case_3", "passed": False, "status": "memory_limit", "error": "M" * 300},
        {"name": "case_4", "passed": True, "status": "ok"}]
    assert s.details["status"] == "timeout"  # the first status that is not ok
    assert s.reward == pytest.approx(2 / 5) and s.details["kind"] == "stdio"
    assert s.reason == "2/5 tests passed (timeout)"


def test_stdio_float_tolerance_option():
    plan = stdio_plan("0.5")
    assert CodeVerifier()._score(plan, [result(stdout="0.5001")]).reward == 0.0
    assert CodeVerifier(float_tolerance=1e-3)._score(plan, [result(stdout="0.5001")]).reward == 1.0


def test_stdio_all_passed():
    s = CodeVerifier(reward="all")._score(stdio_plan("1", "2"), [result(stdout="1"), result(stdout="2")])
    assert (s.reward, s.correct, s.reason, s.details["passed"]) == (1.0, True, "2/2 tests passed", True)


def test_a_harness_run_that_did_not_end_ok_confirms_nothing():
    """The guard exits 0 after writing its line; a run killed or crashed (e.g. a program that killed its
    guard after printing a forged line) is never `passed`, whatever its output claims."""
    for status in (Status.KILLED, Status.RUNTIME_ERROR, Status.TIMEOUT):
        s = CodeVerifier(reward="all")._score(mbpp_plan(), [result(status, harness_line(PASS3))])
        assert (s.correct, s.reward, s.details["passed"]) == (False, 0.0, False)
        assert s.reason == f"3/3 tests passed ({status.value})"


# ------------------------------------------------------------------ batching, budget, dedupe, timeouts

needs_warm = pytest.mark.skipif(not sandbox.warm.supported(sandbox.Isolation()), reason="no warm sandboxes here")
RANDOM = {"tests": ["assert f() == 0"]}  # passes half the time: f is a coin


def coin(n: int, **options) -> list:
    v = CodeVerifier(**options)
    try:
        return v.verify_batch([Sample(completion="import random\nf = lambda: random.randrange(2)\n",
                                      fields=RANDOM)] * n)
    finally:
        v.close()


def test_identical_samples_run_once_and_get_copies_of_the_score():
    scores = coin(16)
    assert len({s.reward for s in scores}) == 1  # one verdict for the batch (2^-15 by chance)
    scores[0].details["tests"][0]["name"] = "changed"
    assert scores[1].details["tests"][0]["name"] == "test_0"  # a copy, not the same object
    assert len({s.reward for s in coin(16, dedupe=False)}) == 2  # each copy ran (2^-15 by chance)


def test_dedupe_tells_samples_apart_by_completion_prompt_and_fields():
    v = CodeVerifier(extract="raw")
    check = "def check(candidate):\n    assert candidate() == 1\n"
    base = Sample(prompt="def f():\n", completion="    return 1\n", fields={"test": check, "entry_point": "f"})
    others = [Sample(base.prompt, "    return 2\n", fields=base.fields),
              Sample("def f():\n    return 2\n", base.completion, fields=base.fields),
              Sample(base.prompt, base.completion, fields={**base.fields, "test": check.replace("1", "2")})]
    try:
        assert [s.reward for s in v.verify_batch([base, *others, base])] == [1.0, 0.0, 0.0, 0.0, 1.0]
    finally:
        v.close()


def test_set_concurrency_sizes_the_sandbox_pool_and_warmup_starts_it():
    v = CodeVerifier()
    v.set_concurrency(3)
    v.warmup()
    try:
        assert v._pool.workers == 3
        if sandbox.warm.supported(sandbox.Isolation()):
            assert sum(map(len, v._pool._idle.values())) == 3  # started before any sample
    finally:
        v.close()
    v = CodeVerifier(workers=2)  # the option, when given, wins
    v.set_concurrency(5)
    try:
        assert v._sandbox_pool().workers == 2
    finally:
        v.close()


@pytest.mark.parametrize("code_timeout, reward_timeout, refused", [
    (None, 5.0, True), (None, 11.0, True), (None, 11.5, False), (2, 3.0, True), (2, 3.01, False), (2, 5.0, False),
])
def test_a_reward_timeout_that_would_kill_a_slow_program_is_refused(code_timeout, reward_timeout, refused):
    from rlvr.config.rl import RewardConfig, VerifierSpec, check_reward
    from rlvr.errors import UserError

    options = {"extract": "raw"} if code_timeout is None else {"timeout": code_timeout}
    reward = RewardConfig(verifiers=[VerifierSpec(name="math"), VerifierSpec(name="code", options=options)],
                          timeout=reward_timeout)
    if refused:
        with pytest.raises(UserError, match=r"^reward\.timeout: .* reward\.verifiers\[1\]\.options\.timeout "):
            check_reward(reward)
    else:
        check_reward(reward)


def test_the_rl_path_scores_code_in_batches_as_in_process(monkeypatch):
    """Rollouts.score -> VerifierPool -> CodeVerifier.verify_batch (one chunk, N sandboxes) agrees with
    verify_batch in this process; the pool's sandbox budget is this rank's share of the machine."""
    from types import SimpleNamespace

    import verifiers
    from rlvr.config.rl import RewardConfig, VerifierSpec
    from rlvr.generation.base import Sample as Generated
    from rlvr.rollouts import Rollouts
    from verifiers.pool import machine_cpus

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    spec = [{"name": "code", "options": {"extract": "raw", "reward": "share", "timeout": 2, "memory_mb": 256}}]
    rows = [{"prompt": "def f(x):\n    return ", "test": "def check(candidate):\n assert candidate(1) == 2\n"
             " assert candidate(3) == 4\n", "entry_point": "f"}]
    texts = ["x + 1", "x * 2", "x + 1", "1 / 0", "2"]
    rollouts = object.__new__(Rollouts)
    rollouts.cfg = SimpleNamespace(reward=RewardConfig(verifiers=[VerifierSpec(name="code", options=spec[0]["options"])],
                                                       workers=1, timeout=5.0))
    rollouts.part_names, rollouts._pool, rollouts._verifier = ["code"], None, verifiers.compose(spec)
    samples = [Generated(prompt="", prompt_ids=[], response_ids=[], text=t, logprobs=[], finish_reason="stop")
               for t in texts]
    try:
        rollouts.score(samples, rows)
        assert rollouts.pool.batched and rollouts.pool.n_workers == 1
        assert rollouts.pool.cpus_per_worker == max(1, machine_cpus() // 2)
    finally:
        rollouts.pool.close()
    local = verifiers.compose(spec)
    expected = local.verify_batch([verifiers.Sample.from_row(rows[0], t) for t in texts])
    local.close()
    assert [(s.reward, s.correct) for s in samples] == [(e.reward, e.correct) for e in expected]
    assert [s.reward for s in samples] == [1.0, 0.5, 1.0, 0.0, 0.5]


def test_a_sample_with_bad_fields_costs_only_itself_in_a_batch():
    v = CodeVerifier()
    good = Sample(completion="def f(x):\n    return x + 1\n", fields=MBPP)
    try:
        scores = v.verify_batch([good, Sample(completion="x = 1", fields={"other": 1}), good])
        with pytest.raises(VerifierError, match="need tests"):  # one sample alone: the error itself
            v.verify(Sample(completion="x = 1", fields={"other": 1}))
    finally:
        v.close()
    assert [s.reward for s in scores] == [1.0, 0.0, 1.0]
    assert scores[1].details == {"status": "exception"} and scores[1].correct is False
    assert scores[1].reason.startswith("exception: VerifierError: code verifier: sample fields need tests")


def test_a_completion_that_breaks_the_hosts_reading_costs_only_itself_in_a_batch(monkeypatch):
    """Deep nesting makes ast.parse on the host raise RecursionError: such text is no program. Any other
    error preparing one sample is that sample's failure, not the batch's (a rank's generation batch)."""
    v = CodeVerifier()
    good = Sample(completion="def f(x):\n    return x + 1\n", fields=MBPP)
    nested = Sample(completion="x" + "+x" * 40000 + "\n```\n", fields=MBPP)
    try:
        scores = v.verify_batch([good, nested, good])
        assert [s.reward for s in scores] == [1.0, 0.0, 1.0]
        assert scores[1].reason == "no program found in the completion"
        real = code.extract_program
        monkeypatch.setattr(code, "extract_program",
                            lambda text, *a: real(text, *a) if "return" in text else 1 / 0)
        scores = v.verify_batch([good, Sample(completion="x = 1", fields=MBPP), good])
    finally:
        v.close()
    assert [s.reward for s in scores] == [1.0, 0.0, 1.0]
    assert scores[1].details == {"status": "exception"}
    assert scores[1].reason == "exception: ZeroDivisionError: division by zero"


def test_a_result_that_breaks_scoring_costs_only_that_sample(monkeypatch):
    v = CodeVerifier()
    line = harness_line(PASS3)
    assert v._score_one(mbpp_plan(), [result(stdout=line)], isolate=True).reward == 1.0
    monkeypatch.setattr(v, "_score", lambda p, results: 1 / 0)
    broken = v._score_one(mbpp_plan(), [result(stdout=line)], isolate=True)
    assert broken.reward == 0.0 and broken.reason == "exception: ZeroDivisionError: division by zero"
    with pytest.raises(ZeroDivisionError):  # one sample alone (verify): the error itself
        v._score_one(mbpp_plan(), [result(stdout=line)], isolate=False)


def test_a_tests_first_outcome_stands_on_the_host():
    v = CodeVerifier()
    late = PASS3[:1] + [{"test": 1, "passed": False}, {"test": 1, "passed": True}] + PASS3[2:]
    tests, complete = v._harness_tests(mbpp_plan(), result(stdout=harness_line(late)))
    assert complete and [t["passed"] for t in tests] == [True, False, True]
