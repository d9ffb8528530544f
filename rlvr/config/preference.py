"""`kind: preference` configs."""
from __future__ import annotations

KINDS: dict[str, type] = {}
