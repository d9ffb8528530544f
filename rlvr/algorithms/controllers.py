"""Small stateful controllers whose state goes into checkpoints: the KL coefficient, reward statistics."""
from __future__ import annotations

import math


class KLController:
    """beta fixed, or adaptive toward a target KL (Ziegler et al. 2019):

        e    = clip((KL - target) / target, -0.2, 0.2)
        beta = beta * (1 + e * n_samples / horizon)
    """

    def __init__(self, beta: float, target: float | None = None, horizon: int = 10000):
        self.beta, self.target, self.horizon = beta, target, horizon

    def update(self, kl: float, n_samples: int) -> None:
        if self.target is None or not math.isfinite(kl):
            return
        error = max(-0.2, min(0.2, (kl - self.target) / self.target))
        self.beta *= 1 + error * n_samples / self.horizon

    def state_dict(self) -> dict:
        return {"beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        self.beta = state["beta"]


class RunningMoments:
    """Running mean and variance of all rewards seen (Chan et al.'s parallel update), for normalising."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 0

    def update(self, values: list[float]) -> None:
        n = len(values)
        if n == 0:
            return
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / n
        total = self.count + n
        delta = mean - self.mean
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.mean += delta * n / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 1e-8))

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]
