"""The DeepSpeed launch: which GPUs --nproc/--include/--exclude/CUDA_VISIBLE_DEVICES choose, what a hostfile
run carries to the other nodes (and how values survive the trip), and a real two-node run through the
launcher's pdsh path, with stand-ins for ssh and pdsh that start each "node" here in an empty environment.
"""
from __future__ import annotations

import getpass
import inspect
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.cli import build_parser
from rlvr.cli.train import env_file_value, forwarded, launcher_command, ranks_use_cuda, remote_env_text
from rlvr.cli.train import user_env_files
from rlvr.errors import UserError
from rlvr.trainers.metrics import read_metrics
from tests.conftest import REPO, SMALL_SFT, run_rlvr

CONFIG = str(REPO / "configs/sft_arith.yaml")
TAIL = ["--module", "rlvr", "train", CONFIG, "trainer.max_steps=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(*flags: str, env: dict | None = None, cuda: bool = False) -> list[str]:
    args = build_parser().parse_args(["train", CONFIG, "trainer.max_steps=1", *flags])
    return launcher_command(args, args.overrides, {"PATH": os.environ["PATH"], **(env or {})}, cuda)


def launcher_view(cmd: list[str], pool: dict[str, int]) -> dict[str, list[int]]:
    """What DeepSpeed's runner makes of `cmd` with `pool` (host -> slots): its argument parser, its rule
    against --include/--exclude beside --num_gpus/--num_nodes (runner.main), and its resource filters."""
    from deepspeed.launcher import runner

    a = runner.parse_args(cmd[1:])
    if (a.num_nodes >= 0 or a.num_gpus >= 0) and (a.include or a.exclude):
        raise ValueError("Cannot specify num_nodes/gpus with include/exclude")
    active = runner.parse_inclusion_exclusion(dict(pool), a.include, a.exclude)
    return dict(runner.apply_num_nodes_and_gpus(active, a.num_nodes, a.num_gpus))


def user_error(*flags: str, env: dict | None = None, cuda: bool = False) -> str:
    with pytest.raises(UserError) as e:
        command(*flags, env=env, cuda=cuda)
    assert "\n" not in str(e.value)
    return str(e.value)


# ---- GPUs on one node -------------------------------------------------------------------------------
def test_nproc_without_cuda_visible_devices_takes_the_first_gpus():
    cmd = command("--nproc", "2", cuda=True)
    assert cmd[0].endswith("deepspeed") and cmd[1:4] == ["--no_local_rank", "--num_gpus", "2"]
    assert cmd[4:] == TAIL
    assert launcher_view(cmd, {"localhost": 8}) == {"localhost": [0, 1]}


def test_nproc_takes_the_first_gpus_cuda_visible_devices_lists():
    cmd = command("--nproc", "2", env={"CUDA_VISIBLE_DEVICES": "3,1,7"}, cuda=True)
    assert "--num_gpus" not in cmd  # with it the launcher would drop CUDA_VISIBLE_DEVICES for GPUs 0, 1
    assert cmd[1:4] == ["--no_local_rank", "--include", "localhost:3,1"] and cmd[4:] == TAIL
    assert launcher_view(cmd, {"localhost": 8}) == {"localhost": [1, 3]}


def test_nproc_beyond_cuda_visible_devices_is_one_line():
    msg = user_error("--nproc", "3", env={"CUDA_VISIBLE_DEVICES": "2,5"}, cuda=True)
    assert "--nproc 3" in msg and "CUDA_VISIBLE_DEVICES=2,5 lists 2 GPU(s)" in msg
    msg = user_error("--nproc", "2", env={"CUDA_VISIBLE_DEVICES": "GPU-8f2a,GPU-11c0"}, cuda=True)
    assert "GPU indices" in msg


def test_cpu_ranks_keep_num_gpus_whatever_cuda_visible_devices_says():
    for env in ({}, {"CUDA_VISIBLE_DEVICES": "0"}):
        cmd = command("--nproc", "2", env=env, cuda=False)
        assert cmd[1:4] == ["--no_local_rank", "--num_gpus", "2"] and cmd[4:] == TAIL


def test_ranks_use_cuda_as_rlvr_devices_will_choose():
    import torch

    assert not ranks_use_cuda({"RLVR_DEVICE": "cpu"}) and ranks_use_cuda({"RLVR_DEVICE": "cuda:1"})
    assert ranks_use_cuda({}) == torch.cuda.is_available()


def test_nproc_below_one_is_one_line():
    args = build_parser().parse_args(["train", CONFIG, "--nproc", "0"])
    with pytest.raises(UserError, match="--nproc: expected a number of ranks >= 1, got 0"):
        args.func(args)


def test_include_and_exclude_pass_through_and_refuse_nproc():
    cmd = command("--include", "localhost:1,2")
    assert cmd[1:4] == ["--no_local_rank", "--include", "localhost:1,2"] and cmd[4:] == TAIL
    assert launcher_view(cmd, {"localhost": 4}) == {"localhost": [1, 2]}
    cmd = command("--exclude", "localhost:0")
    assert cmd[1:4] == ["--no_local_rank", "--exclude", "localhost:0"]
    assert launcher_view(cmd, {"localhost": 4}) == {"localhost": [1, 2, 3]}
    msg = user_error("--include", "localhost:0", "--nproc", "1")
    assert "--nproc cannot be combined with --include" in msg
    assert "the one host is localhost, not 'node1'" in user_error("--exclude", "node1:0")
    assert "expected HOST[:SLOT,...]" in user_error("--include", "localhost:0,a")


def test_include_with_exclude_is_refused_by_the_cli():
    proc = run_rlvr("train", CONFIG, "--include", "localhost:0", "--exclude", "localhost:1")
    assert proc.returncode == 2 and "not allowed with argument --include" in proc.stderr


# ---- several nodes ----------------------------------------------------------------------------------
@pytest.fixture
def hostfile(tmp_path) -> str:
    path = tmp_path / "hostfile"
    path.write_text("# two nodes\nworker-0 slots=4\n\nworker-1 slots=2\n")
    return str(path)


def test_hostfile_runs_every_slot_or_nproc_per_node(hostfile):
    cmd = command("--hostfile", hostfile, env={"CUDA_VISIBLE_DEVICES": "3"}, cuda=True)
    assert cmd[1:4] == ["--no_local_rank", "--hostfile", hostfile] and cmd[4:] == TAIL
    pool = {"worker-0": 4, "worker-1": 2}
    assert launcher_view(cmd, pool) == {"worker-0": [0, 1, 2, 3], "worker-1": [0, 1]}
    cmd = command("--hostfile", hostfile, "--nproc", "2")
    assert cmd[4:6] == ["--num_gpus", "2"]
    assert launcher_view(cmd, pool) == {"worker-0": [0, 1], "worker-1": [0, 1]}


def test_hostfile_with_include_and_exclude(hostfile):
    pool = {"worker-0": 4, "worker-1": 2}
    cmd = command("--hostfile", hostfile, "--include", "worker-0:0,2@worker-1")
    assert cmd[4:6] == ["--include", "worker-0:0,2@worker-1"] and "--num_gpus" not in cmd
    assert launcher_view(cmd, pool) == {"worker-0": [0, 2], "worker-1": [0, 1]}
    cmd = command("--hostfile", hostfile, "--exclude", "worker-1")
    assert launcher_view(cmd, pool) == {"worker-0": [0, 1, 2, 3]}
    assert "'worker-9' is not in the hostfile (it lists worker-0, worker-1)" in user_error(
        "--hostfile", hostfile, "--include", "worker-9")
    assert "worker-1 has slots 0..1, not 2" in user_error("--hostfile", hostfile, "--include", "worker-1:2")


def test_a_hostfile_the_launcher_would_skip_is_one_line(tmp_path):
    # the launcher warns about a missing hostfile and runs on this machine alone
    assert "cannot read it" in user_error("--hostfile", str(tmp_path / "none"))
    bad = tmp_path / "bad"
    bad.write_text("worker-0 slots=4\nworker-1 4\n")
    assert "line 2: expected `HOST slots=N`" in user_error("--hostfile", str(bad))


# ---- the environment of the other nodes --------------------------------------------------------------
ENVIRON = {
    "RLVR_DATA_DIR": "/data/rlvr", "RLVR_CACHE": "/shared/cache", "HF_HOME": "/shared/hf",
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false", "WANDB_PROJECT": "my project", "NCCL_SOCKET_IFNAME": "eth0",
    "HF_TOKEN": "hf_secret", "WANDB_API_KEY": "secret", "CUDA_VISIBLE_DEVICES": "0,1", "PATH": "/usr/bin",
    "PYTHONPATH": "/repo", "HOME": "/root", "DS_ENV_FILE": "my_env",
}


def test_forwarded_variables():
    assert list(forwarded(ENVIRON)) == [  # sorted; no credentials, nothing of this machine's own
        "HF_DATASETS_OFFLINE", "HF_HOME", "HF_HUB_OFFLINE", "NCCL_SOCKET_IFNAME", "OMP_NUM_THREADS",
        "RLVR_CACHE", "RLVR_DATA_DIR", "TOKENIZERS_PARALLELISM", "TRANSFORMERS_OFFLINE", "WANDB_PROJECT"]


def test_the_users_env_files_are_merged_and_win(tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    (home / "my_env").write_text("HF_HOME=$SCRATCH/hf\nFOO=home\n")
    (cwd / "my_env").write_text("# per-node settings\n\nFOO=cwd\nOMP_NUM_THREADS=4\n")
    (cwd / ".deepspeed_env").write_text("IGNORED=1\n")  # DS_ENV_FILE names the files the launcher reads
    files = user_env_files(ENVIRON, home, cwd)
    assert files == [home / "my_env", cwd / "my_env"]
    assert remote_env_text(ENVIRON, files).splitlines() == [
        "HF_DATASETS_OFFLINE=1", "HF_HUB_OFFLINE=1", "NCCL_SOCKET_IFNAME=eth0", "RLVR_CACHE=/shared/cache",
        "RLVR_DATA_DIR=/data/rlvr", "TOKENIZERS_PARALLELISM=false", "TRANSFORMERS_OFFLINE=1",
        'WANDB_PROJECT=my project',
        # theirs, as they wrote them, after ours (the launcher lets the later line win): without ours
        "HF_HOME=$SCRATCH/hf", "FOO=home", "FOO=cwd", "OMP_NUM_THREADS=4"]
    assert user_env_files({}, home, cwd) == [cwd / ".deepspeed_env"]
    assert user_env_files({"DS_ENV_FILE": str(home / "my_env")}, home, cwd) == [home / "my_env"]


TRICKY = {
    "RLVR_A": "/data/with space", "RLVR_B": 'say "hi" $HOME `id` \\n', "RLVR_C": "line 1\nline 2\r\nend",
    "RLVR_D": "  padded\t", "RLVR_E": "50% at %n on %h by %u, %%", "RLVR_F": "it's (x) & y; z | w > v",
    "RLVR_G": "", "RLVR_H": "plain-value_1.2:3,4@5=6+7", "RLVR_I": "naïve 🚀",
}


def fake_pdsh_format(arg: str, host: str, rank: int) -> str:
    """pdsh's expansion of one argument of the remote command (src/common/pipecmd.c, pipecmd_format_arg)."""
    out, i = [], 0
    while i < len(arg):
        if arg[i] == "%" and i + 1 < len(arg):
            nxt = arg[i + 1]
            out.append({"h": host, "u": getpass.getuser(), "n": str(rank), "%": "%"}.get(nxt, "%" + nxt))
            i += 2
        else:
            out.append(arg[i])
            i += 1
    return "".join(out)


def test_values_reach_the_nodes_shell_intact(tmp_path):
    """Each value goes through the launcher's own reading of the env file and its pdsh command (the
    exports argument), pdsh's % expansion, and a login shell with an empty environment."""
    from deepspeed.launcher import runner
    from deepspeed.launcher.multinode_runner import PDSHRunner

    env_file = tmp_path / "env"
    env_file.write_text(remote_env_text(TRICKY, []))
    args = runner.parse_args(["--hostfile", "h", "--module", "rlvr", "train", "x"])
    pdsh = PDSHRunner(args, "e30=")
    with open(env_file) as fd:  # what runner.main does with each line of the file
        for var in fd.readlines():
            key, val = var.split("=", maxsplit=1)
            pdsh.add_export(key, val)
    cmd, _, _ = pdsh.get_cmd({}, {"node-a": [0], "node-b": [0]})
    exports = cmd[cmd.index("-w") + 2]
    assert exports.startswith("export RLVR_A=")
    script = fake_pdsh_format(exports, "node-b", 1) + " exec env -0"
    out = subprocess.run(["env", "-i", "bash", "-c", script], capture_output=True, check=True)
    got = dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if item)
    assert {k: got.get(k) for k in TRICKY} == TRICKY


def test_env_file_values_are_plain_where_the_launcher_leaves_them_unquoted():
    assert env_file_value("/shared/hf") == "/shared/hf"
    assert env_file_value("a%b") == "a%%b"
    assert env_file_value('a "b"') == 'a \\"b\\"'
    assert env_file_value(" x") == '"" x""'
    assert env_file_value("1\n2") == "1\"$'\\n'\"2"


# ---- real launches ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_nproc_hands_the_listed_gpus_to_the_ranks(tmp_path):
    """`rlvr train --nproc 2` through the real launcher with CUDA_VISIBLE_DEVICES=3,1,7: RLVR_DEVICE=cuda
    has rlvr plan for GPUs and LOCAL_SIZE=8 has the launcher's CPU accelerator count 8, so on this CPU
    machine each rank starts with CUDA_VISIBLE_DEVICES=1,3 and stops in one line at finding no GPU."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CPU stand-in for an 8-GPU machine")
    proc = run_rlvr("train", CONFIG, *SMALL_SFT, f"logging.out_dir={tmp_path / 'run'}", "--nproc", "2",
                    env={"CUDA_VISIBLE_DEVICES": "3,1,7", "RLVR_DEVICE": "cuda", "LOCAL_SIZE": "8"},
                    timeout=300)
    assert proc.returncode != 0
    assert "[rlvr] CUDA_VISIBLE_DEVICES=3,1,7: --include localhost:3,1" in proc.stderr
    assert "ignoring it" not in proc.stdout + proc.stderr  # the launcher's note on CUDA_VISIBLE_DEVICES
    for rank in (0, 1):
        assert f"(LOCAL_RANK={rank}) wants cuda:{rank}, but this node shows 0 GPUs " \
               f"(CUDA_VISIBLE_DEVICES=1,3)" in proc.stderr, proc.stderr[-3000:]


def torch_extensions() -> str:
    """Where DeepSpeed's CPU ops are built once (HOME changes below; rebuilding costs half a minute)."""
    from torch.utils.cpp_extension import get_default_build_root

    return os.environ.get("TORCH_EXTENSIONS_DIR", get_default_build_root())


FAKE_SSH = """#!/bin/sh
# ssh HOST COMMAND: run COMMAND here, as a login on another node would, in an empty environment
while [ "$#" -gt 0 ]; do case "$1" in -o|-p) shift 2;; -*) shift;; *) break;; esac; done
shift
exec env -i HOME="$HOME" PATH=/usr/bin:/bin bash -c "$*"
"""

FAKE_PDSH = """#!{python}
# pdsh -S -f N -w HOSTS ARGS...: each host, through the fake ssh, runs ARGS as pdsh expands them
import getpass, json, os, subprocess, sys
{format_arg}
argv = sys.argv[1:]
hosts = argv[argv.index("-w") + 1].split(",")
remote = argv[argv.index("-w") + 2:]
with open(os.path.join({out!r}, "pdsh.json"), "w") as f:
    json.dump({{"DS_ENV_FILE": os.environ.get("DS_ENV_FILE"), "argv": argv}}, f)
procs = []
for rank, host in enumerate(hosts):
    args = [fake_pdsh_format(a, host, rank) for a in remote]
    # what the node's shell holds after the exports: the first argument the launcher gives pdsh
    dump = os.path.join({out!r}, f"env-{{host}}")
    subprocess.run(["ssh", host, args[0] + f" exec env -0 > {{dump}}"], check=True)
    procs.append(subprocess.Popen(["ssh", host, *args]))
sys.exit(max(p.wait() for p in procs))
"""


@pytest.mark.slow
def test_two_nodes_through_the_hostfile_get_the_environment(tmp_path):
    """`rlvr train --hostfile` with two hosts: the launcher checks ssh, asks the first host its address,
    and starts each node through pdsh; here ssh and pdsh are stand-ins that run each node on this machine
    in an empty environment, so all a rank has is what the launcher put on the command line."""
    bin_dir, home, cwd, out = (tmp_path / d for d in ("bin", "home", "cwd", "out"))
    for d in (bin_dir, home, cwd, out):
        d.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH)
    (bin_dir / "pdsh").write_text(FAKE_PDSH.format(python=sys.executable, out=str(out),
                                                   format_arg=inspect.getsource(fake_pdsh_format)))
    for exe in ("ssh", "pdsh"):
        (bin_dir / exe).chmod(0o755)
    (cwd / "hostfile").write_text("node-a slots=1\nnode-b slots=1\n")
    (home / ".deepspeed_env").write_text("RLVR_FROM_USER=$HOME/on-the-node\nRLVR_MINE=theirs\n")
    value = 'a "b" $c\nd %n'
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # rlvr's default is 1 a rank
    env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", HOME=str(home), PYTHONPATH=str(REPO),
               RLVR_MINE="ours", RLVR_TEST_VALUE=value, WANDB_API_KEY="secret", CUDA_VISIBLE_DEVICES="5",
               TORCH_EXTENSIONS_DIR=torch_extensions())
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "rlvr", "train", CONFIG, *SMALL_SFT, "trainer.max_steps=1",
         f"logging.out_dir={run_dir}", "--hostfile", "hostfile", "--master_port", str(free_port())],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CUDA_VISIBLE_DEVICES=5 does not apply to a --hostfile run" in proc.stderr
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [1]
    assert "rank 0 cpu, rank 1 cpu" in proc.stdout  # the device map: two ranks, one world
    for host in ("node-a", "node-b"):
        got = dict(i.split("=", 1) for i in (out / f"env-{host}").read_bytes().decode().split("\0") if i)
        assert got["RLVR_TEST_VALUE"] == value and got["OMP_NUM_THREADS"] == "1"
        assert got["RLVR_FROM_USER"] == f"{home}/on-the-node" and got["RLVR_MINE"] == "theirs"
        assert got["PYTHONPATH"].split(":")[:2] == [str(cwd), str(REPO)]  # the launcher's own export
        assert "WANDB_API_KEY" not in got and "CUDA_VISIBLE_DEVICES" not in got
    pdsh = json.loads((out / "pdsh.json").read_text())
    assert pdsh["argv"][:5] == ["-S", "-f", "1024", "-w", "node-a,node-b"]
    assert not Path(pdsh["DS_ENV_FILE"]).exists()  # rlvr's env file lives as long as the launcher
