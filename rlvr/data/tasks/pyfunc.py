"""`pyfunc`: write a small Python function from input/output examples, checked by hidden asserts.

A problem is a comment of examples (input>output) and a lambda header; the answer is the body's
expression:

    prompt:   #0>4 1>7 3>13 6>22\\nf=lambda x:          response: x*3+4
    test:     def check(candidate):\\n assert candidate(2)==10\\n assert candidate(11)==37 ...

Rows are in the code verifier's HumanEval form (the program is prompt + completion, `test` defines
check(candidate), `entry_point` is `f`), so the `code` verifier runs them in the sandbox as they are. The
hidden asserts use inputs that are not among the shown ones and live only in `test`, which no prompt is
rendered from.

Functions come from small grammars over three argument types (`families`): int (`x*a+b`, `a-x`, ...),
str (`s[::-1]`, `s+'c'`, ...) and list (`sorted(a)`, `[v*k for v in a]`, ...). Functions are told apart
by behaviour, not text: `fn_id` hashes a function's outputs on fixed probe inputs, so `x*2` and `x+x`
are one function, and each function is demonstrated by the first text of the grammar that computes it.

Train and test are disjoint by behaviour: a function belongs to the test split exactly when a hash of its
`fn_id` ranks among the lowest of its shape, whatever the seed and sizes. Only shapes with several
functions (`x*a+b`, not `sorted(a)`) give test functions, so a held-out problem is a new function of a
shape seen in training, never a shape the model cannot have met. An example set that another function
of the grammar also fits is refused: the examples always determine the answer.
"""
from __future__ import annotations

import functools
import hashlib
import random
import string
from dataclasses import dataclass

from rlvr.errors import UserError

FAMILIES = ("int", "str", "list")
TEST_SHARE = 0.15  # share of the functions of many-function shapes that belong to the test split
HIDDEN_TESTS = 5  # asserts per problem, never shown
SHOWN = {"int": 4, "str": 3, "list": 3}  # examples in the prompt
ARG = {"int": "x", "str": "s", "list": "a"}
# Every character a prompt or a response can hold: the tiny model's character vocabulary.
ALPHABET = string.ascii_letters + string.digits + " ()[]:=+-*/%,.'#>\n"
MIN_SHAPE_FUNCTIONS = 5  # shapes with fewer functions stay in training
MAX_MISSES = 2000  # draws in a row that give no new problem: the split has run out


@dataclass(frozen=True)
class Function:
    family: str
    shape: str  # the grammar rule, e.g. 'x*{a}+{b}'
    body: str  # the demonstrated expression, e.g. 'x*3+4'
    fn_id: str  # hash of the behaviour on PROBES


def _shapes() -> dict[str, list[tuple[str, list[dict]]]]:
    """family -> [(shape, [parameter choices])]."""
    # Wide parameter ranges on purpose: a shape's functions are too many to memorise one by one, so a
    # model learns to read the parameter off the examples (f(0) shows a of x+a), which is what a
    # held-out function of the shape needs.
    letters = "abcdefghijklmnopqrstuvwxyz"
    return {
        "int": [("x+{a}", [{"a": a} for a in range(1, 50)]),
                ("x*{a}", [{"a": a} for a in range(2, 20)]),
                ("{a}-x", [{"a": a} for a in range(50)]),
                ("x*x+{a}", [{"a": a} for a in range(20)]),
                ("x*{a}+{b}", [{"a": a, "b": b} for a in range(2, 10) for b in range(1, 20)])],
        "str": [("s[::-1]", [{}]), ("s.upper()", [{}]), ("s+s", [{}]), ("len(s)", [{}]),
                ("s+'{c}'", [{"c": c} for c in letters]),
                ("'{c}'+s", [{"c": c} for c in letters])],
        "list": [("sorted(a)", [{}]), ("a[::-1]", [{}]), ("sum(a)", [{}]), ("max(a)", [{}]),
                 ("min(a)", [{}]), ("len(a)", [{}]),
                 ("[v*{a} for v in a]", [{"a": a} for a in range(2, 10)]),
                 ("[v+{a} for v in a]", [{"a": a} for a in range(1, 20)]),
                 ("a+[{a}]", [{"a": a} for a in range(50)]),
                 ("[{a}]+a", [{"a": a} for a in range(50)])],
    }


# Fixed inputs that tell the functions of a family apart (every distinct behaviour differs on them).
PROBES = {
    "int": [0, 1, 2, 3, 5, 7, 10, 13, 19, 24],
    "str": ["abc", "hello", "zz", "python", "mamba", "q", "tree"],
    "list": [[3, 1, 2], [5], [9, 0, 4, 4], [1, 2, 3, 4, 5], [7, 3]],
}
_BUILTINS = {"len": len, "sorted": sorted, "sum": sum, "max": max, "min": min}


def shown(value) -> str:
    """A value as the examples show it: words without quotes (inputs are lowercase letters)."""
    return value if isinstance(value, str) else lit(value)


def lit(value) -> str:
    """A Python literal without spaces: 12, 'abc', [1,2]."""
    if isinstance(value, list):
        return "[" + ",".join(lit(v) for v in value) + "]"
    return repr(value)


@functools.lru_cache(maxsize=None)
def _compiled(family: str, body: str):
    return eval(f"lambda {ARG[family]}: {body}", {"__builtins__": _BUILTINS})  # our own grammar only


def apply(fn: Function, arg):
    return _compiled(fn.family, fn.body)(list(arg) if isinstance(arg, list) else arg)


@functools.lru_cache(maxsize=None)
def functions() -> tuple[Function, ...]:
    """Every distinct function of the grammar, each under the first text that computes it."""
    out, seen = [], set()
    for family, shapes in _shapes().items():
        for shape, choices in shapes:
            for params in choices:
                body = shape.format(**params)
                outputs = [_compiled(family, body)(p) for p in PROBES[family]]
                fn_id = hashlib.blake2b(f"{family}:{lit(outputs)}".encode(), digest_size=8).hexdigest()
                if fn_id not in seen:
                    seen.add(fn_id)
                    out.append(Function(family, shape, body, fn_id))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def shape_size(shape: str) -> int:
    return sum(f.shape == shape for f in functions())


@functools.lru_cache(maxsize=None)
def test_ids() -> frozenset[str]:
    """The test functions: in each shape of at least MIN_SHAPE_FUNCTIONS functions, the TEST_SHARE of
    them (at least one) whose fn_id hashes lowest. Neither the seed nor the sizes move a function."""
    chosen = set()
    for shape in {f.shape for f in functions()}:
        ids = sorted(f.fn_id for f in functions() if f.shape == shape)
        if len(ids) >= MIN_SHAPE_FUNCTIONS:
            ranked = sorted(ids, key=lambda i: hashlib.blake2b(i.encode(), digest_size=8).digest())
            chosen.update(ranked[: max(1, round(TEST_SHARE * len(ids)))])
    return frozenset(chosen)


def in_test(fn: Function) -> bool:
    return fn.fn_id in test_ids()


def split_functions(split: str, families: list[str],
                    part: tuple[float, float] = (0.0, 1.0)) -> list[Function]:
    """The split's functions of `families`; for 'train', in each shape of at least MIN_SHAPE_FUNCTIONS
    functions those whose hash rank within the shape falls in `part` [from, to) (smaller shapes whole)."""
    chosen = [f for f in functions() if f.family in families and in_test(f) == (split == "test")]
    if split == "test":
        return chosen
    out = []
    for shape in dict.fromkeys(f.shape for f in chosen):
        ranked = sorted((f for f in chosen if f.shape == shape),
                        key=lambda f: hashlib.blake2b(f"part:{f.fn_id}".encode(), digest_size=8).digest())
        if len(ranked) < MIN_SHAPE_FUNCTIONS:
            out += ranked
        else:
            out += ranked[round(part[0] * len(ranked)) : round(part[1] * len(ranked))]
    return out


def draw_input(rng: random.Random, family: str):
    if family == "int":
        return rng.randrange(20)
    if family == "str":
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 4)))
    return [rng.randrange(10) for _ in range(rng.randint(2, 4))]


def shown_inputs(rng: random.Random, family: str) -> list:
    """The example inputs: for ints 0, 1 and two more below 10, so that a and b of x*a+b can be read."""
    if family == "int":
        return [0, 1] + sorted(rng.sample(range(2, 10), SHOWN["int"] - 2))
    inputs: list = []
    while len(inputs) < SHOWN[family]:
        value = draw_input(rng, family)
        if value not in inputs:
            inputs.append(value)
    return inputs


def ambiguous(fn: Function, examples: list[tuple]) -> bool:
    """Another function of the family fits every example."""
    return any(other is not fn and all(apply(other, i) == o for i, o in examples)
               for other in functions() if other.family == fn.family)


def make_problem(rng: random.Random, fn: Function, seen: set[str]) -> dict | None:
    """A row for `fn`, or None when the drawn examples make a prompt in `seen` or do not determine fn."""
    inputs = shown_inputs(rng, fn.family)
    examples = [(i, apply(fn, i)) for i in inputs]
    prompt = "#" + " ".join(f"{shown(i)}>{shown(o)}" for i, o in examples) + f"\nf=lambda {ARG[fn.family]}:"
    if prompt in seen or ambiguous(fn, examples):
        return None
    hidden: list = []
    while len(hidden) < HIDDEN_TESTS:
        value = draw_input(rng, fn.family)
        # a hidden input is never a shown one, and a str/list one never appears in the prompt at all
        if value in inputs or value in hidden or (fn.family != "int" and shown(value) in prompt):
            continue
        hidden.append(value)
    test = "def check(candidate):\n" + "".join(
        f" assert candidate({lit(i)})=={lit(apply(fn, i))}\n" for i in hidden)
    return {"prompt": prompt, "response": fn.body, "reference": fn.body, "test": test, "entry_point": "f",
            "family": fn.family, "shape": fn.shape, "fn_id": fn.fn_id}


def generate(cfg, split: str) -> list[dict]:
    """`cfg.train_size` or `cfg.test_size` rows of split 'train' or 'test', distinct by prompt. Families
    are drawn in turn, then a shape of the family, then a function of the split of that shape."""
    if split not in ("train", "test"):
        raise UserError(f"data.split: the pyfunc task has splits 'train' and 'test', got {split!r}")
    families = list(cfg.families)
    if not families or any(f not in FAMILIES for f in families):
        raise UserError(f"data.pyfunc.families: expected a non-empty list of {', '.join(FAMILIES)}, "
                        f"got {families}")
    part = cfg.train_functions
    if (len(part) != 2 or not all(isinstance(x, (int, float)) for x in part)
            or not 0 <= part[0] < part[1] <= 1):
        raise UserError(f"data.pyfunc.train_functions: expected [from, to] with 0 <= from < to <= 1, "
                        f"got {part}")
    pools = {family: {} for family in families}
    for fn in split_functions(split, families, tuple(part)):
        if shape_size(fn.shape) >= cfg.min_shape_functions:
            pools[fn.family].setdefault(fn.shape, []).append(fn)
    if empty := [family for family, shapes in pools.items() if not shapes]:
        raise UserError(f"data.pyfunc.min_shape_functions: no shape of family {empty[0]!r} has "
                        f"{cfg.min_shape_functions} functions or more")
    want = cfg.train_size if split == "train" else cfg.test_size
    rng = random.Random(f"pyfunc-{cfg.seed}-{split}")
    seen: set[str] = set()
    rows: list[dict] = []
    misses = 0
    while len(rows) < want:
        family = families[len(rows) % len(families)]
        shape = rng.choice(sorted(pools[family]))
        row = make_problem(rng, rng.choice(pools[family][shape]), seen)
        if row is None:
            misses += 1
            if misses > MAX_MISSES:
                raise UserError(f"data.pyfunc.{split}_size: {want} is too many distinct {split} problems for "
                                f"families {families} ({len(rows)} found); lower it")
            continue
        misses = 0
        seen.add(row["prompt"])
        rows.append(row)
    return rows
