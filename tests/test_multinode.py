"""Every rank must see the run folder rank 0 made (rlvr.trainers.base.check_shared_folder).

Two ranks are started by hand, as the launcher on two nodes would start them (RANK, WORLD_SIZE, LOCAL_RANK
0 on each "node", one rendezvous address). When each sees a folder of its own under the same name, as on
two nodes with local disks, both stop with the same one-line error; the same two ranks sharing the folder
train. Two ways to give a rank a folder of its own: a different working directory under a relative
`logging.out_dir` (portable), and a private tmpfs mounted at the same absolute path (`unshare -m`, root
only), which is what a node-local disk looks like.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.trainers.metrics import read_metrics
from tests.conftest import REPO, SMALL_SFT
from tests.test_launch import free_port

pytestmark = pytest.mark.slow
CONFIG = str(REPO / "configs/sft_arith.yaml")


def two_ranks(out_dir: str, cwds: tuple[Path, Path], wrap: tuple[list[str], list[str]] = ([], [])
              ) -> list[subprocess.CompletedProcess]:
    """Start rank 0 and rank 1 of `rlvr train` at once, each in its cwd (and under its wrapper command);
    wait for both. Both on the CPU, whatever the machine: the check is the same on any device."""
    port = free_port()
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "RLVR_DEVICE": "cpu",
               "RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port)}
        cmd = [*wrap[rank], sys.executable, "-m", "rlvr", "train", CONFIG, *SMALL_SFT, "trainer.max_steps=1",
               f"logging.out_dir={out_dir}"]
        procs.append(subprocess.Popen(cmd, cwd=cwds[rank], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, start_new_session=True))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=300)
            results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()
    return results


def assert_not_shared(results: list[subprocess.CompletedProcess], out_dir: str) -> None:
    for rank, proc in enumerate(results):
        errors = [line for line in proc.stderr.splitlines() if line.startswith("rlvr: error:")]
        assert proc.returncode == 2 and len(errors) == 1, f"rank {rank}:\n{proc.stderr[-3000:]}"
        assert errors[0].startswith(f"rlvr: error: logging.out_dir: {out_dir} is not one folder shared by "
                                    f"every rank: rank(s) 1 (host "), errors[0]
        assert "Traceback" not in proc.stderr


def test_ranks_in_different_working_directories_stop_in_one_line(tmp_path):
    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    (node1 / "run").mkdir(parents=True)  # a folder of that name on node 1's disk: not the same folder
    node0.mkdir()
    assert_not_shared(two_ranks("run", (node0, node1)), "run")
    assert not (node1 / "run" / "config.yaml").exists() and not list((node1 / "run").iterdir())


def test_ranks_in_one_working_directory_train(tmp_path):
    results = two_ranks("run", (tmp_path, tmp_path))
    for rank, proc in enumerate(results):
        assert proc.returncode == 0, f"rank {rank}:\n{proc.stderr[-3000:]}"
    assert "rank 0 cpu, rank 1 cpu" in results[0].stdout
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r] == [1]
    assert not list((tmp_path / "run").glob(".rlvr-shared-*"))  # the probe is gone


def private_mounts_work() -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not private_mounts_work(), reason="needs root and `unshare -m`")
def test_a_node_local_disk_at_the_same_path_stops_in_one_line(tmp_path):
    """Rank 1 sees its own empty tmpfs at the absolute path where rank 0 sees the real folder."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out_dir = str(scratch / "run")
    local_disk = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs local-disk "$0" && exec "$@"', str(scratch)]
    assert_not_shared(two_ranks(out_dir, (tmp_path, tmp_path), ([], local_disk)), out_dir)
    assert (scratch / "run").is_dir()  # rank 0's folder, on the "shared" file system
