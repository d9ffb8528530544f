"""Learning-rate schedules as pure functions of the step."""
from __future__ import annotations

import math


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """The lr multiplier: linear warmup from 0 to 1 over `warmup` steps, then cosine decay to `min_ratio`.

        m(s) = (s + 1) / warmup                                       for s < warmup
        m(s) = min_ratio + (1 - min_ratio) * (1 + cos(pi * p)) / 2,    p = (s - warmup) / (total - warmup)
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
