"""What each benchmark is judged with: the verifier, its options, and the fields results are grouped by.

The defaults are the verifiers training rewards come from, so a response counts as correct in an eval
exactly when it would have earned the reward. Notes on the choices:
- gsm8k, arith: the math verifier with its last-number fallback. GSM8K answers are integers that models
  seldom box (the usual "flexible extract"); arith models answer with a bare number.
- math500: the math verifier as is (answers are boxed LaTeX).
- humaneval, mbpp, mbpp_sanitized, code_contests: the code verifier; `correct` means every test (every
  stdin/stdout case) passed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rlvr.errors import UserError


@dataclass(frozen=True)
class Judge:
    verifier: str
    options: dict = field(default_factory=dict)
    workers: int = 2  # see VerifierSettings.workers


DEFAULTS: dict[str, Judge] = {
    "gsm8k": Judge("math", {"last_number_fallback": True}),
    "arith": Judge("math", {"last_number_fallback": True}),
    "math500": Judge("math"),
    "math": Judge("math"),
    "humaneval": Judge("code", workers=0),
    "mbpp": Judge("code", workers=0),
    "mbpp_sanitized": Judge("code", workers=0),
    # stdin/stdout: a wrong program often waits on input or loops, and each of up to 331 cases may run
    # to the timeout
    "code_contests": Judge("code", {"language": "python", "timeout": 4}, workers=0),
    # the quickstart's code task: the completion is the bare body expression (no fence), as in its reward
    "pyfunc": Judge("code", {"extract": "raw", "timeout": 2, "memory_mb": 256}, workers=0),
}

# Row fields that results are broken down by, when a data set has them (MATH-500: subject and level).
GROUP_FIELDS = ("subject", "level")


def is_file_source(benchmark: str) -> bool:
    return benchmark not in DEFAULTS and (Path(benchmark).suffix in (".jsonl", ".json", ".gz", ".parquet")
                                          or Path(benchmark).exists())


def judge_for(benchmark: str, name: str | None, options: dict, workers: int | None) -> Judge:
    """The benchmark's default judge, with the configured verifier name, options and workers on top."""
    default = DEFAULTS.get(benchmark)
    if default is None and name is None:
        raise UserError(f"eval.benchmark: '{benchmark}' has no default verifier; set verifier.name "
                        f"(for example: --verifier math), or use one of {', '.join(DEFAULTS)}")
    if default is not None and name not in (None, default.verifier):
        default = None  # another verifier: none of the default's options apply
    base = default or Judge(name or "", workers=0 if name == "code" else 2)
    return Judge(base.verifier, {**base.options, **options}, base.workers if workers is None else workers)
