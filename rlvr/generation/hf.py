"""The embedded generation backend: batched, left-padded, KV-cached sampling with plain transformers.

The n samples of a prompt share one prefill: each distinct prompt of a batch runs once, and its KV cache
and last logits are copied to its n rows before sampling starts. A row that finishes leaves the forward
batch (its cache rows are dropped), so the long tail of a batch costs only its own rows.

It samples with its own short loop rather than `model.generate` so that what it records is exactly
what it sampled from: the per-token log-probabilities of softmax(logits / T) (see base.py), the finish
reason, and stop strings cut the way vLLM cuts them (the text ends before the stop string).

Under ZeRO-3 with several ranks every forward pass is a collective (parameters are gathered from all
ranks). With `weights` (a context that holds the full weights gathered for the length of a generate()
call) the engine decodes without any collective; without it, every decoded token gathers the weights
again, so with `sync_ranks` a rank whose sequences are all done keeps stepping until every rank is.

Every tensor it makes is on the model's device; only the token ids and texts it returns are host values.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from rlvr.data.templates import encode
from rlvr.generation.base import Engine, Sample, SamplingParams
from rlvr.models import cache_argument


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask (to -inf) all but the top-k tokens and the smallest set whose probability reaches top-p."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass strictly before it already reaches top_p (the first always stays)
        drop = probs.cumsum(-1) - probs >= top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


class HFEngine(Engine):
    name = "hf"

    def __init__(self, model, tokenizer, batch_size: int = 64, seed: int = 0, sync_ranks: bool = False,
                 device: torch.device | None = None,
                 weights: Callable[[], AbstractContextManager] | None = None):
        self.model = model  # a transformers model, or a DeepSpeed engine's .module (it may be partitioned)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.device = device if device is not None else next(model.parameters()).device
        self.weights = weights
        # decoding with partitioned weights: every forward is a collective that all ranks must join
        self.sync_ranks = (sync_ranks and weights is None and dist.is_initialized()
                           and dist.get_world_size() > 1)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        eos = {tokenizer.eos_token_id}
        cfg_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos.update(cfg_eos if isinstance(cfg_eos, list) else [cfg_eos])
        self.eos_ids = torch.tensor(sorted(i for i in eos if i is not None), device=self.device)
        self._cache_arg = cache_argument(model)

    def generate(self, prompts: Sequence[str], n: int, sampling: SamplingParams) -> list[Sample]:
        if sampling.seed is not None:
            self.generator.manual_seed(sampling.seed)
        jobs = [(i, p) for i, p in enumerate(prompts) for _ in range(n)]
        samples: list[Sample] = []
        was_training = self.model.training
        self.model.eval()
        try:
            with self.weights() if self.weights is not None else nullcontext():
                for start in range(0, len(jobs), self.batch_size):
                    samples += self._generate_batch(jobs[start : start + self.batch_size], sampling)
        finally:
            self.model.train(was_training)
        return samples

    @torch.no_grad()  # not inference_mode: ZeRO-3 gathers parameters that training uses afterwards
    def _generate_batch(self, jobs: list[tuple[int, str]], sp: SamplingParams) -> list[Sample]:
        dev = self.device
        distinct = list(dict.fromkeys(p for _, p in jobs))
        slot = {p: i for i, p in enumerate(distinct)}
        owner = torch.tensor([slot[p] for _, p in jobs], device=dev)
        distinct_ids = [encode(self.tokenizer, p) for p in distinct]
        prompt_ids = [distinct_ids[slot[p]] for _, p in jobs]
        width = max(len(ids) for ids in distinct_ids)
        pad = self.tokenizer.pad_token_id
        # built on the host in one piece, then one copy to the device
        input_ids = torch.full((len(distinct), width), pad, dtype=torch.long, device="cpu")
        for row, ids in enumerate(distinct_ids):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, device="cpu")
        input_ids = input_ids.to(dev)
        lens = torch.tensor([len(ids) for ids in distinct_ids], device=dev)
        mask = (torch.arange(width, device=dev)[None, :] >= width - lens[:, None]).long()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1)
        past = getattr(out, self._cache_arg)
        past.reorder_cache(owner)  # each prompt's cache, copied to the rows of its samples
        logits = out.logits[owner, -1, :].float()
        mask, positions = mask[owner], positions[owner, -1:]

        batch = len(jobs)
        tokens = torch.full((batch, sp.max_new_tokens), pad, dtype=torch.long, device=dev)
        logprobs = torch.zeros((batch, sp.max_new_tokens), device=dev)
        lengths = torch.full((batch,), sp.max_new_tokens, dtype=torch.long, device=dev)
        reasons = ["length"] * batch
        done = torch.zeros(batch, dtype=torch.bool, device=dev)
        live = torch.arange(batch, device=dev)  # the rows in the forward batch: finished ones leave it
        step = 0
        while True:
            if sp.greedy:
                next_tok = logits.argmax(-1)
                logp = F.log_softmax(logits, -1)
            else:
                logits = logits / sp.temperature
                logp = F.log_softmax(logits, -1)
                probs = filter_logits(logits, sp.top_k, sp.top_p).softmax(-1)
                next_tok = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
            was_done = done[live]
            next_tok = torch.where(was_done, torch.full_like(next_tok, pad), next_tok)
            tokens[live, step] = next_tok
            logprobs[live, step] = logp.gather(-1, next_tok[:, None]).squeeze(-1)
            ended = torch.isin(next_tok, self.eos_ids) & ~was_done
            for row in live[ended].tolist():
                reasons[row] = "eos"
            if sp.stop:
                for i in torch.nonzero(~was_done & ~ended).flatten().tolist():
                    if self._hits_stop(tokens[live[i], : step + 1], sp.stop):
                        ended[i], reasons[int(live[i])] = True, "stop"
            lengths[live[ended]] = step + 1
            done[live[ended]] = True
            step += 1
            if step == sp.max_new_tokens or self._all_done(bool(done.all())):
                break
            going = ~done[live]
            if going.any() and not going.all():  # (a rank all done keeps stepping for the others: ZeRO-3)
                keep = torch.nonzero(going).flatten()
                past.reorder_cache(keep)
                live, next_tok, mask, positions = live[keep], next_tok[keep], mask[keep], positions[keep]
            mask = torch.cat([mask, torch.ones((len(live), 1), dtype=torch.long, device=dev)], dim=1)
            positions = positions + 1
            out = self.model(input_ids=next_tok[:, None], attention_mask=mask, position_ids=positions,
                             use_cache=True, **{self._cache_arg: past})
            past = getattr(out, self._cache_arg)
            logits = out.logits[:, -1, :].float()

        samples = []
        tokens, logprobs, lengths = tokens.tolist(), logprobs.tolist(), lengths.tolist()  # one copy each
        for row, (index, prompt) in enumerate(jobs):
            ids = tokens[row][: lengths[row]]
            text = self._text(ids, reasons[row], sp.stop)
            samples.append(Sample(prompt=prompt, prompt_ids=prompt_ids[row], response_ids=ids, text=text,
                                  logprobs=logprobs[row][: lengths[row]],
                                  finish_reason=reasons[row], prompt_index=index))
        return samples

    def _all_done(self, local_done: bool) -> bool:
        if not self.sync_ranks:
            return local_done
        flag = torch.tensor([0 if local_done else 1], device="cpu")  # a host vote (gloo on GPUs too)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return flag.item() == 0

    def _hits_stop(self, ids: torch.Tensor, stops: list[str]) -> bool:
        # only the tail can hold a stop string that the newest token completed
        tail = self.tokenizer.decode(ids[-32:].tolist(), skip_special_tokens=True)
        return any(s in tail for s in stops)

    def _text(self, ids: list[int], reason: str, stops: list[str]) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if reason == "stop":
            cut = min((text.find(s) for s in stops if s in text), default=len(text))
            text = text[:cut]
        return text
