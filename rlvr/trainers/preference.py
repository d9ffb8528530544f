"""The DPO family in one trainer: DPO, IPO, KTO, ORPO, SimPO; offline, online (iterative) and SPIN.

The trainer holds a pair source (rlvr/trainers/preference_pairs.py: offline pairs, or pairs sampled from
the current policy each round) and the model passes and losses; one step takes the source's items, fills
in the reference log-probabilities they still need, and updates:

    offline   one step = one optimizer step over `batch_size` pairs (reference log-probabilities cached
              with the pairs when they were built)
    online    one step = one round: the reference log-probabilities of the round's pairs (the policy at the
    / spin    start of the step, or the initial model), then `epochs` passes of updates over them

KTO turns each pair into two unpaired examples (chosen desirable, rejected undesirable); each also carries
another prompt's response, whose log-ratio estimates KTO's reference point.

Offline pairs are built inside the first step, so a wall-time budget (`trainer.max_seconds`) pays for
sampling them, as it pays for the sampling of online rounds and of RL.
"""
from __future__ import annotations

import gc
import time

import torch

from rlvr import distributed as D
from rlvr.algorithms.logprobs import chunked_logprobs
from rlvr.algorithms.preference import (
    chosen_nll,
    dpo_loss,
    implicit_reward,
    ipo_loss,
    kto_loss,
    kto_reference_point,
    orpo_loss,
    simpo_loss,
)
from rlvr.config.preference import PreferenceConfig
from rlvr.data import load_rows
from rlvr.data.collate import Example, collate
from rlvr.errors import UserError
from rlvr.models import load_model, load_tokenizer
from rlvr.rollouts import Rollouts, context_length, prompts_that_fit
from rlvr.trainers.base import Trainer
from rlvr.trainers.engines import BatchPlan, deepspeed_config, hf_zero3_context, make_engine
from rlvr.trainers.evaluation import check_batch, rank_shard, training_and_held_out
from rlvr.trainers.preference_pairs import Item, OfflinePairs, OnlinePairs, PairTokens
from rlvr.trainers.rl_models import reference_engine

REFERENCE_FREE = {"orpo", "simpo"}


def split_evenly(items: list, parts: int) -> list[list]:
    """`parts` consecutive chunks whose sizes differ by at most one (some empty when items are few)."""
    q, r = divmod(len(items), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + q + (k < r)
        out.append(items[start:end])
        start = end
    return out


def minibatch_count(n_global: int, most_on_a_rank: int, batch: int, micro: int, accumulation: int) -> int:
    """Minibatches for one pass: about `batch` items each, and never more than `micro` items per forward
    pass on any rank (a round's pairs may fall unevenly on the ranks)."""
    return max(-(-n_global // batch), -(-most_on_a_rank // (micro * accumulation)))


class PreferenceTrainer(Trainer):
    plot_keys = ["loss", "margin", "reward_accuracy", "eval_accuracy", "eval_reward_accuracy", "sample_accuracy"]

    def __init__(self, cfg: PreferenceConfig):
        t = cfg.trainer
        super().__init__(cfg, t.max_steps, t.seed, t.save_every, t.eval_every, t.keep_checkpoints, t.resume,
                         t.max_seconds)
        self.t = t
        world = D.world_size()
        if t.mode != "offline" and t.prompts_per_step % world:
            raise UserError(f"trainer.prompts_per_step: {t.prompts_per_step} must be a multiple of the "
                            f"number of ranks ({world})")
        if t.mode == "online" and t.samples_per_prompt < 2:
            raise UserError("trainer.samples_per_prompt: online pairs need at least 2 samples per prompt")
        if t.loss in REFERENCE_FREE and t.reference_model:
            raise UserError(f"trainer.reference_model: the {t.loss} loss uses no reference model")
        if t.mode != "offline" and t.reference_model:
            raise UserError(f"trainer.reference_model: only offline mode loads a reference model; {t.mode} mode "
                            "takes trainer.reference (step or initial)")
        if t.mode == "offline" and t.reference == "initial":
            raise UserError("trainer.reference: 'initial' is for online and spin modes; offline mode's reference "
                            "is trainer.reference_model (default: the starting policy)")
        if not 0 <= t.label_smoothing < 0.5:
            raise UserError(f"trainer.label_smoothing: expected a value in [0, 0.5), got {t.label_smoothing}")
        self.plan = BatchPlan.make(t.batch_size, t.micro_batch_size, world)
        offline = t.mode == "offline"

        self.model_path = self.prepare_model(t.seed)
        self.tokenizer = load_tokenizer(self.model_path)
        need = {"prompt": str, "response": (str, int, float)} if t.mode == "spin" else {"prompt": str}
        rows = [] if (offline and t.pairs == "data") else self._load_prompt_rows(need)
        if offline and t.pairs == "data":
            self.eval_rows = self._load_eval_rows()

        ds = deepspeed_config(cfg.deepspeed, self.plan, t.grad_clip, cfg.model.dtype)
        zero3 = hf_zero3_context(ds)  # alive while models load
        per_round = t.epochs * -(-t.prompts_per_step * (2 if t.loss == "kto" else 1) // t.batch_size)
        total_updates = t.max_steps * (1 if offline else per_round)
        attn = cfg.model.attn_implementation
        actor = load_model(self.model_path, cfg.model.dtype, None if zero3 else self.device, attn)
        self.actor = make_engine(actor, ds, t.lr, t.betas, t.weight_decay, t.warmup_steps, total_updates,
                                 t.min_lr_ratio, t.gradient_checkpointing)
        self.engines = {"actor": self.actor}
        self.reference = None
        if not offline and t.reference == "initial" and t.loss not in REFERENCE_FREE:
            self.reference = reference_engine(self.model_path, cfg.model.dtype, ds, self.device, attn)
        self.rollouts = Rollouts(cfg, self.actor, self.tokenizer, self.model_path, t.seed, self.device)
        tokens = PairTokens(self.tokenizer, cfg.data, t.max_seq_len)
        self.pairs = (OfflinePairs(cfg, self.run_dir, tokens, rows, self.rollouts, self._offline_reference,
                                   self.log_line) if offline else OnlinePairs(cfg, tokens, rows, self.rollouts))

    def _load_prompt_rows(self, need: dict) -> list[dict]:
        """Prompts to sample from, and held-out rows with a reference answer for greedy accuracy (a local
        file without data.eval_source is carved in two), each prompt leaving room for generation."""
        cfg, t = self.cfg, self.t
        limit = min(t.eval_samples, cfg.data.eval_samples or t.eval_samples)
        train, held_out, carved = training_and_held_out(cfg.data, need, limit)
        if carved:
            self.log_line(carved)
        context = context_length(self.model_path, cfg.generation)
        max_new = cfg.generation.max_new_tokens
        (rows, long_rows), (eval_rows, long_eval) = (
            prompts_that_fit(part.rows, self.tokenizer, cfg.data, context, max_new, part.origin)
            for part in (train, held_out))
        if long_rows or long_eval:
            self.log_line(f"data: skipped {long_rows} training and {long_eval} held-out rows whose prompt "
                          f"leaves no room for generation.max_new_tokens in the model's context")
        if t.mode != "offline":
            check_batch("trainer.prompts_per_step", t.prompts_per_step, len(rows), "prompts", train.origin)
        self.eval_rows = [r for r in eval_rows if r.get("reference") is not None] if t.eval_samples else []
        return rows

    def _load_eval_rows(self) -> list[dict]:
        """Held-out rows with a reference answer, for greedy accuracy. Pairs data has none of its own; it
        is evaluated on data.eval_source when that is set (or on arith's test split)."""
        cfg, t = self.cfg, self.t
        source = cfg.data.eval_source or cfg.data.source
        if t.eval_samples == 0 or (t.mode == "offline" and t.pairs == "data" and source != "arith"
                                   and not cfg.data.eval_source):
            return []
        limit = min(t.eval_samples, cfg.data.eval_samples or t.eval_samples)
        rows = load_rows(cfg.data, cfg.data.eval_split, {"prompt": str}, source=source, limit=limit).rows
        return [r for r in rows if r.get("reference") is not None]

    # ---- model passes ---------------------------------------------------------------------------
    def _sequence_logps(self, model, items: list[Item]) -> tuple[torch.Tensor, torch.Tensor]:
        """([2, B] summed response log-probabilities, [2, B] response lengths) of both responses."""
        examples = [Example(it.prompt + it.responses[k], len(it.prompt)) for k in (0, 1) for it in items]
        batch = {k: v.to(self.device) for k, v in collate(examples, self.tokenizer.pad_token_id).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        lp, _ = chunked_logprobs(logits[:, :-1], batch["input_ids"][:, 1:],
                                 chunk_tokens=self.t.logprob_chunk_tokens)
        mask = batch["loss_mask"]
        return (lp * mask).sum(-1).view(2, -1), mask.sum(-1).clamp(min=1).view(2, -1)

    @torch.no_grad()
    def _reference_logps(self, model, items: list[Item]) -> None:
        """Fill in `ref` of this rank's items; every rank runs the same number of forward passes
        (ZeRO-3 forwards are collectives), the short ones repeating an item and ignoring it."""
        if self.t.loss in REFERENCE_FREE:
            return
        micro = self.plan.micro
        passes = max(-(-n // micro) for n in D.all_gather_object(len(items)))
        was_training = model.training
        model.eval()
        for k in range(passes):
            chunk = items[k * micro : (k + 1) * micro]
            logps, _ = self._sequence_logps(model, chunk or items[:1] or [self.pairs.filler])
            for it, a, b in zip(chunk, logps[0].tolist(), logps[1].tolist()):
                it.ref = (a, b)
        model.train(was_training)

    # ---- losses ---------------------------------------------------------------------------------
    def _rewards(self, items: list[Item], logps: torch.Tensor, lengths: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The implicit rewards of both responses: beta (log pi - log pi_ref), or for the reference-free
        losses beta times the mean token log-probability."""
        if self.t.loss in REFERENCE_FREE:
            return self.t.beta * logps[0] / lengths[0], self.t.beta * logps[1] / lengths[1]
        ref = torch.tensor([it.ref for it in items], dtype=logps.dtype, device=logps.device).T
        return implicit_reward(logps[0], ref[0], self.t.beta), implicit_reward(logps[1], ref[1], self.t.beta)

    def _losses(self, items: list[Item], logps: torch.Tensor, lengths: torch.Tensor, weights: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(per-item loss [B], per-item statistics to sum) for the configured loss."""
        t = self.t
        ref = torch.tensor([it.ref for it in items], dtype=logps.dtype, device=logps.device).T
        (a, b), (ref_a, ref_b), (len_a, len_b) = logps, ref, lengths
        if t.loss == "kto":
            desirable = torch.tensor([it.desirable for it in items], device=logps.device)
            # z_ref is a batch estimate: over the micro-batches of every rank at this accumulation slot
            # (gathered as host tensors: a pickled GPU tensor would land on the sender's device index)
            parts = D.all_gather_object(tuple(x.detach().cpu() for x in (b, ref_b, weights)))
            z = kto_reference_point(*(torch.cat([part[k] for part in parts]).to(logps.device) for k in range(3)))
            loss = kto_loss(a, ref_a, desirable, z, t.beta, t.kto_desirable_weight, t.kto_undesirable_weight)
            r = implicit_reward(a, ref_a, t.beta).detach()
            d = desirable.float()
            return loss, {"rewards/desirable": r * d, "desirable": d, "rewards/undesirable": r * (1 - d),
                          "undesirable": 1 - d, "kl": torch.full_like(r, float(z))}
        chosen, rejected = self._rewards(items, logps.detach(), lengths)
        if t.loss == "simpo":
            loss = simpo_loss(a, b, len_a, len_b, t.beta, t.simpo_gamma)
        elif t.loss == "orpo":
            loss = orpo_loss(a, b, len_a, len_b, t.orpo_lambda)
        else:
            loss = (dpo_loss(a, b, ref_a, ref_b, t.beta, t.label_smoothing) if t.loss == "dpo"
                    else ipo_loss(a, b, ref_a, ref_b, t.beta))
        if t.nll_coef and t.loss != "orpo":
            loss = loss + t.nll_coef * chosen_nll(a, len_a)
        return loss, {"rewards/chosen": chosen, "rewards/rejected": rejected,
                      "reward_accuracy": (chosen > rejected).float(), "margin": chosen - rejected,
                      "logps/chosen": a.detach(), "logps/rejected": b.detach()}

    def _update(self, local: list[Item], epochs: int, shuffle: bool) -> dict:
        """`epochs` passes over this rank's items in minibatches of about `batch_size` items (global);
        each minibatch is exactly `accumulation` micro-batches on every rank, so DeepSpeed's accumulation
        boundaries line up; a rank short of items runs a weight-0 filler."""
        p = self.plan
        per_rank = D.all_gather_object(len(local))
        n_global = sum(per_rank)
        if n_global == 0:
            return {}
        minibatches = minibatch_count(n_global, max(per_rank), p.batch, p.micro, p.accumulation)
        scale = p.accumulation * p.ranks  # undo DeepSpeed's averaging (see SFT)
        sums: dict[str, float] = {}
        count = 0.0
        self.actor.train()
        for _ in range(epochs):
            order = torch.randperm(len(local), device="cpu").tolist() if shuffle else list(range(len(local)))
            for chunk in split_evenly(order, minibatches):
                (m_global,) = D.all_sum([float(len(chunk))])
                for slot in split_evenly(chunk, p.accumulation):
                    items = [local[i] for i in slot] or [local[0] if local else self.pairs.filler]
                    weights = torch.tensor([1.0 if slot else 0.0] * len(items), device=self.device)
                    logps, lengths = self._sequence_logps(self.actor, items)
                    loss, stats = self._losses(items, logps, lengths, weights)
                    self.actor.backward((loss * weights).sum() / m_global * scale)
                    self.actor.step()
                    sums["loss"] = sums.get("loss", 0.0) + float((loss.detach() * weights).sum())
                    for k, v in stats.items():
                        sums[k] = sums.get(k, 0.0) + float((v * weights).sum())
                    count += float(weights.sum())
        keys = list(sums)
        totals = dict(zip(keys, D.all_sum([sums[k] for k in keys])))
        (count,) = D.all_sum([count])
        out = {k: v / max(count, 1.0) for k, v in totals.items() if k not in ("desirable", "undesirable")}
        for side in ("desirable", "undesirable"):
            if side in totals:
                out[f"rewards/{side}"] = totals[f"rewards/{side}"] / max(totals[side], 1.0)
        return out

    # ---- reference log-probabilities ------------------------------------------------------------
    def _offline_reference(self, items: list[Item], held_out: list[Item]) -> tuple[list[Item], list[Item]]:
        """Offline pairs scored once by the reference: a model of its own, loaded for this one pass, or the
        policy before any update."""
        reference = (load_model(self.t.reference_model, self.cfg.model.dtype, self.device,
                                self.cfg.model.attn_implementation) if self.t.reference_model else None)
        scored = tuple(self._scored_by_reference(reference or self.actor, x) for x in (items, held_out))
        del reference
        gc.collect()
        return scored

    def _scored_by_reference(self, model, items: list[Item]) -> list[Item]:
        """All `items` with `ref` filled in, each rank scoring its share."""
        mine, _ = rank_shard(len(items))
        local = [items[i] for i in mine]
        self._reference_logps(model, local)
        return [it for part in D.all_gather_object(local) for it in part]

    # ---- the loop's hooks -----------------------------------------------------------------------
    def train_step(self, step: int) -> dict:
        start = time.time()
        items, stats = self.pairs.next()
        self.rollouts.before_update()
        if isinstance(self.pairs, OfflinePairs):
            stats.update(self._update(items, 1, shuffle=False))
        else:  # a round of fresh pairs: their reference, then `epochs` passes over them
            self._reference_logps(self.reference if self.reference is not None else self.actor, items)
            stats.update(self._update(items, self.t.epochs, shuffle=True))
        return {**stats, "lr": self.actor.get_lr()[0], "step_seconds": time.time() - start}

    def after_step(self) -> None:
        self.rollouts.after_update(self.actor)

    def evaluate(self, step: int) -> dict:
        out = self._held_out_preferences() if self.pairs.eval_items else {}
        if self.eval_rows:
            out["eval_accuracy"] = self.rollouts.greedy_accuracy(self.eval_rows, self.rollouts.sampling.max_new_tokens)
        return out

    @torch.no_grad()
    def _held_out_preferences(self) -> dict:
        """The policy's implicit-reward accuracy and margin on the held-out pairs."""
        eval_items = self.pairs.eval_items
        mine, per_rank = rank_shard(len(eval_items))
        local, micro = [eval_items[i] for i in mine], self.plan.micro
        correct = margin = 0.0
        self.actor.eval()
        for k in range(-(-per_rank // micro)):  # the same number of passes on every rank
            chunk = local[k * micro : (k + 1) * micro]
            logps, lengths = self._sequence_logps(self.actor, chunk or eval_items[:1])
            if chunk:
                chosen, rejected = self._rewards(chunk, logps, lengths)
                correct, margin = correct + float((chosen > rejected).sum()), margin + float((chosen - rejected).sum())
        self.actor.train()
        correct, margin = D.all_sum([correct, margin])
        return {"eval_reward_accuracy": correct / len(eval_items), "eval_margin": margin / len(eval_items)}

    def state_dict(self) -> dict:
        return self.pairs.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.pairs.load_state_dict(state)

    def summary_extra(self) -> dict:
        return {f"data_{k}": v for k, v in self.pairs.note.items()}

    def close(self) -> None:
        self.rollouts.close()
