"""Damaged checkpoints, a full disk, and a rerun after a start that never reached a checkpoint.

One 3-step run with a checkpoint at every step is trained once per session and copied into each case that
damages it; the resumed run must take the newest intact checkpoint and say what was wrong with the others.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bad_inputs import Case

ROWS = "".join('{"prompt": "%d+%d", "response": "%d"}\n' % (a, a, 2 * a) for a in range(1, 9))
CONFIG = """kind: sft
model: {name: tiny, tiny: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}}
data: {source: rows.jsonl, eval_source: rows.jsonl}
trainer: {max_steps: 3, batch_size: 2, micro_batch_size: 2, eval_every: 0, save_every: 1, keep_checkpoints: 3,
          warmup_steps: 0}
logging: {out_dir: out, log_every: 1, progress: false, tensorboard: false}
"""
SHARD = "deepspeed/model/state/mp_rank_00_model_states.pt"
_built: list[Path] = []


def trained_run() -> Path:
    """A folder with c.yaml, rows.jsonl and out/, a finished run with checkpoints at steps 1, 2 and 3."""
    if not _built:
        from tests.conftest import pythonpath

        root = Path(tempfile.mkdtemp(prefix="rlvr-checkpoint-cases-"))
        atexit.register(shutil.rmtree, root, True)
        (root / "c.yaml").write_text(CONFIG)
        (root / "rows.jsonl").write_text(ROWS)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath()}
        proc = subprocess.run([sys.executable, "-m", "rlvr", "train", "c.yaml"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        _built.append(root)
    return _built[0]


def damaged(*damage):
    """A copy of the trained run, each `damage(checkpoints folder)` applied."""
    def write(case_dir: Path) -> None:
        shutil.copytree(trained_run(), case_dir, dirs_exist_ok=True)
        for d in damage:
            d(case_dir / "out" / "checkpoints")
    return write


def truncate(rel: str, step: int = 3):
    def cut(root: Path) -> None:
        f = root / f"step-{step:06d}" / rel
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return cut


def delete(rel: str, step: int = 3):
    return lambda root: (root / f"step-{step:06d}" / rel).unlink()


def zero(rel: str, step: int = 3):
    """Zeroes 64 bytes in the middle of the file (inside the tensor data: torch loads it without a word)."""
    def blank(root: Path) -> None:
        f = root / f"step-{step:06d}" / rel
        data = bytearray(f.read_bytes())
        mid = len(data) // 2
        data[mid:mid + 64] = bytes(64)
        f.write_bytes(bytes(data))
    return blank


def resumed_from_step_2(case_dir: Path, result) -> None:
    """Steps 3 ran again from step 2: the damaged step 3 set aside, a new one written, metrics 1..3 once."""
    ck = case_dir / "out" / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == [
        "corrupt-step-000003", "step-000001", "step-000002", "step-000003"]
    steps = [json.loads(ln)["step"] for ln in (case_dir / "out" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3], steps


def fell_back(problem: str) -> str:
    return (rf"skipping damaged checkpoint step-000003: {problem}; set aside as corrupt-step-000003"
            r"[\s\S]*resumed from \S*step-000002 at step 2")


def metrics_of_this_start_only(case_dir: Path, result) -> None:
    out = case_dir / "out"
    assert [json.loads(ln)["step"] for ln in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert (out / "metrics.before-restart.jsonl").read_text() == EARLIER_METRICS


def full_disk_left_the_first_checkpoint(case_dir: Path, result) -> None:
    """What the tmpfs held when the run ended (copied out by the wrapper): no partial checkpoint, the
    first one complete and intact."""
    from rlvr.trainers.checkpoint import manifest_problems

    ck = case_dir / "after" / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["step-000001"], sorted(ck.iterdir())
    assert manifest_problems(ck / "step-000001") == []


# What a start that was interrupted at step 5, before any checkpoint, left behind.
EARLIER_METRICS = "".join(json.dumps({"step": s, "loss": 99.0}) + "\n" for s in range(1, 6))
# A tmpfs over out/ that holds the start of the run and its first checkpoint, not the second one.
FULL_DISK_KB = 540  # the start ~80 KB, a checkpoint ~272 KB, curves.png ~56 KB
FULL_DISK = ["unshare", "--mount", "--map-root-user", "sh", "-c",
             f'mount -t tmpfs -o size={FULL_DISK_KB}k tmpfs out && {{ "$@"; rc=$?; cp -a out after; exit $rc; }}',
             "sh"]
RESUME = ["train", "c.yaml", "--resume"]

CASES = [
    Case("checkpoint-trainer-state-truncated", RESUME, {"out": damaged(truncate("trainer_state.json"))},
         exit=0, error=None, output=fell_back(r"trainer_state\.json has \d+ bytes, the manifest says \d+"),
         check=resumed_from_step_2, timeout=180),
    Case("checkpoint-shard-deleted", RESUME, {"out": damaged(delete(SHARD))},
         exit=0, error=None, output=fell_back(re.escape(SHARD) + " is missing"),
         check=resumed_from_step_2, timeout=180),
    Case("checkpoint-rng-truncated", RESUME, {"out": damaged(truncate("rng/rank0.pt"))},
         exit=0, error=None, output=fell_back(r"rng/rank0\.pt has \d+ bytes, the manifest says \d+"),
         check=resumed_from_step_2, timeout=180),
    Case("checkpoint-model-states-zeroed", RESUME, {"out": damaged(zero(SHARD))},
         exit=0, error=None, output=fell_back(re.escape(SHARD) + " does not match its checksum"),
         check=resumed_from_step_2, timeout=180),
    Case("checkpoint-all-damaged", RESUME,
         {"out": damaged(zero(SHARD, 1), delete("model.safetensors", 2), truncate("trainer_state.json", 3))},
         error=r"out/checkpoints: no intact checkpoint to resume from \(3 damaged; the newest, step-000003: "
               r"trainer_state\.json has \d+ bytes", timeout=180),
    Case("disk-full-at-second-checkpoint", ["train", "c.yaml"],
         {"c.yaml": CONFIG, "rows.jsonl": ROWS, "out": lambda d: (d / "out").mkdir()},
         wrap=FULL_DISK, exit=1,
         error=r"^rlvr: error: no space left on device writing \S*out/checkpoints/\.tmp-step-000002 "
               r"\(\d+\.\d MB free\)$",
         check=full_disk_left_the_first_checkpoint, timeout=180),
    Case("rerun-after-interrupt-starts-new-metrics", ["train", "c.yaml", "trainer.max_steps=2"],
         {"c.yaml": CONFIG, "rows.jsonl": ROWS, "out/metrics.jsonl": EARLIER_METRICS},
         exit=0, error=None, output=r"metrics\.jsonl was renamed to metrics\.before-restart\.jsonl",
         check=metrics_of_this_start_only, timeout=180),
]
