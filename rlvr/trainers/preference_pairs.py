"""Where the DPO family's pairs come from. The preference trainer holds one pair source:

    OfflinePairs  pairs fixed before training: chosen/rejected rows of the data, or sampled once from the
                  starting policy (K per prompt) and ranked by the verifiers; their reference
                  log-probabilities computed once and written to the run folder with them (a resumed run
                  reads them back). One step: the next `batch_size` pairs.
    OnlinePairs   one round per step: K samples per prompt from the current policy, the best paired against
                  the worst by reward (prompts whose samples all score the same carry no preference and are
                  skipped, counted); or, for SPIN, the data's response against each of the policy's samples.

A source hands each step this rank's items (pairs, or KTO's unpaired examples) and what it measured; the
trainer computes the reference log-probabilities it still needs and updates.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from rlvr import distributed as D
from rlvr.atomic import atomic_write_json
from rlvr.data import render_prompt, render_response
from rlvr.data.tokens import encode_capped
from rlvr.errors import UserError
from rlvr.generation.base import Sample
from rlvr.trainers.evaluation import check_batch, rank_shard
from rlvr.trainers.sampler import EpochSampler

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


class PairTokens:
    """Prompts and responses as the token ids the trainer scores, cut to `max_seq_len`."""

    def __init__(self, tokenizer, data_cfg, max_seq_len: int):
        self.tokenizer, self.data_cfg, self.max_seq_len = tokenizer, data_cfg, max_seq_len

    def prompt(self, prompt: str) -> list[int]:
        limit = self.max_seq_len
        text = render_prompt(self.tokenizer, prompt, self.data_cfg)
        ids, over = encode_capped(self.tokenizer, text, limit - 1)
        if over:
            raise UserError(f"a prompt has {limit} tokens or more, leaving no room for a response in "
                            f"trainer.max_seq_len={limit}: {prompt[:60]!r}")
        return ids

    def response(self, text: str) -> list[int]:
        """The response's tokens; of one longer than max_seq_len, only its first ones (`pair` cuts it)."""
        ids, _ = encode_capped(self.tokenizer, render_response(self.tokenizer, str(text)), self.max_seq_len)
        return ids

    def pair(self, prompt: list[int], chosen: list[int], rejected: list[int]) -> Item:
        """A pair with each response cut to fit max_seq_len after the prompt."""
        room = self.max_seq_len - len(prompt)
        return Item(prompt, (chosen[:room], rejected[:room]))

    def ranked_pairs(self, groups: list[list[Sample]]) -> tuple[list[Item], int]:
        """(best-against-worst pairs, number of groups whose rewards were all equal)."""
        pairs, flat = [], 0
        for g in groups:
            picked = best_and_worst([s.reward for s in g])
            if picked is None:
                flat += 1
                continue
            best, worst = g[picked[0]], g[picked[1]]
            pairs.append(self.pair(best.prompt_ids, best.response_ids, worst.response_ids))
        return pairs, flat


# Fills in the reference log-probabilities of all the given items (training items, held-out pairs).
ScoreReference = Callable[[list[Item], list[Item]], tuple[list[Item], list[Item]]]


class OfflinePairs:
    def __init__(self, cfg, run_dir: Path, tokens: PairTokens, rows: list[dict], rollouts,
                 score_reference: ScoreReference, log: Callable[[str], None]):
        self.cfg, self.t = cfg, cfg.trainer
        self.path = Path(run_dir) / PAIRS_FILE
        self.tokens, self.rows, self.rollouts = tokens, rows, rollouts
        self.score_reference, self.log = score_reference, log
        self.items: list[Item] | None = None  # built inside the first step: a time budget pays for it
        self.eval_items: list[Item] = []  # pairs data: held-out pairs for the implicit-reward accuracy
        self.sampler: EpochSampler | None = None
        self._sampler_state: dict | None = None
        self.note: dict = {}

    @property
    def filler(self) -> Item | None:
        """An item to run at weight 0 on a rank that has none (its forward passes are collectives)."""
        return self.items[0] if self.items else None

    def next(self) -> tuple[list[Item], dict]:
        if self.items is None:
            self.items, self.eval_items = self._load_or_build()
            self.sampler = EpochSampler(len(self.items), seed=self.t.seed)
            if self._sampler_state is not None:
                self.sampler.load_state_dict(self._sampler_state)
        indices = self.sampler.take(self.t.batch_size)
        return [self.items[i] for i in indices[D.rank() :: D.world_size()]], {"epoch": self.sampler.epoch}

    def _load_or_build(self) -> tuple[list[Item], list[Item]]:
        """(training pairs or KTO examples, held-out pairs), with their reference log-probabilities: read
        back from the run folder when resuming, else built, scored by the reference, and written there."""
        if self.t.resume and self.path.is_file():
            saved = json.loads(self.path.read_text())
            self.note = saved["note"]
            return tuple([Item.from_json(d) for d in saved[k]] for k in ("items", "eval_items"))
        start = time.time()
        if self.t.pairs == "policy":
            pairs, held_out = self._sampled_pairs(), []
        else:
            pairs = self._data_pairs(self.cfg.data.split)
            held_out = self._data_pairs(self.cfg.data.eval_split, self.t.eval_samples) if self.t.eval_samples else []
            self.note.update(pairs=len(pairs), eval_pairs=len(held_out))
        items = unpaired(pairs) if self.t.loss == "kto" else pairs
        if not items:
            raise UserError("no preference pairs to train on (every prompt's samples scored the same?)")
        what = "examples" if self.t.loss == "kto" else "pairs"
        check_batch("trainer.batch_size", self.t.batch_size, len(items), what, self.cfg.data.source)
        self.items = items  # the filler of the reference passes
        items, held_out = self.score_reference(items, held_out)
        self.note.update(items=len(items), build_seconds=round(time.time() - start, 1))
        if D.is_main():
            atomic_write_json(self.path, {"note": self.note, "items": [it.to_json() for it in items],
                                          "eval_items": [it.to_json() for it in held_out]})
        self.log(f"offline data: {self.note}")
        return items, held_out

    def _data_pairs(self, split: str, limit: int | None = None) -> list[Item]:
        from rlvr.data.preferences import load_pairs

        tok = self.tokens
        return [tok.pair(tok.prompt(r["prompt"]), tok.response(r["chosen"]), tok.response(r["rejected"]))
                for r in load_pairs(self.cfg.data, split, limit)]

    def _sampled_pairs(self) -> list[Item]:
        """K samples per prompt from the starting policy, best against worst by reward, for a seeded random
        `offline_prompts` of the training prompts (not the first ones: with arith those are the SFT set)."""
        g = torch.Generator(device="cpu").manual_seed(self.t.seed)
        order = torch.randperm(len(self.rows), generator=g, device="cpu").tolist()
        rows = [self.rows[i] for i in order[: self.t.offline_prompts]]
        mine, per_rank = rank_shard(len(rows))
        padding = [rows[0]] * (per_rank - len(mine))  # every rank generates as often (ZeRO-3 collectives)
        groups = self.rollouts.sample([rows[i] for i in mine] + padding, self.t.samples_per_prompt)[: len(mine)]
        pairs, flat = self.tokens.ranked_pairs(groups)
        correct = sum(bool(s.correct) for g in groups for s in g)
        flat, correct = D.all_sum([float(flat), float(correct)])
        pairs = [p for part in D.all_gather_object(pairs) for p in part]
        self.note.update(prompts=len(rows), pairs=len(pairs), flat_prompts=int(flat),
                         sample_accuracy=correct / max(len(rows) * self.t.samples_per_prompt, 1))
        return pairs

    def state_dict(self) -> dict:
        return {"pair_sampler": self.sampler.state_dict() if self.sampler else self._sampler_state}

    def load_state_dict(self, state: dict) -> None:
        self._sampler_state = state["pair_sampler"]  # applied once the pairs are read back


class OnlinePairs:
    """Online (iterative) DPO pairs, or SPIN's (`cfg.trainer.mode`)."""

    def __init__(self, cfg, tokens: PairTokens, rows: list[dict], rollouts):
        self.cfg, self.t = cfg, cfg.trainer
        self.tokens, self.rows, self.rollouts = tokens, rows, rollouts
        self.sampler = EpochSampler(len(rows), seed=self.t.seed)
        self.filler: Item | None = None
        self.eval_items: list[Item] = []  # rounds have no held-out pairs; greedy accuracy judges them
        self.note: dict = {}

    def next(self) -> tuple[list[Item], dict]:
        t = self.t
        start = time.time()
        picked = self.sampler.take(t.prompts_per_step)[D.rank() :: D.world_size()]
        rows = [self.rows[i] for i in picked]
        groups = self.rollouts.sample(rows, t.samples_per_prompt if t.mode == "online" else 1)
        pairs, skipped = self.tokens.ranked_pairs(groups) if t.mode == "online" else self._spin_pairs(rows, groups)
        items = unpaired(pairs) if t.loss == "kto" else pairs
        first = groups[0][0]
        self.filler = Item(first.prompt_ids, (first.response_ids, first.response_ids))
        gen_seconds = time.time() - start
        samples = [s for g in groups for s in g]
        n_pairs, skipped, n_samples, correct, reward = D.all_sum(
            [float(len(pairs)), float(skipped), float(len(samples)), float(sum(bool(s.correct) for s in samples)),
             float(sum(s.reward for s in samples))])
        skip_key = "flat_share" if t.mode == "online" else "identical_share"
        skip_of = t.prompts_per_step if t.mode == "online" else n_samples
        return items, {"pairs": n_pairs, skip_key: skipped / skip_of, "sample_accuracy": correct / n_samples,
                       "reward": reward / n_samples, "gen_seconds": gen_seconds, "epoch": self.sampler.epoch}

    def _spin_pairs(self, rows: list[dict], groups: list[list[Sample]]) -> tuple[list[Item], int]:
        """(data response against the policy's sample, number of samples identical to the data's)."""
        pairs, same = [], 0
        for row, g in zip(rows, groups):
            chosen = self.tokens.response(row["response"])
            for s in g:
                if s.response_ids == chosen:
                    same += 1
                    continue
                pairs.append(self.tokens.pair(s.prompt_ids, chosen, s.response_ids))
        return pairs, same

    def state_dict(self) -> dict:
        return {"prompt_sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["prompt_sampler"])
