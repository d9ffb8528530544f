"""Run metrics: one JSON line per logged step, TensorBoard when installed, and PNG curves."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from rlvr.atomic import append_jsonl, atomic_write_text, read_jsonl
from rlvr.diskspace import remover, writing

ASIDE = ".before-restart"  # what a fresh start renames an earlier start's logs with


class MetricsLog:
    """Appends {"step": s, ...} lines to metrics.jsonl in the run folder (main rank only).

    A resume from the checkpoint of step `resume_step` keeps what was logged up to that step (the steps after
    it run again). A fresh start (None) begins new logs: an earlier start's that never reached a checkpoint
    are renamed to metrics.before-restart.jsonl and tensorboard.before-restart/ (replacing older ones), so the
    curves show one run and the last attempt can still be read. `moved_aside` names what was renamed."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, resume_step: int | None = None):
        run_dir = Path(run_dir)
        self.path = run_dir / "metrics.jsonl"
        board = run_dir / "tensorboard"
        self.moved_aside: list[str] = []
        if resume_step is None:
            pairs = ((self.path, run_dir / f"metrics{ASIDE}.jsonl"), (board, run_dir / f"tensorboard{ASIDE}"))
            for old, aside in pairs:
                if old.exists():
                    remover(aside)()
                    old.rename(aside)
                    self.moved_aside.append(f"{old.name} was renamed to {aside.name}")
        else:
            self.truncate_after(resume_step)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # TensorBoard hides the events of the steps a resume runs again
                purge = None if resume_step is None else resume_step + 1
                self.writer = SummaryWriter(str(board), purge_step=purge)
            except ImportError:  # tensorboard is optional
                pass

    def log(self, step: int, metrics: dict) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        with writing(self.path):
            append_jsonl(self.path, [record])
        if self.writer is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, step)

    def records(self) -> list[dict]:
        return read_metrics(self.path)

    def truncate_after(self, step: int) -> None:
        """On resume: forget what was logged after the checkpoint, since those steps will run again."""
        kept = [r for r in self.records() if r["step"] <= step]
        with writing(self.path):
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def read_metrics(path: str | Path) -> list[dict]:
    return read_jsonl(path)


def plot_curves(records: list[dict], keys: list[str], path: str | Path, title: str = "") -> Path | None:
    """One panel per metric against step; keys absent from the records are left out."""
    keys = [k for k in keys if any(isinstance(r.get(k), (int, float)) for r in records)]
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        ax.plot(*zip(*pts), marker="o" if len(pts) < 30 else None, markersize=3)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_suffix(".tmp.png")
    try:
        with writing(tmp, cleanup=remover(tmp)):
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    os.replace(tmp, path)
    return path
