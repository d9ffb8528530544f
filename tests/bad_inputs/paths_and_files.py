"""Bad paths and files: model folders that are missing, not models or corrupt; empty, kind-less and
non-UTF-8 configs; data files that are empty or not rows of objects; --limit values that mean nothing.

Most fail before any model loads; the few that go through `rlvr train` stop before it builds anything.
"""
from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.bad_inputs import Case
from tests.conftest import REPO


@functools.cache
def _tiny_model() -> Path:
    """One tiny model folder for the cases that break a copy of it (built once, in this process)."""
    from rlvr.config import TinyModelConfig
    from rlvr.models import build_tiny_model

    out = Path(tempfile.mkdtemp(prefix="rlvr-bad-inputs-")) / "model"
    return Path(build_tiny_model(TinyModelConfig(hidden_size=16, num_layers=1, num_heads=2,
                                                 intermediate_size=32), out))


def _broken_copy(name: str, damage):
    def write(case_dir: Path) -> None:
        dst = case_dir / name
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(_tiny_model(), dst)
        damage(dst / "model.safetensors")
    return write


def _truncate(file: Path) -> None:
    os.truncate(file, file.stat().st_size - 100)  # a copy cut short (a full disk, an interrupted scp)


def _zero_header(file: Path) -> None:
    with open(file, "r+b") as f:
        f.write(bytes(64))


EVAL = ["eval", "--benchmark", "arith", "--limit", "2", "--out", "{dir}/eval"]
# Data files go through `rlvr eval` on a file benchmark: it reads them before it loads the model.
EVAL_FILE = ["eval", "--model", "{model}", "--verifier", "math", "--out", "{dir}/eval", "--benchmark"]
PROMPTS = {"p.txt": "2+2\n"}
GENERATE = {"g.yaml": "kind: generate\nmodel: {name: out/models/mine}\n", **PROMPTS}

CASES = [
    # ---- model paths ---------------------------------------------------------------------------
    # The README's stage-3 command, typed before the quickstart made the model it starts from.
    Case("readme-grpo-before-quickstart", ["train", str(REPO / "configs" / "grpo_arith.yaml")],
         error=r"no such model folder: runs/quickstart/sft/final .*rlvr quickstart",
         check=lambda d, res: not (d / "runs").exists() or pytest.fail("a run folder was left behind")),
    Case("train-model-folder-missing", ["train", "c.yaml"],
         {"c.yaml": "kind: sft\nmodel: {name: ./models/mine}\n"},
         error=r"model\.name: no such model folder: \./models/mine", unchanged=("c.yaml",)),
    Case("generate-model-folder-missing", ["generate", "g.yaml", "--prompts", "p.txt", "--out", "o.jsonl"],
         GENERATE, error=r"model\.name: no such model folder: out/models/mine", unchanged=("p.txt",)),
    Case("eval-model-folder-missing", ["eval", "--model", "./nope", *EVAL[1:]],
         error=r"model\.name: no such model folder: \./nope"),
    Case("eval-run-output-missing", ["eval", "--model", "runs/sft_arith/final", *EVAL[1:]],
         error=r"no such model folder: runs/sft_arith/final .*logging\.out_dir: runs/sft_arith"),
    Case("eval-folder-not-a-model", ["eval", "--model", "notes", *EVAL[1:]], {"notes/a.txt": "hello\n"},
         error=r"model\.name: notes is not an HF model folder: it has no config\.json"),
    Case("eval-model-is-a-file", ["eval", "--model", "notes.txt", *EVAL[1:]], {"notes.txt": "hello\n"},
         error=r"model\.name: notes\.txt is a file"),
    Case("eval-model-weights-truncated", ["eval", "--model", "broken", *EVAL[1:]],
         {"broken/model.safetensors": _broken_copy("broken", _truncate)},
         error=r"corrupt weights file broken/model\.safetensors: .*truncated"),
    Case("eval-model-weights-header-zeroed", ["eval", "--model", "broken", *EVAL[1:]],
         {"broken/model.safetensors": _broken_copy("broken", _zero_header)},
         error=r"corrupt weights file broken/model\.safetensors: no valid header"),
    # No network at run time: a hub id that is not in the cache is one line, not a retry loop's traceback.
    Case("eval-hub-id-not-cached-offline", ["eval", "--model", "nobody-here/no-such-model", *EVAL[1:]],
         env={"HF_HUB_OFFLINE": "1", "HF_HOME": "{dir}/hf"},
         error=r"'nobody-here/no-such-model' is not a local folder.*not in the Hugging Face cache"),
    Case("eval-model-neither-path-nor-hub-id", ["eval", "--model", "my model!", *EVAL[1:]],
         error=r"'my model!' is neither a local folder nor a hub model id"),

    # ---- config files --------------------------------------------------------------------------
    Case("config-empty-file", ["train", "c.yaml"], {"c.yaml": ""},
         error=r"c\.yaml: the file is empty", unchanged=("c.yaml",)),
    Case("config-only-comments", ["train", "c.yaml"], {"c.yaml": "# kind: rl\n"},
         error=r"c\.yaml: the file is empty"),
    Case("config-no-kind", ["train", "c.yaml"], {"c.yaml": "model: {name: tiny}\n"},
         error=r"c\.yaml: no `kind:` key"),
    Case("config-not-utf8", ["train", "c.yaml"], {"c.yaml": b"kind: sft\n# caf\xe9 au lait\n"},
         error=r"c\.yaml line 2: not UTF-8 text", unchanged=("c.yaml",)),
    Case("generate-config-not-utf8", ["generate", "g.yaml", "--prompts", "p.txt", "--out", "o.jsonl"],
         {"g.yaml": b"kind: generate\nmodel: {name: \xff}\n", **PROMPTS}, error=r"g\.yaml line 2: not UTF-8"),

    # ---- eval --limit --------------------------------------------------------------------------
    Case("eval-limit-zero", ["eval", "--model", "{model}", "--benchmark", "arith", "--limit", "0"],
         error=r"--limit: expected a number of problems >= 1, got 0"),
    Case("eval-limit-negative", ["eval", "--model", "{model}", "--benchmark", "arith", "--limit", "-3"],
         error=r"--limit: expected a number of problems >= 1, got -3"),

    # ---- data files ----------------------------------------------------------------------------
    # The bad row is on the file's line 4: blank lines count.
    Case("data-line-number-counts-blank-lines", [*EVAL_FILE, "d.jsonl"],
         {"d.jsonl": '{"prompt": "1+1", "reference": "2"}\n\n\n{"prompt": 5, "reference": "2"}\n'},
         error=r"d\.jsonl line 4: field 'prompt'", unchanged=("d.jsonl",)),
    Case("data-json-array-of-numbers", [*EVAL_FILE, "d.json"], {"d.json": "[1, 2, 3]\n"},
         error=r"d\.json element 1: expected a JSON object, got int 1", unchanged=("d.json",)),
    Case("data-json-array-of-strings", [*EVAL_FILE, "d.json"],
         {"d.json": '[{"prompt": "1+1", "reference": "2"}, "a"]'},
         error=r"d\.json element 2: expected a JSON object, got str \"a\""),
    Case("data-json-one-object-over-lines", [*EVAL_FILE, "d.json"],
         {"d.json": '{\n  "data": [{"prompt": "1+1", "reference": "2"}]\n}\n'},
         error=r"d\.json: one JSON object over several lines \(keys: data\)"),
    Case("data-empty-file", [*EVAL_FILE, "d.jsonl"], {"d.jsonl": ""},
         error=r"d\.jsonl: no rows in the file", unchanged=("d.jsonl",)),
    Case("data-only-blank-lines-train", ["train", "c.yaml", "model.name={model}"],
         {"c.yaml": "kind: sft\ndata: {source: d.jsonl}\nlogging: {out_dir: run, progress: false}\n",
          "d.jsonl": "\n\n  \n"},
         error=r"d\.jsonl: no rows in the file", unchanged=("d.jsonl",)),
    Case("generate-prompts-empty-jsonl", ["generate", "g.yaml", "--prompts", "p.jsonl", "--out", "o.jsonl"],
         {"g.yaml": "kind: generate\nmodel: {name: tiny}\n", "p.jsonl": "\n"},
         error=r"p\.jsonl: no rows in the file"),
]
