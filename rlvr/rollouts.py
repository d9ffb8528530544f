"""The rollout component: what a trainer holds to sample from its policy and score the samples.

    Rollouts(cfg, actor, ...)      the configured engine (hf: the actor's own module; vllm: a colocated
                                   engine), the verifier pool and a scoring thread
      .sample(rows, n)             n scored samples per row (scoring one batch while the next is sampled)
      .greedy_accuracy(rows)       held-out accuracy, judged by the same verifiers
      .before_update()             generation is over until the next sync: a sleeping engine frees its
                                   memory for the update (vLLM with generation.vllm.enable_sleep)
      .after_update(actor)         the engine sees the new weights (a no-op for hf, which shares them)
      .close()

Trainers talk to generation only through this object (DESIGN.md), so swapping hf for vLLM never touches
their update code. An engine sleeps only between `before_update` and the next `after_update` (it wakes
its weights to load them, then its KV cache to generate): refill rounds and evaluations, which generate
with the weights it has, never meet an engine whose weights were discarded.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import torch

import verifiers
from rlvr.data import render_prompt
from rlvr.data.tokens import encode_capped
from rlvr.errors import UserError
from rlvr.generation import sampling_params
from rlvr.generation.base import Sample
from rlvr.trainers.evaluation import greedy_accuracy


def context_length(model_path: str, gen) -> int | None:
    """Tokens the engine can hold, prompt and response together: the model's position limit, or vLLM's
    max_model_len when that is smaller; None when the model does not say."""
    from transformers import AutoConfig

    n = getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
    if gen.backend == "vllm" and gen.vllm.max_model_len:
        n = min(n or gen.vllm.max_model_len, gen.vllm.max_model_len)
    return n


def prompts_that_fit(rows: list[dict], tokenizer, data_cfg, context: int | None, max_new_tokens: int,
                     origin: str) -> tuple[list[dict], int]:
    """(rows, number skipped): the rows whose rendered prompt leaves generation.max_new_tokens of the
    context. A longer one is a bad row (data.on_bad_row: error names it, skip counts it); only as much of
    it is tokenized as the limit needs (rlvr.data.tokens)."""
    if context is None:
        return rows, 0
    room = context - max_new_tokens
    if room < 1:
        raise UserError(f"generation.max_new_tokens: {max_new_tokens} leaves no room for a prompt in the "
                        f"model's context of {context} tokens")
    out, skipped = [], 0
    for row in rows:
        text = render_prompt(tokenizer, row["prompt"], data_cfg)
        # a token is at least one byte (byte-level BPE, characters, SentencePiece's byte fallback, plus the
        # space it may prepend): a short prompt fits without being tokenized
        if (len(text) < room and len(text.encode()) < room) or not encode_capped(tokenizer, text, room)[1]:
            out.append(row)
        elif data_cfg.on_bad_row == "skip":
            skipped += 1
        else:
            raise UserError(f"{origin}: a prompt has more than {room} tokens, the model's context of "
                            f"{context} less generation.max_new_tokens={max_new_tokens} (set "
                            f"data.on_bad_row: skip to skip such rows): {row['prompt'][:40]!r}")
    return out, skipped


def rank_cpus() -> int:
    """This rank's share of the machine's CPUs, the budget its verifier pool divides among its workers
    (a code verifier's sandboxes): the ranks on a node share its cores."""
    from verifiers.pool import machine_cpus

    return max(1, machine_cpus() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE") or 1)))


class Rollouts:
    """`cfg` has model, data, generation and reward sections; `actor` is the DeepSpeed engine being
    trained; each rank's sampler is seeded with `seed` + rank."""

    def __init__(self, cfg, actor, tokenizer, model_path: str, seed: int, device: torch.device):
        self.cfg, self.tokenizer = cfg, tokenizer
        gen = cfg.generation
        if gen.backend == "hf":
            from rlvr.trainers.zero3 import generation_engine

            # samples come from the actor's own module: no copy of the weights, nothing to sync
            self.engine = generation_engine(actor, tokenizer, gen, seed, device)
        else:
            from rlvr.generation.factory import make_engine

            self.engine = make_engine(cfg, model_path, tokenizer)
        # the hf engine samples from the actor's own module: no weights to push, and in float32 the
        # log-probabilities it records are the trainer's own (rlvr/trainers/rl.py, recompute_logprobs)
        self.shares_weights = gen.backend == "hf"
        self.sampling = sampling_params(gen)
        self.sampling.seed = None  # the engine's generator advances; its state is checkpointed
        self.part_names = [s.key or s.name for s in cfg.reward.verifiers]
        try:  # a bad reward section fails here, at start, though the workers start on first use
            self._verifier = verifiers.compose([{k: v for k, v in vars(s).items() if v is not None}
                                                for s in cfg.reward.verifiers])
        except verifiers.VerifierError as e:
            raise UserError(f"reward.verifiers: {e}") from None
        self._pool: verifiers.VerifierPool | None = None
        self._scoring = ThreadPoolExecutor(1, thread_name_prefix="rlvr-scoring")

    # ---- sampling -------------------------------------------------------------------------------
    @property
    def rng(self) -> torch.Generator | None:
        """The embedded engine's sampling RNG, for checkpoints (other engines keep their own)."""
        return getattr(self.engine, "generator", None)

    def sample(self, rows: list[dict], n: int, overlap: bool = False) -> list[list[Sample]]:
        """n scored samples for each row, grouped by row. With `overlap`, the hf engine gets one generation
        batch of rows at a time and the verifier pool (other processes) scores each batch while the next
        one is sampled; vLLM always gets every row in one call (it schedules its own batches)."""
        prompts = [render_prompt(self.tokenizer, row["prompt"], self.cfg.data) for row in rows]
        per_call = max(len(rows), 1)
        if overlap and self.shares_weights:
            per_call = max(1, self.cfg.generation.batch_size // n)
        scored = []
        for start in range(0, len(rows), per_call):
            part = self.engine.generate(prompts[start : start + per_call], n, self.sampling)
            for s in part:
                s.prompt_index += start
            scored.append((part, self._scoring.submit(self.score, part, rows)))
        samples: list[Sample] = []
        for part, scoring in scored:
            scoring.result()
            samples += part
        return [samples[g * n : (g + 1) * n] for g in range(len(rows))]

    # ---- scoring --------------------------------------------------------------------------------
    @property
    def pool(self) -> verifiers.VerifierPool:
        """The verifier pool, started on first use (a trainer that never scores never starts workers)."""
        if self._pool is None:
            r = self.cfg.reward
            self._pool = verifiers.VerifierPool(self._verifier, workers=r.workers, timeout=r.timeout,
                                                cpus=rank_cpus())
        return self._pool

    def score(self, samples: list[Sample], rows: list[dict]) -> None:
        """Attach each sample's row, verifier reward, correctness and per-part rewards."""
        vs = [verifiers.Sample.from_row(rows[s.prompt_index], s.text) for s in samples]
        for s, score in zip(samples, self.pool.score(vs) if vs else []):
            s.row, s.reward, s.correct = rows[s.prompt_index], float(score.reward), score.correct
            parts = {k: float(v) for k, v in score.details.items()
                     if k in self.part_names and isinstance(v, (int, float))}
            s.scores = parts or {self.part_names[0]: score.reward}

    def judge(self, rows: list[dict], samples: list[Sample]) -> list[bool]:
        """Correctness of one sample per row, in order."""
        for i, s in enumerate(samples):
            s.prompt_index = i
        self.score(samples, rows)
        return [bool(s.correct) for s in samples]

    def greedy_accuracy(self, rows: list[dict], max_new_tokens: int) -> float:
        return greedy_accuracy(self.engine, self.tokenizer, rows, self.cfg.data, max_new_tokens, self.judge)

    # ---- weights and lifetime -------------------------------------------------------------------
    def before_update(self) -> None:
        """Generation is over until the next `after_update`."""
        self.engine.sleep()

    def after_update(self, actor) -> None:
        """After an optimizer step: a separate engine loads the new weights (every rank calls this: under
        ZeRO-3 gathering them is a collective)."""
        if not self.shares_weights:
            self.engine.update_weights(actor.module)

    def close(self) -> None:
        self._scoring.shutdown()
        if self._pool is not None:
            self._pool.close()
        self.engine.close()
