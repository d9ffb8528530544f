"""Which device a rank computes on, what `model.dtype: auto` means there, and the device's RNG state.

One device per rank: `cuda:LOCAL_RANK` where CUDA is available, chosen as the current device before the
process group starts (NCCL binds each rank to it), otherwise the CPU. `RLVR_DEVICE` overrides the choice:
`RLVR_DEVICE=cpu` keeps a GPU machine's ranks on the CPU (DeepSpeed too), `RLVR_DEVICE=cuda` is the
default on a GPU machine, and a device with an index (`cuda:1`, `cpu:0`) is taken as it is.

Every tensor rlvr creates for a model's computation is created on this device (tests/device_audit.py
checks that on a CPU, where a forgotten `device=` would otherwise go unnoticed).
"""
from __future__ import annotations

import os
import socket

import torch

from rlvr.errors import UserError


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def device() -> torch.device:
    """This rank's device (see the module docstring)."""
    forced = os.environ.get("RLVR_DEVICE", "").strip()
    if forced:
        try:
            dev = torch.device(forced)
        except RuntimeError:
            raise UserError(f"RLVR_DEVICE: expected a torch device such as cpu, cuda or cuda:1, "
                            f"got {forced!r}") from None
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", local_rank())
    elif torch.cuda.is_available():
        dev = torch.device("cuda", local_rank())
    else:
        return torch.device("cpu")
    if dev.type == "cuda" and not dev.index < torch.cuda.device_count():
        raise UserError(f"this rank (LOCAL_RANK={local_rank()}) wants {dev}, but this node shows "
                        f"{torch.cuda.device_count()} GPUs (CUDA_VISIBLE_DEVICES="
                        f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): start at most one rank per GPU")
    return dev


def set_up() -> torch.device:
    """Choose this rank's device; on a GPU make it the current device and allow TF32 matmuls. Call before
    the process group starts. On the CPU nothing changes."""
    dev = device()
    if dev.type == "cpu" and torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed would otherwise move models to the GPU
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        # TF32 tensor cores for float32 matmuls (the float32 parts of 16-bit training, and float32 runs):
        # what PyTorch Lightning, TRL and verl enable on Ampere and later
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return dev


def resolve_dtype(name: str, dev: torch.device | None = None) -> str:
    """`auto` -> bfloat16 on a GPU that has it, float32 elsewhere; other names pass through."""
    if name != "auto":
        return name
    dev = dev or device()
    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bfloat16"
    return "float32"


def rng_state(dev: torch.device) -> dict:
    """The device's own RNG (dropout, sampling without an explicit generator), if it has one."""
    return {"cuda": torch.cuda.get_rng_state(dev)} if dev.type == "cuda" else {}


def set_rng_state(state: dict, dev: torch.device) -> None:
    if dev.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], dev)


def describe(dev: torch.device) -> dict:
    """What the device map shows of this rank."""
    out = {"host": socket.gethostname(), "device": str(dev)}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        out["name"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    else:
        out["name"] = f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    return out


def device_map(ranks: list[dict], dtype: str) -> str:
    """One line per host: which ranks run where. `ranks` are `describe()` of every rank, in rank order."""
    hosts: dict[str, list[int]] = {}
    for r, d in enumerate(ranks):
        hosts.setdefault(d["host"], []).append(r)
    lines = []
    for host, members in hosts.items():
        placed = ", ".join(f"rank {r} {ranks[r]['device']}" for r in members)
        lines.append(f"{host}: {placed} ({ranks[members[0]]['name']}; {dtype})")
    return "; ".join(lines)
