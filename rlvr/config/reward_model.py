"""`kind: reward_model` configs (stage 2: a Bradley-Terry reward model)."""
from __future__ import annotations

KINDS: dict[str, type] = {}
