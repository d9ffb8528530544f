"""Verifiers: plugins that turn a (prompt, completion, reference) sample into a reward.

    import verifiers
    v = verifiers.load("math")                     # any name in verifiers.available()
    v.verify(verifiers.Sample(completion="... \\boxed{18}", reference="18")).reward   # 1.0
    with verifiers.VerifierPool(v, workers=4, timeout=5) as pool:   # hard per-sample timeout
        scores = pool.score(samples)

New verifiers register under the entry-point group `rlvr.verifiers` (see examples/rlvr-example-verifier).
"""
from verifiers.base import (
    Composite,
    Sample,
    Score,
    Verifier,
    VerifierError,
    available,
    compose,
    load,
)
from verifiers.pool import VerifierPool

__all__ = [
    "Composite",
    "Sample",
    "Score",
    "Verifier",
    "VerifierError",
    "VerifierPool",
    "available",
    "compose",
    "load",
]
