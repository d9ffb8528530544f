"""`rlvr train CONFIG [key=value ...] [--nproc N] [--hostfile FILE] [--include|--exclude SPEC] [--resume]`.

More than one rank goes through the DeepSpeed launcher (deepspeed/launcher/runner.py). This module builds
its command line, hands it the GPUs CUDA_VISIBLE_DEVICES lists, and, for a hostfile run, writes the
environment file through which the launcher carries rlvr's variables to the other nodes.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from rlvr.config import load_config
from rlvr.errors import UserError

# What a rank reads from its environment, besides what the launcher sets: rlvr's own variables, the
# Hugging Face caches and offline switches, thread counts, torch/vLLM/triton settings, the collective
# libraries' network settings (DeepSpeed forwards NCCL_* only when the launching machine has a GPU),
# experiment trackers. CUDA_VISIBLE_DEVICES, PATH, LD_LIBRARY_PATH describe the launching machine and stay.
FORWARD_PREFIXES = ("RLVR_", "HF_", "HUGGING_FACE_", "TRANSFORMERS_", "TOKENIZERS_", "OMP_", "MKL_",
                    "TORCH_", "PYTORCH_", "VLLM_", "TRITON_", "NCCL_", "GLOO_", "WANDB_", "MLFLOW_")
FORWARD_NAMES = ("DS_ACCELERATOR",)
# Credentials stay behind: the launcher puts every forwarded value on the ssh command line, which any user
# of a node can read in its process list. Log in on the nodes, or write them in your own .deepspeed_env.
SECRET = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD)$")
# What DeepSpeed's MultiNodeRunner.add_export leaves unquoted; anything else it wraps in double quotes.
SHELL_SAFE = re.compile(r"[\w@%+=:,./-]*")
NODE_SPEC = re.compile(r"[^\s:@,]+(:\d+(,\d+)*)?")


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model from a YAML config (SFT now; RL, reward model, DPO by `kind`)",
        description="Train from a YAML config. Dotted KEY=VALUE overrides change any config value, e.g. "
                    "`rlvr train configs/sft_arith.yaml trainer.lr=3e-4 data.max_samples=200`.",
    )
    p.add_argument("config", help="YAML config file (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="DeepSpeed ranks per node (runs the DeepSpeed launcher; default 1, in-process; with "
                        "--hostfile every slot of every node). On one node the ranks take the first N GPUs "
                        "CUDA_VISIBLE_DEVICES lists")
    p.add_argument("--hostfile", help="DeepSpeed hostfile for multi-node runs (`host slots=N` lines; passed "
                                      "to the launcher)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--include", metavar="SPEC",
                       help="GPUs to run on, in the DeepSpeed launcher's syntax: host1:0,1@host2:2 (a host "
                            "without :slots means all of them; localhost without --hostfile). "
                            "Not with --nproc")
    which.add_argument("--exclude", metavar="SPEC",
                       help="GPUs to leave out, same syntax as --include. Not with --nproc")
    p.add_argument("--master_port", type=int,
                   help="rank 0's rendezvous port (default: a free one for a run on this machine, so that "
                        "runs side by side do not meet; the launcher's 29500 for a --hostfile run)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in the run folder")
    p.set_defaults(func=run)


def read_hostfile(path: str) -> dict[str, int]:
    """host -> slots, from DeepSpeed's hostfile format (`worker-0 slots=8`; `#` comments)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        # the launcher would warn and carry on with this machine alone: a one-node run nobody asked for
        raise UserError(f"--hostfile {path}: cannot read it ({e.strerror})") from None
    hosts: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"(\S+)\s+slots=(\d+)", line)
        if m is None or m.group(1) in hosts:
            problem = "a second line for the same host" if m else "expected `HOST slots=N`"
            raise UserError(f"--hostfile {path}, line {n}: {problem}, got {line!r}")
        hosts[m.group(1)] = int(m.group(2))
    if not hosts:
        raise UserError(f"--hostfile {path}: no `HOST slots=N` line")
    return hosts


def check_spec(flag: str, spec: str, hosts: dict[str, int] | None) -> None:
    """`--include/--exclude SPEC` names known hosts and slots, as the launcher will require. `hosts` is
    the hostfile's host -> slots; None without a hostfile, where the one host is localhost."""
    for node in spec.split("@"):
        if not NODE_SPEC.fullmatch(node):
            raise UserError(f"{flag} {spec}: expected HOST[:SLOT,...] joined by @, e.g. host1:0,1@host2, "
                            f"got {node!r}")
        host, _, slots = node.partition(":")
        if hosts is None and host != "localhost":
            raise UserError(f"{flag} {spec}: without --hostfile the one host is localhost, not {host!r}")
        if hosts is not None and host not in hosts:
            raise UserError(f"{flag} {spec}: {host!r} is not in the hostfile (it lists {', '.join(hosts)})")
        bad = [s for s in slots.split(",") if slots and hosts is not None and int(s) >= hosts[host]]
        if bad:
            raise UserError(f"{flag} {spec}: {host} has slots 0..{hosts[host] - 1}, not {','.join(bad)}")


def resource_flags(args: argparse.Namespace, environ: dict, cuda: bool) -> list[str]:
    """The launcher's flags that choose nodes and GPUs.

    --include/--exclude pass through (the launcher refuses them beside --num_gpus/--num_nodes). On one
    node with CUDA_VISIBLE_DEVICES set and the ranks on GPUs, `--nproc N` becomes --include of the first N
    GPUs it lists: --num_gpus N would make the launcher drop CUDA_VISIBLE_DEVICES and use GPUs 0..N-1."""
    spec = args.include or args.exclude
    if spec:
        flag = "--include" if args.include else "--exclude"
        if args.nproc is not None:
            raise UserError(f"--nproc cannot be combined with {flag} (the DeepSpeed launcher refuses "
                            f"--num_gpus beside it): list the GPUs in --include, e.g. localhost:0,1")
        check_spec(flag, spec, read_hostfile(args.hostfile) if args.hostfile else None)
        return [flag, spec]
    if args.hostfile:
        read_hostfile(args.hostfile)
        return [] if args.nproc is None else ["--num_gpus", str(args.nproc)]  # none: every slot
    nproc = args.nproc or 1
    visible = environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not (cuda and visible):
        return ["--num_gpus", str(nproc)]
    listed = [d.strip() for d in visible.split(",")]
    if nproc > len(listed):
        raise UserError(f"--nproc {nproc}: CUDA_VISIBLE_DEVICES={visible} lists {len(listed)} GPU(s); "
                        f"list more or start fewer ranks")
    if not all(d.isdigit() for d in listed[:nproc]):
        raise UserError(f"CUDA_VISIBLE_DEVICES={visible}: the DeepSpeed launcher takes GPU indices "
                        f"(e.g. 0,1), not UUIDs; list indices, or choose GPUs with --include")
    return ["--include", "localhost:" + ",".join(listed[:nproc])]


def launcher_command(args: argparse.Namespace, overrides: list[str], environ: dict, cuda: bool) -> list[str]:
    """The DeepSpeed launcher command for `args` (see resource_flags for the GPUs it picks)."""
    flags = resource_flags(args, environ, cuda)
    search = os.path.dirname(sys.executable) + os.pathsep + environ.get("PATH", "")
    exe = shutil.which("deepspeed", path=search)
    if exe is None:
        raise UserError("--nproc/--hostfile need the `deepspeed` launcher on PATH (pip install deepspeed)")
    cmd = [exe, "--no_local_rank"]
    if args.hostfile:
        cmd += ["--hostfile", args.hostfile]
    if args.master_port is not None:
        cmd += ["--master_port", str(args.master_port)]
    return cmd + flags + ["--module", "rlvr", "train", args.config, *overrides]


def ranks_use_cuda(environ: dict) -> bool:
    """Whether this machine's ranks will compute on GPUs: rlvr.devices' choice, made here in advance."""
    forced = environ.get("RLVR_DEVICE", "").strip()
    if forced:
        return forced.startswith("cuda")
    import torch

    return torch.cuda.is_available()


def forwarded(environ: dict) -> dict[str, str]:
    """The variables of this environment that the ranks on other nodes need too."""
    return {k: v for k, v in sorted(environ.items())
            if (k.startswith(FORWARD_PREFIXES) or k in FORWARD_NAMES) and not SECRET.search(k)}


def env_file_value(value: str) -> str:
    """The text after `KEY=` in a DeepSpeed env file that gives a node's shell exactly `value`.

    The launcher reads the file line by line (universal newlines), strips each value, and unless every
    character is SHELL_SAFE wraps it in double quotes, unescaped, into `export KEY="..."; ` on the command
    line of pdsh (the launcher rlvr uses), which turns %h %u %n %% into host, user, node rank, %. So: %
    doubles; inside the quotes \\ " $ ` are escaped; a line break closes the quotes for $'\\n' or $'\\r'
    (bash, zsh, ksh: the nodes' login shell); "" guards leading and trailing blanks from the strip."""
    value = value.replace("%", "%%")
    if SHELL_SAFE.fullmatch(value):
        return value
    text = re.sub(r'([\\"$`])', r"\\\1", value)
    text = text.replace("\n", "\"$'\\n'\"").replace("\r", "\"$'\\r'\"")
    return f'""{text}""' if text != text.strip() else text


def user_env_files(environ: dict, home: Path, cwd: Path) -> list[Path]:
    """The env files the launcher would read without rlvr's, in its order (later lines win):
    DS_ENV_FILE (default .deepspeed_env) joined to the home folder, then to the working folder."""
    name = environ.get("DS_ENV_FILE", ".deepspeed_env")
    found: list[Path] = []
    for folder in (home, cwd):
        path = folder / name
        if path.is_file() and path.resolve() not in [f.resolve() for f in found]:
            found.append(path)
    return found


def remote_env_text(environ: dict, user_files: list[Path]) -> str:
    """The env file rlvr hands the launcher (DS_ENV_FILE) for a hostfile run: the forwarded variables, then
    the lines of the user's own files, which win over ours (as the launcher lets any env file win over
    the variables it forwards): they are where a user says what differs on the nodes, and their values
    stay shell text, so `HF_HOME=$SCRATCH/hf` still expands on each node."""
    theirs: list[str] = []
    for path in user_files:
        for line in path.read_text().split("\n"):  # as the launcher splits it
            # blank lines and comments would stop the launcher (no `=`) or comment out the command
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                theirs.append(line)
    keys = {line.split("=", 1)[0].strip() for line in theirs}
    ours = [f"{k}={env_file_value(v)}" for k, v in forwarded(environ).items() if k not in keys]
    return "".join(line + "\n" for line in ours + theirs)


def launch(args: argparse.Namespace, overrides: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # N ranks x all cores each is many times slower
    visible = env.get("CUDA_VISIBLE_DEVICES", "").strip()
    # whether --nproc turns into an --include of the listed GPUs (torch is imported only to decide that)
    cuda = bool(visible) and not (args.hostfile or args.include or args.exclude) and ranks_use_cuda(env)
    if args.master_port is None and not args.hostfile:
        with socket.socket() as s:  # (rlvr.distributed has the same, but importing it imports torch)
            s.bind(("127.0.0.1", 0))
            args.master_port = s.getsockname()[1]
    cmd = launcher_command(args, overrides, env, cuda)
    if cuda:
        del env["CUDA_VISIBLE_DEVICES"]  # the --include carries it; the launcher would say it ignores it
        print(f"[rlvr] CUDA_VISIBLE_DEVICES={visible}: --include {cmd[cmd.index('--include') + 1]}",
              file=sys.stderr)
    if visible and args.hostfile:
        print(f"[rlvr] note: CUDA_VISIBLE_DEVICES={visible} does not apply to a --hostfile run: the "
              f"hostfile's slots and --include/--exclude choose the GPUs", file=sys.stderr)
    if not args.hostfile:
        return subprocess.call(cmd, env=env)
    # The launcher reads the file before it starts pdsh and puts the values on pdsh's command line, so a
    # private temporary file on this machine serves, and no credential the user adds is left behind.
    fd, env_file = tempfile.mkstemp(prefix="rlvr-deepspeed-env-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(remote_env_text(env, user_env_files(env, Path.home(), Path.cwd())))
        env["DS_ENV_FILE"] = env_file  # absolute: the launcher's join with ~ and with . gives it back as is
        return subprocess.call(cmd, env=env)
    finally:
        os.unlink(env_file)


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + (["trainer.resume=true"] if args.resume else [])
    if args.nproc is not None and args.nproc < 1:
        raise UserError(f"--nproc: expected a number of ranks >= 1, got {args.nproc}")
    cfg = load_config(args.config, overrides)  # fail here, before any rank starts
    launched = "LOCAL_RANK" in os.environ
    if not launched:  # a missing or corrupt model fails before the launcher, and before the run folder exists
        from rlvr.models import check_model

        check_model(cfg.model)
    if ((args.nproc or 1) > 1 or args.hostfile or args.include or args.exclude) and not launched:
        return launch(args, overrides)
    from rlvr.trainers import trainer_for

    summary = trainer_for(cfg).train()
    from rlvr import distributed as D

    if D.is_main():
        print(f"[rlvr] done: {summary}")
    return 0
