"""Rebuild the suite files of this folder from the graders' own test files (how they were made).

    python tests/data/math_graders/extract_cases.py MIRROR_ROOT [SUITE ...]   # default: every suite

MIRROR_ROOT holds bare git copies as MIRROR_ROOT/<owner>+<name>/repo (what the session's fetch tool made).
Cases are read from the test source with `ast` (literals only, nothing of theirs is run); each keeps the
suite's own expectation, its location (`source_line`) and, in `note`, the test it came from and any
option that test passes to its grader.
"""
from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def git_show(root: Path, repo: str, commit: str, path: str) -> str:
    git_dir = root / repo.replace("/", "+") / "repo"
    return subprocess.run(["git", "-C", str(git_dir), "show", f"{commit}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def literal(node: ast.AST):
    """A literal, allowing the constant arithmetic some suites write (`5 / 2`, `f"{math.sqrt(17):.15f}"`)."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        return eval(compile(ast.Expression(node), "<case>", "eval"), {"__builtins__": {}, "math": math})


def text(value) -> str | None:
    """The graders stringify non-string inputs (NeMo-Skills: str(x)); None stays None."""
    return None if value is None else value if isinstance(value, str) else str(value)


def parametrized(source: str, path: str):
    """(function name, {argname: value}, line, the assert line) for every pytest.mark.parametrize case."""
    tree = ast.parse(source)
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        asserts = [" ".join(ast.get_source_segment(source, n).split()) for n in ast.walk(fn)
                   if isinstance(n, ast.Assert)]
        for dec in fn.decorator_list:
            if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize"):
                continue
            names = [n.strip() for n in literal(dec.args[0]).split(",")]
            for elt in dec.args[1].elts:
                values = literal(elt)
                values = values if len(names) > 1 else (values,)
                yield fn.name, dict(zip(names, values)), elt.lineno, asserts


def nemo_skills(root: Path, commit: str) -> list[dict]:
    """NeMo-Skills: math_equal(gt, pred) asserted in both orders, so both orders are cases."""
    path = "tests/test_math_equal.py"
    rows = []
    for fn, case, line, _ in parametrized(git_show(root, "NVIDIA/NeMo-Skills", commit, path), path):
        gold, pred = (text(v) for v in case["output_pair"])
        expected = fn == "test_correct_examples"
        rows.append({"pred": pred, "gold": gold, "expected": expected,
                     "note": f"{fn}: math_equal(gt, pred)", "source_line": f"{path}:{line}"})
        rows.append({"pred": gold, "gold": pred, "expected": expected,
                     "note": f"{fn}: the same pair reversed (the test asserts both orders)",
                     "source_line": f"{path}:{line}"})
    return rows


def hendrycks(root: Path, commit: str) -> list[dict]:
    """hendrycks/math: test_in is the model output (eval_math_gpt.py passes it first), test_out the gold."""
    path = "modeling/math_equivalence_test.py"
    source = git_show(root, "hendrycks/math", commit, path)
    rows = []
    for fn in ast.walk(ast.parse(source)):
        if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_")):
            continue
        values = {t.id: literal(n.value) for n in fn.body if isinstance(n, ast.Assign) for t in n.targets}
        check = next(n.value for n in fn.body if isinstance(n, ast.Expr))
        rows.append({"pred": values["test_in"], "gold": values["test_out"],
                     "expected": check.func.attr == "assertTrue",
                     "note": f"{fn.name}: {check.func.attr}(is_equiv(test_in, test_out))",
                     "source_line": f"{path}:{fn.lineno}"})
    return rows


# Qwen2.5-Math's evaluation/grader.py and ZubinGou's grader.py (the same function) end in _test_math_equal:
# cases printed with math_equal(pred, gt), commented out but the last, with no expectation written down.
# Taken here with the expectation mathematics gives; the three with a rounded decimal gold are judged by
# the grader's own numeric rule, isclose(rel_tol=1e-4), and say so.
QWEN_CASES = [
    ("0.0833333333333333", r"\frac{1}{12}", True, "numeric, within 1e-4"),
    ("(1,4.5)", r"(1,\frac{9}{2})", True, ""),
    (r"\frac{x}{7}+\frac{2}{7}", r"\frac{x+2}{7}", True, ""),
    (r"\sec^2(y)", r"\tan^2(y)+1", True, ""),
    (r"\begin{pmatrix}-\frac{7}{4}&-2\\4&\frac{1}{4}\end{pmatrix}",
     r"(\begin{pmatrix}-\frac{7}{4}&-2\\4&\frac{1}{4}\\\end{pmatrix})", True, ""),
    (r"\begin{pmatrix}\frac{1}{3x^{2/3}}&0&0\\0&1&0\\-\sin(x)&0&0\end{pmatrix}",
     r"(\begin{pmatrix}\frac{1}{3\sqrt[3]{x}^2}&0&0\\0&1&0\\-\sin(x)&0&0\\\end{pmatrix})", True, ""),
    (r"-\frac{8x^2}{9(x^2-2)^{5/3}}+\frac{2}{3(x^2-2)^{2/3}}",
     r"-\frac{2(x^2+6)}{9(x^2-2)\sqrt[3]{x^2-2}^2}", True, ""),
    ("-34x-45y+20z-100=0", "34x+45y-20z+100=0", True, "the same plane"),
    (r"\frac{100}{3}", "33.3", False, "rounded gold: off by 1e-3 relative, beyond the grader's 1e-4"),
    (r"\begin{pmatrix}0.290243531202435\\0.196008371385084\\-0.186381278538813\end{pmatrix}",
     r"(\begin{pmatrix}0.29\\0.196\\-0.186\\\end{pmatrix})", False,
     "rounded gold: 0.29 is 8e-4 relative off, beyond the grader's 1e-4"),
    (r"\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{2\sqrt{33}+15}",
     r"\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{15+2\sqrt{33}}", True, ""),
    ("(+5)(b+2)", "(a+5)(b+2)", False, ""),
    (r"\frac{1+\sqrt{5}}{2}", "2", False, ""),
    (r"\frac{34}{16}+\frac{\sqrt{1358}}{16}", "4", False, "about 4.43"),
    ("1", "1\\\\sqrt{19}", False, "gold as written there: two backslashes"),
    ("(0.6,2.6667]", r"(\frac{3}{5},\frac{8}{3}]", True, "rounded: within the grader's 1e-4"),
    ("x+1", "x+2n+1", False, "the case the function runs"),
]


def qwen(root: Path, commit: str) -> list[dict]:
    source = git_show(root, "QwenLM/Qwen2.5-Math", commit, "evaluation/grader.py")
    start = source.splitlines().index("def _test_math_equal():") + 1
    return [{"pred": p, "gold": g, "expected": e,
             "note": "expectation not stated by the suite (inferred)" + (f"; {n}" if n else ""),
             "source_line": f"evaluation/grader.py:{start}"} for p, g, e, n in QWEN_CASES]


def expanded(source: str, test_name: str):
    """(values, line) for every case of `@parameterized.expand([...])` on the method `test_name`."""
    for fn in ast.walk(ast.parse(source)):
        if not (isinstance(fn, ast.FunctionDef) and fn.name == test_name):
            continue
        for dec in fn.decorator_list:
            if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "expand":
                for elt in dec.args[0].elts:
                    yield literal(elt), elt.lineno


def open_instruct(root: Path, commit: str) -> list[dict]:
    """open-instruct: math_utils.strip_string's normalization pairs (hendrycks_is_equiv compares the
    strip_string of both answers, so input and output are the same answer to it), and GSM8KVerifier's
    cases, which pass whole completions (`pred_is_completion`: judged as written in every mode)."""
    rows = []
    path = "open_instruct/test_math_utils.py"
    for (given, normalized), line in expanded(git_show(root, "allenai/open-instruct", commit, path),
                                              "test_latex_normalization"):
        rows.append({"pred": given, "gold": normalized, "expected": True,
                     "note": "test_latex_normalization: assertEqual(strip_string(input), expected_output)",
                     "source_line": f"{path}:{line}"})
    path = "open_instruct/test_ground_truth_utils.py"
    source = git_show(root, "allenai/open-instruct", commit, path)
    for (name, prediction, label, score), line in expanded(source, "test_signed_number_extraction"):
        rows.append({"pred": prediction, "gold": label, "expected": score == 1.0,
                     "note": f"test_signed_number_extraction[{name}]: GSM8KVerifier()([], prediction, label)"
                             f".score == {score}",
                     "source_line": f"{path}:{line}", "pred_is_completion": True})
    return rows


AREAL_GRADERS = {"gsm8k_reward_fn"}  # geometry3k_reward_fn grades Geometry3K's `[answer]` brackets: left out


def areal(root: Path, commit: str) -> list[dict]:
    """AReaL: `reward = gsm8k_reward_fn(completions=..., answer=...)` then `assert reward == 1.0 / 0.0`, and
    `assert worker.verify(pred, gold) == 1.0 / 0.0` (its math-verify worker). Both take whole completions.
    Asserts that state no verdict (`isinstance(reward, float)`, `reward == 1.0 or reward == 0.0`) give no
    case."""
    path = "tests/test_math_verify_reward.py"
    source = git_show(root, "inclusionAI/AReaL", commit, path)
    rows = []
    for fn in ast.walk(ast.parse(source)):
        if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_")):
            continue
        calls, strings = {}, {}
        for node in ast.walk(fn):
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
            if isinstance(target, ast.Name):
                name, value = target.id, node.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    strings[name] = value.value
                elif isinstance(value, ast.Call) and getattr(value.func, "id", "") in AREAL_GRADERS:
                    kw = {k.arg: literal(k.value) for k in value.keywords}
                    calls[name] = (kw["completions"], kw["answer"], value.func.id, value.lineno)
        for node in ast.walk(fn):
            if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare)):
                continue
            test = node.test
            score = test.comparators[0]
            if not (len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
                    and isinstance(score, ast.Constant) and score.value in (0.0, 1.0)):
                continue
            expected = score.value == 1.0
            left = test.left
            if isinstance(left, ast.Name) and left.id in calls:
                pred, gold, grader, line = calls[left.id]
                how = f"{grader}(completions=..., answer=...)"
            elif isinstance(left, ast.Call) and getattr(left.func, "attr", "") == "verify":
                pred, gold = (strings[a.id] if isinstance(a, ast.Name) else literal(a) for a in left.args)
                how, line = "get_math_verify_worker().verify(pred, gold)", left.lineno
            else:
                continue
            rows.append({"pred": text(pred), "gold": text(gold), "expected": expected,
                         "note": f"{fn.name}: {how} == {score.value}",
                         "source_line": f"{path}:{line}", "pred_is_completion": True})
    return rows


SUITES = {
    "nemo_skills": ("NVIDIA/NeMo-Skills", "0b012df8a09cd4730d31b16e90a0d8f13d145fb8", nemo_skills),
    "hendrycks_math": ("hendrycks/math", "985bdc1696e88e8643f081a0ff4719da39f2ae2a", hendrycks),
    "qwen25_math": ("QwenLM/Qwen2.5-Math", "a45202bd16f1ec06f433442dc1152d0074773465", qwen),
    "open_instruct": ("allenai/open-instruct", "e6c3044aa6201c8bfa4573c1b03142af599e730d", open_instruct),
    "areal": ("inclusionAI/AReaL", "4aef98d8d818af55b43621aaadba047ae10f4e77", areal),
}


def main(root: Path, only: list[str]) -> None:
    for name, (repo, commit, extract) in SUITES.items():
        if only and name not in only:
            continue
        rows = extract(root, commit)
        with open(HERE / f"{name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        print(f"{name}: {len(rows)} cases ({sum(r['expected'] for r in rows)} expected true)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
