"""Reward-model training (stage 2): a scalar head on a transformer, fitted to preference pairs with the
Bradley-Terry loss, through DeepSpeed.

Each micro-batch runs its chosen and rejected sequences in one forward pass. The loss of a step is the
mean over every pair of the global batch, whatever the number of ranks and accumulation steps (each
micro-batch contributes sum(loss) / N_global, scaled back up for DeepSpeed's averaging), so 1 rank and
N ranks take the same steps. Evaluation is the held-out pairwise accuracy.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from rlvr import distributed as D
from rlvr.algorithms.bradley_terry import bradley_terry_loss, pairwise_accuracy
from rlvr.config.reward_model import RewardModelConfig
from rlvr.data import render_prompt
from rlvr.data.collate import pad_right
from rlvr.data.preferences import load_pairs
from rlvr.errors import UserError
from rlvr.models import load_tokenizer
from rlvr.reward_scoring import (
    RewardFormat,
    encode_pair,
    forward_rewards,
    load_reward_model,
)
from rlvr.trainers.base import Trainer
from rlvr.trainers.engines import (
    BatchPlan,
    deepspeed_config,
    hf_zero3_context,
    make_engine,
)
from rlvr.trainers.evaluation import check_batch, rank_shard
from rlvr.trainers.sampler import EpochSampler


@dataclass
class Pair:
    chosen: list[int]
    rejected: list[int]


def tokenize_pairs(tokenizer, pairs: list[dict], fmt: RewardFormat) -> list[Pair]:
    data = fmt.data_config()
    out = []
    for p in pairs:
        prompt = render_prompt(tokenizer, p["prompt"], data)
        out.append(Pair(encode_pair(tokenizer, prompt, p["chosen"], fmt.max_seq_len),
                        encode_pair(tokenizer, prompt, p["rejected"], fmt.max_seq_len)))
    return out


class RewardModelTrainer(Trainer):
    plot_keys: ClassVar[list[str]] = ["loss", "eval_accuracy", "accuracy", "eval_loss", "margin"]

    def __init__(self, cfg: RewardModelConfig):
        t = cfg.trainer
        super().__init__(cfg, t.max_steps, t.seed, t.save_every, t.eval_every, t.keep_checkpoints, t.resume,
                         t.max_seconds)
        model_path = self.prepare_model(t.seed)
        self.tokenizer = load_tokenizer(model_path)
        self.format = RewardFormat.from_data(cfg.data, t.max_seq_len)

        train = load_pairs(cfg.data, cfg.data.split)
        held_out = load_pairs(cfg.data, cfg.data.eval_split, limit=cfg.data.eval_samples)
        self.train_set = tokenize_pairs(self.tokenizer, train, self.format)
        self.eval_set = tokenize_pairs(self.tokenizer, held_out, self.format)
        if not self.train_set:
            raise UserError(f"data: no training pairs from data.source={cfg.data.source!r} "
                            f"(split {cfg.data.split!r}); expected prompt/chosen/rejected rows")
        check_batch("trainer.batch_size", t.batch_size, len(self.train_set), "pairs", cfg.data.source)
        longest = max(len(s) for p in self.train_set + self.eval_set for s in (p.chosen, p.rejected))
        self.data_note = {"train_pairs": len(self.train_set), "eval_pairs": len(self.eval_set),
                          "longest_sequence": longest}
        self.log_line(f"data: {self.data_note}")

        self.plan = BatchPlan.make(t.batch_size, t.micro_batch_size, D.world_size())
        ds_config = deepspeed_config(cfg.deepspeed, self.plan, t.grad_clip, cfg.model.dtype)
        zero3 = hf_zero3_context(ds_config)  # must stay alive while the model loads
        model = load_reward_model(model_path, cfg.model.dtype, self.tokenizer.pad_token_id,
                                  None if zero3 else self.device, cfg.model.attn_implementation)
        self.engine = make_engine(model, ds_config, t.lr, t.betas, t.weight_decay, t.warmup_steps,
                                  t.max_steps, t.min_lr_ratio, t.gradient_checkpointing)
        self.engines = {"model": self.engine}
        self.sampler = EpochSampler(len(self.train_set), seed=t.seed)

    def _rewards(self, pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
        """(r_chosen, r_rejected): both halves of the pairs in one forward pass."""
        batch = pad_right([p.chosen for p in pairs] + [p.rejected for p in pairs], self.tokenizer.pad_token_id)
        rewards = forward_rewards(self.engine, {k: v.to(self.device) for k, v in batch.items()})
        return rewards[: len(pairs)], rewards[len(pairs) :]

    # ---- training -------------------------------------------------------------------------------
    def train_step(self, step: int) -> dict:
        start = time.time()
        p = self.plan
        indices = self.sampler.take(p.batch)
        chunks = [indices[i : i + p.micro] for i in range(0, len(indices), p.micro)][D.rank() :: p.ranks]
        # DeepSpeed divides by accumulation steps and averages over ranks; undo both so the summed
        # gradient is that of the mean over the global batch.
        scale = p.accumulation * p.ranks
        sums = {"loss": 0.0, "accuracy": 0.0, "margin": 0.0, "reward_chosen": 0.0, "reward_rejected": 0.0}
        for chunk in chunks:
            chosen, rejected = self._rewards([self.train_set[i] for i in chunk])
            loss = bradley_terry_loss(chosen, rejected, self.cfg.trainer.margin).sum() / p.batch
            self.engine.backward(loss * scale)
            self.engine.step()
            sums["loss"] += loss.item()
            sums["accuracy"] += pairwise_accuracy(chosen, rejected).sum().item() / p.batch
            sums["margin"] += (chosen - rejected).sum().item() / p.batch
            sums["reward_chosen"] += chosen.sum().item() / p.batch
            sums["reward_rejected"] += rejected.sum().item() / p.batch
        metrics = dict(zip(sums, D.all_sum(list(sums.values()))))
        metrics.update(lr=self.engine.get_lr()[0], epoch=self.sampler.epoch,
                       pairs_per_second=p.batch / (time.time() - start))
        norm = self.engine.get_global_grad_norm()  # DeepSpeed reports it under ZeRO only
        if norm is not None:
            metrics["grad_norm"] = float(norm)
        return metrics

    # ---- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, step: int) -> dict:
        """Held-out pairwise accuracy, loss and reward margin over every eval pair."""
        n = len(self.eval_set)
        if n == 0:
            return {}
        mine, per_rank = rank_shard(n)
        micro = self.plan.micro
        sums = [0.0, 0.0, 0.0]
        self.engine.eval()
        # every rank runs the same number of forward passes (ZeRO-3 forwards are collectives)
        for k in range(0, per_rank, micro):
            chunk = mine[k : k + micro]
            chosen, rejected = self._rewards([self.eval_set[i] for i in chunk or [0]])
            if chunk:
                sums[0] += pairwise_accuracy(chosen, rejected).sum().item()
                sums[1] += bradley_terry_loss(chosen, rejected, self.cfg.trainer.margin).sum().item()
                sums[2] += (chosen - rejected).sum().item()
        self.engine.train()
        acc, loss, margin = (v / n for v in D.all_sum(sums))
        return {"eval_accuracy": acc, "eval_loss": loss, "eval_margin": margin}

    # ---- state and export -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])

    def checkpoint_files(self, folder: Path) -> None:
        self.format.save(folder)  # before the manifest, so resume checks it with the rest

    def export_final(self) -> None:
        super().export_final()
        if D.is_main():
            self.format.save(self.run_dir / "final")

    def summary_extra(self) -> dict:
        return self.data_note
