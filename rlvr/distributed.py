"""Process-group set-up and the few collectives the trainers need.

A run started without a launcher is a world of one: it still goes through torch.distributed (gloo), so
one code path serves 1 rank and N ranks. On GPUs the group has two backends, `cpu:gloo,cuda:nccl`: NCCL
for the tensors DeepSpeed moves between GPUs, gloo for the small host-side values rlvr sums and
broadcasts (metrics, votes, Python objects), which then never touch a GPU.
"""
from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(timeout_minutes: float = 30.0) -> torch.device:
    """Start the process group (once) and return this rank's device, chosen before the group starts."""
    from rlvr import devices

    if dist.is_initialized():
        return devices.device()
    if "RANK" not in os.environ:  # not started by a launcher
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(_free_port()))
    dev = devices.set_up()
    import deepspeed

    _skip_shm_comm_op()
    deepspeed.init_distributed(dist_backend="cpu:gloo,cuda:nccl" if dev.type == "cuda" else "gloo",
                               verbose=False, timeout=timedelta(minutes=timeout_minutes))
    return dev


def _skip_shm_comm_op() -> None:
    """Keep DeepSpeed from loading its CPU shared-memory comm op when the group starts.

    That op serves only `deepspeed.comm.inference_all_reduce`, which rlvr never calls, yet on the CPU
    accelerator `init_distributed` JIT-compiles it (about 80 s when not cached) and, built or not, takes
    torch's file lock `<build dir>/lock` on every load: a run killed while it held that lock left every
    later run waiting on it forever, silently. DeepSpeed reads `deepspeed.ops.__compatible_ops__` (built on
    first access and then kept, so an edit persists) before it builds. On GPUs the accelerator has no such
    builder: the dict is left alone there, since reading it runs DeepSpeed's compatibility probe."""
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().get_op_builder("ShareMemCommBuilder")
    if builder is not None:
        import deepspeed.ops

        deepspeed.ops.__compatible_ops__[builder.NAME] = False


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_sum(values: list[float]) -> list[float]:
    """Sum a short list of floats over ranks (float64, so that sums of losses stay exact enough)."""
    t = torch.tensor(values, dtype=torch.float64, device="cpu")  # host values: gloo, on GPUs too
    if world_size() > 1:
        dist.all_reduce(t)
    return t.tolist()


def all_gather_object(obj: Any) -> list[Any]:
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
