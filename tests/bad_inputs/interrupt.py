"""Ctrl-C during an RL run: the terminal sends SIGINT to the whole foreground process group, so the
verifier pool's workers get it too. The run stops with `rlvr: interrupted` (exit 130) and nothing else:
no worker's KeyboardInterrupt traceback."""
from tests.bad_inputs import Case

GRPO = ["train", "{dir}/c.yaml", "model.name={model}", "logging.out_dir={dir}/run"]
# A tiny GRPO run long enough to be interrupted in its steps; two verifier workers.
GRPO_YAML = """\
kind: rl
data:
  source: arith
  arith: {train_size: 64, test_size: 8}
  eval_samples: 8
generation: {max_new_tokens: 4}
reward:
  verifiers: [{name: format, options: {pattern: '[0-4]'}}]
  workers: 2
trainer: {algorithm: grpo, max_steps: 1000, prompts_per_step: 4, samples_per_prompt: 2, minibatch_size: 8,
          micro_batch_size: 8, warmup_steps: 0, eval_every: 0, eval_samples: 8, save_every: 0}
deepspeed: {stage: 0}
logging: {log_every: 1, progress: true, tensorboard: false}  # the bar says when steps run
"""


def _one_line(case_dir, result) -> None:
    """The parent's own words on stderr: `rlvr: interrupted`, once."""
    assert result.stderr.count("rlvr: interrupted") == 1, result.stderr[-3000:]


CASES = [
    Case("interrupt-rl-run", GRPO, {"c.yaml": GRPO_YAML}, exit=130, error=None, interrupt_on=r"\| 2/1000 \[",
         output=r"(?m)^rlvr: interrupted$", timeout=120, check=_one_line, slow=True),
]
