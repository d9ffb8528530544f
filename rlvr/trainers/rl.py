"""The one RL loop: PPO with a critic, and GRPO, Dr. GRPO, RLOO, REINFORCE++ without one.

    rollout (n samples per prompt) -> rewards from verifiers -> old / reference logprobs, values
    -> advantages -> PPO epochs over minibatches -> the generation engine sees the new weights

The estimators differ only in `advantages()` and the loss terms they switch on; everything else is
shared. Every rank holds whole groups (all n samples of its prompts), so group statistics never cross
ranks, and every rank runs the same number of forward passes (ZeRO-3 forwards are collectives).
"""
from __future__ import annotations

import time

import torch

from rlvr import distributed as D
from rlvr.algorithms.advantages import (dr_grpo_advantages, gae, grpo_advantages, masked_mean,
                                        reinforce_pp_advantages, rloo_advantages, whiten)
from rlvr.algorithms.controllers import KLController, RunningMoments
from rlvr.algorithms.logprobs import chunked_logprobs
from rlvr.algorithms.losses import aggregate, kl_penalty, policy_loss, value_loss
from rlvr.algorithms.rollout_correction import rollout_metrics, rollout_stats, rollout_weights
from rlvr.config.rl import RLConfig
from rlvr.errors import UserError
from rlvr.generation.base import Sample
from rlvr.models import disable_dropout, load_model, load_tokenizer
from rlvr.rollouts import Rollouts, context_length, prompts_that_fit
from rlvr.trainers.base import Trainer
from rlvr.trainers.engines import BatchPlan, deepspeed_config, hf_zero3_context, make_engine
from rlvr.trainers.evaluation import check_batch, training_and_held_out
from rlvr.trainers.rl_models import ValueModel, reference_engine
from rlvr.trainers.rollout import RolloutBatch, build_batch, last_token_rewards, shape_reward
from rlvr.trainers.sampler import EpochSampler
from rlvr.trainers.shared_prompts import response_logits, shares_prompts

GROUP_ESTIMATORS = {"grpo": grpo_advantages, "dr_grpo": dr_grpo_advantages, "rloo": rloo_advantages}


class RLTrainer(Trainer):
    plot_keys = ["reward", "eval_accuracy", "kl", "response_length", "entropy"]

    def __init__(self, cfg: RLConfig):
        t = cfg.trainer
        super().__init__(cfg, t.max_steps, t.seed, t.save_every, t.eval_every, t.keep_checkpoints, t.resume,
                         t.max_seconds)
        self.t = t
        world = D.world_size()
        if t.prompts_per_step % world:
            raise UserError(f"trainer.prompts_per_step: {t.prompts_per_step} must be a multiple of the "
                            f"number of ranks ({world})")
        rollout = t.prompts_per_step * t.samples_per_prompt
        if rollout % t.minibatch_size:
            raise UserError(f"trainer.minibatch_size: {t.minibatch_size} must divide prompts_per_step x "
                            f"samples_per_prompt = {rollout}")
        if t.algorithm == "rloo" and t.samples_per_prompt < 2:
            raise UserError("trainer.samples_per_prompt: RLOO needs at least 2")
        self.plan = BatchPlan.make(t.minibatch_size, t.micro_batch_size, world, key="trainer")
        self.updates_per_step = t.ppo_epochs * rollout // t.minibatch_size

        model_path = self.prepare_model(t.seed)
        self.tokenizer = load_tokenizer(model_path)
        train, held_out, carved = training_and_held_out(
            cfg.data, {"prompt": str}, min(t.eval_samples, cfg.data.eval_samples or t.eval_samples))
        if carved:
            self.log_line(carved)
        context = context_length(model_path, cfg.generation)
        fit = [prompts_that_fit(part.rows, self.tokenizer, cfg.data, context, cfg.generation.max_new_tokens,
                                part.origin) for part in (train, held_out)]
        (self.rows, long_rows), (self.eval_rows, long_eval_rows) = fit
        if long_rows or long_eval_rows:
            self.log_line(f"data: skipped {long_rows} training and {long_eval_rows} held-out rows whose "
                          f"prompt leaves no room for generation.max_new_tokens in the model's context")
        check_batch("trainer.prompts_per_step", t.prompts_per_step, len(self.rows), "prompts", train.origin)
        self.sampler = EpochSampler(len(self.rows), seed=t.seed)

        ds = deepspeed_config(cfg.deepspeed, self.plan, t.grad_clip, cfg.model.dtype)
        zero3 = hf_zero3_context(ds)  # alive while models load
        total_updates = t.max_steps * self.updates_per_step
        place = None if zero3 else self.device  # under zero.Init DeepSpeed places the partitions itself
        attn = cfg.model.attn_implementation
        actor = disable_dropout(load_model(model_path, cfg.model.dtype, place, attn))
        self.actor = make_engine(actor, ds, t.lr, t.betas, t.weight_decay, t.warmup_steps, total_updates,
                                 t.min_lr_ratio, t.gradient_checkpointing)
        self.engines = {"actor": self.actor}
        self.critic = None
        if t.algorithm == "ppo":
            critic = ValueModel(cfg.critic_model or model_path, cfg.model.dtype, attn)
            critic = critic.to(place) if place is not None else critic
            self.critic = make_engine(critic, ds, t.critic_lr, t.betas, t.weight_decay, t.warmup_steps,
                                      total_updates, t.min_lr_ratio, t.gradient_checkpointing)
            self.engines["critic"] = self.critic
        self.reference = (reference_engine(model_path, cfg.model.dtype, ds, self.device, attn)
                          if t.kl_coef > 0 else None)
        self.kl_ctl = KLController(t.kl_coef, t.kl_target, t.kl_horizon)
        self.reward_stats = RunningMoments()

        self.rollouts = Rollouts(cfg, self.actor, self.tokenizer, model_path, t.seed, self.device)
        self.sampling = self.rollouts.sampling
        # the hf engine samples from the actor's own module and records softmax(logits / T) of each token
        # it drew: in float32 those are the old log-probabilities (to 1e-7), and another pass would only
        # repeat them; in 16-bit, decoding token by token and the training pass round differently
        self.recompute_logprobs = (t.recompute_logprobs if t.recompute_logprobs is not None
                                   else not self.rollouts.shares_weights or cfg.model.dtype != "float32")
        self.share_prompts = shares_prompts(t, self.log_line)

    # ---- rollout --------------------------------------------------------------------------------
    def _generate_groups(self, prompt_indices: list[int]) -> list[list[Sample]]:
        rows = [self.rows[i] for i in prompt_indices]
        n = self.t.samples_per_prompt
        groups = self.rollouts.sample(rows, n, overlap=True)
        r = self.cfg.reward
        for s in (s for g in groups for s in g):
            s.reward = shape_reward(s.reward, s, self.sampling.max_new_tokens, r.truncation_penalty,
                                    r.overlong, r.overlong_buffer)
        return groups

    def _my_share(self, indices: list[int]) -> list[int]:
        return indices[D.rank() :: D.world_size()]

    def rollout(self) -> tuple[list[Sample], dict]:
        """This rank's groups for one step. Dynamic sampling swaps groups whose rewards are all equal
        (zero advantage: no signal) for fresh ones; every rank runs the same number of refill rounds."""
        per_rank = self.t.prompts_per_step // D.world_size()
        groups = self._generate_groups(self._my_share(self.sampler.take(self.t.prompts_per_step)))
        flat_share = sum(map(_flat, groups)) / len(groups)
        rounds = 0
        while self.t.dynamic_sampling and rounds < self.t.max_refill_rounds:
            (flat,) = D.all_sum([float(sum(map(_flat, groups)))])
            if flat == 0:
                break
            rounds += 1
            fresh = self._generate_groups(self._my_share(self.sampler.take(self.t.prompts_per_step)))
            informative = [g for g in fresh if not _flat(g)]
            groups = [g if not _flat(g) or not informative else informative.pop() for g in groups]
        assert len(groups) == per_rank
        return [s for g in groups for s in g], {"flat_group_share": flat_share, "refill_rounds": rounds}

    # ---- model passes ---------------------------------------------------------------------------
    def _forward_logprobs(self, model, b: RolloutBatch, entropy: bool = False
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(log-probabilities [B, T] of the response tokens, their entropies [B, T] or None), under the
        distribution the samples came from: softmax(logits / temperature), the logits as they are when greedy.
        A chunk of tokens at a time (trainer.logprob_chunk_tokens): no float32 [B, T, V] beyond one chunk."""
        logits = response_logits(model, b, self.share_prompts)
        temperature = self.sampling.temperature if self.sampling.temperature > 0 else 1.0
        tokens = b.input_ids[:, b.prompt_len :]
        return chunked_logprobs(logits, tokens, temperature, self.t.logprob_chunk_tokens, with_entropy=entropy)

    def _values(self, b: RolloutBatch) -> torch.Tensor:
        """V(s_t) [B, T] at the positions whose logits predict the response tokens."""
        return response_logits(self.critic, b, self.share_prompts).squeeze(-1)

    @torch.no_grad()
    def _in_micro_batches(self, fn, b: RolloutBatch) -> torch.Tensor:
        m = self.plan.micro
        return torch.cat([fn(b.select(list(range(i, min(i + m, len(b)))))) for i in range(0, len(b), m)])

    # ---- advantages -----------------------------------------------------------------------------
    def advantages(self, b: RolloutBatch, old_lp, ref_lp, values) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(advantages [B, T], returns [B, T] for the critic or None)."""
        t, mask = self.t, b.response_mask
        if t.algorithm in GROUP_ESTIMATORS:
            seq = GROUP_ESTIMATORS[t.algorithm](b.scores.view(-1, t.samples_per_prompt)).flatten()
            return seq[:, None] * mask, None
        rewards = last_token_rewards(b.scores, b.lengths, mask.shape[1])
        if ref_lp is not None and t.kl_in_reward:
            rewards = rewards - self.kl_ctl.beta * kl_penalty(old_lp, ref_lp, "k1") * mask
        if t.algorithm == "reinforce_pp":
            return reinforce_pp_advantages(rewards, mask, t.gamma), None
        adv, returns = gae(rewards, values, mask, t.gamma, t.lam)
        if t.whiten_advantages:
            adv = whiten(adv, mask)
        return adv, returns

    # ---- one step -------------------------------------------------------------------------------
    def train_step(self, step: int) -> dict:
        t0 = time.time()
        samples, rollout_stats = self.rollout()
        self.rollouts.before_update()
        gen_seconds = time.time() - t0
        if self.cfg.reward.normalize or self.cfg.reward.clip:
            self._normalize_rewards(samples)
        keep = [not (self.cfg.reward.overlong == "filter" and s.finish_reason == "length") for s in samples]
        b = build_batch(samples, self.tokenizer.pad_token_id, keep, self.device)

        t1 = time.time()
        self.actor.eval()
        old_lp = (self._in_micro_batches(lambda mb: self._forward_logprobs(self.actor, mb)[0], b)
                  if self.recompute_logprobs else b.gen_logprobs)
        ref_lp = (self._in_micro_batches(lambda mb: self._forward_logprobs(self.reference, mb)[0], b)
                  if self.reference is not None else None)
        values = self._in_micro_batches(self._values, b) if self.critic is not None else None
        adv, returns = self.advantages(b, old_lp, ref_lp, values)
        self.actor.train()
        weights, correction = self._rollout_correction(b, old_lp)

        stats = self._update(b, old_lp, ref_lp, values, adv, returns, weights)
        train_seconds = time.time() - t1
        return {**self._metrics(samples, b, old_lp, ref_lp, values, returns, stats, rollout_stats,
                                gen_seconds, train_seconds), **correction}

    def _rollout_correction(self, b: RolloutBatch, old_lp: torch.Tensor) -> tuple[torch.Tensor | None, dict]:
        """Importance weights for the policy-gradient loss and their statistics, when the trainer's old
        log-probabilities are its own pass rather than the engine's numbers (rlvr/algorithms/
        rollout_correction.py); (None, {}) otherwise, where the weights would all be 1."""
        if not self.recompute_logprobs:
            return None, {}
        rc = self.t.rollout_correction
        args = (old_lp, b.gen_logprobs, b.response_mask, rc.mode, rc.level, rc.cap)
        sums, extremes = rollout_stats(*args)
        totals = dict(zip(sums, D.all_sum(list(sums.values()))))
        seen = D.all_gather_object(extremes)
        extremes = {"ratio_max": max(e["ratio_max"] for e in seen), "ratio_min": min(e["ratio_min"] for e in seen)}
        weights = rollout_weights(*args) if rc.mode != "none" else None
        return weights, rollout_metrics(totals, extremes)

    def _update(self, b, old_lp, ref_lp, values, adv, returns, weights: torch.Tensor | None) -> dict:
        t, plan, mask = self.t, self.plan, b.response_mask
        local_mb = t.minibatch_size // plan.ranks
        scale = plan.accumulation * plan.ranks  # undo DeepSpeed's averaging (see SFT)
        # summed on the device and read once at the end: a read per micro-batch would wait for the GPU
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        sums = dict.fromkeys(("tokens", "policy_loss", "clip_frac", "approx_kl", "value_loss", "kl_loss"), zero)
        # measured on the first minibatch, before its optimizer step: the policy that sampled
        probe = dict.fromkeys(("entropy", "logprob_mismatch", "tokens", "response_tokens"), zero)
        n = t.samples_per_prompt
        for epoch in range(t.ppo_epochs):
            # whole groups stay together, so a minibatch computes each of its prompts once
            groups = torch.randperm(len(b) // n, device="cpu")  # host: only the order is used
            order = (groups[:, None] * n + torch.arange(n, device="cpu")).flatten().tolist()
            for start in range(0, len(b), local_mb):
                idx = order[start : start + local_mb]
                first = epoch == 0 and start == 0
                (n_tokens,) = D.all_sum([float(mask[idx].sum())])
                n_tokens = max(n_tokens, 1.0)
                for m0 in range(0, len(idx), plan.micro):
                    mi = idx[m0 : m0 + plan.micro]
                    mb = b.select(mi)
                    mmask = mask[mi]
                    # the entropy of the first minibatch is a metric; with a bonus it is also a loss term
                    lp, ent = self._forward_logprobs(self.actor, mb, entropy=t.entropy_coef > 0 or first)
                    if first:
                        with torch.no_grad():
                            tmask = mb.token_mask
                            probe["entropy"] = probe["entropy"] + (ent.detach() * mmask).sum()
                            probe["response_tokens"] = probe["response_tokens"] + mmask.sum()
                            mismatch = ((lp.detach() - mb.gen_logprobs).abs() * tmask).sum()
                            probe["logprob_mismatch"] = probe["logprob_mismatch"] + mismatch
                            probe["tokens"] = probe["tokens"] + tmask.sum()
                    pl, clipped = policy_loss(lp, old_lp[mi], adv[mi], t.clip_low, t.clip_high, t.dual_clip)
                    if weights is not None:  # rollout correction: the policy-gradient term alone
                        pl = pl * weights[mi]
                    loss_tok = pl
                    if ref_lp is not None and not t.kl_in_reward:
                        kl = kl_penalty(lp, ref_lp[mi], t.kl_estimator)
                        loss_tok = loss_tok + self.kl_ctl.beta * kl
                        sums["kl_loss"] = sums["kl_loss"] + (kl.detach() * mmask).sum()
                    if t.entropy_coef > 0:
                        loss_tok = loss_tok - t.entropy_coef * ent
                    loss = aggregate(loss_tok, mmask, t.loss_agg, n_tokens, t.minibatch_size,
                                     self.sampling.max_new_tokens)
                    self.actor.backward(loss * scale)
                    self.actor.step()
                    with torch.no_grad():
                        sums["policy_loss"] = sums["policy_loss"] + (pl * mmask).sum()
                        sums["clip_frac"] = sums["clip_frac"] + (clipped * mmask).sum()
                        sums["approx_kl"] = sums["approx_kl"] + (0.5 * (lp - old_lp[mi]) ** 2 * mmask).sum()
                        sums["tokens"] = sums["tokens"] + mmask.sum()
                    if self.critic is not None:
                        v = self._values(mb)
                        vl = value_loss(v, values[mi], returns[mi], t.value_clip)
                        self.critic.backward(aggregate(vl, mmask, "token_mean", n_tokens) * t.vf_coef * scale)
                        self.critic.step()
                        sums["value_loss"] = sums["value_loss"] + (vl.detach() * mmask).sum()
        tokens, *totals = D.all_sum(torch.stack(list(sums.values())).tolist())
        stats = {k: v / max(tokens, 1.0) for k, v in zip(list(sums)[1:], totals)}
        entropy, mismatch, tokens, response_tokens = D.all_sum(torch.stack(list(probe.values())).tolist())
        stats["entropy"] = entropy / max(response_tokens, 1.0)
        stats["logprob_mismatch"] = mismatch / max(tokens, 1.0)
        return stats

    def _normalize_rewards(self, samples: list[Sample]) -> None:
        rewards = [s.reward for s in samples]
        if self.cfg.reward.normalize:
            self.reward_stats.update(sum(D.all_gather_object(rewards), []))
            rewards = [r / self.reward_stats.std for r in rewards]
        if self.cfg.reward.clip:
            c = self.cfg.reward.clip
            rewards = [max(-c, min(c, r)) for r in rewards]
        for s, r in zip(samples, rewards):
            s.reward = r

    # ---- metrics --------------------------------------------------------------------------------
    def _metrics(self, samples, b, old_lp, ref_lp, values, returns, stats, rollout_stats, gen_s, train_s):
        mask = b.token_mask
        n_tok = float(mask.sum())
        parts = {f"reward/{k}": sum(s.scores.get(k, 0.0) for s in samples) for k in self.rollouts.part_names}
        sums = {
            "reward": sum(s.reward for s in samples),
            "reward_sq": sum(s.reward**2 for s in samples),
            "accuracy": sum(bool(s.correct) for s in samples),
            "truncated": sum(s.finish_reason == "length" for s in samples),
            "response_length": float(b.lengths.sum()),
            "kl": float((kl_penalty(old_lp, ref_lp, "k3") * mask).sum()) if ref_lp is not None else 0.0,
            "flat_groups": rollout_stats["flat_group_share"],
            **parts,
        }
        keys = list(sums)
        totals = dict(zip(keys, D.all_sum([sums[k] for k in keys])))
        (n_samples, n_tokens) = D.all_sum([float(len(samples)), n_tok])
        mean = totals["reward"] / n_samples
        m = {
            "reward": mean,
            "reward_std": max(totals["reward_sq"] / n_samples - mean**2, 0.0) ** 0.5,
            "accuracy": totals["accuracy"] / n_samples,
            "response_length": totals["response_length"] / n_samples,
            "truncated_share": totals["truncated"] / n_samples,
            "flat_group_share": totals["flat_groups"] / D.world_size(),
            **{k: totals[k] / n_samples for k in parts},
            **stats,
            "gen_seconds": gen_s, "train_seconds": train_s,
            "tokens_per_second": n_tokens / max(gen_s, 1e-9),
            "lr": self.actor.get_lr()[0],
        }
        if ref_lp is not None:
            m["kl"] = totals["kl"] / max(n_tokens, 1)
            m["beta"] = self.kl_ctl.beta
            self.kl_ctl.update(m["kl"], int(n_samples))
        if values is not None:
            mm = b.response_mask
            var_r = masked_mean((returns - masked_mean(returns, mm)) ** 2, mm)
            var_e = masked_mean((returns - values - masked_mean(returns - values, mm)) ** 2, mm)
            m["explained_variance"] = float(1 - var_e / var_r.clamp(min=1e-8))
        if self.t.dynamic_sampling:
            m["refill_rounds"] = rollout_stats["refill_rounds"]
        return m

    # ---- evaluation and state -------------------------------------------------------------------
    def evaluate(self, step: int) -> dict:
        return {"eval_accuracy": self.rollouts.greedy_accuracy(self.eval_rows, self.sampling.max_new_tokens)}

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict(), "kl": self.kl_ctl.state_dict(),
                "reward_stats": self.reward_stats.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.kl_ctl.load_state_dict(state["kl"])
        self.reward_stats.load_state_dict(state["reward_stats"])

    def after_step(self) -> None:
        self.rollouts.after_update(self.actor)

    def close(self) -> None:
        self.rollouts.close()


def _flat(group: list[Sample]) -> bool:
    return len({s.reward for s in group}) == 1
