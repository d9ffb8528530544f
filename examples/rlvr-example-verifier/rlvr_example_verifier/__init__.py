"""An example rlvr verifier in its own package: the completion's last non-empty line must equal the reference."""
from __future__ import annotations

from verifiers import Sample, Score, Verifier


class ExactLine(Verifier):
    """Options:
    - ignore_case (False): compare case-insensitively.
    - reward (1.0): reward for a match (a miss gets 0.0).
    """

    name = "exact_line"
    defaults = {"ignore_case": False, "reward": 1.0}

    def verify(self, sample: Sample) -> Score:
        lines = [line.strip() for line in sample.completion.splitlines() if line.strip()]
        if not lines:
            return Score(reward=0.0, correct=False, reason="empty completion")
        got, want = lines[-1], str(sample.reference).strip()
        if self.ignore_case:
            got, want = got.lower(), want.lower()
        ok = got == want
        return Score(reward=float(self.reward) if ok else 0.0, correct=ok,
                     reason="match" if ok else "mismatch", details={"last_line": lines[-1]})
