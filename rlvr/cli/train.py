"""`rlvr train CONFIG [key=value ...] [--nproc N] [--resume]`."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from rlvr.config import load_config
from rlvr.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model from a YAML config (SFT now; RL, reward model, DPO by `kind`)",
        description="Train from a YAML config. Dotted KEY=VALUE overrides change any config value, e.g. "
                    "`rlvr train configs/sft_arith.yaml trainer.lr=3e-4 data.max_samples=200`.",
    )
    p.add_argument("config", help="YAML config file (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--nproc", type=int, default=1,
                   help="DeepSpeed ranks on this machine (runs the DeepSpeed launcher; default 1, in-process)")
    p.add_argument("--hostfile", help="DeepSpeed hostfile for multi-node runs (passed to the launcher)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder")
    p.set_defaults(func=run)


def launcher_command(args: argparse.Namespace, overrides: list[str]) -> list[str]:
    exe = shutil.which("deepspeed", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    if exe is None:
        raise UserError("--nproc/--hostfile need the `deepspeed` launcher on PATH (pip install deepspeed)")
    cmd = [exe, "--no_local_rank"]
    if args.hostfile:
        cmd += ["--hostfile", args.hostfile]
    if args.nproc > 1 or not args.hostfile:
        cmd += ["--num_gpus", str(args.nproc)]
    return cmd + ["--module", "rlvr", "train", args.config, *overrides]


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + (["trainer.resume=true"] if args.resume else [])
    cfg = load_config(args.config, overrides)  # fail here, before any rank starts
    launched = "LOCAL_RANK" in os.environ
    if (args.nproc > 1 or args.hostfile) and not launched:
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")  # N ranks x all cores each is many times slower
        return subprocess.call(launcher_command(args, overrides), env=env)
    from rlvr.trainers import trainer_for

    summary = trainer_for(cfg).train()
    from rlvr import distributed as D

    if D.is_main():
        print(f"[rlvr] done: {summary}")
    return 0
