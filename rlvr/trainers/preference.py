"""The DPO family in one trainer: DPO, IPO, KTO, ORPO, SimPO; offline, online (iterative) and SPIN.

    offline   pairs fixed before training: chosen/rejected rows of the data, or sampled once from the
              starting policy (K per prompt) and ranked by the verifiers; reference log-probabilities
              computed once, written to the run folder with the pairs, and the reference freed.
              One step = one optimizer step over `batch_size` pairs.
    online    one step = one round: K samples per prompt from the current policy, ranked by the verifiers
              (or a reward model), best paired against worst; prompts whose samples all score the same
              carry no preference and are skipped (counted); reference log-probabilities of the round,
              then `epochs` passes of updates over its pairs.
    spin      like online, but chosen = the data's response and rejected = the policy's own sample.

KTO turns each pair into two unpaired examples (chosen desirable, rejected undesirable); each also carries
another prompt's response, whose log-ratio estimates KTO's reference point.

Offline pairs are built inside the first step, so a wall-time budget (`trainer.max_seconds`) pays for
sampling them, as it pays for the sampling of online rounds and of RL.
"""
from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass

import torch

import verifiers
from rlvr import distributed as D
from rlvr.algorithms.logprobs import token_logprobs
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
from rlvr.atomic import atomic_write_json
from rlvr.config.preference import PreferenceConfig
from rlvr.data import load_rows, render_prompt, render_response
from rlvr.data.templates import encode
from rlvr.errors import UserError
from rlvr.generation import sampling_params
from rlvr.generation.base import Sample
from rlvr.generation.factory import make_engine as make_generation_engine
from rlvr.models import load_model, load_tokenizer, prepare_model
from rlvr.trainers.base import Trainer
from rlvr.trainers.engines import BatchPlan, deepspeed_config, hf_zero3_context, make_engine
from rlvr.trainers.evaluation import greedy_accuracy, rank_shard
from rlvr.trainers.rl_models import reference_engine
from rlvr.trainers.sampler import EpochSampler
from rlvr.trainers.sft import Example, collate
from rlvr.trainers.zero3 import generation_engine

REFERENCE_FREE = {"orpo", "simpo"}
PAIRS_FILE = "preference_pairs.json"  # offline pairs and their reference log-probabilities


@dataclass
class Item:
    """Two responses to one prompt, as token ids, and their reference log-probabilities.
    A pair: (chosen, rejected). A KTO example: (its response, another prompt's response for z_ref)."""

    prompt: list[int]
    responses: tuple[list[int], list[int]]
    desirable: bool = True  # KTO's label of responses[0]
    ref: tuple[float, float] = (0.0, 0.0)

    def to_json(self) -> dict:
        return {"prompt": self.prompt, "responses": list(self.responses), "desirable": self.desirable,
                "ref": list(self.ref)}

    @staticmethod
    def from_json(d: dict) -> Item:
        return Item(d["prompt"], tuple(d["responses"]), d["desirable"], tuple(d["ref"]))


def best_and_worst(rewards: list[float]) -> tuple[int, int] | None:
    """(index of the highest reward, index of the lowest), first on ties; None when all are equal."""
    if max(rewards) == min(rewards):
        return None
    return rewards.index(max(rewards)), rewards.index(min(rewards))


def unpaired(pairs: list[Item]) -> list[Item]:
    """KTO examples from pairs: chosen desirable, rejected undesirable. Example i borrows example i + 2's
    response (the same role, the next pair's prompt) as its mismatched response for the KL estimate."""
    singles = [(p.prompt, r, k == 0) for p in pairs for k, r in enumerate(p.responses)]
    n = len(singles)
    return [Item(prompt, (response, singles[(i + 2) % n][1]), desirable)
            for i, (prompt, response, desirable) in enumerate(singles)]


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
        self.offline = t.mode == "offline"
        self.sampled_offline = self.offline and t.pairs == "policy"

        self.model_path = prepare_model(cfg.model, self.run_dir, seed=t.seed) if D.is_main() else None
        self.model_path = D.broadcast_object(self.model_path)
        self.tokenizer = load_tokenizer(self.model_path)
        need = {"prompt": str, "response": (str, int, float)} if t.mode == "spin" else {"prompt": str}
        self.rows = [] if (self.offline and t.pairs == "data") else load_rows(cfg.data, cfg.data.split, need).rows
        self.eval_rows = self._load_eval_rows()
        # online / spin walk through the prompts; offline through the pairs, once they exist
        self.prompt_sampler = EpochSampler(len(self.rows), seed=t.seed) if not self.offline else None
        self.pair_sampler: EpochSampler | None = None
        self.items: list[Item] | None = None
        self.eval_items: list[Item] = []  # offline pairs data: held-out pairs for reward accuracy
        self._sampler_state: dict | None = None
        self.note: dict = {}
        self._filler: Item | None = None  # a weight-0 item for a rank with nothing to train on

        ds = deepspeed_config(cfg.deepspeed, self.plan, t.grad_clip, cfg.model.dtype)
        zero3 = hf_zero3_context(ds)  # alive while models load
        per_round = t.epochs * -(-t.prompts_per_step * (2 if t.loss == "kto" else 1) // t.batch_size)
        total_updates = t.max_steps * (1 if self.offline else per_round)
        attn = cfg.model.attn_implementation
        actor = load_model(self.model_path, cfg.model.dtype, None if zero3 else self.device, attn)
        self.actor = make_engine(actor, ds, t.lr, t.betas, t.weight_decay, t.warmup_steps, total_updates,
                                 t.min_lr_ratio)
        self.engines = {"actor": self.actor}
        self.reference = None
        if not self.offline and t.reference == "initial" and t.loss not in REFERENCE_FREE:
            self.reference = reference_engine(self.model_path, cfg.model.dtype, ds, self.device, attn)

        if cfg.generation.backend == "hf":
            # samples come from the actor's own module: no copy, no weight sync
            self.generator = generation_engine(self.actor, self.tokenizer, cfg.generation, t.seed, self.device)
        else:
            self.generator = make_generation_engine(cfg, self.model_path, self.tokenizer)
        self.sampling = sampling_params(cfg.generation)
        self.sampling.seed = None  # the engine's generator advances; its state is checkpointed
        self.pool = None
        if self.rows or self.eval_rows:
            try:
                verifier = verifiers.compose([{k: v for k, v in vars(s).items() if v is not None}
                                              for s in cfg.reward.verifiers])
            except verifiers.VerifierError as e:
                raise UserError(f"reward.verifiers: {e}") from None
            self.pool = verifiers.VerifierPool(verifier, workers=cfg.reward.workers, timeout=cfg.reward.timeout)

    def _load_eval_rows(self) -> list[dict]:
        """Held-out rows with a reference answer, for greedy accuracy. Pairs data has none of its own; it
        is evaluated on data.eval_source when that is set (or on arith's test split)."""
        cfg, t = self.cfg, self.t
        source = cfg.data.eval_source or cfg.data.source
        if t.eval_samples == 0 or (self.offline and t.pairs == "data" and source != "arith"
                                   and not cfg.data.eval_source):
            return []
        limit = min(t.eval_samples, cfg.data.eval_samples or t.eval_samples)
        rows = load_rows(cfg.data, cfg.data.eval_split, {"prompt": str}, source=source, limit=limit).rows
        return [r for r in rows if r.get("reference") is not None]

    # ---- tokens ---------------------------------------------------------------------------------
    def _prompt_ids(self, prompt: str) -> list[int]:
        ids = encode(self.tokenizer, render_prompt(self.tokenizer, prompt, self.cfg.data))
        if len(ids) >= self.t.max_seq_len:
            raise UserError(f"a prompt has {len(ids)} tokens, over trainer.max_seq_len={self.t.max_seq_len}: "
                            f"{prompt[:60]!r}")
        return ids

    def _response_ids(self, text: str) -> list[int]:
        return encode(self.tokenizer, render_response(self.tokenizer, str(text)))

    def _pair(self, prompt: list[int], chosen: list[int], rejected: list[int]) -> Item:
        """A pair with each response cut to fit max_seq_len after the prompt."""
        room = self.t.max_seq_len - len(prompt)
        return Item(prompt, (chosen[:room], rejected[:room]))

    # ---- sampling and scoring -------------------------------------------------------------------
    def _sample(self, rows: list[dict], n: int) -> list[list[Sample]]:
        """n scored samples per row, grouped by row."""
        prompts = [render_prompt(self.tokenizer, r["prompt"], self.cfg.data) for r in rows]
        samples = self.generator.generate(prompts, n, self.sampling) if rows else []
        self._score(samples, rows)
        return [samples[g * n : (g + 1) * n] for g in range(len(rows))]

    def _score(self, samples: list[Sample], rows: list[dict]) -> None:
        vs = [verifiers.Sample.from_row(rows[s.prompt_index], s.text) for s in samples]
        for s, score in zip(samples, self.pool.score(vs) if vs else []):
            s.row, s.reward, s.correct = rows[s.prompt_index], float(score.reward), score.correct

    def _ranked_pairs(self, groups: list[list[Sample]]) -> tuple[list[Item], int]:
        """(best-against-worst pairs, number of groups whose rewards were all equal)."""
        pairs, flat = [], 0
        for g in groups:
            picked = best_and_worst([s.reward for s in g])
            if picked is None:
                flat += 1
                continue
            best, worst = g[picked[0]], g[picked[1]]
            pairs.append(self._pair(best.prompt_ids, best.response_ids, worst.response_ids))
        return pairs, flat

    def _spin_pairs(self, rows: list[dict], groups: list[list[Sample]]) -> tuple[list[Item], int]:
        """(data response against the policy's sample, number of samples identical to the data's)."""
        pairs, same = [], 0
        for row, g in zip(rows, groups):
            chosen = self._response_ids(row["response"])
            for s in g:
                if s.response_ids == chosen:
                    same += 1
                    continue
                pairs.append(self._pair(s.prompt_ids, chosen, s.response_ids))
        return pairs, same

    # ---- model passes ---------------------------------------------------------------------------
    def _sequence_logps(self, model, items: list[Item]) -> tuple[torch.Tensor, torch.Tensor]:
        """([2, B] summed response log-probabilities, [2, B] response lengths) of both responses."""
        examples = [Example(it.prompt + it.responses[k], len(it.prompt)) for k in (0, 1) for it in items]
        batch = {k: v.to(self.device) for k, v in collate(examples, self.tokenizer.pad_token_id).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        lp = token_logprobs(logits[:, :-1], batch["input_ids"][:, 1:])
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
            logps, _ = self._sequence_logps(model, chunk or items[:1] or [self._filler])
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
                    items = [local[i] for i in slot] or [local[0] if local else self._filler]
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

    # ---- offline --------------------------------------------------------------------------------
    def _offline_items(self) -> tuple[list[Item], list[Item]]:
        """(training pairs or KTO examples, held-out pairs), with their reference log-probabilities: read
        back from the run folder when resuming, else built, scored by the reference, and written there."""
        path = self.run_dir / PAIRS_FILE
        if self.t.resume and path.is_file():
            saved = json.loads(path.read_text())
            self.note = saved["note"]
            return tuple([Item.from_json(d) for d in saved[k]] for k in ("items", "eval_items"))
        start = time.time()
        if self.sampled_offline:
            pairs, held_out = self._sampled_pairs(), []
        else:
            pairs = self._data_pairs(self.cfg.data.split)
            held_out = self._data_pairs(self.cfg.data.eval_split, self.t.eval_samples) if self.t.eval_samples else []
            self.note.update(pairs=len(pairs), eval_pairs=len(held_out))
        items = unpaired(pairs) if self.t.loss == "kto" else pairs
        if not items:
            raise UserError("no preference pairs to train on (every prompt's samples scored the same?)")
        self._filler = items[0]
        # the reference: a model of its own, needed for this one pass, or the policy before any update
        reference = (load_model(self.t.reference_model, self.cfg.model.dtype, self.device,
                                self.cfg.model.attn_implementation) if self.t.reference_model else None)
        items, held_out = (self._scored_by_reference(reference or self.actor, x) for x in (items, held_out))
        del reference
        gc.collect()
        self.note.update(items=len(items), build_seconds=round(time.time() - start, 1))
        if D.is_main():
            atomic_write_json(path, {"note": self.note, "items": [it.to_json() for it in items],
                                     "eval_items": [it.to_json() for it in held_out]})
        self.log_line(f"offline data: {self.note}")
        return items, held_out

    def _scored_by_reference(self, model, items: list[Item]) -> list[Item]:
        """All `items` with `ref` filled in, each rank scoring its share."""
        mine, _ = rank_shard(len(items))
        local = [items[i] for i in mine]
        self._reference_logps(model, local)
        return [it for part in D.all_gather_object(local) for it in part]

    def _data_pairs(self, split: str, limit: int | None = None) -> list[Item]:
        from rlvr.data.preferences import load_pairs

        return [self._pair(self._prompt_ids(r["prompt"]), self._response_ids(r["chosen"]),
                           self._response_ids(r["rejected"])) for r in load_pairs(self.cfg.data, split, limit)]

    def _sampled_pairs(self) -> list[Item]:
        """K samples per prompt from the starting policy, best against worst by reward, for a seeded random
        `offline_prompts` of the training prompts (not the first ones: with arith those are the SFT set)."""
        g = torch.Generator(device="cpu").manual_seed(self.t.seed)
        order = torch.randperm(len(self.rows), generator=g, device="cpu").tolist()
        rows = [self.rows[i] for i in order[: self.t.offline_prompts]]
        mine, per_rank = rank_shard(len(rows))
        padding = [rows[0]] * (per_rank - len(mine))  # every rank generates as often (ZeRO-3 collectives)
        groups = self._sample([rows[i] for i in mine] + padding, self.t.samples_per_prompt)[: len(mine)]
        pairs, flat = self._ranked_pairs(groups)
        correct = sum(bool(s.correct) for g in groups for s in g)
        flat, correct = D.all_sum([float(flat), float(correct)])
        pairs = [p for part in D.all_gather_object(pairs) for p in part]
        self.note.update(prompts=len(rows), pairs=len(pairs), flat_prompts=int(flat),
                         sample_accuracy=correct / max(len(rows) * self.t.samples_per_prompt, 1))
        return pairs

    def _offline_step(self) -> dict:
        if self.items is None:
            self.items, self.eval_items = self._offline_items()
            self._filler = self.items[0]
            self.pair_sampler = EpochSampler(len(self.items), seed=self.t.seed)
            if self._sampler_state is not None:
                self.pair_sampler.load_state_dict(self._sampler_state)
        indices = self.pair_sampler.take(self.t.batch_size)
        stats = self._update([self.items[i] for i in indices[D.rank() :: D.world_size()]], 1, shuffle=False)
        return {**stats, "epoch": self.pair_sampler.epoch}

    # ---- online and SPIN ------------------------------------------------------------------------
    def _online_step(self) -> dict:
        t = self.t
        start = time.time()
        picked = self.prompt_sampler.take(t.prompts_per_step)[D.rank() :: D.world_size()]
        rows = [self.rows[i] for i in picked]
        groups = self._sample(rows, t.samples_per_prompt if t.mode == "online" else 1)
        pairs, skipped = self._ranked_pairs(groups) if t.mode == "online" else self._spin_pairs(rows, groups)
        items = unpaired(pairs) if t.loss == "kto" else pairs
        # a rank left without items still runs its share of forward passes on a weight-0 filler
        first = groups[0][0]
        self._filler = Item(first.prompt_ids, (first.response_ids, first.response_ids))
        gen_seconds = time.time() - start
        self._reference_logps(self.reference if self.reference is not None else self.actor, items)
        stats = self._update(items, t.epochs, shuffle=True)
        n_samples = sum(len(g) for g in groups)
        sums = D.all_sum([float(len(pairs)), float(skipped), float(n_samples),
                          float(sum(bool(s.correct) for g in groups for s in g)),
                          float(sum(s.reward for g in groups for s in g))])
        n_pairs, skipped, n_samples, correct, reward = sums
        skip_key = "flat_share" if t.mode == "online" else "identical_share"
        skip_of = t.prompts_per_step if t.mode == "online" else n_samples
        return {**stats, "pairs": n_pairs, skip_key: skipped / skip_of, "sample_accuracy": correct / n_samples,
                "reward": reward / n_samples, "gen_seconds": gen_seconds, "epoch": self.prompt_sampler.epoch}

    # ---- the loop's hooks -----------------------------------------------------------------------
    def train_step(self, step: int) -> dict:
        start = time.time()
        metrics = self._offline_step() if self.offline else self._online_step()
        return {**metrics, "lr": self.actor.get_lr()[0], "step_seconds": time.time() - start}

    def after_step(self) -> None:
        if self.cfg.generation.backend != "hf":
            self.generator.update_weights(self.actor.module)

    def evaluate(self, step: int) -> dict:
        out = self._held_out_preferences() if self.eval_items else {}
        if self.eval_rows:
            out["eval_accuracy"] = greedy_accuracy(self.generator, self.tokenizer, self.eval_rows, self.cfg.data,
                                                   self.sampling.max_new_tokens, self._judge)
        return out

    @torch.no_grad()
    def _held_out_preferences(self) -> dict:
        """The policy's implicit-reward accuracy and margin on the held-out pairs."""
        mine, per_rank = rank_shard(len(self.eval_items))
        local, micro = [self.eval_items[i] for i in mine], self.plan.micro
        correct = margin = 0.0
        self.actor.eval()
        for k in range(-(-per_rank // micro)):  # the same number of passes on every rank
            chunk = local[k * micro : (k + 1) * micro]
            logps, lengths = self._sequence_logps(self.actor, chunk or self.eval_items[:1])
            if chunk:
                chosen, rejected = self._rewards(chunk, logps, lengths)
                correct, margin = correct + float((chosen > rejected).sum()), margin + float((chosen - rejected).sum())
        self.actor.train()
        correct, margin = D.all_sum([correct, margin])
        return {"eval_reward_accuracy": correct / len(self.eval_items), "eval_margin": margin / len(self.eval_items)}

    def _judge(self, rows: list[dict], samples: list[Sample]) -> list[bool]:
        for i, s in enumerate(samples):
            s.prompt_index = i  # one sample per row, in order
        self._score(samples, rows)
        return [bool(s.correct) for s in samples]

    def state_dict(self) -> dict:
        if self.offline:
            sampler = self.pair_sampler.state_dict() if self.pair_sampler else self._sampler_state
            return {"pair_sampler": sampler}
        return {"prompt_sampler": self.prompt_sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.offline:
            self._sampler_state = state["pair_sampler"]  # applied once the pairs are read back
        else:
            self.prompt_sampler.load_state_dict(state["prompt_sampler"])

    def summary_extra(self) -> dict:
        return {f"data_{k}": v for k, v in self.note.items()}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

