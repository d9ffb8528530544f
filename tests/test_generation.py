import pytest
import torch

from rlvr.data.templates import encode
from rlvr.generation import SamplingParams
from rlvr.generation.hf import HFEngine, filter_logits
from rlvr.models import load_model, load_tokenizer

PROMPTS = ["<|user|>12+3<|assistant|>", "<|user|>7<|assistant|>", "<|user|>1+1+1+1<|assistant|>"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return HFEngine(load_model(tiny_model_dir), load_tokenizer(tiny_model_dir), batch_size=4, seed=0)


def test_filter_logits_hand_case():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2, top_p=1.0)).tolist() == [[False, False, True, True]]
    # top-p 0.8: 0.5 + 0.3 reaches it, so the third token goes; 0.81 keeps it
    assert torch.isinf(filter_logits(logits, 0, 0.8)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, 0, 0.81)).tolist() == [[False, False, False, True]]
    assert torch.isinf(filter_logits(logits, 0, 0.01)).tolist() == [[False, True, True, True]]


def test_sample_records_are_complete_and_grouped(engine):
    samples = engine.generate(PROMPTS, 3, SamplingParams(temperature=1.0, max_new_tokens=6, seed=1))
    assert len(samples) == 9
    assert [s.prompt_index for s in samples] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for s in samples:
        assert s.prompt == PROMPTS[s.prompt_index]
        assert s.prompt_ids == encode(engine.tokenizer, s.prompt)
        assert len(s.logprobs) == len(s.response_ids) >= 1
        assert s.finish_reason in ("eos", "length")
        assert (s.finish_reason == "eos") == (s.response_ids[-1] == engine.tokenizer.eos_token_id)
        assert s.finish_reason == "eos" or len(s.response_ids) == 6


def test_logprobs_match_a_full_forward_pass(engine):
    """What generation records is what training recomputes, token for token (left padding and KV cache
    included)."""
    sp = SamplingParams(temperature=0.7, max_new_tokens=8, seed=3)
    for s in engine.generate(PROMPTS, 2, sp):
        ids = torch.tensor([s.prompt_ids + s.response_ids])
        with torch.no_grad():
            logits = engine.model(ids).logits[0, len(s.prompt_ids) - 1 : -1] / sp.temperature
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(s.response_ids)[:, None]).squeeze(-1)
        assert torch.allclose(expected, torch.tensor(s.logprobs), atol=1e-4)


def test_seed_reproducible_and_batching_invariant(engine):
    sp = SamplingParams(temperature=1.0, max_new_tokens=6, seed=11)
    a = [s.response_ids for s in engine.generate(PROMPTS, 2, sp)]
    b = [s.response_ids for s in engine.generate(PROMPTS, 2, sp)]
    assert a == b
    c = [s.response_ids for s in engine.generate(PROMPTS, 2, SamplingParams(temperature=1.0, max_new_tokens=6, seed=12))]
    assert a != c
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6)
    batched = [s.response_ids for s in engine.generate(PROMPTS, 1, greedy)]
    alone = [engine.generate([p], 1, greedy)[0].response_ids for p in PROMPTS]
    assert batched == alone


def test_stop_strings_cut_the_text(engine):
    free = engine.generate(PROMPTS[:1], 1, SamplingParams(temperature=0.0, max_new_tokens=8))[0]
    if len(free.text) < 2:
        pytest.skip("the random tiny model answered too briefly to place a stop string")
    stop = free.text[1]
    s = engine.generate(PROMPTS[:1], 1, SamplingParams(temperature=0.0, max_new_tokens=8, stop=[stop]))[0]
    assert s.finish_reason == "stop"
    assert s.text == free.text[: free.text.index(stop)]
    assert stop not in s.text


def test_samples_of_a_prompt_share_its_prefill_exactly(engine):
    """Each distinct prompt is prefilled once and its cache copied to its n rows (batches of 4 split the
    groups of 3 here): what each row then samples greedily is what the prompt alone gives."""
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6)
    grouped = engine.generate(PROMPTS, 3, greedy)
    alone = [engine.generate([p], 1, greedy)[0] for p in PROMPTS]
    for s in grouped:
        assert s.response_ids == alone[s.prompt_index].response_ids
        assert s.logprobs == pytest.approx(alone[s.prompt_index].logprobs, abs=1e-5)
