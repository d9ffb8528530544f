"""The `code` verifier: run the completion's program against the sample's tests in the sandbox.

Reward: `share` (default) = tests passed / tests; `all` = 1 only when every test passed. A test counts
as passed only when the sandboxed harness's guard process reports it on its nonce-tagged result line,
after the child that ran the program reported reaching the end of the tests (see code_harness); for
stdin/stdout cases, only when the run ended `ok` and its stdout matches.

Options:
- reward ("share"): "share" or "all".
- extract ("last_block"): which fenced block holds the program: last_block, first_block or raw.
- raw_fallback (True): with no fenced block, use the whole completion.
- language ("python"): for stdin/stdout cases: python, c, cpp, or "auto" (the block's language tag).
- timeout (10.0): wall seconds per sandbox run (a sample's `timeout` field overrides it).
- memory_mb (512): address-space limit per process (a sample's `memory_mb` field overrides it).
- float_tolerance (None): stdin/stdout tokens that are numbers may differ by t * max(1, |expected|).
- max_cases (0): use at most this many stdin/stdout cases (0: all).
- workers (0): concurrent sandbox runs in verify_batch (0: the verifier's share of the machine, which a
  VerifierPool sets through set_concurrency; one per CPU otherwise).
- max_completion_chars (100000): longer completions are refused without running them.
- allow_weaker_isolation (False): run even when namespaces are unavailable (trusted code only).
- warm (True): run Python in resident sandboxes (sandbox.warm: same isolation, fork instead of a new
  interpreter and namespace per program); False starts a cold sandbox per run.
- dedupe (True): in one verify_batch, a sample identical to an earlier one (same completion, prompt and
  fields) is run once and gets a copy of its score. A program that uses randomness (or the clock) thus
  gets one verdict per batch instead of one per copy, which is what a reward wants from a group of
  identical answers; set False to run every copy.

The verifier batches (`batched = True`): a VerifierPool worker hands it whole chunks, which run
`workers` programs at a time. `warmup()` starts those warm sandboxes before the pool reports ready, so
their start-up never counts against a sample's timeout.
"""
from __future__ import annotations

import copy
import json
import threading
import weakref
from dataclasses import dataclass, replace

import sandbox
from verifiers.base import Sample, Score, Verifier, VerifierError, failure
from verifiers.code_compare import same_output
from verifiers.code_expect import judge_expected
from verifiers.code_extract import LANGUAGE_TAGS, MODES, extract_program
from verifiers.code_harness import parse_reports, result_of, test_names
from verifiers.code_plan import HARNESS_SOURCE, Plan, harness_result, plan

# The guard stops the tests this share of the wall time (at most 2 s) before the sandbox's own deadline,
# to report in time even on a loaded machine.
GUARD_MARGIN_SHARE, GUARD_MARGIN_MAX_SECONDS = 0.25, 2.0
# A VerifierPool's per-sample timeout (reward.timeout in RL) must exceed the sandbox's wall time by this:
# the sandbox's own start, kill and wipe, on a loaded machine (rlvr/config/rl.py checks it).
POOL_MARGIN_SECONDS = 1.0


TIMED_OUT = "timeout before this test ended"
_POOL_LOCK = threading.Lock()
COMPILED = ("c", "cpp")


@dataclass
class _Prepared:
    plan: Plan | None
    jobs: list[sandbox.Job]
    failure: Score | None = None


def _identity(sample: Sample) -> object:
    """Equal for samples that must get the same score: same completion, prompt and fields."""
    try:
        return json.dumps([sample.completion, sample.prompt, sample.fields], sort_keys=True, default=repr)
    except (TypeError, ValueError):  # fields that JSON cannot order: never a duplicate
        return object()


def _raised(e: Exception) -> Score:
    """One sample's error in a batch, scored as a VerifierPool scores a sample that raises
    (verifiers.base), its text cut to 300 characters."""
    return failure("exception", f"exception: {type(e).__name__}: {str(e)[:300]}")


def _fail(reason: str, status: str = "not_run", tests: list | None = None) -> Score:
    return Score(reward=0.0, correct=False, reason=reason,
                 details={"passed": False, "status": status, "tests": tests or [], "tests_passed": 0,
                          "tests_total": len(tests or [])})


class CodeVerifier(Verifier):
    name = "code"
    batched = True
    defaults = {
        "reward": "share",
        "extract": "last_block",
        "raw_fallback": True,
        "language": "python",
        "timeout": 10.0,
        "memory_mb": 512,
        "float_tolerance": None,
        "max_cases": 0,
        "workers": 0,
        "max_completion_chars": 100_000,
        "allow_weaker_isolation": False,
        "warm": True,
        "dedupe": True,
    }

    def __init__(self, **options) -> None:
        super().__init__(**options)
        if self.reward not in ("share", "all"):
            raise VerifierError(f"code verifier: option reward={self.reward!r}: expected 'share' or 'all'")
        if self.extract not in MODES:
            raise VerifierError(f"code verifier: option extract={self.extract!r}: expected one of {', '.join(MODES)}")
        if self.language not in ("python", "c", "cpp", "auto"):
            raise VerifierError(f"code verifier: option language={self.language!r}: expected python, c, cpp or auto")

    def verify(self, sample: Sample) -> Score:
        """The sample's score; a VerifierError names its bad fields."""
        return self._verify([sample], isolate=False)[0]

    def verify_batch(self, samples: list[Sample]) -> list[Score]:
        """Scores in order. A sample whose fields are bad costs only itself: reward 0 with the reason and
        status "exception", as a VerifierPool scores one sample that raises."""
        return self._verify(samples, isolate=True)

    def _verify(self, samples: list[Sample], isolate: bool) -> list[Score]:
        first: dict = {}  # identity of a sample -> index of its first copy in this batch
        source = [first.setdefault(_identity(s), i) if self.dedupe else i for i, s in enumerate(samples)]
        unique = [i for i, j in enumerate(source) if i == j]
        prepared = [self._prepare_one(samples[i], isolate) for i in unique]
        pool = self._sandbox_pool()
        self._build_compiled(prepared, pool)
        results = iter(list(pool.map([job for p in prepared for job in p.jobs])))
        scores = dict(zip(unique, (p.failure or self._score_one(p.plan, [next(results) for _ in p.jobs],
                                                                isolate) for p in prepared)))
        return [scores[i] if i == j else copy.deepcopy(scores[j]) for i, j in enumerate(source)]

    # ---------------------------------------------------------------- the sandbox pool

    def set_concurrency(self, cpus: int) -> None:
        """Programs in flight when the `workers` option is 0; takes effect when the sandbox pool starts."""
        self._concurrency = max(1, int(cpus))

    def warmup(self) -> None:
        """Start the sandbox pool and its warm sandboxes now (a VerifierPool worker calls this before it
        reports ready), so the first programs do not wait for them."""
        isolation = sandbox.Isolation(allow_weaker=self.allow_weaker_isolation)
        self._sandbox_pool().warm_up(isolation=isolation)

    def _sandbox_pool(self) -> sandbox.Pool:
        """One pool per verifier per process, kept across calls so that its warm sandboxes serve every
        batch (and every single-sample verify() of a VerifierPool worker). Closed by close() or at exit."""
        pool = self.__dict__.get("_pool")
        if pool is None:
            with _POOL_LOCK:
                pool = self.__dict__.get("_pool")
                if pool is None:
                    size = self.workers or self.__dict__.get("_concurrency")
                    pool = self._pool = sandbox.Pool(size, warm=self.warm)
                    weakref.finalize(self, pool.close)
        return pool

    def close(self) -> None:
        """End the verifier's sandboxes now (they also end when the verifier is collected or at exit)."""
        pool = self.__dict__.pop("_pool", None)
        if pool is not None:
            pool.close()

    def __getstate__(self) -> dict:
        # Verifiers are pickled to worker processes: each process starts its own sandboxes.
        return {k: v for k, v in self.__dict__.items() if k != "_pool"}

    def _build_compiled(self, prepared: list[_Prepared], pool: sandbox.Pool) -> None:
        """Compile each C/C++ program once, then run its cases against the binary (not a compile per case)."""
        pending = [(p, pool.build(p.plan.program, p.plan.language, p.jobs[0].limits, p.jobs[0].isolation))
                   for p in prepared if p.failure is None and p.jobs and p.jobs[0].language in COMPILED]
        for p, future in pending:
            built = future.result()
            if built.binary is None:
                error = built.result.stderr.strip().splitlines()
                why = f"compile error: {error[0][:300] if error else built.result.status.value}"
                tests = [{"name": f"case_{i}", "passed": False, "status": built.result.status.value, "error": why}
                         for i in range(len(p.jobs))]
                p.failure = _fail(f"0/{len(tests)} tests passed (compile error)", built.result.status.value, tests)
                p.jobs = []
            else:
                p.jobs = [replace(job, program=built.binary, language="binary") for job in p.jobs]

    # ---------------------------------------------------------------- preparing runs

    def _limits(self, fields: dict) -> sandbox.Limits:
        try:
            timeout = float(fields.get("timeout") or self.timeout)
            memory_mb = int(fields.get("memory_mb") or self.memory_mb)
        except (TypeError, ValueError):
            raise VerifierError("code verifier: fields 'timeout' (seconds) and 'memory_mb' must be numbers") from None
        return sandbox.Limits(wall_seconds=timeout, memory_bytes=memory_mb << 20)

    def _prepare_one(self, sample: Sample, isolate: bool) -> _Prepared:
        """_prepare; in a batch, the sample's bad fields, or a completion that breaks the host's reading of
        it (a RecursionError from deep nesting), are its failure instead of the whole batch's."""
        try:
            return self._prepare(sample)
        except Exception as e:  # noqa: BLE001 - one sample's failure; the pool shows the reasons
            if not isolate:
                raise
            return _Prepared(None, [], _raised(e))

    def _prepare(self, sample: Sample) -> _Prepared:
        if len(sample.completion) > self.max_completion_chars:
            return _Prepared(None, [], _fail(f"completion longer than {self.max_completion_chars} characters"))
        code, tag = extract_program(sample.completion, self.extract, self.raw_fallback)
        if not code.strip():
            return _Prepared(None, [], _fail("no program found in the completion"))
        # a HumanEval header is the sample's prompt; a `prompt` column in fields, if any, wins
        fields = {"prompt": sample.prompt, **(sample.fields or {})}
        limits = self._limits(fields)
        language = LANGUAGE_TAGS.get(tag, "python") if self.language == "auto" else self.language
        deadline = limits.wall_seconds - min(GUARD_MARGIN_SHARE * limits.wall_seconds, GUARD_MARGIN_MAX_SECONDS)
        p = plan(fields, code, language, deadline, self.max_cases)
        isolation = sandbox.Isolation(allow_weaker=self.allow_weaker_isolation)
        if p.kind == "stdio":
            jobs = [sandbox.Job(p.program, p.language, stdin, limits=limits, isolation=isolation)
                    for stdin, _ in p.cases]
        else:
            jobs = [sandbox.Job(HARNESS_SOURCE, "python", p.nonce + "\n", files={"spec.json": json.dumps(p.spec)},
                                limits=limits, isolation=isolation, trusted=True, report_pipe=True,
                                stop_seconds=deadline)]
        return _Prepared(p, jobs)

    # ---------------------------------------------------------------- scoring

    def _score_one(self, p: Plan, results: list[sandbox.Result], isolate: bool) -> Score:
        """_score; in a batch, an error reading one sample's results is that sample's failure alone."""
        try:
            return self._score(p, results)
        except Exception as e:  # noqa: BLE001
            if not isolate:
                raise
            return _raised(e)

    def _score(self, p: Plan, results: list[sandbox.Result]) -> Score:
        status = next((r.status.value for r in results if r.status is not sandbox.Status.OK), "ok")
        if p.kind == "stdio":
            tests, confirmed = self._stdio_tests(p, results), True
        else:
            tests, confirmed = self._harness_tests(p, results[0])
            # The guard exits 0 after its line: a run that ended otherwise (e.g. the guard was killed)
            # confirms nothing, whatever its output says.
            confirmed = confirmed and results[0].status is sandbox.Status.OK
            if any(t.get("error") == TIMED_OUT for t in tests):
                status = sandbox.Status.TIMEOUT.value
        passed_count = sum(t["passed"] for t in tests)
        all_passed = confirmed and bool(tests) and passed_count == len(tests)
        reward = float(all_passed) if self.reward == "all" else passed_count / max(len(tests), 1)
        reason = f"{passed_count}/{len(tests)} tests passed"
        if status != "ok":
            reason += f" ({status})"
        elif not confirmed:
            reason += " (the harness did not confirm that the tests ran)"
        details = {"passed": all_passed, "status": status, "tests": tests, "tests_passed": passed_count,
                   "tests_total": len(tests), "kind": p.kind}
        return Score(reward=reward, correct=all_passed, reason=reason, details=details)

    def _stdio_tests(self, p: Plan, results: list[sandbox.Result]) -> list[dict]:
        tests = []
        for i, ((_, expected), r) in enumerate(zip(p.cases, results)):
            ok = r.status is sandbox.Status.OK and same_output(r.stdout, expected, self.float_tolerance)
            test = {"name": f"case_{i}", "passed": ok, "status": r.status.value}
            if r.status is sandbox.Status.OK and not ok:
                test["error"] = "wrong output"
            elif not ok:
                test["error"] = r.stderr.strip().splitlines()[-1][:300] if r.stderr.strip() else r.status.value
            tests.append(test)
        return tests

    def _harness_tests(self, p: Plan, r: sandbox.Result) -> tuple[list[dict], bool]:
        """Per-test outcomes from the guard's nonce-tagged line (or, in a warm sandbox, whose server is
        the guard, from the report pipe), and whether the guard confirmed that the child reached the end
        of the tests. Without that line every test fails. In an unconfirmed run (the program exited,
        crashed or hung midway) the tests reported before the end keep their outcome, the rest fail,
        and the sample is never `passed`."""
        names = p.names or test_names(p.spec)
        if r.reports is not None:
            reports, done = parse_reports(r.reports)
            result = result_of(reports, done, r.status is sandbox.Status.TIMEOUT, names)
        else:
            result = harness_result(r.stdout, p.nonce)
        if result is None:
            why = f"no harness result ({r.status.value})"
            return [{"name": n, "passed": False, "error": why} for n in names], False
        reported: dict[int, dict] = {}
        for t in result.get("tests", []):
            if isinstance(t, dict) and isinstance(t.get("test"), int):
                reported.setdefault(t["test"], t)  # a test's first outcome stands, as the guard keeps it
        complete = bool(result.get("complete"))
        tests = []
        for i, name in enumerate(names):
            t = reported.get(i)
            if t is None:
                why = TIMED_OUT if result.get("timed_out") else "not run: the run ended first"
                tests.append({"name": name, "passed": False, "error": why})
            else:
                tests.append({"name": name, "passed": bool(t.get("passed")),
                              **({"error": str(t["error"])[:300]} if t.get("error") else {})})
        judge_expected(tests, result.get("values"), p.expected)  # literal asserts are judged here
        return tests, complete
