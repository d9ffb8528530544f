"""The `reward_model` verifier: a learned reward r(x, y) from one reward model or an ensemble.

    reward:
      verifiers:
        - {name: reward_model, options: {model: runs/rm_arith/final}}

Each model's raw rewards are normalised (optional), the ensemble reduced (mean, or min for a pessimistic
reward that is harder to over-optimise), then clipped (optional). `correct` is None: a reward model
ranks answers, it cannot say one is right. Put the math or code verifier next to it (weight 0 if it
should not count) to keep an accuracy metric.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from verifiers.base import Sample, Score, Verifier, VerifierError

REDUCTIONS = ("mean", "min")
NORMALIZATIONS = ("none", "running", "calibration")


class Moments:
    """Running mean and variance (Chan et al.'s parallel update), merged one batch at a time."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, values: list[float]) -> None:
        """count' = n + k;  delta = mean_b - mean;  mean' = mean + delta * k / count';
        M2' = M2 + M2_b + delta^2 * n * k / count'."""
        k = len(values)
        if not k:
            return
        mean_b = sum(values) / k
        m2_b = sum((v - mean_b) ** 2 for v in values)
        total = self.count + k
        delta = mean_b - self.mean
        self.mean += delta * k / total
        self.m2 += m2_b + delta**2 * self.count * k / total
        self.count = total

    @property
    def std(self) -> float:
        """Population std; 1 until two values are seen, so a first lone sample is only centred."""
        return math.sqrt(self.m2 / self.count) if self.count > 1 else 1.0


def standardize(values: list[float], mean: float, std: float) -> list[float]:
    """(r - mean) / std, with std floored at 1e-6 (a constant reward model would divide by zero)."""
    return [(v - mean) / max(std, 1e-6) for v in values]


def reduce_ensemble(per_model: list[list[float]], how: str) -> list[float]:
    """Per sample: the mean, or the min, over models."""
    fn = min if how == "min" else (lambda xs: sum(xs) / len(xs))
    return [fn(column) for column in zip(*per_model)]


def clip(values: list[float], bound: float | None) -> list[float]:
    """Clip to [-bound, bound]; None leaves values alone."""
    return values if bound is None else [max(-bound, min(bound, v)) for v in values]


def calibration_texts(path: str) -> tuple[list[str], list[str]]:
    """(prompts, completions) of a calibration file: rows with prompt and completion, or preference
    rows whose chosen and rejected both count (a preference data set calibrates as it is)."""
    from rlvr.data.loading import json_records, read_file

    records = read_file(path) if Path(path).suffix == ".parquet" else [r for _, r in json_records(Path(path))]
    prompts, completions = [], []
    for i, row in enumerate(records, 1):
        answers = [row[k] for k in ("completion", "chosen", "rejected") if isinstance(row.get(k), str)]
        if not isinstance(row.get("prompt"), str) or not answers:
            raise VerifierError(f"reward_model calibration file {path} row {i}: expected a string 'prompt' "
                                f"and a 'completion' (or 'chosen'/'rejected')")
        prompts += [row["prompt"]] * len(answers)
        completions += answers
    if len(completions) < 2:
        raise VerifierError(f"reward_model calibration file {path}: needs at least 2 completions")
    return prompts, completions


def _check_model_path(path: str) -> None:
    """Fail in the parent, at config time, not in a worker on every sample. 'org/name' may be a hub id."""
    folder = Path(path)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise VerifierError(f"reward_model verifier: option 'model': {path} is not an HF model folder "
                                f"(no config.json)")
    elif folder.is_absolute() or path.startswith(".") or path.count("/") != 1:
        raise VerifierError(f"reward_model verifier: option 'model': folder not found: {path}")


class RewardModelVerifier(Verifier):
    """Options:
    - model (required): a reward-model folder (written by `kind: reward_model`), or a list of them.
    - reduce ("mean"): how an ensemble's rewards combine: "mean" or "min".
    - normalize ("none"): "running" (each model's running mean and std over everything it scored in
      this process: not shared across ranks, not checkpointed; the RL trainer's reward.normalize is) or
      "calibration" (each model's mean and std on the `calibration` file).
    - calibration (None): JSONL of {prompt, completion} (or {prompt, chosen, rejected}) rows.
    - clip (None): clip the final reward to [-clip, clip].
    - batch_size (32): sequences per forward pass.
    - dtype ("float32").
    - device ("auto"): where the models run in each scoring process: "auto" is the trainer rank's own
      device (cuda:LOCAL_RANK on a GPU machine, else the CPU); or "cpu", "cuda", "cuda:1", ... Each
      worker process loads its own copy.
    Models load on first use (or in a pool worker's warmup), never when pickled.
    """

    name = "reward_model"
    # verify_batch is much faster than one verify per sample (one forward pass per batch); a pool that
    # honours this flag hands workers whole chunks
    batched: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {"model": None, "reduce": "mean", "normalize": "none",
                                          "calibration": None, "clip": None, "batch_size": 32,
                                          "dtype": "float32", "device": "auto"}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        paths = [self.model] if isinstance(self.model, str) else self.model
        if not paths or not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise VerifierError("reward_model verifier: option 'model' must be a reward-model folder or a "
                                f"non-empty list of them, got {self.model!r}")
        for p in paths:
            _check_model_path(p)
        self.paths: list[str] = paths
        if self.reduce not in REDUCTIONS:
            raise VerifierError(f"reward_model verifier: option 'reduce' must be one of "
                                f"{', '.join(REDUCTIONS)}, got {self.reduce!r}")
        if self.normalize not in NORMALIZATIONS:
            raise VerifierError(f"reward_model verifier: option 'normalize' must be one of "
                                f"{', '.join(NORMALIZATIONS)}, got {self.normalize!r}")
        if (self.normalize == "calibration") != (self.calibration is not None):
            raise VerifierError("reward_model verifier: option 'calibration' (a file) goes with "
                                "normalize: calibration, and only with it")
        if self.calibration is not None and not Path(self.calibration).is_file():
            raise VerifierError(f"reward_model verifier: option 'calibration': file not found: "
                                f"{self.calibration}")
        if self.clip is not None and not (isinstance(self.clip, (int, float)) and self.clip > 0):
            raise VerifierError(f"reward_model verifier: option 'clip' must be a positive number, "
                                f"got {self.clip!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size > 0):
            raise VerifierError(f"reward_model verifier: option 'batch_size' must be a positive integer, "
                                f"got {self.batch_size!r}")
        try:
            import torch

            torch.device("cpu" if self.device == "auto" else self.device)
        except (RuntimeError, TypeError):
            raise VerifierError(f"reward_model verifier: option 'device' must be 'auto' or a torch device such as "
                                f"cpu, cuda or cuda:1, got {self.device!r}") from None
        self._scorers: list | None = None
        self._stats: list[Moments] = [Moments() for _ in self.paths]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_scorers"] = None  # workers load their own copy
        return state

    def warmup(self) -> None:
        """Load the models (and calibrate); a pool worker calls this before taking samples."""
        if self._scorers is not None:
            return
        from rlvr.devices import device
        from rlvr.reward_scoring import RewardScorer

        where = device() if self.device == "auto" else self.device
        self._scorers = [RewardScorer(p, batch_size=self.batch_size, dtype=self.dtype, device=where)
                         for p in self.paths]
        if self.normalize == "calibration":
            prompts, completions = calibration_texts(self.calibration)
            self._stats = [Moments() for _ in self._scorers]
            for stats, scorer in zip(self._stats, self._scorers):
                stats.update(scorer.score(prompts, completions).tolist())

    def raw_rewards(self, samples: list[Sample]) -> list[list[float]]:
        """Each model's unnormalised rewards: [model][sample]."""
        self.warmup()
        prompts, completions = [s.prompt for s in samples], [s.completion for s in samples]
        return [scorer.score(prompts, completions).tolist() for scorer in self._scorers]

    def verify(self, sample: Sample) -> Score:
        return self.verify_batch([sample])[0]

    def verify_batch(self, samples: list[Sample]) -> list[Score]:
        if not samples:
            return []
        raw = self.raw_rewards(samples)
        per_model = raw
        if self.normalize != "none":
            if self.normalize == "running":
                for stats, values in zip(self._stats, raw):
                    stats.update(values)
            per_model = [standardize(v, s.mean, s.std) for v, s in zip(raw, self._stats)]
        rewards = clip(reduce_ensemble(per_model, self.reduce), self.clip)
        return [Score(reward=r, correct=None, details={"raw": [m[i] for m in raw]})
                for i, r in enumerate(rewards)]
