"""A lock left in torch's extension build folder by a run killed while DeepSpeed compiled an op.

torch takes `<build dir>/lock` on every load of a JIT-built op, built or not, and waits while it exists;
before rlvr kept DeepSpeed off its CPU shared-memory comm op, `init_distributed` loaded that op, so one
killed build made every later run wait forever without a word.
"""
from pathlib import Path

from tests.bad_inputs import Case

SFT = ["train", "{dir}/c.yaml", "trainer.max_steps=2", "logging.out_dir={dir}/run"]
# The smallest SFT that still trains: a couple of steps, a few seconds.
SFT_YAML = """\
kind: sft
model: {name: tiny, tiny: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}}
data:
  source: arith
  arith: {train_size: 64, test_size: 8}
  eval_samples: 8
generation: {max_new_tokens: 4}
trainer: {batch_size: 8, micro_batch_size: 8, warmup_steps: 0, eval_every: 0, save_every: 0,
          eval_loss_samples: 8}
deepspeed: {stage: 0}
logging: {log_every: 1, progress: false, tensorboard: false}
"""


def _no_build(case_dir: Path, result) -> None:
    """Nothing was compiled: the planted lock is all the extensions folder holds."""
    built = sorted(str(p.relative_to(case_dir)) for p in (case_dir / "ext").rglob("*") if p.is_file())
    assert built == ["ext/deepspeed_shm_comm/lock"], built


CASES = [
    Case("jit-lock-stale-shm-comm", SFT, {"c.yaml": SFT_YAML, "ext/deepspeed_shm_comm/lock": ""},
         exit=0, error=None, output=r"\[rlvr\] done", env={"TORCH_EXTENSIONS_DIR": "{dir}/ext"}, timeout=60,
         check=_no_build, slow=True),
]
