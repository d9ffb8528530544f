"""Checkpoints that are complete or absent, and resume from the newest complete one.

    checkpoints/step-000120/            an HF folder (plain transformers loads it) plus:
        deepspeed/<engine>/state/       DeepSpeed's model, optimizer and scheduler states, per rank
        rng/rank<r>.pt                  every RNG a rank uses
        trainer_state.json              step, data position, controllers

Every rank writes into `.tmp-step-000120` and only when all have finished does rank 0 rename it, so a
run killed at any moment leaves either the whole checkpoint or none of it.
"""
from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from rlvr import distributed as D
from rlvr.atomic import atomic_write_json

STEP_DIR = re.compile(r"^step-(\d+)$")
TAG = "state"


def hf_state_dict(engine) -> dict | None:
    """Full weights on rank 0 (gathered from the partitions under ZeRO-3; a collective), None elsewhere."""
    if engine.zero_optimization_partition_weights():
        return engine._zero3_consolidated_16bit_state_dict()
    return engine.module.state_dict() if D.is_main() else None


def export_hf(engine, tokenizer, out_dir: str | Path) -> None:
    """Write the engine's model as a plain HF folder (a collective: call it on every rank)."""
    state = hf_state_dict(engine)
    if D.is_main():
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        engine.module.save_pretrained(out, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(out)
    D.barrier()


def rng_state(extra: dict | None = None) -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            **(extra or {})}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


class Checkpointer:
    def __init__(self, run_dir: str | Path, keep: int = 2):
        self.root = Path(run_dir) / "checkpoints"
        self.keep = keep

    def complete(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
        return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1] if done else None

    def save(self, step: int, engines: dict, tokenizer, state: dict, rng: dict) -> Path:
        """Collective. `engines` maps a name to a DeepSpeed engine; the first one is exported as HF."""
        final = self.root / f"step-{step:06d}"
        tmp = self.root / f".tmp-step-{step:06d}"
        if D.is_main():
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        D.barrier()
        for name, engine in engines.items():
            engine.save_checkpoint(str(tmp / "deepspeed" / name), tag=TAG, save_latest=False)
        (tmp / "rng").mkdir(exist_ok=True)
        torch.save(rng, tmp / "rng" / f"rank{D.rank()}.pt")
        export_hf(next(iter(engines.values())), tokenizer, tmp)
        if D.is_main():
            atomic_write_json(tmp / "trainer_state.json", {"step": step, "world_size": D.world_size(), **state})
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            for old in self.complete()[: -self.keep] if self.keep > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        D.barrier()
        return final

    def clean_partial(self) -> None:
        """Remove what a killed run left half-written."""
        if D.is_main() and self.root.is_dir():
            for p in self.root.glob(".tmp-step-*"):
                shutil.rmtree(p, ignore_errors=True)
        D.barrier()

    def load(self, path: Path, engines: dict) -> tuple[dict, dict | None]:
        """Restore the engines; return (trainer state, this rank's RNG state or None)."""
        import json

        for name, engine in engines.items():
            load_path, _ = engine.load_checkpoint(str(path / "deepspeed" / name), tag=TAG)
            if load_path is None:
                raise RuntimeError(f"DeepSpeed could not load {path / 'deepspeed' / name}")
        state = json.loads((path / "trainer_state.json").read_text())
        rng_file = path / "rng" / f"rank{D.rank()}.pt"
        rng = torch.load(rng_file, weights_only=False) if rng_file.is_file() else None
        return state, rng
