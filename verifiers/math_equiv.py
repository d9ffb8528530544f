"""Equivalence of two parsed answers (sympy objects): structure first, then numbers, then symbols.

Structure: ordered tuples and vectors compare element by element; sets compare as multisets, and so do
bare lists of several answers (`a, b`, an AnswerList) against a set or another list; a bare list against
a tuple compares in the written order (as Math-Verify does), a set `\\{a, b\\}` never equals a tuple;
intervals compare end points and openness, and an open interval (a, b) equals the pair (a, b) since the
notation is the same; matrices compare shape and entries.
Equations: an assignment `x = 3` or a labelled reference (`(p, q) = (3, 2)`, `f(x) = 1`, a name of
symbols on the left) is answered by its value; any other equation reference (`7 = 11a + c`) only by an
equation; an equation answer against a
non-equation reference is judged by its right side (`f(x) = 1` for `1`, the reference decides the format,
as in Math-Verify); two equations are the same when lhs - rhs agree up to a non-zero constant factor;
lists of assignments compare by variable name (`x=1, y=2` is not `x=2, y=1`).
Inequalities: `a > b` reads as `b < a`; two are the same when of one kind with lhs - rhs equal up to a
positive factor (`-x > -1` is `x < 1`); against a set, the solution set of a one-variable inequality.
Scalars: exact rationals compare exactly; other constants numerically with a relative tolerance;
expressions with free symbols at random points (a mismatch at any point rejects), with sympy's simplify
of the difference only when the points cannot be evaluated. Nothing undefined (zoo, nan) equals anything.
"""
from __future__ import annotations

import random
from typing import Callable

import sympy

from verifiers.math_structure import AnswerList

Equal = Callable[[sympy.Basic, sympy.Basic], bool]
SAMPLE_POINTS = 5
SAMPLE_RANGE = (0.31, 1.73)
# Step functions agree on short ranges (floor(m/7) = floor(m/2) = 0 for |m| < 2): expressions holding one
# are compared at more points spread over a wide range.
STEP_FUNCTIONS = (sympy.floor, sympy.ceiling, sympy.frac, sympy.Mod)
STEP_SAMPLE_POINTS = 24
STEP_SAMPLE_RANGE = (0.31, 97.3)


def is_assignment(e: sympy.Basic) -> bool:
    """`x = value` with a plain symbol on the left."""
    return isinstance(e, sympy.Eq) and isinstance(e.lhs, sympy.Symbol)


def is_labelled(e: sympy.Basic) -> bool:
    """A value with a name on the left: an assignment, a tuple of symbols (`(p, q) = (3, 2)`), or a name
    built of symbols alone, without sums or numbers (`f(x) = 1`, `|AB| = 1`, `S_{MBCN}:S = 7:32`, read
    as products and ratios of symbols). `7 = 11a + c` and `2x = 6` are equations, not labels."""
    if not isinstance(e, sympy.Eq):
        return False
    names = e.lhs.args if isinstance(e.lhs, sympy.Tuple) else (e.lhs,)
    return all(isinstance(n, sympy.Symbol) or _a_name(n) for n in names)


def _a_name(e: sympy.Basic) -> bool:
    """Symbols under products, quotients and |.| only (the number -1 of a quotient allowed)."""
    return bool(e.free_symbols) and not e.has(sympy.Add) and all(
        n in (1, -1) for n in e.atoms(sympy.Number))


def assignments_by_name(s: sympy.FiniteSet) -> dict | None:
    """{x = 1, y = 2, x = 3} -> {'x': [1, 3], 'y': [2]}; None unless every element is an assignment."""
    if not all(is_assignment(e) for e in s.args):
        return None
    values: dict = {}
    for e in s.args:
        values.setdefault(e.lhs.name, []).append(e.rhs)
    return values


def assignment_values(s: sympy.FiniteSet) -> sympy.Tuple | None:
    """{a = 1, b = 2} -> (1, 2), ordered by variable name; None unless every element is an assignment."""
    if not all(is_assignment(e) for e in s.args):
        return None
    return sympy.Tuple(*(e.rhs for e in sorted(s.args, key=lambda e: e.lhs.name)))


def numbers_close(a: complex, b: complex, rel_tol: float) -> bool:
    """|a - b| <= rel_tol * max(|a|, |b|)  (a relative tolerance; exact zero only matches exact zero)."""
    return abs(a - b) <= rel_tol * max(abs(a), abs(b))


def _complex(e: sympy.Basic) -> complex | None:
    """The value of a constant expression as a finite complex number, or None."""
    try:
        value = complex(e.evalf(30))
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
    if value != value or abs(value) == float("inf"):
        return None
    return value


def scalars_equal(a: sympy.Basic, b: sympy.Basic, rel_tol: float) -> bool:
    """Exact for rationals, numeric for constants, random points for expressions in symbols."""
    symbols = a.free_symbols | b.free_symbols
    if not symbols:
        a, b = a.doit(), b.doit()  # parsers may leave 2**10 unevaluated; exact values compare exactly
        if a.is_Rational and b.is_Rational:
            return bool(a == b)
        va, vb = _complex(a), _complex(b)
        if va is not None and vb is not None:
            return numbers_close(va, vb, rel_tol)
        return _simplifies_to_zero(a - b)
    return _equal_at_points(a, b, sorted(symbols, key=str), rel_tol)


def _equal_at_points(a: sympy.Basic, b: sympy.Basic, symbols: list, rel_tol: float) -> bool:
    """Compare at SAMPLE_POINTS random real points of either sign (seeded: same verdict every run).

    A mismatch at any point where both sides are finite rejects; agreement at >= 3 points accepts
    (distinct elementary expressions agree on a set of measure zero); else simplify decides.
    """
    agreed = 0
    for va, vb in _values_at_points(a, b, symbols):
        if not numbers_close(va, vb, max(rel_tol, 1e-9)):
            return False
        agreed += 1
    return agreed >= 3 or _simplifies_to_zero(a - b)


def _values_at_points(a: sympy.Basic, b: sympy.Basic, symbols: list):
    """(a, b) at each of SAMPLE_POINTS seeded random real points of either sign (x and |x|, or
    sqrt(x^2), agree on positives only) where both are finite numbers; STEP_SAMPLE_POINTS over a wide
    range when either holds a step function (floor, ceiling, frac, mod)."""
    rng = random.Random(12345)
    steps = a.has(*STEP_FUNCTIONS) or b.has(*STEP_FUNCTIONS)
    count, low_high = (STEP_SAMPLE_POINTS, STEP_SAMPLE_RANGE) if steps else (SAMPLE_POINTS, SAMPLE_RANGE)
    for _ in range(count):
        point = {s: sympy.Float(rng.choice((-1, 1)) * rng.uniform(*low_high), 20) for s in symbols}
        va, vb = _complex(a.xreplace(point)), _complex(b.xreplace(point))
        if va is not None and vb is not None:
            yield va, vb


def proportional(a: sympy.Basic, b: sympy.Basic, rel_tol: float, positive: bool) -> bool:
    """a = k b for one constant k != 0 (k > 0 when `positive`): `2x + 4y - 3` and `y + x/2 - 3/4`.

    Decided at the random points: the ratio a/b must be the same at >= 3 of them; fewer evaluable
    points (or b = 0 there) mean not shown proportional.
    """
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    ratios = [va / vb for va, vb in _values_at_points(a, b, symbols) if vb != 0]
    if len(ratios) < 3:
        return False
    k = ratios[0]
    if not all(numbers_close(r, k, max(rel_tol, 1e-9)) for r in ratios):
        return False
    # k = 0 only when a is 0 everywhere; a positive k is real up to rounding
    return k != 0 and (not positive or abs(k.imag) <= 1e-9 * k.real)


def _simplifies_to_zero(diff: sympy.Basic) -> bool:
    try:
        return bool(sympy.simplify(diff) == 0)
    except Exception:
        return False


def _solution_set(rel: sympy.Basic) -> sympy.Set | None:
    """The real solution set of an inequality in one variable, e.g. `x >= 3` -> [3, oo); None for
    several variables (sympy raises NotImplementedError)."""
    try:
        return rel.as_set()
    except (NotImplementedError, TypeError, ValueError):
        return None


def _open_interval(pair: sympy.Tuple) -> sympy.Basic:
    """(a, b) read as the open interval it may denote, when that makes sense (two real ends); else the
    tuple itself (Interval.open raises TypeError for three elements, ValueError for a complex end)."""
    try:
        return sympy.Interval.open(*pair.args)
    except (TypeError, ValueError):
        return pair


def _match_unordered(xs: tuple, ys: tuple, equal: Equal) -> bool:
    """Multiset equality under `equal` (greedy matching; answers are short lists)."""
    if len(xs) != len(ys):
        return False
    unused = list(ys)
    for x in xs:
        hit = next((i for i, y in enumerate(unused) if equal(x, y)), None)
        if hit is None:
            return False
        unused.pop(hit)
    return True


def _match_ordered(xs: tuple, ys: tuple, equal: Equal) -> bool:
    return len(xs) == len(ys) and all(equal(x, y) for x, y in zip(xs, ys))


def _as_less_than(rel: sympy.Basic) -> tuple[type, sympy.Basic]:
    """(kind, d) with the relation read as `d < 0` or `d <= 0`: `a > b` is `b - a < 0`."""
    flipped = {sympy.StrictGreaterThan: sympy.StrictLessThan, sympy.GreaterThan: sympy.LessThan}
    if type(rel) in flipped:
        return flipped[type(rel)], rel.rhs - rel.lhs
    return type(rel), rel.lhs - rel.rhs


def _as_sequence(e: sympy.Basic) -> tuple | None:
    """Elements of an ordered thing: a tuple, a vector (1-row or 1-column matrix), or an open interval
    (a, b), which is written exactly like the pair (a, b)."""
    if isinstance(e, sympy.Tuple):
        return tuple(e.args)
    if isinstance(e, sympy.MatrixBase) and 1 in e.shape:
        return tuple(e)
    if isinstance(e, sympy.Interval) and e.left_open and e.right_open:
        return (e.start, e.end)
    return None


def _undefined(e: sympy.Basic) -> bool:
    """Holds zoo or nan (a division by zero, 0/0): such a value equals nothing, not even itself."""
    return bool(e.has(sympy.zoo, sympy.nan))


def equivalent(pred: sympy.Basic, ref: sympy.Basic, rel_tol: float = 1e-6) -> bool:
    """Whether the predicted answer means the same as the reference (see the module docstring)."""

    def equal(x: sympy.Basic, y: sympy.Basic) -> bool:
        return equivalent(x, y, rel_tol)

    if _undefined(pred) or _undefined(ref):
        return False
    if pred == ref:
        return True
    # equations and assignments
    if isinstance(pred, sympy.Eq) and isinstance(ref, sympy.Eq):
        if not all(isinstance(side, sympy.Expr) for side in (*pred.args, *ref.args)):
            return equal(pred.lhs, ref.lhs) and equal(pred.rhs, ref.rhs)  # e.g. x \in [1, 2]
        d_pred, d_ref = pred.lhs - pred.rhs, ref.lhs - ref.rhs
        return (
            scalars_equal(d_pred, d_ref, rel_tol)
            or scalars_equal(d_pred, -d_ref, rel_tol)
            or proportional(d_pred, d_ref, rel_tol, positive=False)
        )
    if isinstance(ref, sympy.Eq):
        # `x = 3` is answered by 3; `7 = 11a + c` only by an equation
        return is_labelled(ref) and equal(pred, ref.rhs)
    if isinstance(pred, sympy.Eq):
        return equal(pred.rhs, ref)  # a labelled answer: `f(x) = 1`, `(p, q) = (3, 2)`
    # sets, lists of answers
    if isinstance(pred, sympy.FiniteSet) and isinstance(ref, sympy.FiniteSet):
        named_pred, named_ref = assignments_by_name(pred), assignments_by_name(ref)
        if named_pred is not None and named_ref is not None:
            return named_pred.keys() == named_ref.keys() and all(
                _match_unordered(tuple(named_pred[k]), tuple(named_ref[k]), equal) for k in named_ref
            )
        strip = lambda s: tuple(e.rhs if is_assignment(e) else e for e in s.args)  # noqa: E731
        return _match_unordered(strip(pred), strip(ref), equal)
    for s, other in ((pred, ref), (ref, pred)):
        if isinstance(s, sympy.FiniteSet):
            values = assignment_values(s)
            if values is not None and not isinstance(other, sympy.FiniteSet):
                return _match_ordered(tuple(values.args), _as_sequence(other) or (other,), equal)
            if len(s.args) == 1 and not isinstance(other, sympy.Set):
                return equal(s.args[0], other) if s is pred else equal(other, s.args[0])
            if isinstance(other, sympy.Tuple) and isinstance(s, AnswerList):
                # `1, 3` against `(1, 3)`: written in order; a set `\{1, 3\}` is no tuple
                return _match_ordered(pred.args, ref.args, equal)
            return False
    # an inequality in one variable against a set: compare its solution set (x < 3 vs (-oo, 3))
    for rel, other in ((pred, ref), (ref, pred)):
        if isinstance(rel, sympy.core.relational.Relational) and not isinstance(rel, sympy.Eq):
            other = _open_interval(other) if isinstance(other, sympy.Tuple) else other
            if isinstance(other, sympy.Set):
                as_set = _solution_set(rel)
                return as_set is not None and (equal(as_set, other) if rel is pred else equal(other, as_set))
    # intervals and unions of intervals
    if isinstance(pred, sympy.Interval) and isinstance(ref, sympy.Interval):
        return (
            pred.left_open == ref.left_open
            and pred.right_open == ref.right_open
            and equal(pred.start, ref.start)
            and equal(pred.end, ref.end)
        )
    if isinstance(pred, sympy.Union) and isinstance(ref, sympy.Union):
        return _match_unordered(pred.args, ref.args, equal)
    # matrices, tuples, vectors
    if isinstance(pred, sympy.MatrixBase) and isinstance(ref, sympy.MatrixBase) and pred.shape == ref.shape:
        return _match_ordered(tuple(pred), tuple(ref), equal)
    seq_pred, seq_ref = _as_sequence(pred), _as_sequence(ref)
    if seq_pred is not None and seq_ref is not None:
        return _match_ordered(seq_pred, seq_ref, equal)
    # a sequence against anything else ends below: not a relation, not an Expr
    # inequalities: same relation, the same d in d < 0 (or d <= 0) up to a positive factor; d != 0 up to
    # any non-zero factor (`3 \ne x` is `x \ne 3`)
    if all(isinstance(e, sympy.core.relational.Relational) for e in (pred, ref)):
        (kind_pred, d_pred), (kind_ref, d_ref) = _as_less_than(pred), _as_less_than(ref)
        positive = kind_pred is not sympy.Ne
        return kind_pred is kind_ref and (
            scalars_equal(d_pred, d_ref, rel_tol) or proportional(d_pred, d_ref, rel_tol, positive=positive)
        )
    if isinstance(pred, (sympy.Set, sympy.MatrixBase)) or isinstance(ref, (sympy.Set, sympy.MatrixBase)):
        return False
    if not isinstance(pred, sympy.Expr) or not isinstance(ref, sympy.Expr):
        return False
    return scalars_equal(pred, ref, rel_tol)
