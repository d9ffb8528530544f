"""`rlvr quickstart [--out DIR] [--seed N] [--digits N] [--operands N] [--ops OPS]`."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "quickstart", help="the whole pipeline on a built-in task, nothing to download",
        description="Build a tiny model, SFT it on integer arithmetic, and evaluate it on held-out problems. "
                    "Writes summary.json, report.md and curves to --out.",
    )
    p.add_argument("--out", default="runs/quickstart", help="output folder (default runs/quickstart)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the model (default 0)")
    p.add_argument("--operands", type=int, default=2, help="numbers per problem (default 2)")
    p.add_argument("--digits", type=int, default=2, help="digits per number (default 2)")
    p.add_argument("--ops", default="+", help="operators to draw from, any of + - * (default +)")
    p.add_argument("--sft-steps", type=int, default=1000, help="SFT optimizer steps (default 1000)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted quickstart in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlvr import quickstart

    summary = quickstart.run(Path(args.out), seed=args.seed, operands=args.operands, digits=args.digits,
                             ops=args.ops, sft_steps=args.sft_steps, resume=args.resume)
    print((Path(args.out) / "report.md").read_text())
    print(f"[rlvr] summary: {Path(args.out) / 'summary.json'}  sft_accuracy={summary['sft_accuracy']:.3f}")
    return 0
