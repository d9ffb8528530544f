#!/usr/bin/env python
"""Mutation testing of the modules where a silent mistake costs most: RL algorithms, verifiers, sandbox.

    python scripts/mutation.py                                  # all of MODULE_TESTS (`make mutation`)
    python scripts/mutation.py --module verifiers/math_equiv.py # one module (repeatable)
    python scripts/mutation.py --root /work/wt-math --module verifiers/math_equiv.py
    python scripts/mutation.py --module rlvr/algorithms/losses.py --list   # the mutants, nothing run

Each mutant is one small deliberate bug, made on the AST with a fixed set of operators that model real
mistakes (OPERATORS below). It is written into a private copy of the checkout (one per worker, under
/tmp) and the module's fast tests (MODULE_TESTS) run on it with `pytest -x -q -p no:cacheprovider`: a
failing test kills it; a run past the timeout counts as killed too (reported as "timeout"). Mutants
reach subprocesses (the sandbox's supervisor and zygote, `python -m rlvr`) because the mutated file is
on disk in that copy; bytecode caches are kept out so a mutant never runs a stale .pyc.

Why not mutmut 3 or cosmic-ray: mutmut 3 (measured: 144 mutants of advantages.py in 7 s) switches mutants
in-process through an environment variable and an import of mutmut, which the sandbox's children never
see (they start with env={} inside a namespace), and it leaves module-level constants (rlimits, grace
periods) alone; cosmic-ray runs the same file-on-disk scheme as this script with far more setup.

Speed: each worker process imports the heavy third-party packages once (PRELOAD) and forks a child per
mutant, so a mutant costs its tests, not the torch import. Modules with more mutants than
`--max-per-module` are sampled evenly over the file (deterministically), so `make mutation` stays within
30 minutes on 2 cores.

Survivors judged equivalent to the original go in EQUIVALENT (with the reason): they are left out of the
score and printed separately. The table goes to stdout and to OUT/mutation-report.md (OUT defaults to
ROOT/mutation-out, which git ignores).
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The unit-level files first: `pytest -x` stops at the first failure, so most mutants die in a second.
MATH_TESTS = ["tests/test_math_equiv.py", "tests/test_math_parse.py", "tests/test_math_extract.py",
              "tests/test_math_normalize.py", "tests/test_math_structure.py", "tests/test_math_equivalence.py",
              "tests/test_math_pathological.py", "tests/test_math_equiv_round2.py",
              "tests/test_math_extract_policy.py"]
CODE_TESTS = ["tests/test_code_units.py", "tests/test_code_scoring.py", "tests/test_code_verifier.py"]
SANDBOX_TESTS = ["tests/test_sandbox_units.py", "tests/test_sandbox_limits.py", "tests/test_sandbox_run.py"]

# module -> its fast tests (files or node ids). Only tests that exercise the module and run in seconds.
MODULE_TESTS: dict[str, list[str]] = {
    "rlvr/algorithms/advantages.py": ["tests/test_rl_algorithms.py"],
    "rlvr/algorithms/losses.py": ["tests/test_rl_algorithms.py", "tests/test_rollout_correction.py"],
    "rlvr/algorithms/preference.py": ["tests/test_preference_losses.py"],
    "rlvr/algorithms/controllers.py": ["tests/test_controllers.py", "tests/test_rl_algorithms.py"],
    "rlvr/algorithms/rollout_correction.py": ["tests/test_rollout_correction.py"],
    "rlvr/algorithms/logprobs.py": ["tests/test_rl_algorithms.py", "tests/test_sft_units.py"],
    "rlvr/algorithms/bradley_terry.py": [f"tests/test_reward_model.py::{name}" for name in (
        "test_bradley_terry_hand_values", "test_margin_shifts_the_gap",
        "test_gradient_is_minus_sigmoid_of_the_negative_gap")] + ["tests/test_preference_losses.py"],
    **{f"verifiers/{m}.py": MATH_TESTS
       for m in ("math", "math_equiv", "math_parse", "math_normalize", "math_extract", "math_structure")},
    **{f"verifiers/{m}.py": CODE_TESTS
       for m in ("code", "code_compare", "code_expect", "code_extract", "code_harness", "code_plan")},
    "sandbox/capabilities.py": SANDBOX_TESTS,
    "sandbox/files.py": SANDBOX_TESTS,
    "sandbox/languages.py": SANDBOX_TESTS,
    "sandbox/limits.py": SANDBOX_TESTS + ["tests/test_sandbox_hostile.py"],
    "sandbox/pool.py": SANDBOX_TESTS,
    "sandbox/result.py": SANDBOX_TESTS,
    "sandbox/runner.py": SANDBOX_TESTS + ["tests/test_sandbox_hostile.py"],
    "sandbox/seccomp.py": SANDBOX_TESTS + ["tests/test_sandbox_hostile.py"],
    "sandbox/supervisor.py": SANDBOX_TESTS + ["tests/test_sandbox_hostile.py"],
    "sandbox/uids.py": SANDBOX_TESTS,
    "sandbox/warm.py": SANDBOX_TESTS,
    "sandbox/zygote.py": SANDBOX_TESTS + ["tests/test_sandbox_hostile.py"],
    "sandbox/backends/bwrap.py": SANDBOX_TESTS + ["tests/test_sandbox_hostile.py"],
    "sandbox/backends/unshare.py": SANDBOX_TESTS,
}

# Survivors that behave exactly like the original (or differ only where no input can reach).
# (module, the mutated line's text stripped, operator [+ " " + a piece of the change to tell apart
# several mutants of one operator on the line], why it is equivalent)
EQUIVALENT: list[tuple[str, str, str, str]] = [
    ("rlvr/algorithms/advantages.py", "running = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)",
     "arg-dropped (B, device=",
     "dtype only of the zero the recursion starts from: after the first step promotion gives the rewards' "
     "dtype (float32 from the trainer, float64); only 16-bit rewards would differ, accumulating in float32"),
    ("rlvr/algorithms/advantages.py",
     "running = torch.zeros(token_rewards.shape[0], dtype=token_rewards.dtype, device=token_rewards.device)",
     "arg-dropped device=token_rewards.device)",
     "the same for REINFORCE++'s returns: the starting zero's dtype is promoted away after one step"),
    ("rlvr/algorithms/losses.py",
     "loss = torch.where(advantages < 0, torch.min(loss, -dual_clip * advantages), loss)", "cmp-boundary",
     "at A = 0 both branches are 0: -min(0 * ratio, 0 * clip) = 0 and min(0, -c * 0) = 0"),
    *[("verifiers/math_normalize.py",
       'UNIT_TAIL = re.compile(r"(?<=[\\d}\\s])\\s*(?:" + "|".join(sorted(UNITS, key=len, reverse=True)) + '
       'r")(?:\\^\\{?[23]\\}?)?\\s*$", re.IGNORECASE)', op,
       "the order of the unit alternatives: every alternative must reach the end of the answer (`\\s*$`), "
       "so the regex backtracks to whichever unit fits; all start at the same place, so the match is the same")
      for op in ("arg-dropped -> sorted(UNITS, reverse", "arg-dropped -> sorted(UNITS, key=len)", "const")],
    ("verifiers/math_normalize.py", "rest = s[:start] + s[end:]", "slice start + 1",
     "s[start] is always the backslash of `\\text`: one more character of it adds no digit to `rest`"),
    ("verifiers/math_structure.py", 'elif len(s) >= 2 and s[0] in "([" and s[-1] in ")]":', "const 2 -> 1",
     "a one-character string cannot both start with ( or [ and end with ) or ]"),
    ("verifiers/code_plan.py",
     'return Plan(kind, program, "python", spec=spec, nonce=secrets.token_hex(NONCE_BYTES // 2))',
     "arg-dropped -> Plan(kind, program, spec=",
     "\"python\" is also the default of Plan's language field"),
    ("verifiers/code_harness.py", "NONCE_BYTES = 32", "const 32 -> 320",
     "a nonce of 320 random bytes is as secret as one of 32 (256 bits); only the result line gets longer"),
    *[("verifiers/code_harness.py", "ctypes.CDLL(None).prctl(4, int(flag), 0, 0, 0)  # PR_SET_DUMPABLE", op,
       "PR_SET_DUMPABLE reads only its second argument; the kernel ignores the rest")
      for op in ("const 0 -> 1", "arg-dropped")],
    ("verifiers/code.py",
     'reward = float(all_passed) if self.reward == "all" else passed_count / max(len(tests), 1)',
     "const 1 -> 0", "a plan always has tests: code_plan refuses a sample with no tests, cases or asserts"),
    ("verifiers/code_harness.py", "os._exit(0)", "const 0 -> 1",
     "the child's exit status is never read: the guard trusts only the reports and the `done` message"),
    ("verifiers/code_harness.py", "open_fds.discard(pidfd)", "call-removed",
     "once the child has exited, the loop stops within 0.2 s whether or not the pidfd stays in the select"),
    ("verifiers/code_harness.py", "sys.stdout.flush()  # defensive: the guard prints nothing before the fork today",
     "call-removed",
     "the guard has printed nothing before it forks, so there is no buffered output to copy into the child"),
    ("verifiers/code_harness.py", "os.close(read_fd)", "call-removed",
     "the child keeping the read end lets the program read its own reports and so lose them, nothing more: it "
     "holds the write end anyway (the one remaining attack the module docstring names)"),
    *[("verifiers/math.py", 'return False, f"not comparable: {type(e).__name__}"', op,
       "defensive: sympy raising inside the comparison; no input found reaches it (all pairs of 31 answers "
       "of every structure: sets, tuples, intervals, unions, matrices, relations, assignments, ratios)")
      for op in ("return-swapped", "const False -> True")],
    ("verifiers/math_equiv.py", "STEP_SAMPLE_POINTS = 24", "const 24 -> 240",
     "ten times the points of the wide range: the same verdicts, more slowly"),
    ("verifiers/math_equiv.py", "return k != 0 and (not positive or abs(k.imag) <= 1e-9 * k.real)",
     "cmp-boundary", "differs only when |Im k| is exactly 1e-9 Re k, a float boundary no answer lands on"),
    ("verifiers/math_equiv.py", "symbols = sorted(a.free_symbols | b.free_symbols, key=str)", "arith",
     "with different symbol sets a side keeps a free symbol at every point, so no point evaluates either way"),
    ("verifiers/math_extract.py", "return text[i + 1 : close], close + 1", "arith",
     "the end only seeds the search for the next box command, which cannot start on the closing brace or "
     "the character before it"),
    *[("verifiers/math_extract.py",
       "if opener not in MATH_CLOSER or i < closer_absent_before.get(opener, 0):", op,
       "the boundary needs an opener ending at a newline or at the end of the text: an inline `$` needs a "
       "non-space after it, and at the end the search finds nothing anyway; i >= 1 always")
      for op in ("cmp-boundary", "const 0 -> 1")],
    ("sandbox/supervisor.py", "_DRAIN_SECONDS = 0.5", "const",
     "how long output is read after the program exits: a second instead of half changes only the time"),
    ("sandbox/backends/unshare.py",
     'return [binary() or "unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child",',
     "bool-op", "the backend is used only where binary() found unshare on PATH; `unshare` then names the "
     "same program through PATH"),
    ("sandbox/files.py", "view = view[os.write(fd, view):]", "slice",
     "a write to a memfd takes the whole buffer at once, so the slice is past the end either way"),
    *[("sandbox/capabilities.py",
       'done = subprocess.run([path, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,',
       f"arg-dropped [drops {kw}", "the version probe of an interpreter: a bound for a hang it never reaches "
       "(timeout) / the caller's environment does not change the version printed (env)")
      for kw in ("timeout=10", "env={}")],
    ("verifiers/math_equiv.py", "value = complex(e.evalf(30))", "const",
     "300 digits instead of 30 before converting to a complex double: the same double"),
    ("verifiers/math_equiv.py", "symbols = a.free_symbols | b.free_symbols", "arith",
     "with different symbol sets a side keeps a free symbol at every point (no point evaluates) and simplify "
     "decides either way; with the same sets | and & are equal"),
    ("verifiers/math_equiv.py",
     "point = {s: sympy.Float(rng.choice((-1, 1)) * rng.uniform(*low_high), 20) for s in symbols}", "const",
     "the precision of a sample point: digits past 1e-15 do not move a comparison at rel_tol >= 1e-9"),
    ("sandbox/zygote.py", "_, status, usage = os.wait4(pid, 0)", "const",
     "called once the pidfd says the child has exited: WNOHANG (1) returns its status just the same"),
    ("sandbox/backends/bwrap.py", 'args = [binary() or "bwrap",', "bool-op",
     "the backend is used only where binary() found bwrap on PATH; `bwrap` then names the same program"),
    ("sandbox/capabilities.py", "pass_fds=(), wall_seconds=10.0, output_bytes=4096)", "const",
     "the wall limit of the capability probe, `/bin/echo ok`, which finishes in milliseconds: only a probe "
     "hanging for more than 10 s could tell 10 from 20"),
    ("sandbox/supervisor.py", "if f is not None and not f.closed:", "cmp-flip",
     "the pipes are file objects local to the call: when it returns, CPython's reference counting closes "
     "them all the same; closing them first only spares a ResourceWarning"),
    ("sandbox/warm.py", "if remaining <= 0 or not self._selector.select(timeout=remaining):", "cmp-boundary",
     "differs only when the float `deadline - time.monotonic()` is exactly 0.0, and then select(timeout=0) "
     "polls once: the same 'stopped answering' unless a line arrived in that very instant"),
]

# Mutants per module at most, by path prefix (evenly sampled beyond it), so that the whole run fits 30
# minutes on 2 cores: the algorithm tests take ~1 s a mutant, the math verifier's ~2 s, the code
# verifier's and the sandbox's 10-40 s a survivor (they run real sandboxed programs). Measured: caps
# 200/40/8/4 gave 715 mutants in 11.4 min (algorithms 2.7, math 2, code 3.5, sandbox 3.3, baseline 0.7);
# these caps extrapolate to ~17 min. Raise one module's with --max-per-module when working on it.
CAPS = {"rlvr/algorithms/": 200, "verifiers/math": 60, "verifiers/code": 12, "sandbox/": 6}
DEFAULT_CAP = 50


def cap_of(module: str) -> int:
    return next((c for prefix, c in CAPS.items() if module.startswith(prefix)), DEFAULT_CAP)

PRELOAD = ("torch", "sympy", "numpy", "yaml", "pytest", "_pytest.python", "_pytest.assertion")

# calls whose arguments are messages, not behaviour
_LOG_CALLS = {"print", "debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
_SKIP_FUNCS = {"__repr__", "__str__", "__format__", "__rich_repr__"}

OPERATORS = {
    "cmp-boundary": "< vs <=, > vs >=",
    "cmp-flip": "< vs >, <= vs >=, == vs !=, is vs is not, in vs not in",
    "bool-op": "and vs or",
    "arith": "+ vs -, * vs /, // vs /, ** vs *, % vs //, & vs |, << vs >> (also in +=, *=, ...)",
    "neg-removed": "-x -> x",
    "not-removed": "not x -> x",
    "const": "int k -> k+1, k-1 (|k| <= 16) or 10k; float c -> 2c (0.0 -> 1.0, an epsilon < 1e-3 -> 0.0); "
             "True vs False",
    "guard-removed": "`if ...: raise/return/continue/break` deleted",
    "call-removed": "a statement that is only a call deleted (a kill, a close, a check)",
    "return-swapped": "return a, b -> return b, a; return <bool expr> -> return not <bool expr>",
    "arg-dropped": "a keyword argument dropped; the last of 2+ positional arguments dropped",
    "min-max": "min vs max, any vs all, keyword min= vs max=",
    "slice": "x[a:b] -> x[a+1:b], x[a:b+1] for non-constant bounds",
}

_CMP_BOUNDARY = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_CMP_FLIP = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE, ast.Eq: ast.NotEq,
             ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
_ARITH = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
          ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
          ast.LShift: ast.RShift, ast.RShift: ast.LShift}
_SWAP_NAMES = {"min": "max", "max": "min", "any": "all", "all": "any", "amin": "amax", "amax": "amin"}


@dataclass
class Mutant:
    module: str
    line: int
    op: str
    change: str
    line_text: str
    source: str = field(repr=False)
    status: str = ""       # killed, timeout, survived, equivalent, error
    secs: float = 0.0


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 3] + "..."


class _Collector(ast.NodeVisitor):
    """Walks a module and records (node, replacement node or statement text, op, change) candidates."""

    def __init__(self, source: str):
        self.source = source
        self.found: list[tuple[ast.AST, str, str, str]] = []   # (node, replacement text, op, change)

    # ---- contexts skipped whole
    def visit_FunctionDef(self, node):
        if node.name in _SKIP_FUNCS:
            return
        self._body_skip_docstring(node)
        for d in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(d)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self._body_skip_docstring(node)

    def visit_Module(self, node):
        self._body_skip_docstring(node)

    def _body_skip_docstring(self, node):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]
        self._statements(body)

    def _statements(self, body):
        for stmt in body:
            self.visit(stmt)

    def visit_Import(self, node):
        return

    visit_ImportFrom = visit_Import

    def visit_JoinedStr(self, node):
        return

    def visit_Raise(self, node):
        return

    def visit_Assert(self, node):
        self.visit(node.test)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def visit_Assign(self, node):
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        self.generic_visit(node)

    def visit_If(self, node):
        test = node.test
        if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__":
            return
        if not node.orelse and len(node.body) == 1 and \
                isinstance(node.body[0], (ast.Raise, ast.Return, ast.Continue, ast.Break)) and \
                self._text(node).startswith("if"):
            change = f"`if {_short(ast.unparse(test), 50)}:` deleted"
            self.found.append((node, "pass", "guard-removed", change))
        self.visit(test)
        self._statements(node.body)
        self._statements(node.orelse)

    def visit_Expr(self, node):
        call = node.value
        if isinstance(call, ast.Call):
            if self._is_log(call):
                return
            self.found.append((node, "pass", "call-removed", f"{_short(ast.unparse(call), 60)} deleted"))
        self.visit(call)

    def visit_Return(self, node):
        v = node.value
        if isinstance(v, ast.Tuple) and len(v.elts) >= 2:
            m = copy.deepcopy(v)
            m.elts[0], m.elts[1] = m.elts[1], m.elts[0]
            self._expr(v, m, "return-swapped")
        elif isinstance(v, (ast.Compare, ast.BoolOp)) or isinstance(getattr(v, "op", None), ast.Not):
            self._expr(v, ast.UnaryOp(op=ast.Not(), operand=copy.deepcopy(v)), "return-swapped")
        if v is not None:
            self.visit(v)

    # ---- expressions
    def visit_Compare(self, node):
        if len(node.ops) == 1:
            op = type(node.ops[0])
            for name, table in (("cmp-boundary", _CMP_BOUNDARY), ("cmp-flip", _CMP_FLIP)):
                if op in table:
                    m = copy.deepcopy(node)
                    m.ops = [table[op]()]
                    self._expr(node, m, name)
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        m = copy.deepcopy(node)
        m.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._expr(node, m, "bool-op")
        self.generic_visit(node)

    def visit_BinOp(self, node):
        if type(node.op) in _ARITH and not self._is_string_format(node):
            m = copy.deepcopy(node)
            m.op = _ARITH[type(node.op)]()
            self._expr(node, m, "arith")
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        if type(node.op) in _ARITH:
            m = copy.deepcopy(node)
            m.op = _ARITH[type(node.op)]()
            change = f"{_short(ast.unparse(node))} -> {_short(ast.unparse(m))}"
            self.found.append((node, ast.unparse(m), "arith", change))
        self.visit(node.value)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.Not):
            self._expr(node, copy.deepcopy(node.operand), "not-removed")
        elif isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
            self._expr(node, copy.deepcopy(node.operand), "neg-removed")
        self.generic_visit(node)

    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool):
            self._expr(node, ast.Constant(not v), "const")
        elif isinstance(v, int):
            # small ints: off by one; sizes and limits: an order of magnitude off (a limit raised tenfold)
            for new in ((1,) if v == 0 else (v + 1, v - 1) if abs(v) <= 16 else (v * 10,)):
                self._expr(node, ast.Constant(new), "const")
        elif isinstance(v, float):
            new = 1.0 if v == 0 else 0.0 if abs(v) < 1e-3 else 2 * v
            self._expr(node, ast.Constant(new), "const")

    def visit_Call(self, node):
        if self._is_log(node):
            return
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
        if name in _SWAP_NAMES:
            m = copy.deepcopy(node)
            if isinstance(m.func, ast.Name):
                m.func.id = _SWAP_NAMES[name]
            else:
                m.func.attr = _SWAP_NAMES[name]
            self._expr(node, m, "min-max")
        for i, kw in enumerate(node.keywords):
            if kw.arg in ("min", "max"):
                m = copy.deepcopy(node)
                m.keywords[i].arg = "max" if kw.arg == "min" else "min"
                self._expr(node, m, "min-max")
            if kw.arg is not None:
                m = copy.deepcopy(node)
                del m.keywords[i]
                self._expr(node, m, "arg-dropped", note=f"drops {_short(ast.unparse(kw), 40)}")
        if len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args):
            m = copy.deepcopy(node)
            m.args = m.args[:-1]
            self._expr(node, m, "arg-dropped", note=f"drops {_short(ast.unparse(node.args[-1]), 40)}")
        self.generic_visit(node)

    def visit_Slice(self, node):
        for part in ("lower", "upper"):
            bound = getattr(node, part)
            if bound is not None and not isinstance(bound, (ast.Constant, ast.UnaryOp)):
                m = copy.deepcopy(node)
                setattr(m, part, ast.BinOp(left=copy.deepcopy(bound), op=ast.Add(), right=ast.Constant(1)))
                # a Slice has no source span of its own in every version: replace the bound expression
                self._expr(bound, getattr(m, part), "slice")
        self.generic_visit(node)

    def visit_arguments(self, node):
        return

    # ---- helpers
    def _expr(self, node, new, op, note: str = ""):
        text = "(" + ast.unparse(new) + ")"
        change = f"{_short(ast.unparse(node))} -> {_short(ast.unparse(new))}" + (f" [{note}]" if note else "")
        self.found.append((node, text, op, change))

    def _text(self, node) -> str:
        return ast.get_source_segment(self.source, node) or ""

    @staticmethod
    def _is_log(call: ast.Call) -> bool:
        f = call.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        return name in _LOG_CALLS

    @staticmethod
    def _is_string_format(node: ast.BinOp) -> bool:
        return isinstance(node.op, (ast.Mod, ast.Add)) and (
            isinstance(node.left, (ast.JoinedStr,)) or
            (isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)))


def _replace(source: str, node: ast.AST, text: str) -> str:
    """The source with `node`'s span replaced (ast columns are UTF-8 byte offsets)."""
    lines = source.encode().splitlines(keepends=True)
    start = sum(map(len, lines[:node.lineno - 1])) + node.col_offset
    end = sum(map(len, lines[:node.end_lineno - 1])) + node.end_col_offset
    data = source.encode()
    return (data[:start] + text.encode() + data[end:]).decode()


def mutants_of(root: Path, module: str) -> list[Mutant]:
    """Every mutant of `module` (a path relative to root) that compiles and differs from the original."""
    source = (root / module).read_text()
    tree = ast.parse(source)
    original = ast.dump(tree)
    lines = source.splitlines()
    collector = _Collector(source)
    collector.visit(tree)
    out, seen = [], set()
    for node, text, op, change in collector.found:
        if "no mutate" in lines[node.lineno - 1]:
            continue
        mutated = _replace(source, node, text)
        try:
            dumped = ast.dump(ast.parse(mutated))
            compile(mutated, module, "exec")
        except (SyntaxError, ValueError):
            continue
        if dumped == original or dumped in seen:
            continue
        seen.add(dumped)
        out.append(Mutant(module, node.lineno, op, change, lines[node.lineno - 1].strip(), mutated))
    out.sort(key=lambda m: m.line)
    return out


def sample(mutants: list[Mutant], cap: int) -> list[Mutant]:
    """At most `cap`, spread evenly over the file (deterministic: the same checkout gives the same set)."""
    if len(mutants) <= cap:
        return mutants
    step = len(mutants) / cap
    return [mutants[int(i * step)] for i in range(cap)]


def equivalent_reason(m: Mutant) -> str | None:
    for module, line_text, operator, reason in EQUIVALENT:
        op, _, piece = operator.partition(" ")
        if module == m.module and line_text == m.line_text and op == m.op and piece in m.change:
            return reason
    return None


# ---------------------------------------------------------------------------------------------- worker

def _clear_pyc(path: Path) -> None:
    cache = path.parent / "__pycache__"
    for pyc in cache.glob(path.stem + ".*.pyc") if cache.is_dir() else []:
        pyc.unlink(missing_ok=True)


def worker_main(tree: Path) -> None:
    """Read jobs (JSON lines) on stdin, run each in a forked child, answer with JSON lines on stdout."""
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    import pytest

    out = sys.stdout
    for line in sys.stdin:
        job = json.loads(line)
        target = tree / job["module"]
        original = target.read_bytes()
        if job.get("source") is not None:
            target.write_text(job["source"])
        _clear_pyc(target)
        t0 = time.monotonic()
        log = tree / ".mutation-last.log"
        pid = os.fork()
        if pid == 0:  # child: its own session, so a timeout can kill everything it started
            os.setsid()
            os.chdir(tree)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            try:
                rc = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *job["tests"]])
            except BaseException:
                rc = 99
            os._exit(int(rc))
        status, rc = "", None
        deadline = t0 + job["timeout"]
        while True:
            done, wstatus = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(wstatus)
                break
            if time.monotonic() > deadline:
                status = "timeout"
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.02)
        secs = time.monotonic() - t0
        target.write_bytes(original)
        _clear_pyc(target)
        if not status:
            status = "survived" if rc == 0 else "killed" if rc in (1, 2) else "error"
        tail = log.read_text(errors="replace")[-1500:] if status in ("error",) or job.get("baseline") else ""
        answer = {"id": job["id"], "status": status, "rc": rc, "secs": secs, "tail": tail}
        out.write(json.dumps(answer) + "\n")
        out.flush()


# ---------------------------------------------------------------------------------------------- driver

def copy_tree(root: Path, dest: Path) -> None:
    """The checkout's files as they are on disk (tracked and untracked, not ignored), without .git."""
    try:
        names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True,
                               capture_output=True).stdout.decode().split("\0")
    except (subprocess.CalledProcessError, FileNotFoundError):
        skip = {".git", ".venv", "__pycache__", "runs", "mutation-out"}
        names = [str(p.relative_to(root)) for p in root.rglob("*")
                 if p.is_file() and not skip & set(p.relative_to(root).parts)]
    for name in filter(None, names):
        src = root / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


class Pool:
    def __init__(self, n: int, trees: list[Path], python: str):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        me = str(Path(__file__).resolve())
        self.procs = [subprocess.Popen([python, me, "--_worker", str(t)], cwd=t, env=env, text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1)
                      for t in trees[:n]]
        self.sel = selectors.DefaultSelector()
        for i, p in enumerate(self.procs):
            self.sel.register(p.stdout, selectors.EVENT_READ, i)

    def run(self, jobs: list[dict], on_result) -> None:
        queue, idle, busy = list(jobs), list(range(len(self.procs))), 0
        while queue or busy:
            while queue and idle:
                w = idle.pop()
                self.procs[w].stdin.write(json.dumps(queue.pop(0)) + "\n")
                self.procs[w].stdin.flush()
                busy += 1
            for key, _ in self.sel.select():
                line = key.fileobj.readline()
                if not line:
                    raise SystemExit(f"mutation worker {key.data} died")
                busy -= 1
                idle.append(key.data)
                on_result(json.loads(line))

    def close(self) -> None:
        for p in self.procs:
            p.stdin.close()
            p.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = Path.cwd()
    ap.add_argument("--root", type=Path, default=here if (here / "rlvr").is_dir() else REPO,
                    help="the checkout to mutate (default: the current directory when it is an rlvr "
                         "checkout, else the repo holding this script)")
    ap.add_argument("--module", action="append", default=[],
                    help="a module path relative to root (repeatable)")
    ap.add_argument("--tests", action="append", default=[],
                    help="test files/node ids to use for every --module instead of the table (repeatable)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-per-module", type=int, default=None,
                    help=f"mutants per module at most (default by prefix: {CAPS}, else {DEFAULT_CAP})")
    ap.add_argument("--out", type=Path, default=None, help="report folder (default ROOT/mutation-out)")
    ap.add_argument("--list", action="store_true", help="print the mutants and stop")
    ap.add_argument("--_worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        worker_main(args._worker)
        return 0

    root = args.root.resolve()
    modules = args.module or list(MODULE_TESTS)
    for m in modules:
        if not (root / m).is_file():
            ap.error(f"--module {m}: no such file under {root}")
        if m not in MODULE_TESTS and not args.tests:
            ap.error(f"--module {m}: not in MODULE_TESTS; name its tests with --tests")
    tests_of = {m: args.tests or MODULE_TESTS[m] for m in modules}

    plan: dict[str, list[Mutant]] = {}
    totals: dict[str, int] = {}
    for m in modules:
        everything = mutants_of(root, m)
        cap = args.max_per_module or cap_of(m)
        plan[m], totals[m] = sample(everything, cap), len(everything)
    if args.list:
        for m, ms in plan.items():
            print(f"# {m}: {len(ms)} of {totals[m]} mutants")
            for x in ms:
                print(f"{m}:{x.line}  {x.op:14} {x.change}")
        return 0

    out_dir = (args.out or root / "mutation-out").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="rlvr-mutation-"))
    trees = []
    for i in range(args.workers):
        t = scratch / f"w{i}"
        copy_tree(root, t)
        trees.append(t)
    t_start = time.monotonic()
    pool = Pool(args.workers, trees, sys.executable)
    try:
        # baseline: the unmutated tests must pass, and their time sets each module's timeout
        base: dict[str, dict] = {}
        suites = sorted({tuple(t) for t in tests_of.values()})
        jobs = [{"id": i, "module": next(m for m in modules if tuple(tests_of[m]) == s), "source": None,
                 "tests": list(s), "timeout": 900, "baseline": True} for i, s in enumerate(suites)]
        pool.run(jobs, lambda r: base.__setitem__(suites[r["id"]], r))
        bad = [s for s, r in base.items() if r["status"] != "survived"]
        for s in bad:
            r = base[s]
            print(f"baseline FAILED for {' '.join(s)} ({r['status']}, rc={r['rc']}):\n{r['tail']}")
        if bad:
            return 2
        print("baseline: " + ", ".join(f"{' '.join(s)} {base[s]['secs']:.1f}s" for s in suites), flush=True)

        everything = [x for m in modules for x in plan[m]]
        jobs = []
        for i, x in enumerate(everything):
            t = base[tuple(tests_of[x.module])]["secs"]
            jobs.append({"id": i, "module": x.module, "source": x.source, "tests": tests_of[x.module],
                         "timeout": max(15.0, 3 * t + 10)})
        done = [0]

        def record(r):
            x = everything[r["id"]]
            x.status, x.secs = r["status"], r["secs"]
            if x.status == "error":
                print(f"  error (rc={r['rc']}) {x.module}:{x.line} {x.change}\n{r['tail']}", flush=True)
            done[0] += 1
            if done[0] % 20 == 0 or done[0] == len(everything):
                print(f"  {done[0]}/{len(everything)} mutants, {time.monotonic() - t_start:.0f}s", flush=True)

        print(f"{len(everything)} mutants in {len(modules)} modules, {args.workers} workers", flush=True)
        pool.run(jobs, record)
    finally:
        pool.close()
        shutil.rmtree(scratch, ignore_errors=True)

    report = render(plan, totals, time.monotonic() - t_start)
    print(report)
    (out_dir / "mutation-report.md").write_text(report)
    (out_dir / "mutation-results.json").write_text(json.dumps(
        [{k: v for k, v in asdict(x).items() if k != "source"} for m in plan.values() for x in m], indent=1))
    print(f"written: {out_dir / 'mutation-report.md'}")
    return 0


def render(plan: dict[str, list[Mutant]], totals: dict[str, int], secs: float) -> str:
    rows, survivors, equivalents, stale = [], [], [], []
    all_k = all_n = 0
    for m, ms in plan.items():
        for x in ms:
            reason = equivalent_reason(x)
            if reason and x.status == "survived":
                x.status = "equivalent"
                equivalents.append((x, reason))
            elif reason:
                stale.append(x)
        killed = sum(x.status in ("killed", "timeout", "error") for x in ms)
        timeouts = sum(x.status == "timeout" for x in ms)
        surv = [x for x in ms if x.status == "survived"]
        n_eq = sum(x.status == "equivalent" for x in ms)
        scored = len(ms) - n_eq
        all_k, all_n = all_k + killed, all_n + scored
        score = f"{100 * killed / scored:.0f}%" if scored else "-"
        sampled = f"{len(ms)}" + (f" (of {totals[m]})" if totals[m] > len(ms) else "")
        rows.append(f"| `{m}` | {sampled} | {killed} | {timeouts} | {len(surv)} | {n_eq} | {score} | "
                    f"{sum(x.secs for x in ms):.0f} |")
        survivors += surv
    lines = ["# Mutation report", "",
             f"{sum(len(v) for v in plan.values())} mutants, {secs / 60:.1f} min wall. Score = killed / "
             "(mutants - equivalent); killed includes timeouts (a mutant that hangs the tests).", "",
             "| module | mutants | killed | of which timeout | survived | equivalent | score | test s |",
             "|---|---|---|---|---|---|---|---|", *rows,
             f"| **all** | {sum(len(v) for v in plan.values())} | {all_k} | | | | "
             f"**{100 * all_k / max(all_n, 1):.1f}%** | |", ""]
    lines += ["## Survivors", ""]
    lines += [f"- {x.module}:{x.line} [{x.op}] {x.change}   (line: `{_short(x.line_text, 60)}`)"
              for x in survivors] or ["none"]
    lines += ["", "## Equivalent (excluded from the score)", ""]
    lines += [f"- {x.module}:{x.line} [{x.op}] {x.change} -- {r}" for x, r in equivalents] or ["none"]
    if stale:
        lines += ["", "## Listed as equivalent but killed (remove from EQUIVALENT)", ""]
        lines += [f"- {x.module}:{x.line} [{x.op}] {x.change}" for x in stale]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
