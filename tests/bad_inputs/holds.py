"""Bad input that rlvr already answered in one line before the reliability issue: kept so it stays so."""
from tests.bad_inputs import Case

ROWS = "".join('{"prompt": "%d+%d", "response": "%d"}\n' % (a, a, 2 * a) for a in range(1, 5))
# A run that never ends by itself: one-layer model, four rows, no checkpoints, nothing on the console.
SFT = """kind: sft
model: {name: tiny, tiny: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}}
data: {source: DATA, eval_source: DATA}
trainer: {max_steps: 1000000, batch_size: 2, micro_batch_size: 2, eval_every: 0, save_every: 0, warmup_steps: 0}
logging: {out_dir: out, log_every: 1, progress: false, tensorboard: false}
"""


def sft(data: str) -> str:
    return SFT.replace("DATA", data)


CASES = [
    Case("config-unknown-key", ["train", "c.yaml"], {"c.yaml": "kind: sft\nx: 1\n"},
         error=r"c\.yaml: unknown key 'x'", unchanged=("c.yaml",)),
    Case("config-missing-file", ["train", "nope.yaml"], error=r"nope\.yaml"),
    Case("config-bad-yaml", ["train", "c.yaml"], {"c.yaml": "kind: sft\nmodel: [\n"}, error=r"c\.yaml"),
    Case("config-bad-override", ["train", "c.yaml", "trainer.lr=fast"], {"c.yaml": "kind: sft\n"},
         error=r"trainer\.lr"),
    Case("data-file-missing", ["train", "c.yaml"], {"c.yaml": sft("rows.jsonl")},
         error=r"data file not found: rows\.jsonl"),
    Case("data-row-not-json", ["train", "c.yaml"],
         {"c.yaml": sft("rows.jsonl"), "rows.jsonl": '{"prompt": "1+1", "response": "2"}\n{"prompt": "2+2"\n'},
         error=r"rows\.jsonl line 2: not valid JSON", unchanged=("rows.jsonl",)),
    Case("data-row-missing-field", ["train", "c.yaml"],
         {"c.yaml": sft("rows.jsonl"), "rows.jsonl": '{"prompt": "1+1", "response": "2"}\n{"prompt": "2+2"}\n'},
         error=r"rows\.jsonl line 2: missing field 'response'", unchanged=("rows.jsonl",)),
    # Ctrl-C in the first training step: one line, exit 130, the data untouched.
    Case("sft-ctrl-c", ["train", "c.yaml"], {"c.yaml": sft("rows.jsonl"), "rows.jsonl": ROWS},
         exit=130, error=None, output=r"(?m)^rlvr: interrupted$", interrupt_on=r"\[rlvr\] deepspeed:",
         unchanged=("rows.jsonl",), timeout=180),
]
