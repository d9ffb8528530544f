"""DeepSpeed engines from rlvr config: batch arithmetic, the DeepSpeed config, optimizer and schedule."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from rlvr import distributed as D
from rlvr import extension_builds
from rlvr.config import DeepSpeedConfig
from rlvr.errors import UserError
from rlvr.trainers.schedule import warmup_cosine


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch is split: batch = micro * accumulation * ranks."""

    batch: int
    micro: int
    accumulation: int
    ranks: int

    @staticmethod
    def make(batch: int, micro: int, ranks: int, key: str = "trainer") -> "BatchPlan":
        micro = min(micro, max(1, batch // ranks))
        if batch % (micro * ranks):
            raise UserError(f"{key}.batch_size: {batch} must be a multiple of {key}.micro_batch_size ({micro}) "
                            f"times the number of ranks ({ranks})")
        return BatchPlan(batch, micro, batch // (micro * ranks), ranks)


def deepspeed_config(cfg: DeepSpeedConfig, plan: BatchPlan, grad_clip: float, dtype: str) -> dict:
    zero: dict = {"stage": cfg.stage}
    if cfg.stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu"}
    if cfg.offload_param:
        zero["offload_param"] = {"device": "cpu"}
    config = {
        "train_batch_size": plan.batch,
        "train_micro_batch_size_per_gpu": plan.micro,
        "gradient_accumulation_steps": plan.accumulation,
        "gradient_clipping": grad_clip,
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,  # a torch AdamW unless offloaded: fused ones need CUDA ops
        "bf16": {"enabled": dtype == "bfloat16"},
        "fp16": {"enabled": dtype == "float16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if cfg.config_file:
        path = Path(cfg.config_file)
        if not path.is_file():
            raise UserError(f"deepspeed.config_file: not found: {path}")
        text = path.read_text()
        user = (json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)) or {}
        ignored = [k for k in ("optimizer", "scheduler") if k in user]
        if ignored:  # DeepSpeed prefers the optimizer and schedule rlvr passes it: the file's would be dropped
            raise UserError(f"deepspeed.config_file: {path} sets '{ignored[0]}', which rlvr does not use: it "
                            f"builds AdamW and its schedule from trainer.lr, betas, weight_decay, warmup_steps and "
                            f"min_lr_ratio; remove the section")
        _merge(config, user)
    return config


def _merge(base: dict, extra: dict) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def offloads_optimizer(config: dict) -> bool:
    """Whether DeepSpeed will keep the optimizer states and step in CPU (or NVMe) memory: read with
    DeepSpeed's own parser, so rlvr's keys, a merged config_file and DeepSpeed's older spellings all count."""
    from deepspeed.runtime.zero.config import get_zero_config
    from deepspeed.runtime.zero.offload_config import OffloadDeviceEnum

    offload = get_zero_config(config).offload_optimizer
    return offload is not None and offload.device in (OffloadDeviceEnum.cpu, OffloadDeviceEnum.nvme)


def make_engine(model, config: dict, lr: float, betas: list[float], weight_decay: float,
                warmup_steps: int, total_steps: int, min_lr_ratio: float,
                gradient_checkpointing: bool = False):
    """A DeepSpeed engine with AdamW and a warmup + cosine schedule stepped once per optimizer step; with
    `gradient_checkpointing`, the model's layers recompute their activations in the backward pass (switched
    on before DeepSpeed wraps it; under ZeRO-3 the replayed forward gathers each layer's partitions again).

    With optimizer offload the AdamW is DeepSpeed's CPU Adam (DeepSpeed refuses a torch optimizer there; its
    op is compiled on first use into ~/.cache/torch_extensions). DeepSpeed hands the schedule callable the
    optimizer it steps, so the schedule is the same either way."""
    import deepspeed

    cpu_adam = offloads_optimizer(config)
    if cpu_adam and _cpu_adam_is_jit_built():
        _announce_cpu_adam()
        # torch waits silently and forever on a lock left by a build that was killed: judge it first
        extension_builds.wait_for_lock("cpu_adam")

    def optimizer(params):
        if cpu_adam:
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            return DeepSpeedCPUAdam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                                    adamw_mode=True)
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)

    def scheduler(opt):
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: warmup_cosine(s, warmup_steps, total_steps, min_lr_ratio))

    if gradient_checkpointing:
        from rlvr.models import enable_gradient_checkpointing

        # checkpointing acts only in train mode, and from_pretrained leaves a model in eval mode (which SFT
        # and reward-model training otherwise keep; dropout then follows the model's config: 0 in Llama,
        # Qwen and SmolLM2, and RL turns it off)
        enable_gradient_checkpointing(model).train()
    engine, *_ = deepspeed.initialize(model=model, model_parameters=[p for p in model.parameters()
                                      if p.requires_grad], optimizer=optimizer, lr_scheduler=scheduler,
                                      config=config, dist_init_required=False)
    if D.is_main():
        tqdm.write(f"[rlvr] deepspeed: {describe(engine)}")
    return engine


def _cpu_adam_is_jit_built() -> bool:
    """A DeepSpeed installed without prebuilt ops (DS_BUILD_OPS=0) compiles CPU Adam on its first use and
    takes torch's build lock on every load."""
    from deepspeed.git_version_info import installed_ops

    return not installed_ops.get("cpu_adam")


@functools.cache
def _announce_cpu_adam() -> None:
    """Say why the run may be quiet for a while (the first build takes a minute or two)."""
    if D.is_main():
        tqdm.write(f"[rlvr] DeepSpeed CPU Adam: compiled on its first use into "
                   f"{extension_builds.build_dir('cpu_adam')} (a minute or two)")


def describe(engine) -> str:
    """What the engine really does (read from its ZeRO optimizer, not from the config it was asked for)."""
    zero = engine.optimizer
    # ZeRO-3 names its switches offload_optimizer/offload_param, ZeRO-1/2 names the first cpu_offload
    states = getattr(zero, "offload_optimizer", False) or getattr(zero, "cpu_offload", False)
    params = getattr(zero, "offload_param", False)
    where = [f"optimizer states on {engine.zero_offload_optimizer().device}"] if states else []
    where += [f"parameters on {engine.zero_offload_param().device}"] if params else []
    return (f"ZeRO-{engine.zero_optimization_stage()}, {type(engine.basic_optimizer).__name__}, "
            f"offload: {', '.join(where) or 'none'}")


def hf_zero3_context(config: dict):
    """Keep this object alive while loading a pretrained model under ZeRO-3: transformers then loads the
    weights straight into partitions instead of materialising the whole model on every rank."""
    if config["zero_optimization"]["stage"] != 3 or D.world_size() == 1:
        return None
    from transformers.integrations import HfDeepSpeedConfig

    return HfDeepSpeedConfig(config)
