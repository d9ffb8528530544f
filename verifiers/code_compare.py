"""Judging a program's stdout against the expected stdout of a stdin/stdout test case."""
from __future__ import annotations

import math


def _number(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def same_output(actual: str, expected: str, float_tolerance: float | None = None) -> bool:
    """Whitespace-insensitive token equality: both texts split on any whitespace must agree token by
    token. With `float_tolerance` t, two tokens that both parse as finite numbers also agree when
    |a - e| <= t * max(1, |e|) (absolute for small values, relative for large ones)."""
    got, want = actual.split(), expected.split()
    if len(got) != len(want):
        return False
    for a, e in zip(got, want):
        if a == e:
            continue
        if float_tolerance is None:
            return False
        x, y = _number(a), _number(e)
        if x is None or y is None or abs(x - y) > float_tolerance * max(1.0, abs(y)):
            return False
    return True
