"""Supervised fine-tuning (stage 1): next-token loss on the response tokens only, through DeepSpeed.

The loss of a step is the mean over every response token of the global batch, whatever the number of
ranks and accumulation steps: each micro-batch contributes sum(nll) / N_global, scaled back up for
DeepSpeed's averaging over ranks and accumulation steps. So 1 rank and N ranks take the same steps.
"""
from __future__ import annotations

import time

import torch

from rlvr import distributed as D
from rlvr.algorithms.logprobs import chunked_logprobs, sft_loss
from rlvr.config import SFTConfig
from rlvr.data import render_prompt, render_response
from rlvr.data.collate import Example, collate
from rlvr.data.tokens import encode_capped
from rlvr.errors import UserError
from rlvr.models import load_model, load_tokenizer
from rlvr.trainers.base import Trainer
from rlvr.trainers.engines import BatchPlan, deepspeed_config, hf_zero3_context, make_engine
from rlvr.trainers.evaluation import (VerifierJudge, check_batch, exact_match, greedy_accuracy,
                                      training_and_held_out)
from rlvr.trainers.sampler import EpochSampler
from rlvr.trainers.zero3 import generation_engine


def tokenize_examples(tokenizer, rows: list[dict], cfg: SFTConfig,
                      origin: str = "data") -> tuple[list[Example], int]:
    """(examples, number truncated). The response is cut to fit max_seq_len; the prompt never is. Only
    as much of a long text is tokenized as the limit needs (rlvr.data.tokens)."""
    out, truncated = [], 0
    limit = cfg.trainer.max_seq_len
    for row in rows:
        prompt, over = encode_capped(tokenizer, render_prompt(tokenizer, row["prompt"], cfg.data), limit - 1)
        if over:
            raise UserError(f"{origin}: a prompt alone has {limit} tokens or more, leaving no room for its "
                            f"response in trainer.max_seq_len={limit}: {row['prompt'][:40]!r}")
        room = limit - len(prompt)
        response, over = encode_capped(tokenizer, render_response(tokenizer, str(row["response"])), room)
        if over:
            response, truncated = response[:room], truncated + 1
        out.append(Example(prompt + response, len(prompt)))
    return out, truncated


class SFTTrainer(Trainer):
    plot_keys = ["loss", "eval_loss", "eval_accuracy", "lr"]

    def __init__(self, cfg: SFTConfig):
        t = cfg.trainer
        super().__init__(cfg, t.max_steps, t.seed, t.save_every, t.eval_every, t.keep_checkpoints, t.resume,
                         t.max_seconds)
        model_path = self.prepare_model(t.seed)
        self.tokenizer = load_tokenizer(model_path)

        need = {"prompt": str, "response": (str, int, float)}
        train, held_out, carved = training_and_held_out(cfg.data, need, cfg.data.eval_samples)
        if carved:
            self.log_line(carved)
        check_batch("trainer.batch_size", t.batch_size, len(train.rows), "rows", train.origin)
        self.train_set, truncated = tokenize_examples(self.tokenizer, train.rows, cfg, train.origin)
        self.eval_rows = held_out.rows
        self.eval_set, _ = tokenize_examples(self.tokenizer, self.eval_rows, cfg, held_out.origin)
        self.data_note = {"train_rows": len(self.train_set), "eval_rows": len(self.eval_rows),
                          "skipped_rows": train.skipped + held_out.skipped, "truncated_rows": truncated}
        self.log_line(f"data: {self.data_note}")

        self.plan = BatchPlan.make(t.batch_size, t.micro_batch_size, D.world_size())
        ds_config = deepspeed_config(cfg.deepspeed, self.plan, t.grad_clip, cfg.model.dtype)
        zero3 = hf_zero3_context(ds_config)  # must stay alive while the model loads
        model = load_model(model_path, cfg.model.dtype, None if zero3 else self.device,
                           cfg.model.attn_implementation)
        self.engine = make_engine(model, ds_config, t.lr, t.betas, t.weight_decay, t.warmup_steps,
                                  t.max_steps, t.min_lr_ratio, t.gradient_checkpointing)
        self.engines = {"model": self.engine}
        self.sampler = EpochSampler(len(self.train_set), seed=t.seed)
        self.generator = generation_engine(self.engine, self.tokenizer, cfg.generation, t.seed, self.device)
        self.judge = VerifierJudge(cfg.reward) if cfg.reward is not None else None

    # ---- training -------------------------------------------------------------------------------
    def _micro_batches(self, indices: list[int]) -> list[list[Example]]:
        """This rank's micro-batches of a global batch: rank r takes every ranks-th micro-batch."""
        p = self.plan
        chunks = [indices[i : i + p.micro] for i in range(0, len(indices), p.micro)]
        return [[self.train_set[j] for j in c] for c in chunks[D.rank() :: p.ranks]]

    def _loss(self, batch: dict, num_tokens: float) -> torch.Tensor:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        logits = self.engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logprobs, _ = chunked_logprobs(logits[:, :-1], batch["input_ids"][:, 1:],
                                       chunk_tokens=self.cfg.trainer.logprob_chunk_tokens)
        return sft_loss(logprobs, batch["loss_mask"], num_tokens)

    def train_step(self, step: int) -> dict:
        start = time.time()
        indices = self.sampler.take(self.plan.batch)
        num_tokens = sum(len(self.train_set[i].ids) - self.train_set[i].prompt_len for i in indices)
        # DeepSpeed divides by accumulation steps and averages over ranks; undo both so the summed
        # gradient is that of the global token mean.
        scale = self.plan.accumulation * self.plan.ranks
        loss_sum = 0.0
        for examples in self._micro_batches(indices):
            batch = collate(examples, self.tokenizer.pad_token_id)
            loss = self._loss(batch, num_tokens)
            self.engine.backward(loss * scale)
            self.engine.step()
            loss_sum += loss.item()
        (loss_total,) = D.all_sum([loss_sum])
        metrics = {"loss": loss_total, "lr": self.engine.get_lr()[0], "epoch": self.sampler.epoch,
                   "tokens_per_second": num_tokens / (time.time() - start)}
        norm = self.engine.get_global_grad_norm()  # DeepSpeed reports it under ZeRO only
        if norm is not None:
            metrics["grad_norm"] = float(norm)
        return metrics

    # ---- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def eval_loss(self) -> float:
        subset = self.eval_set[: self.cfg.trainer.eval_loss_samples]
        num_tokens = sum(len(e.ids) - e.prompt_len for e in subset)
        mine = subset[D.rank() :: D.world_size()]
        micro = self.plan.micro
        # every rank runs the same number of forward passes (ZeRO-3 forwards are collectives)
        passes = -(-len(subset) // (micro * D.world_size()))
        total = 0.0
        for k in range(passes):
            chunk = mine[k * micro : (k + 1) * micro]
            batch = collate(chunk or subset[:1], self.tokenizer.pad_token_id)
            loss = self._loss(batch, num_tokens)
            total += loss.item() if chunk else 0.0
        (total,) = D.all_sum([total])
        return total

    def accuracy(self) -> float | None:
        """Greedy accuracy on the held-out rows: judged by the reward section's verifiers when the config
        has one (every row), else exact match on the rows that have a reference answer."""
        rows = self.eval_rows if self.judge else [r for r in self.eval_rows if r.get("reference") is not None]
        if not rows:
            return None
        return greedy_accuracy(self.generator, self.tokenizer, rows, self.cfg.data,
                               self.cfg.generation.max_new_tokens, self.judge or exact_match)

    def evaluate(self, step: int) -> dict:
        if not self.eval_set:  # a small local file may hold out no row (training_and_held_out)
            return {}
        out = {"eval_loss": self.eval_loss()}
        acc = self.accuracy()
        if acc is not None:
            out["eval_accuracy"] = acc
        return out

    # ---- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])

    def close(self) -> None:
        if self.judge is not None:
            self.judge.close()

    def summary_extra(self) -> dict:
        return self.data_note
