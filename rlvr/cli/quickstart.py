"""`rlvr quickstart [--task arith|code] [--out DIR] [--seed N] [--digits N] [--operands N] [--ops OPS]
[--algorithm A]`."""
from __future__ import annotations

import argparse
from pathlib import Path

CODE_SFT_STEPS, CODE_RL_STEPS = 300, 50  # rlvr.quickstart's (not imported here: the CLI starts fast)


def register(sub) -> None:
    p = sub.add_parser(
        "quickstart", help="the whole pipeline on a built-in task, nothing to download",
        description="Build a tiny model, SFT it on 1,000 worked integer-arithmetic problems, train it further "
                    "with RL on up to 8,000 problems (7,200 by default) rewarded by the math verifier, and "
                    "evaluate both on held-out problems. Writes summary.json, report.md and plots to --out. "
                    "--task code: the same with Python functions written from examples (pyfunc), rewarded "
                    "and judged by the code verifier running hidden asserts in the sandbox.",
    )
    p.add_argument("--task", default="arith", choices=["arith", "code"],
                   help="arith (sums, the math verifier; default) or code (pyfunc, the code verifier)")
    p.add_argument("--out", default="runs/quickstart", help="output folder (default runs/quickstart)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the model (default 0)")
    p.add_argument("--operands", type=int, default=None, help="arith: numbers per problem (default 2)")
    p.add_argument("--digits", type=int, default=None, help="arith: digits per number (default 2)")
    p.add_argument("--ops", default=None, help="arith: operators to draw from, any of + - * (default +)")
    p.add_argument("--sft-steps", type=int, default=None,
                   help=f"SFT optimizer steps (default 320; code {CODE_SFT_STEPS})")
    p.add_argument("--rl-steps", type=int, default=None,
                   help=f"RL steps (rollouts; default 300; code {CODE_RL_STEPS}; 0 skips RL)")
    p.add_argument("--rl-seconds", type=float, default=None,
                   help="also stop RL once it has run this many seconds (to compare algorithms at equal time)")
    p.add_argument("--algorithm", default="grpo", choices=["grpo", "dr_grpo", "rloo", "reinforce_pp", "ppo"],
                   help="RL estimator (default grpo; ppo trains a critic and a KL penalty to the SFT model)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted quickstart in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlvr import quickstart
    from rlvr.errors import UserError

    arith = {"operands": args.operands, "digits": args.digits, "ops": args.ops}
    if args.task == "code" and (given := [k for k, v in arith.items() if v is not None]):
        raise UserError(f"--{given[0]}: an arith option; --task code (pyfunc) has no operands, digits or ops")
    summary = quickstart.run(Path(args.out), seed=args.seed, sft_steps=args.sft_steps, rl_steps=args.rl_steps,
                             algorithm=args.algorithm, rl_seconds=args.rl_seconds, resume=args.resume,
                             task=args.task, **{k: v for k, v in arith.items() if v is not None})
    print((Path(args.out) / "report.md").read_text())
    figures = "  ".join(f"{k}={summary[k]:.3f}" for k in ("sft_accuracy", "rl_accuracy") if k in summary)
    print(f"[rlvr] summary: {Path(args.out) / 'summary.json'}  {figures}")
    return 0
