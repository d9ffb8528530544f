"""What every trainer shares: the run folder, seeding, metrics, progress, checkpoints and resume.

A run folder holds: config.yaml (resolved), metrics.jsonl, *.png curves, checkpoints/, final/ (an HF
folder), summary.json.
"""
from __future__ import annotations

import json
import random
import socket
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rlvr import devices
from rlvr import distributed as D
from rlvr.atomic import atomic_write_json
from rlvr.config import save_config
from rlvr.diskspace import remover, writing
from rlvr.errors import UserError
from rlvr.trainers.checkpoint import Checkpointer, rng_state, set_rng_state, step_of
from rlvr.trainers.metrics import MetricsLog, plot_curves


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_shared_folder(run_dir: Path) -> None:
    """Every rank must see the run folder rank 0 made: checkpoints are assembled there by all ranks and
    renamed by rank 0, so a folder on each node's own disk would scatter them. A collective."""
    if D.world_size() == 1:
        return
    probe = run_dir / f".rlvr-shared-{D.broadcast_object(uuid.uuid4().hex)}"
    if D.is_main():
        probe.write_text(str(run_dir.resolve()))
    D.barrier()
    views = D.all_gather_object((probe.is_file(), socket.gethostname()))
    D.barrier()
    if D.is_main():
        probe.unlink()
    blind = [(r, host) for r, (seen, host) in enumerate(views) if not seen]
    if blind:
        hosts = sorted({host for _, host in blind})
        raise UserError(f"logging.out_dir: {run_dir} is not one folder shared by every rank: rank(s) "
                        f"{', '.join(str(r) for r, _ in blind)} (host {', '.join(hosts)}) cannot see what rank 0 "
                        f"wrote there; put the run folder on a file system that every node mounts")


class Trainer:
    """Subclasses set self.engines (name -> DeepSpeed engine), self.tokenizer, self.rollouts (rlvr.rollouts,
    when they sample and score) or self.generator (a generation engine, when they only evaluate by
    generating), and implement
    `train_step(step) -> metrics`, `evaluate(step) -> metrics`, `state_dict()`/`load_state_dict()`."""

    plot_keys: list[str] = ["loss"]

    def __init__(self, cfg, max_steps: int, seed: int, save_every: int, eval_every: int, keep: int,
                 resume: bool, max_seconds: float | None = None):
        self.device = D.init(cfg.deepspeed.timeout_minutes)
        cfg.model.dtype = devices.resolve_dtype(cfg.model.dtype, self.device)  # config.yaml records what ran
        self.cfg = cfg
        self.max_steps, self.save_every, self.eval_every = max_steps, save_every, eval_every
        self.max_seconds = max_seconds  # a wall-time budget for the run's training, resumes included
        self.seconds_before = 0.0  # training time of the run before this process resumed it
        self.run_dir = Path(cfg.logging.out_dir)
        self.checkpointer = Checkpointer(self.run_dir, keep=keep)
        self.resume_from = None
        if D.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
        D.barrier()
        check_shared_folder(self.run_dir)
        self.log_line("devices: " + devices.device_map(D.all_gather_object(devices.describe(self.device)),
                                                      cfg.model.dtype))
        latest = self.checkpointer.latest()
        if latest is not None and not resume:
            raise UserError(f"{self.run_dir} already holds checkpoints (newest {latest.name}); add --resume "
                            f"to continue that run, or set logging.out_dir to a new folder")
        # the newest intact checkpoint (damaged ones are named and set aside); None: a fresh start
        self.resume_from = self.checkpointer.choose_resume(self.log_line) if resume else None
        seed_everything(seed + D.rank())
        self.metrics = None
        if D.is_main():
            start = None if self.resume_from is None else step_of(self.resume_from)
            self.metrics = MetricsLog(self.run_dir, cfg.logging.tensorboard, resume_step=start)
            for moved in self.metrics.moved_aside:
                self.log_line(f"a fresh start: the earlier start's {moved}")
            with writing(self.run_dir / "config.yaml"):
                save_config(cfg, self.run_dir / "config.yaml")
        self.step = 0
        self.engines: dict = {}
        self.tokenizer = None

    def prepare_model(self, seed: int) -> str:
        """The folder (or hub id) of the starting model on every rank. A tiny model is built once, by rank 0,
        into the run folder (shared by every rank); any other model is resolved by each node's first rank,
        then by the rest of the node (a GGUF file converts once into the node's own cache)."""
        from rlvr.models import prepare_model

        if self.cfg.model.name == "tiny":
            path = None
            if D.is_main():
                with writing(self.run_dir / "initial_model"):
                    path = prepare_model(self.cfg.model, self.run_dir, seed)
            return D.broadcast_object(path)
        if devices.local_rank() == 0:
            path = prepare_model(self.cfg.model, self.run_dir, seed)
        D.barrier()
        if devices.local_rank() != 0:
            path = prepare_model(self.cfg.model, self.run_dir, seed)
        return path

    # ---- subclass hooks -------------------------------------------------------------------------
    def train_step(self, step: int) -> dict:
        raise NotImplementedError

    def evaluate(self, step: int) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    @property
    def _sampler(self) -> torch.Generator | None:
        """The embedded generation engine's sampling RNG (other engines keep their own)."""
        rollouts = getattr(self, "rollouts", None)
        if rollouts is not None:
            return rollouts.rng
        return getattr(getattr(self, "generator", None), "generator", None)

    def extra_rng(self) -> dict:
        """RNG states beyond Python's, NumPy's and torch's CPU one: the device's (a GPU's), and the
        embedded generation engine's sampler."""
        out = devices.rng_state(self.device)
        if self._sampler is not None:
            out["generation"] = self._sampler.get_state()
        return out

    def after_step(self) -> None:
        """After each optimizer step, e.g. push the new weights to a separate generation engine."""

    def close(self) -> None:
        """Release worker processes and engines."""

    def load_extra_rng(self, state: dict) -> None:
        devices.set_rng_state(state, self.device)
        if "generation" in state and self._sampler is not None:
            self._sampler.set_state(state["generation"])

    # ---- the loop -------------------------------------------------------------------------------
    def restore(self) -> None:
        self.checkpointer.clean_partial()
        if self.resume_from is None:
            return
        state, rng = self.checkpointer.load(self.resume_from, self.engines)
        self.step = state["step"]
        self.seconds_before = float(state.get("train_seconds", 0.0))
        self.load_state_dict(state)
        if rng is not None:
            set_rng_state(rng)
            self.load_extra_rng(rng)
        self.log_line(f"resumed from {self.resume_from} at step {self.step}")

    def save(self) -> None:
        state = {**self.state_dict(), "train_seconds": time.time() - self.clock}
        self.checkpointer.save(self.step, self.engines, self.tokenizer, state, rng_state(self.extra_rng()),
                               extra=self.checkpoint_files)

    def checkpoint_files(self, folder: Path) -> None:
        """Rank 0 adds a subclass's own files into a checkpoint, before its manifest (so they are checked)."""

    def log(self, metrics: dict) -> None:
        if self.metrics is not None:
            self.metrics.log(self.step, metrics)

    def log_line(self, text: str) -> None:
        if D.is_main():
            tqdm.write(f"[rlvr] {text}")

    def plot(self) -> None:
        if D.is_main():
            plot_curves(self.metrics.records(), self.plot_keys, self.run_dir / "curves.png",
                        title=str(self.run_dir))

    def train(self) -> dict:
        try:
            return self._train()
        finally:
            self.close()

    def _train(self) -> dict:
        self.restore()
        done = self.run_dir / "summary.json"
        if done.is_file() and (self.step >= self.max_steps or json.loads(done.read_text()).get("out_of_time")):
            # resumed a finished run: nothing to redo
            self.log_line(f"{self.run_dir} is complete ({self.step} steps)")
            return json.loads(done.read_text())
        # the clock counts the run's training time so far, so a resumed run spends only what is left of
        # trainer.max_seconds (the time between the crash and the resume is not counted)
        self.clock = time.time() - self.seconds_before
        bar = tqdm(total=self.max_steps, initial=self.step, desc=self.run_dir.name, dynamic_ncols=True,
                   disable=not (D.is_main() and self.cfg.logging.progress))
        metrics: dict = {}
        out_of_time = False
        try:  # closed on Ctrl-C too, so the CLI's one line starts a line of its own
            while self.step < self.max_steps and not out_of_time:
                metrics = self.train_step(self.step)
                self.step += 1
                self.after_step()
                out_of_time = self._out_of_time()
                last = self.step == self.max_steps or out_of_time  # logged after the final evaluation below
                evaluated = bool(self.eval_every) and self.step % self.eval_every == 0 and not last
                if evaluated:
                    metrics.update(self.evaluate(self.step))
                if not last and (evaluated or self.step % self.cfg.logging.log_every == 0 or self.step == 1):
                    self.log(metrics)
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()
                                 if k in self.plot_keys[:3] and isinstance(v, float)})
                if self.save_every and self.step % self.save_every == 0 and not last:
                    self.save()
                    self.plot()
        finally:
            bar.close()
        if out_of_time:
            self.log_line(f"stopping at step {self.step}: trainer.max_seconds={self.max_seconds} is spent")
        final = self.evaluate(self.step)
        self.log({**metrics, **final})
        if self.step > 0:  # a run of no steps (max_steps=0: judge the start) has no state worth keeping
            self.save()
        self.export_final()
        self.plot()
        summary = {"steps": self.step, "seconds": round(time.time() - self.clock, 1),
                   **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}, **final,
                   **self.summary_extra(), **({"out_of_time": True} if out_of_time else {})}
        if D.is_main():
            with writing(self.run_dir / "summary.json"):
                atomic_write_json(self.run_dir / "summary.json", summary)
            if self.metrics:
                self.metrics.close()
        D.barrier()
        return summary

    def _out_of_time(self) -> bool:
        """Rank 0's clock decides, so every rank stops after the same step."""
        if not self.max_seconds:
            return False
        return bool(D.broadcast_object(time.time() - self.clock >= self.max_seconds))

    def export_final(self) -> None:
        from rlvr.trainers.checkpoint import export_hf

        final = self.run_dir / "final"
        with writing(final, cleanup=remover(final) if D.is_main() else None):
            export_hf(next(iter(self.engines.values())), self.tokenizer, final)

    def summary_extra(self) -> dict:
        return {}
