"""Chunked log-probabilities and entropy (rlvr/algorithms/logprobs.py chunked_logprobs): the same values and
gradients as the full [B, T, V] computation, and no float32 tensor of the logits' size, neither created
nor kept for backward, beyond one chunk of tokens."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from rlvr.algorithms.logprobs import chunk_spans, chunked_logprobs, entropy, token_logprobs
from rlvr.config import config_from_dict
from rlvr.errors import UserError

B, T, V = 3, 7, 11  # B*T = 21 tokens
TEMPERATURE = 0.7
# below a row, a row's length, a row and a bit (1 row per chunk), 3 rows, all tokens, more than all
CHUNKS = [1, 4, 5, T, T + 1, 3 * T, B * T, B * T + 9]


def inputs(dtype=torch.float32, seed=0):
    """Logits [B, T, V] as SFT passes them, a non-contiguous view `[:, :-1]` of the model's output, with
    a spread like a model's; the tokens they score."""
    g = torch.Generator().manual_seed(seed)
    out = (3 * torch.randn(B, T + 1, V, generator=g)).to(dtype).requires_grad_()
    return out, out[:, :-1], torch.randint(V, (B, T), generator=g)


def full(logits, tokens, temperature):
    """Today's computation: the whole logits divided by the temperature, then the reference equations."""
    z = logits / temperature
    return token_logprobs(z, tokens), entropy(z)


@pytest.mark.parametrize("rows, length, chunk",
                         [(B, T, c) for c in CHUNKS] + [(1, 1, 1), (2, 5, 3), (0, 4, 2)])
def test_chunk_spans_cover_every_token_once_and_stay_within_the_chunk(rows, length, chunk):
    seen = torch.zeros(rows, length, dtype=torch.long)
    for r, t in chunk_spans(rows, length, chunk):
        assert seen[r, t].numel() <= chunk
        seen[r, t] += 1
    assert (seen == 1).all()


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("temperature", [TEMPERATURE, 1.0])
def test_values_equal_the_full_computation(chunk, temperature):
    _, logits, tokens = inputs()
    with torch.no_grad():
        lp, h = chunked_logprobs(logits, tokens, temperature, chunk, with_entropy=True)
        want_lp, want_h = full(logits, tokens, temperature)
    assert lp.dtype == h.dtype == torch.float32
    torch.testing.assert_close(lp, want_lp, rtol=0, atol=1e-6)
    torch.testing.assert_close(h, want_h, rtol=0, atol=1e-6)
    assert chunked_logprobs(logits, tokens, temperature, chunk)[1] is None


@pytest.mark.parametrize("chunk", [1, 5, T + 1, B * T + 9])
@pytest.mark.parametrize("terms", ["logprobs", "entropy", "both"])
def test_gradients_equal_the_full_path(chunk, terms):
    """d/dlogits of sum(w1 * log p) - sum(w2 * H), each term alone and both (the RL loss's two parts)."""
    g = torch.Generator().manual_seed(1)
    w1, w2 = torch.randn(B, T, generator=g), torch.randn(B, T, generator=g)

    def loss(lp, h):
        return (w1 * lp).sum() * (terms != "entropy") - (w2 * h).sum() * (terms != "logprobs")

    leaf, logits, tokens = inputs()
    (got,) = torch.autograd.grad(loss(*chunked_logprobs(logits, tokens, TEMPERATURE, chunk, True)), leaf)
    (want,) = torch.autograd.grad(loss(*full(logits, tokens, TEMPERATURE)), leaf)
    assert got.abs().max() > 0.1
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_gradcheck_in_float64():
    """Both outputs against finite differences, a chunk that splits rows and one that spans them."""
    _, logits, tokens = inputs(torch.float64)
    for chunk in (3, 2 * T):
        assert torch.autograd.gradcheck(lambda x, c=chunk: chunked_logprobs(x, tokens, TEMPERATURE, c, True),
                                        (logits,))


def test_16_bit_logits_get_a_16_bit_gradient_of_the_float32_equations():
    leaf, logits, tokens = inputs(torch.bfloat16)
    lp, h = chunked_logprobs(logits, tokens, TEMPERATURE, 5, True)
    (got,) = torch.autograd.grad(lp.sum() + h.sum(), leaf)
    wide = leaf.detach().float().requires_grad_()
    (want,) = torch.autograd.grad(sum(x.sum() for x in full(wide[:, :-1], tokens, TEMPERATURE)), wide)
    assert lp.dtype == torch.float32 and got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2)


# ---- memory --------------------------------------------------------------------------------------------
MB, MT, MV, MCHUNK = 4, 24, 50, 8  # full size 4,800; a chunk's 400


class Allocations(TorchDispatchMode):
    """(op, dtype, numel) of every tensor an op allocates: outputs that share no storage with an input
    (views, and in-place writes into a slice, allocate nothing)."""

    def __init__(self):
        super().__init__()
        self.made = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        held = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                if isinstance(t, torch.Tensor)}
        self.made += [(str(func), t.dtype, t.numel()) for t in tree_flatten(out)[0]
                      if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in held]
        return out


def memory_inputs():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(MB, MT, MV, generator=g).bfloat16().requires_grad_()  # the model's dtype
    return logits, torch.randint(MV, (MB, MT), generator=g)


def chunked(logits, tokens):
    return chunked_logprobs(logits, tokens, TEMPERATURE, MCHUNK, with_entropy=True)


def over_a_chunk(records):
    return [r for r in records if r[-1] > MCHUNK * MV]


def test_backward_keeps_only_the_logits_themselves_and_per_token_rows():
    def saved_by(fn):
        logits, tokens = memory_inputs()
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            fn(logits, tokens)
        return logits, saved

    logits, saved = saved_by(chunked)
    big = [t for t in saved if t.numel() > MCHUNK * MV]
    assert [t.data_ptr() for t in big] == [logits.data_ptr()] and big[0].dtype == torch.bfloat16
    assert max(t.numel() for t in saved if t.dtype == torch.float32) <= MB * MT
    # the measurement sees what the full path keeps: float32 [B, T, V] for log-softmax's backward
    _, saved = saved_by(lambda x, y: full(x, y, TEMPERATURE))
    assert any(t.dtype == torch.float32 and t.numel() == MB * MT * MV for t in saved)


def test_no_full_size_tensor_is_made_beyond_one_chunk_but_the_gradient():
    """Forward: nothing of the logits' size, in any dtype (no float32 copy, no copy divided by the
    temperature). Backward: one tensor of that size, the gradient, in the logits' dtype."""
    def made_by(fn):
        logits, tokens = memory_inputs()
        with Allocations() as forward:
            lp, h = fn(logits, tokens)
        with Allocations() as backward:
            (lp.sum() + h.sum()).backward()
        return forward.made, backward.made

    forward, backward = made_by(chunked)
    assert over_a_chunk(forward) == []
    assert [(dtype, n) for _, dtype, n in over_a_chunk(backward)] == [(torch.bfloat16, MB * MT * MV)]
    assert any(n == MCHUNK * MV and dtype == torch.float32 for _, dtype, n in forward)  # chunks were seen
    forward, backward = made_by(lambda x, y: full(x, y, TEMPERATURE))
    assert {dtype for _, dtype, _ in over_a_chunk(forward)} == {torch.bfloat16, torch.float32}


@pytest.mark.parametrize("kind", ["rl", "sft", "preference"])
def test_the_chunk_size_is_a_trainer_key_checked_at_load(kind):
    assert config_from_dict({"kind": kind}).trainer.logprob_chunk_tokens == 1024
    one = config_from_dict({"kind": kind}, ["trainer.logprob_chunk_tokens=1"])
    assert one.trainer.logprob_chunk_tokens == 1
    with pytest.raises(UserError) as e:
        config_from_dict({"kind": kind}, ["trainer.logprob_chunk_tokens=0"])
    assert str(e.value) == "config: trainer.logprob_chunk_tokens: expected 1 or more, got 0"


# ---- in the RL update ----------------------------------------------------------------------------------
class NoStepEngine:
    """DeepSpeed's engine calls as the RL update makes them, minus the optimizer step: the gradient stays
    in the real model for the test to read."""

    def __init__(self, model):
        self.model = model

    def __call__(self, **kwargs):
        return self.model(**kwargs)

    def backward(self, loss):
        loss.backward()

    def step(self):
        pass


@pytest.mark.parametrize("temperature, entropy_coef", [(0.7, 0.5), (0.0, 0.0)])
def test_the_rl_update_gets_the_full_paths_loss_gradient_and_entropy(tiny_model_dir, temperature,
                                                                     entropy_coef):
    """One micro-batch of RLTrainer._update on a tiny model, chunks of 3 tokens: its gradient and entropy
    metric equal those of the full computation, softmax(logits / T) with the entropy bonus
    (T = 0, greedy: the logits as they are)."""
    from types import SimpleNamespace

    from rlvr.algorithms.losses import aggregate, policy_loss
    from rlvr.generation.base import Sample
    from rlvr.models import load_model
    from rlvr.trainers.engines import BatchPlan
    from rlvr.trainers.rl import RLTrainer
    from rlvr.trainers.rollout import build_batch
    from rlvr.trainers.shared_prompts import response_logits

    responses = [[7, 8, 2], [4], [10, 11, 12, 2], [5, 2]]
    samples = [Sample(prompt="p", prompt_ids=[5, 6, 9], response_ids=r, text="", logprobs=[-1.0] * len(r),
                      finish_reason="eos", reward=0.0) for r in responses]
    b = build_batch(samples, pad_id=0, counts_in_loss=[True, True, True, False])  # the last: filtered
    model = load_model(tiny_model_dir)
    g = torch.Generator().manual_seed(3)
    adv = torch.randn(b.response_mask.shape, generator=g) * b.response_mask
    old_lp = -torch.rand(b.response_mask.shape, generator=g)

    trainer = object.__new__(RLTrainer)
    trainer.t = config_from_dict({"kind": "rl"}, [
        "trainer.samples_per_prompt=4", "trainer.minibatch_size=4", "trainer.logprob_chunk_tokens=3",
        f"trainer.entropy_coef={entropy_coef}", "trainer.loss_agg=token_mean"]).trainer
    trainer.plan = BatchPlan.make(4, 4, 1)
    trainer.sampling = SimpleNamespace(temperature=temperature, max_new_tokens=4)
    trainer.actor, trainer.critic, trainer.share_prompts = NoStepEngine(model), None, False
    trainer.device = torch.device("cpu")
    stats = trainer._update(b, old_lp, None, None, adv, None, None)
    got = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    mask, t = b.response_mask, trainer.t
    z = response_logits(model, b, False) / (temperature or 1.0)
    lp, h = token_logprobs(z, b.input_ids[:, b.prompt_len :]), entropy(z)
    pl, _ = policy_loss(lp, old_lp, adv, t.clip_low, t.clip_high, t.dual_clip)
    aggregate(pl - entropy_coef * h, mask, "token_mean", float(mask.sum())).backward()
    assert stats["entropy"] == pytest.approx(float((h.detach() * mask).sum() / mask.sum()), abs=1e-6)
    for a, w in zip(got, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, w, rtol=1e-5, atol=1e-6)
