"""`rlvr verify`: output paths checked before any scoring, written atomically, the input never touched;
arguments range-checked up front; rows without a reference or tests, and rows the verifier failed on,
reported as such instead of silent zeros."""
import json

from tests.bad_inputs import Case


def jsonl(*rows: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


RIGHT = {"completion": r"so \boxed{2}", "reference": "2"}
WRONG = {"completion": r"so \boxed{3}", "reference": "2"}
# valid JSON (json.dumps escapes it as \ud800), but no UTF-8 encoder accepts a lone surrogate
SURROGATE = {"completion": "\ud800 so \\boxed{2}", "reference": "2", "id": "s"}
MATH = jsonl(RIGHT, SURROGATE, WRONG)
PLAIN = jsonl(RIGHT, WRONG)

ADD = "def f(x):\n    return x + 1\n"
CODE_OK = {"completion": ADD, "tests": ["assert f(1) == 2"]}
# asserts in `tests` plus an entry_point: read as the HumanEval form, which needs `test`; the verifier raises
CODE_RAISES = {"completion": ADD, "tests": ["assert f(1) == 2"], "entry_point": "f"}

VERIFY = ["verify", "math", "--input", "in.jsonl", "--workers", "0"]


def no_scoring(case_dir, res):
    """The path was refused before any scoring work: the progress bar never started."""
    assert "verify math" not in res.stderr, res.stderr


def surrogate_row_kept(case_dir, res):
    rows = [json.loads(line) for line in (case_dir / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["completion"] for r in rows] == [r["completion"] for r in (RIGHT, SURROGATE, WRONG)]
    assert [r["reward"] for r in rows] == [1.0, 1.0, 0.0]


def skipped_row_has_null_reward(case_dir, res):
    rows = [json.loads(line) for line in (case_dir / "out.jsonl").read_text().splitlines()]
    assert [r["reward"] for r in rows] == [1.0, None, 0.0]
    assert rows[1]["status"] == "skipped" and "reference" in rows[1]["reason"]


def errored_row_has_null_reward(case_dir, res):
    rows = [json.loads(line) for line in (case_dir / "out.jsonl").read_text().splitlines()]
    assert [r["reward"] for r in rows] == [1.0, None, 1.0]
    assert rows[1]["status"] == "exception" and "HumanEval" in rows[1]["reason"]


CASES = [
    # output == input is refused: the scored rows would replace the input's columns of the same names
    Case("verify-output-is-input", [*VERIFY, "--output", "in.jsonl"], {"in.jsonl": MATH},
         error=r"--output .*in\.jsonl.* is the --input file", unchanged=("in.jsonl",), check=no_scoring),
    Case("verify-output-is-input-other-spelling", [*VERIFY, "--output", "./sub/../in.jsonl"],
         {"in.jsonl": MATH, "sub/x": ""}, error=r"is the --input file", unchanged=("in.jsonl",)),
    # a row no UTF-8 writer takes is kept (escaped), and the old output is replaced whole, not truncated
    Case("verify-surrogate-row-kept", [*VERIFY, "--output", "out.jsonl"],
         {"in.jsonl": MATH, "out.jsonl": "old\n"}, exit=0, error=None, unchanged=("in.jsonl",),
         check=surrogate_row_kept),
    Case("verify-output-is-a-folder", [*VERIFY, "--output", "out"], {"in.jsonl": PLAIN, "out/keep": "x"},
         error=r"--output out: is a folder", unchanged=("in.jsonl", "out/keep"), check=no_scoring),
    Case("verify-output-under-a-file", [*VERIFY, "--output", "f/out.jsonl"], {"in.jsonl": PLAIN, "f": "x"},
         error=r"--output f/out\.jsonl: .*f is a file", unchanged=("in.jsonl", "f"), check=no_scoring),
    # /sys takes no new files, even from root; /proc takes no new folders
    Case("verify-output-unwritable", [*VERIFY, "--output", "/sys/o.jsonl"], {"in.jsonl": PLAIN},
         error=r"--output /sys/o\.jsonl: (Permission denied|Operation not permitted|Read-only)",
         unchanged=("in.jsonl",), check=no_scoring),
    Case("verify-output-folder-uncreatable", [*VERIFY, "--output", "/proc/rlvr-none/o.jsonl"],
         {"in.jsonl": PLAIN}, error=r"--output /proc/rlvr-none/o\.jsonl: cannot create the folder /proc/",
         unchanged=("in.jsonl",), check=no_scoring),
    Case("verify-report-under-a-file", ["verify", "math", "--audit", "in.jsonl", "--report", "f/r.json",
                                        "--workers", "0"],
         {"in.jsonl": jsonl({"reference": "2"}), "f": "x"}, error=r"--report f/r\.json: .*f is a file",
         unchanged=("in.jsonl", "f")),
    Case("verify-timeout-negative", [*VERIFY, "--output", "o.jsonl", "--timeout", "-1"], {"in.jsonl": PLAIN},
         error=r"--timeout -1(\.0)?: expected", unchanged=("in.jsonl",)),
    Case("verify-timeout-zero", [*VERIFY, "--output", "o.jsonl", "--timeout", "0"], {"in.jsonl": PLAIN},
         error=r"--timeout 0(\.0)?: expected", unchanged=("in.jsonl",)),
    # nan compares false with every deadline: the hard timeout would silently never fire
    Case("verify-timeout-nan", [*VERIFY, "--output", "o.jsonl", "--timeout", "nan"], {"in.jsonl": PLAIN},
         error=r"--timeout nan: expected", unchanged=("in.jsonl",)),
    Case("verify-workers-negative", ["verify", "math", "--input", "in.jsonl", "--output", "o.jsonl",
                                     "--workers", "-1"], {"in.jsonl": PLAIN},
         error=r"--workers -1: expected", unchanged=("in.jsonl",)),
    # each worker holds its own verifier: thousands would eat the machine before a row is scored
    Case("verify-workers-huge", [*VERIFY[:-1], "100000", "--output", "o.jsonl"], {"in.jsonl": PLAIN},
         error=r"--workers 100000: expected 0 \(in-process\) to \d+", unchanged=("in.jsonl",),
         max_rss_mb=1500, timeout=60),
    Case("verify-empty-input", [*VERIFY, "--output", "o.jsonl"], {"in.jsonl": "\n"},
         error=r"in\.jsonl has no rows", unchanged=("in.jsonl",)),
    Case("verify-report-is-the-audit-data", ["verify", "math", "--audit", "g.jsonl", "--report", "g.jsonl",
                                             "--workers", "0"], {"g.jsonl": jsonl({"reference": "2"})},
         error=r"--report g\.jsonl is the --audit file", unchanged=("g.jsonl",)),
    # rows without a reference are skipped (reward null), not scored as wrong
    Case("verify-rows-without-reference", [*VERIFY, "--output", "out.jsonl"],
         {"in.jsonl": jsonl(RIGHT, {"completion": r"\boxed{2}", "id": 2}, WRONG)}, exit=0, error=None,
         output=r"2 scored, 1 skipped \(no 'reference'\).*accuracy 0\.5000",
         check=skipped_row_has_null_reward),
    Case("verify-no-row-has-a-reference", [*VERIFY, "--output", "out.jsonl"],
         {"in.jsonl": jsonl({"completion": "1"}, {"completion": "2", "reference": None})},
         error=r"none of the 2 rows of in\.jsonl has 'reference'", unchanged=("in.jsonl",)),
    Case("verify-code-rows-without-tests", ["verify", "code", "--input", "in.jsonl", "--output", "out.jsonl",
                                            "--workers", "1"],
         {"in.jsonl": jsonl(CODE_OK, {"completion": ADD}, CODE_OK)}, exit=0, error=None,
         output=r"2 scored, 1 skipped \(no tests"),
    # a row the verifier raised on is an error said so, with its message, not a plain zero
    Case("verify-code-row-raises", ["verify", "code", "--input", "in.jsonl", "--output", "out.jsonl",
                                    "--workers", "1"],
         {"in.jsonl": jsonl(CODE_OK, CODE_RAISES, CODE_OK)}, exit=0, error=None,
         output=r"2 scored, 0 skipped, 1 error.*\n.*line 2: exception: VerifierError: .*HumanEval form",
         check=errored_row_has_null_reward),
    # ... and when most rows fail, the run fails
    Case("verify-most-rows-raise", ["verify", "code", "--input", "in.jsonl", "--output", "out.jsonl",
                                    "--workers", "1"],
         {"in.jsonl": jsonl(CODE_RAISES, CODE_OK, CODE_RAISES)}, unchanged=("in.jsonl",),
         error=r"verifier 'code' failed on 2 of 3 rows \(first: line 1: exception: VerifierError: "
               r".*HumanEval form.*; each row's reason is in out\.jsonl"),
]
