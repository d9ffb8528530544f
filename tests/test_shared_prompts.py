"""The shared-prompt pass gives the plain forward's logits and gradients; RL models train without dropout."""
import torch

from rlvr.generation.base import Sample
from rlvr.models import disable_dropout, load_model
from rlvr.trainers.rollout import build_batch
from rlvr.trainers.shared_prompts import response_logits


def _batch():
    # three prompts of different lengths (left padding), their samples interleaved, one response empty
    # of padding and one of a single token; the pad id (0) also appears inside a prompt
    prompts = [[5, 6, 7, 8], [9, 0, 4], [3]]
    responses = [[7, 8, 2], [4], [10, 11, 12, 2], [5, 2], [6, 6], [13]]
    owners = [0, 1, 0, 2, 1, 0]
    samples = [Sample(prompt=str(o), prompt_ids=prompts[o], response_ids=r, text="", logprobs=[0.0] * len(r),
                      finish_reason="eos", reward=0.0) for o, r in zip(owners, responses)]
    return build_batch(samples, pad_id=0, counts_in_loss=[True] * len(samples))


def test_shared_prompt_logits_and_gradients_equal_the_plain_forward(tiny_model_dir):
    model = load_model(tiny_model_dir)
    b = _batch()
    mask = b.token_mask[:, :, None]
    results = []
    for share in (False, True):
        model.zero_grad()
        logits = response_logits(model, b, share)
        (logits.log_softmax(-1) * mask).sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        results.append((logits.detach() * mask, grads))
    (plain, g_plain), (shared, g_shared) = results
    assert plain.shape == shared.shape == (6, 4, model.config.vocab_size)
    assert torch.allclose(plain, shared, atol=1e-5)
    for a, c in zip(g_plain, g_shared):
        assert torch.allclose(a, c, atol=1e-5, rtol=1e-4)


def test_dropout_is_off_in_train_mode_after_disable_dropout(tiny_model_dir):
    """The RL actor trains with dropout off, so the policy that sampled is the one in the ratio."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attention_dropout=0.5)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    model.train()
    assert not torch.equal(model(ids).logits, model(ids).logits)  # dropout on: two passes differ
    disable_dropout(model)
    assert torch.equal(model(ids).logits, model(ids).logits)


def test_the_critic_shares_prompts_too(tiny_model_dir):
    """The value model answers the causal-LM call, so its shared-prompt values and gradients are the plain ones."""
    from rlvr.trainers.rl_models import ValueModel

    critic = ValueModel(tiny_model_dir)
    torch.manual_seed(0)
    torch.nn.init.normal_(critic.head.weight)  # a zero head (its start) would hide the body's gradients
    b = _batch()
    results = []
    for share in (False, True):
        critic.zero_grad()
        values = response_logits(critic, b, share).squeeze(-1)
        (values * b.token_mask).sum().backward()
        results.append((values.detach() * b.token_mask, [p.grad.clone() for p in critic.parameters()]))
    (plain, g_plain), (shared, g_shared) = results
    assert plain.shape == (6, 4)
    for a, c in [(plain, shared), *zip(g_plain, g_shared)]:
        assert (a - c).abs().max() <= 1e-5 * a.abs().max() + 1e-6
