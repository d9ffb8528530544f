"""The verifier plugin contract: Sample in, Score out, verifiers found by name through entry points.

A verifier is any subclass of `Verifier` registered under the entry-point group `rlvr.verifiers`
(see examples/rlvr-example-verifier for a third-party one). Verifiers are plain picklable objects so
that `verifiers.pool.VerifierPool` can ship them to worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

ENTRY_POINT_GROUP = "rlvr.verifiers"


class VerifierError(ValueError):
    """A user mistake in choosing or configuring a verifier (unknown name, unknown option, bad spec)."""


@dataclass
class Sample:
    """One thing to judge. `fields` carries every other column of the data row (e.g. unit tests)."""

    prompt: str = ""
    completion: str = ""
    reference: Any = None
    fields: dict = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict, completion: str) -> "Sample":
        """A data row (prompt, reference, any other columns) and a completion to judge against it."""
        return cls(prompt=str(row.get("prompt") or ""), completion=str(completion),
                   reference=row.get("reference"),
                   fields={k: v for k, v in row.items() if k not in ("prompt", "completion", "reference")})


@dataclass
class Score:
    """A verdict. `correct` is None when the verifier has no notion of right/wrong (e.g. a length penalty)."""

    reward: float
    correct: bool | None = None
    reason: str = ""
    details: dict = field(default_factory=dict)


class Verifier:
    """Base class of every verifier.

    Subclasses set `name` and `defaults` (option name -> default value); `__init__` accepts exactly
    those options as keyword arguments and stores each as an attribute of the same name.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    batched: ClassVar[bool] = False  # True: verify_batch scores a list at once; the pool sends it chunks

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "(none)"
            raise VerifierError(
                f"verifier {self.name!r} has no option {unknown[0]!r}; valid options: {valid}"
            )
        for key, default in self.defaults.items():
            setattr(self, key, options.get(key, default))

    @property
    def options(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.defaults}

    def verify(self, sample: Sample) -> Score:
        raise NotImplementedError

    def verify_batch(self, samples: list[Sample]) -> list[Score]:
        return [self.verify(s) for s in samples]

    def set_concurrency(self, cpus: int) -> None:
        """The CPUs this verifier may keep busy at once (its share of the machine: a VerifierPool divides
        its budget among its workers). A verifier that starts processes of its own (the code sandbox)
        sizes them by it, before its first use; the others ignore it."""

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


# ---------------------------------------------------------------- registry


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Names of all installed verifiers (entry-point group `rlvr.verifiers`)."""
    return sorted(_entry_points())


def load(name: str, **options: Any) -> Verifier:
    """Instantiate the verifier registered as `name` with `options`."""
    eps = _entry_points()
    if name not in eps:
        installed = ", ".join(sorted(eps)) or "(none: is the rlvr package installed?)"
        raise VerifierError(f"unknown verifier {name!r}; installed verifiers: {installed}")
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Verifier)):
        raise VerifierError(f"entry point {name!r} ({eps[name].value}) is not a Verifier subclass")
    return cls(**options)


# ---------------------------------------------------------------- composition


@dataclass
class Part:
    """One weighted member of a composed verifier; counts only if its `gate` part passed."""

    key: str
    verifier: Verifier
    weight: float = 1.0
    gate: str | None = None


def passed(score: Score) -> bool:
    """A gate passes when the part is correct, or (if it has no notion of correct) its reward is > 0."""
    return bool(score.correct) if score.correct is not None else score.reward > 0


def failure(status: str, reason: str) -> Score:
    """Reward 0 with the reason, and `status` (timeout, crash, exception) in the details."""
    return Score(reward=0.0, correct=False, reason=reason, details={"status": status})


def _raised(e: Exception) -> Score:
    return failure("exception", f"exception: {type(e).__name__}: {e}")


def verify_safely(verifier: Verifier, sample: Sample) -> Score:
    """verifier.verify(sample), with an exception turned into reward 0 and its text as the reason."""
    try:
        return verifier.verify(sample)
    except Exception as e:  # a verifier bug must cost one sample, not the run
        return _raised(e)


def verify_chunk(verifier: Verifier, samples: list[Sample]) -> list[Score]:
    """One verify_batch call for a verifier that batches (a reward model: one forward pass for the lot),
    else one guarded verify per sample. A batch that raises costs every sample in it, with the reason."""
    if not getattr(verifier, "batched", False):
        return [verify_safely(verifier, s) for s in samples]
    try:
        return verifier.verify_batch(samples)
    except Exception as e:
        return [_raised(e) for _ in samples]


class Composite(Verifier):
    """Weighted sum of parts: reward = sum_i w_i * r_i * [gate_i passed].

    `correct` is the correctness of the main part (the first part that no other part names as its
    gate: the gates are preconditions such as format; the main part is what the run is about), and
    false when the main part's own gate fails. If every part is a gate, the first part is the main one.
    `details` holds each part's own (unweighted, ungated) reward under its key, so each can be logged.
    """

    name = "composite"

    def __init__(self, parts: list[Part]) -> None:
        super().__init__()
        self.parts = parts
        self.batched = any(getattr(p.verifier, "batched", False) for p in parts)
        gates = {p.gate for p in parts if p.gate}
        self.main = next((p.key for p in parts if p.key not in gates), parts[0].key)

    def set_concurrency(self, cpus: int) -> None:
        for p in self.parts:
            p.verifier.set_concurrency(cpus)

    def warmup(self) -> None:
        """Load what the parts load up front (a reward model), not inside the first sample's timeout."""
        for p in self.parts:
            if callable(getattr(p.verifier, "warmup", None)):
                p.verifier.warmup()

    def verify(self, sample: Sample) -> Score:
        return self.verify_batch([sample])[0]

    def verify_batch(self, samples: list[Sample]) -> list[Score]:
        per_part = {p.key: verify_chunk(p.verifier, samples) for p in self.parts}
        return [self._combine({k: v[i] for k, v in per_part.items()}) for i in range(len(samples))]

    def _combine(self, scores: dict[str, Score]) -> Score:
        reward = 0.0
        for p in self.parts:
            if p.gate is None or passed(scores[p.gate]):
                reward += p.weight * scores[p.key].reward
        main = scores[self.main]
        gate = next(p.gate for p in self.parts if p.key == self.main)
        # a main answer that fails its gate earns nothing, so it is not correct either: accuracy
        # must not count what the reward refuses (e.g. a restated sum behind a plain-number gate)
        correct = main.correct and (gate is None or passed(scores[gate]))
        details = {p.key: scores[p.key].reward for p in self.parts}
        reason = "; ".join(f"{k}: {s.reason}" for k, s in scores.items() if s.reason)
        return Score(reward=reward, correct=correct, reason=reason, details=details)

    def __repr__(self) -> str:
        return f"Composite({[(p.key, p.weight, p.gate) for p in self.parts]})"


PART_KEYS = {"name", "key", "weight", "options", "gate"}


def compose(spec: list[dict[str, Any]] | str) -> Verifier:
    """Build a verifier from config: a name, or a list of {name, weight, options, gate, key}.

    `key` (default: the name) labels the part in details and is what `gate` refers to; give it when the
    same verifier appears twice. A one-part spec without weight or gate returns the verifier itself.
    """
    if isinstance(spec, str):
        return load(spec)
    if not isinstance(spec, list) or not spec:
        raise VerifierError(f"verifier spec must be a name or a non-empty list of parts, got {spec!r}")
    parts: list[Part] = []
    for i, entry in enumerate(spec):
        if not isinstance(entry, dict) or "name" not in entry:
            raise VerifierError(f"verifier spec part {i} must be a mapping with a 'name', got {entry!r}")
        extra = sorted(set(entry) - PART_KEYS)
        if extra:
            raise VerifierError(
                f"verifier spec part {i} ({entry['name']}): unknown key {extra[0]!r}; "
                f"valid keys: {', '.join(sorted(PART_KEYS))}"
            )
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise VerifierError(f"verifier spec part {i} ({entry['name']}): 'options' must be a mapping")
        parts.append(
            Part(
                key=str(entry.get("key", entry["name"])),
                verifier=load(entry["name"], **options),
                weight=float(entry.get("weight", 1.0)),
                gate=entry.get("gate"),
            )
        )
    keys = [p.key for p in parts]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise VerifierError(f"verifier spec names part {dupes[0]!r} twice; give each a distinct 'key'")
    for p in parts:
        if p.gate is not None and (p.gate not in keys or p.gate == p.key):
            raise VerifierError(
                f"verifier spec part {p.key!r}: gate {p.gate!r} must be another part's key ({', '.join(keys)})"
            )
    if len(parts) == 1 and parts[0].weight == 1.0:
        return parts[0].verifier
    return Composite(parts)

