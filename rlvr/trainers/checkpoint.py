"""Checkpoints that are complete or absent, and resume from the newest complete one.

    checkpoints/step-000120/            an HF folder (plain transformers loads it) plus:
        deepspeed/<engine>/state/       DeepSpeed's model, optimizer and scheduler states, per rank
        rng/rank<r>.pt                  every RNG a rank uses
        trainer_state.json              step, data position, controllers
        manifest.json                   size and SHA-256 of every file above, written last

Every rank writes into `.tmp-step-000120` and only when all have finished does rank 0 rename it, so a
run killed at any moment leaves either the whole checkpoint or none of it. What a kill cannot cause, a
disk or a person can (a truncated or deleted file, zeroed bytes): resume checks each checkpoint against
its manifest, newest first, and takes the newest intact one.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rlvr import distributed as D
from rlvr.atomic import atomic_write_json
from rlvr.diskspace import remover, writing
from rlvr.errors import UserError

STEP_DIR = re.compile(r"^step-(\d+)$")
TAG = "state"
MANIFEST = "manifest.json"
CHUNK = 8 << 20  # hashed in pieces: a checkpoint's files can be larger than memory


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


# ---- manifests ------------------------------------------------------------------------------------
def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def listing(folder: Path) -> list[str]:
    """Every file under `folder` but the manifest, as sorted relative POSIX paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != MANIFEST)


def describe(folder: Path, names: list[str]) -> dict:
    return {n: {"size": (folder / n).stat().st_size, "sha256": file_digest(folder / n)} for n in names}


def write_manifest(folder: Path) -> None:
    """Collective: the ranks hash a share of the files each, rank 0 writes the manifest. Call it when every
    rank's files are written."""
    names = listing(folder)
    shares = D.all_gather_object(describe(folder, names[D.rank()::D.world_size()]))
    if D.is_main():
        files = {n: entry for share in shares for n, entry in share.items()}
        atomic_write_json(folder / MANIFEST, {"format": 1, "files": dict(sorted(files.items()))})


def manifest_problems(folder: Path, only: Callable[[str], bool] = lambda name: True,
                      share: tuple[int, int] = (0, 1)) -> list[str] | None:
    """What is wrong with `folder` against its manifest ([] when intact), or None when it has none.
    `only` picks the files to check; `share` (i, n) checks the i-th of every n of them (a rank's share).
    Sizes are checked before any file is hashed."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text())["files"]
        entries = {n: (int(e["size"]), str(e["sha256"])) for n, e in sorted(files.items()) if only(n)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return [f"{MANIFEST} is unreadable"]
    entries = dict(list(entries.items())[share[0]::share[1]])
    problems, to_hash = [], []
    for name, (size, _) in entries.items():
        f = folder / name
        if not f.is_file():
            problems.append(f"{name} is missing")
        elif f.stat().st_size != size:
            problems.append(f"{name} has {f.stat().st_size} bytes, the manifest says {size}")
        else:
            to_hash.append(name)
    if problems:
        return problems
    return [f"{name} does not match its checksum" for name in to_hash
            if file_digest(folder / name) != entries[name][1]]


def step_of(path: Path) -> int:
    return int(STEP_DIR.match(path.name).group(1))


class Checkpointer:
    def __init__(self, run_dir: str | Path, keep: int = 2):
        self.root = Path(run_dir) / "checkpoints"
        self.keep = keep

    def complete(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
        return sorted(found, key=step_of)

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1] if done else None

    def choose_resume(self, say: Callable[[str], None]) -> Path | None:
        """Collective: the newest checkpoint that matches its manifest, or None when there is none at all.
        The ranks share the hashing; each sees the same result, and rank 0's choice is broadcast. A damaged
        checkpoint is named in a line that says what is wrong with it and set aside as `corrupt-step-NNNNNN/`
        (kept for a look, never pruned; the steps after the one resumed from are written again). One without
        a manifest was written before rlvr kept manifests (a save writes it before the rename that makes the
        checkpoint): it is used, unverified, with a notice."""
        chosen, failure = None, None
        names = D.broadcast_object([ck.name for ck in reversed(self.complete())] if D.is_main() else None)
        damaged, unverified = [], False
        for ck in (self.root / name for name in names):
            problems = self.check(ck)
            if not problems:
                chosen, unverified = ck, problems is None
                break
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            damaged.append((ck, f"{problems[0]}{more}"))
        if D.is_main():
            for ck, problem in damaged:
                if chosen is None:
                    say(f"damaged checkpoint {ck.name}: {problem}")
                    continue
                aside = ck.with_name(f"corrupt-{ck.name}")
                shutil.rmtree(aside, ignore_errors=True)
                ck.rename(aside)
                say(f"skipping damaged checkpoint {ck.name}: {problem}; set aside as {aside.name}")
            if damaged and chosen is None:
                failure = UserError(f"{self.root}: no intact checkpoint to resume from ({len(damaged)} "
                                    f"damaged; the newest, {damaged[0][0].name}: {damaged[0][1]}); remove "
                                    f"that folder to start the run again")
            if unverified:
                say(f"{chosen.name} has no {MANIFEST} (written before rlvr checked checkpoints): "
                    f"resuming from it unverified")
        chosen, failure = D.broadcast_object((chosen, failure))
        if failure is not None:
            raise failure
        return chosen

    @staticmethod
    def check(ck: Path) -> list[str] | None:
        """Collective: `manifest_problems` of `ck`, each rank checking a share of its files."""
        found = D.all_gather_object(manifest_problems(ck, share=(D.rank(), D.world_size())))
        if any(f is None for f in found):
            return None
        return list(dict.fromkeys(p for f in found for p in f))  # "manifest.json is unreadable" only once

    def save(self, step: int, engines: dict, tokenizer, state: dict, rng: dict,
             extra: Callable[[Path], None] | None = None) -> Path:
        """Collective. `engines` maps a name to a DeepSpeed engine; the first one is exported as HF. `extra`
        writes more files into the checkpoint (rank 0). A full disk raises NoSpace after the partial
        checkpoint is removed; the earlier ones are untouched."""
        final = self.root / f"step-{step:06d}"
        tmp = self.root / f".tmp-step-{step:06d}"
        with writing(tmp, cleanup=remover(tmp) if D.is_main() else None):
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
                atomic_write_json(tmp / "trainer_state.json",
                                  {"step": step, "world_size": D.world_size(), **state})
                if extra is not None:
                    extra(tmp)
            D.barrier()
            write_manifest(tmp)
        if D.is_main():
            if final.exists():  # a step written again after a resume from an earlier one
                self.retire(final)
            tmp.rename(final)
            for old in self.complete()[: -self.keep] if self.keep > 0 else []:
                self.retire(old)
        D.barrier()
        return final

    def retire(self, ck: Path) -> None:
        """Remove a checkpoint; renamed first, so a kill midway never leaves half of one under its name."""
        gone = ck.with_name(f".old-{ck.name}")
        shutil.rmtree(gone, ignore_errors=True)
        ck.rename(gone)
        shutil.rmtree(gone, ignore_errors=True)

    def clean_partial(self) -> None:
        """Remove what a killed run left half-written or half-removed."""
        if D.is_main() and self.root.is_dir():
            for p in [*self.root.glob(".tmp-step-*"), *self.root.glob(".old-step-*")]:
                shutil.rmtree(p, ignore_errors=True)
        D.barrier()

    def load(self, path: Path, engines: dict) -> tuple[dict, dict | None]:
        """Restore the engines; return (trainer state, this rank's RNG state or None)."""
        for name, engine in engines.items():
            load_path, _ = engine.load_checkpoint(str(path / "deepspeed" / name), tag=TAG)
            if load_path is None:
                raise RuntimeError(f"DeepSpeed could not load {path / 'deepspeed' / name}")
        state = json.loads((path / "trainer_state.json").read_text())
        rng_file = path / "rng" / f"rank{D.rank()}.pt"
        rng = torch.load(rng_file, weights_only=False) if rng_file.is_file() else None
        return state, rng
