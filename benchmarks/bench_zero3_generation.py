"""Generation under ZeRO-3 on 2 ranks: the weights gathered once per generate() call against once per
decoded token (`generation.gather_weights`), measured in the same run.

Each rank holds half of every weight. Without gathering, every forward pass of the decode loop all-gathers
each layer's weights from the other rank, layer by layer, token by token; with it, the whole model is
gathered once (DeepSpeed's `unwrap_model_for_generation`), decoded locally, and released.

    .venv/bin/python benchmarks/bench_zero3_generation.py [--hidden 256] [--layers 4] [--prompts 16]
Two ranks are started as real processes (gloo on CPU; the same code on GPUs uses NCCL); each builds the
same tiny Llama, wraps it in a ZeRO-3 DeepSpeed engine through rlvr's own code, and samples with rlvr's hf
engine, with a seeded sampler, so both ways must draw the very same tokens (checked: `identical_samples`).
Writes zero3_generation.json and .md into --out (default benchmarks/results).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def rank_main(args: argparse.Namespace) -> None:
    import torch

    from rlvr import distributed as D
    from rlvr.config import DeepSpeedConfig, GenerationConfig, TinyModelConfig
    from rlvr.generation.base import SamplingParams
    from rlvr.models import build_tiny_model, load_model, load_tokenizer
    from rlvr.trainers.engines import BatchPlan, deepspeed_config, hf_zero3_context, make_engine
    from rlvr.trainers.zero3 import generation_engine

    torch.set_num_threads(1)
    device = D.init()
    folder = Path(args.workdir) / "model"
    if D.is_main():
        build_tiny_model(TinyModelConfig(hidden_size=args.hidden, num_layers=args.layers, num_heads=4,
                                         intermediate_size=4 * args.hidden, max_position_embeddings=256), folder)
    D.barrier()
    tokenizer = load_tokenizer(str(folder))
    ds = deepspeed_config(DeepSpeedConfig(stage=3), BatchPlan.make(2, 1, 2), 1.0, "float32")
    zero3 = hf_zero3_context(ds)  # noqa: F841 - alive while the model loads: it loads partitioned
    engine = make_engine(load_model(str(folder), "float32"), ds, 1e-5, [0.9, 0.95], 0.0, 0, 10, 1.0)
    prompts = [f"{a}+{b}=" for a, b in zip(range(10, 10 + args.prompts), range(50, 50 + args.prompts))]
    sampling = SamplingParams(temperature=1.0, max_new_tokens=args.tokens, seed=1234 + D.rank())
    out: dict = {}
    drawn = {}
    for gather in (False, True, False, True):  # interleaved: drift on a shared machine hits both alike
        gen = generation_engine(engine, tokenizer, GenerationConfig(batch_size=256, gather_weights=gather),
                                seed=0, device=device)
        D.barrier()
        start = time.perf_counter()
        samples = gen.generate(prompts, args.samples, sampling)
        D.barrier()
        seconds = time.perf_counter() - start
        (tokens,) = D.all_sum([float(sum(len(s.response_ids) for s in samples))])
        key = "once_per_call" if gather else "per_token"
        out.setdefault(key, []).append({"seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds})
        drawn.setdefault(key, [s.response_ids for s in samples])
    (same,) = D.all_sum([float(drawn["per_token"] == drawn["once_per_call"])])
    out["identical_samples"] = same == D.world_size()
    if D.is_main():
        Path(args.result).write_text(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--prompts", type=int, default=16, help="prompts per rank")
    p.add_argument("--samples", type=int, default=4, help="samples per prompt")
    p.add_argument("--tokens", type=int, default=32, help="new tokens per sample (EOS is rare in a random model)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for zero3_generation.json and .md")
    p.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rank:
        return rank_main(args)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])  # free once this socket closes, before rank 0 listens on it
    with tempfile.TemporaryDirectory() as work:
        result = Path(work) / "result.json"
        extra = ["--hidden", str(args.hidden), "--layers", str(args.layers), "--prompts", str(args.prompts),
                 "--samples", str(args.samples), "--tokens", str(args.tokens)]
        procs = []
        for r in range(2):
            env = {**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                   "MASTER_PORT": port, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
            procs.append(subprocess.Popen([sys.executable, __file__, "--rank", "--workdir", work, "--result",
                                           str(result), *extra], env=env))
        if any(proc.wait() for proc in procs):
            raise SystemExit("a rank failed")
        runs = json.loads(result.read_text())
    identical = runs.pop("identical_samples")
    best = {k: max(r["tokens_per_second"] for r in v) for k, v in runs.items()}
    report = {"setup": vars(args) | {"ranks": 2, "backend": "gloo (CPU)"}, "runs": runs,
              "tokens_per_second": best, "speedup": best["once_per_call"] / best["per_token"],
              "identical_samples": identical}
    for k in ("rank", "workdir", "result", "out"):
        report["setup"].pop(k)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "zero3_generation.json").write_text(json.dumps(report, indent=1) + "\n")
    a = report["setup"]
    md = (f"# ZeRO-3 generation on 2 ranks: weights gathered once per call vs per token\n\n"
          f"Tiny Llama (hidden {a['hidden']}, {a['layers']} layers), {a['prompts']} prompts x {a['samples']} "
          f"samples per rank, {a['tokens']} new tokens, 2 CPU ranks (gloo), one thread each; best of two "
          f"interleaved runs each.\n\n| generation.gather_weights | tokens/s (both ranks) |\n|---|---|\n"
          f"| false (gathered per token, the old behaviour) | {best['per_token']:.0f} |\n"
          f"| true (once per generate call) | {best['once_per_call']:.0f} |\n\n"
          f"Speed-up: **{report['speedup']:.1f}x**. Both ways drew the same tokens from the same seed: "
          f"{identical}.\n")
    (args.out / "zero3_generation.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
