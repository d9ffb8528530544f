"""Numbers out of range, a data row too big to tokenize, and held-out accuracy that was not held out."""
from pathlib import Path

from tests.bad_inputs import Case

ROWS = "".join(f'{{"prompt": "{a}+{a}", "response": "{2 * a}", "reference": "{2 * a}"}}\n'
               for a in range(1, 5))
# A one-layer model on a local file; everything printed is the log (no progress bar).
SFT = """kind: sft
model: {name: tiny, tiny: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}}
data: {source: rows.jsonl}
generation: {max_new_tokens: 4}
trainer: {max_steps: 1, batch_size: 2, micro_batch_size: 2, eval_every: 0, save_every: 0, warmup_steps: 0,
          max_seq_len: 64}
logging: {out_dir: out, log_every: 1, progress: false, tensorboard: false}
"""
# 50 MB on one line: tokenized whole, it took about 20 GB before the prefix cut.
HUGE_CHARS = 50_000_000


def huge_prompt(case_dir: Path) -> None:
    with open(case_dir / "rows.jsonl", "w") as f:
        f.write(ROWS)
        f.write('{"prompt": "' + "1+" * (HUGE_CHARS // 2) + '", "response": "2"}\n')


def config(*overrides: str) -> list[str]:
    return ["train", "c.yaml", *overrides]


CASES = [
    # Range checks: one line naming the key, before any model is built.
    Case("range-negative-lr", config("trainer.lr=-1e-3"), {"c.yaml": SFT, "rows.jsonl": ROWS},
         error=r"trainer\.lr: expected a number above 0, got -0\.001", timeout=30),
    Case("range-batch-size-0", config("trainer.batch_size=0"), {"c.yaml": SFT, "rows.jsonl": ROWS},
         error=r"trainer\.batch_size: expected 1 or more, got 0", timeout=30),
    Case("range-max-steps-0", config("trainer.max_steps=0"), {"c.yaml": SFT, "rows.jsonl": ROWS},
         error=r"trainer\.max_steps: expected 1 or more, got 0", timeout=30),
    # A batch 250 times the (carved) training set: every row 250 times in each step.
    Case("range-batch-over-data", config("trainer.batch_size=750", "trainer.micro_batch_size=750"),
         {"c.yaml": SFT, "rows.jsonl": ROWS},
         error=r"trainer\.batch_size: 750 rows per step, but rows\.jsonl has 3 training rows",
         unchanged=("rows.jsonl",), timeout=60),
    # One 50 MB prompt: refused in one line naming the row, in memory bounded by max_seq_len.
    Case("data-row-50mb-prompt", config(), {"c.yaml": SFT, "rows.jsonl": huge_prompt},
         error=r"rows\.jsonl: a prompt alone has 64 tokens or more, .* trainer\.max_seq_len=64: '1\+1\+",
         env={"HF_DATASETS_CACHE": "{dir}/hf-cache"}, max_rss_mb=2500, timeout=120),
    # No eval source for a local file: the held-out rows are carved out of it and never trained on.
    Case("heldout-local-file", config(), {"c.yaml": SFT, "rows.jsonl": ROWS}, exit=0, error=None,
         output=r"data: rows\.jsonl has no separate data\.eval_source: 1 of its 4 rows .*held out",
         unchanged=("rows.jsonl",), timeout=180, slow=True),
]
