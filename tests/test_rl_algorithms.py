"""Every estimator and loss against numbers worked out by hand."""
import math

import pytest
import torch

from rlvr.algorithms.advantages import (dr_grpo_advantages, gae, grpo_advantages, masked_mean,
                                        reinforce_pp_advantages, rloo_advantages, whiten)
from rlvr.algorithms.controllers import KLController, RunningMoments
from rlvr.algorithms.logprobs import entropy, token_logprobs
from rlvr.algorithms.losses import aggregate, kl_penalty, policy_loss, value_loss


def close(a: torch.Tensor, b) -> bool:
    return torch.allclose(a, torch.tensor(b, dtype=a.dtype), atol=1e-4)


def test_gae_hand_example():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [1.0, 1.0, 5.0]])  # 5.0 sits on padding and must not count
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = gae(rewards[:1], values[:1], mask[:1], gamma=1.0, lam=0.9)
    # delta = [0.1, 0.1, 0.3]; A_2 = 0.3, A_1 = 0.1 + 0.9 * 0.3, A_0 = 0.1 + 0.9 * 0.37
    assert close(adv, [[0.433, 0.37, 0.3]]) and close(ret, [[0.933, 0.97, 1.0]])
    adv, ret = gae(rewards[1:], values[1:], mask[1:], gamma=0.5, lam=1.0)
    # delta_1 = 2 - 1 = 1, delta_0 = 0.5 * 1 - 1 = -0.5, A_0 = -0.5 + 0.5 * 1
    assert close(adv, [[0.0, 1.0, 0.0]]) and close(ret, [[1.0, 2.0, 0.0]])


@pytest.mark.parametrize("ratio, adv, loss, clipped", [
    (1.5, 1.0, -1.28, True),     # beyond the upper bound (clip-higher: 1 + 0.28): clipped
    (1.28, 1.0, -1.28, False),   # at the bound: both branches equal, nothing clipped
    (0.5, 1.0, -0.5, False),     # below the lower bound with A > 0: the unclipped branch is smaller
    (0.5, -1.0, 0.8, True),      # below 1 - 0.2 with A < 0: clipped at 0.8
    (0.8, -1.0, 0.8, False),     # at the lower bound
    (1.5, -1.0, 1.5, False),     # A < 0 and ratio above: pessimistic, unclipped
])
def test_clipped_surrogate_at_and_beyond_the_bounds(ratio, adv, loss, clipped):
    old = torch.zeros(1, 1)
    lp = torch.log(torch.tensor([[ratio]]))
    out, frac = policy_loss(lp, old, torch.tensor([[adv]]), clip_low=0.2, clip_high=0.28)
    assert out.item() == pytest.approx(loss, abs=1e-5)
    assert bool(frac.item()) is clipped


def test_dual_clip_bounds_negative_advantages():
    lp = torch.log(torch.tensor([[5.0, 5.0]]))
    out, _ = policy_loss(lp, torch.zeros(1, 2), torch.tensor([[-1.0, 1.0]]), 0.2, 0.2, dual_clip=3.0)
    assert close(out, [[3.0, -1.2]])  # A < 0: min(5, 3); A > 0 untouched


def test_value_loss_clip_hand_case():
    v, old, ret = torch.tensor([[1.5]]), torch.tensor([[1.0]]), torch.tensor([[2.0]])
    assert value_loss(v, old, ret, clip=0.2).item() == pytest.approx(0.5 * 0.64)  # (1.2 - 2)^2 > (1.5 - 2)^2
    assert value_loss(v, old, ret, clip=None).item() == pytest.approx(0.5 * 0.25)


def test_kl_estimators_match_the_closed_form_in_expectation():
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.3, 0.5])
    kl = float((p * (p / q).log()).sum())
    for est in ("k1", "k3"):  # unbiased: E_{x~p}[k(x)] = KL(p || q)
        k = kl_penalty(p.log(), q.log(), est)
        assert float((p * k).sum()) == pytest.approx(kl, rel=1e-5)
    assert (kl_penalty(p.log(), q.log(), "k3") >= 0).all()
    k2 = float((p * kl_penalty(p.log(), q.log(), "k2")).sum())
    assert k2 == pytest.approx(0.5 * float((p * (q / p).log() ** 2).sum()))
    with pytest.raises(ValueError):
        kl_penalty(p.log(), q.log(), "k4")


def test_group_estimators_hand_example():
    scores = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    s = 1 / math.sqrt(1 / 3)  # sample std of [1, 0, 0, 1] is sqrt(1/3)
    assert close(grpo_advantages(scores), [[0.5 * s, -0.5 * s, -0.5 * s, 0.5 * s], [0, 0, 0, 0]])
    assert close(dr_grpo_advantages(scores), [[0.5, -0.5, -0.5, 0.5], [0, 0, 0, 0]])
    # RLOO: 1 - mean(0, 0, 1) = 2/3 and 0 - mean(1, 0, 1) = -2/3
    assert close(rloo_advantages(scores), [[2 / 3, -2 / 3, -2 / 3, 2 / 3], [0, 0, 0, 0]])
    with pytest.raises(ValueError):
        rloo_advantages(torch.tensor([[1.0]]))


def test_reinforce_pp_hand_example():
    token_rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    # returns [[1, 1, 1], [-1, -1, -]]: mean 0.2, population std sqrt(0.96)
    std = math.sqrt(0.96)
    assert close(reinforce_pp_advantages(token_rewards, mask), [[0.8 / std] * 3, [-1.2 / std] * 2 + [0.0]])


def test_aggregation_modes_and_split_invariance():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate(loss, mask, "token_mean").item() == pytest.approx(10 / 4)
    assert aggregate(loss, mask, "seq_mean_token_mean").item() == pytest.approx((6 / 3 + 4 / 1) / 2)
    assert aggregate(loss, mask, "seq_mean_token_sum_norm", max_len=3).item() == pytest.approx(10 / 6)
    for mode in ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"):
        whole = aggregate(loss, mask, mode, num_tokens=4, num_seqs=2, max_len=3)
        halves = sum(aggregate(loss[i : i + 1], mask[i : i + 1], mode, num_tokens=4, num_seqs=2, max_len=3)
                     for i in range(2))
        assert whole.item() == pytest.approx(halves.item())


def test_kl_controller_and_running_moments():
    fixed = KLController(0.1)
    fixed.update(kl=50.0, n_samples=256)
    assert fixed.beta == 0.1
    adaptive = KLController(0.1, target=6.0, horizon=10000)
    adaptive.update(kl=12.0, n_samples=256)  # error clipped to +0.2
    assert adaptive.beta == pytest.approx(0.1 * (1 + 0.2 * 256 / 10000))
    m = RunningMoments()
    m.update([1.0, 2.0, 3.0])
    m.update([4.0, 5.0])
    assert m.mean == pytest.approx(3.0) and m.var == pytest.approx(2.0) and m.count == 5


def test_masked_mean_of_one_token_and_of_none():
    x = torch.tensor([[3.0, 7.0]])
    assert masked_mean(x, torch.tensor([[1.0, 0.0]])).item() == 3.0
    assert masked_mean(x, torch.tensor([[0.0, 0.0]])).item() == 0.0  # not 0 / 0


def test_whiten_hand_values_and_rescale_only():
    x, mask = torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 0.0]])  # mean 2, population std 1
    assert close(whiten(x, mask), [[-1.0, 1.0, 0.0]])
    assert close(whiten(x, mask, shift_mean=False), [[1.0, 3.0, 0.0]])
    x2 = torch.tensor([[2.0, 6.0, 0.0]])  # mean 4, std 2: only divided by 2
    assert close(whiten(x2, mask, shift_mean=False), [[1.0, 3.0, 0.0]])


def test_whitening_constant_returns_gives_zeros_not_nan():
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    out = reinforce_pp_advantages(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), mask)  # every return is 1
    assert torch.equal(out, torch.zeros(2, 2))
    assert torch.equal(whiten(torch.full((2, 2), 5.0), mask), torch.zeros(2, 2))


def test_reinforce_pp_discounts_with_gamma_below_one():
    token_rewards = torch.tensor([[1.0, 0.0, 2.0]])
    mask = torch.ones(1, 3)
    # G_2 = 2, G_1 = 0 + 0.5 * 2 = 1, G_0 = 1 + 0.5 * 1 = 1.5: mean 1.5, population std sqrt(1/6)
    s = math.sqrt(1 / 6)
    assert close(reinforce_pp_advantages(token_rewards, mask, gamma=0.5), [[0.0, -0.5 / s, 0.5 / s]])


def test_grpo_with_one_sample_per_prompt_gives_zero_not_nan():
    assert torch.equal(grpo_advantages(torch.tensor([[1.0], [0.0]])), torch.zeros(2, 1))


def test_grpo_single_prompt_and_pairs():
    # one prompt of 4 samples ([1, n] must still use the std over the samples)
    s = 1 / math.sqrt(1 / 3)
    one_prompt = grpo_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    assert close(one_prompt, [[0.5 * s, -0.5 * s, -0.5 * s, 0.5 * s]])
    # pairs: sample std of [1, 0] is sqrt(1/2)
    assert close(grpo_advantages(torch.tensor([[1.0, 0.0]])), [[0.5 * math.sqrt(2), -0.5 * math.sqrt(2)]])


def test_grpo_eps_bounds_a_near_constant_group():
    # std of [0, 2e-6] is sqrt(2) * 1e-6: A = 1e-6 / (sqrt(2) * 1e-6 + 1e-6), not 1 / sqrt(2)
    a = grpo_advantages(torch.tensor([[0.0, 2e-6]], dtype=torch.float64))
    expected = 1 / (math.sqrt(2) + 1)
    assert a[0].tolist() == pytest.approx([-expected, expected], rel=1e-6)


def test_rloo_with_two_samples():
    # n = 2: each sample's baseline is the other one
    assert close(rloo_advantages(torch.tensor([[1.0, 0.0], [3.0, 3.0]])), [[1.0, -1.0], [0.0, 0.0]])


def test_value_loss_clip_below_the_old_value():
    # V moved down from 1.0 to 0.5 toward R = 0: the clipped value is 1.0 - 0.2 = 0.8, (0.8)^2 > (0.5)^2
    v, old, ret = torch.tensor([[0.5]]), torch.tensor([[1.0]]), torch.tensor([[0.0]])
    assert value_loss(v, old, ret, clip=0.2).item() == pytest.approx(0.5 * 0.64)
    # inside the band the clip changes nothing: 0.5 * (0.9 - 0)^2
    assert value_loss(torch.tensor([[0.9]]), old, ret, clip=0.2).item() == pytest.approx(0.5 * 0.81)


def test_clipped_surrogate_with_old_logprobs_and_larger_advantages():
    # ratio exp((log 1.5 - 1) - (-1)) = 1.5, A = 2: min(3.0, 1.28 * 2) = 2.56, clipped
    lp, old = torch.tensor([[math.log(1.5) - 1.0]]), torch.tensor([[-1.0]])
    out, frac = policy_loss(lp, old, torch.tensor([[2.0]]), clip_low=0.2, clip_high=0.28)
    assert out.item() == pytest.approx(-2.56, abs=1e-5) and frac.item() == 1.0


def test_dual_clip_only_for_negative_advantages():
    lp = torch.log(torch.tensor([[5.0, 5.0, 5.0]]))
    out, _ = policy_loss(lp, torch.zeros(1, 3), torch.tensor([[-2.0, 0.5, 0.0]]), 0.2, 0.2, dual_clip=3.0)
    # A = -2: min(-5 * -2, 3 * 2) = 6; A = 0.5 > 0: -min(2.5, 1.2 * 0.5) = -0.6, no dual clip; A = 0: 0
    assert close(out, [[6.0, -0.6, 0.0]])


def test_k3_clamps_huge_log_ratios_both_ways():
    zero = torch.zeros(2)
    k3 = kl_penalty(zero, torch.tensor([100.0, -100.0]), "k3")  # log r clamped to +20 and -20
    assert k3[0].item() == pytest.approx(math.exp(20) - 21, rel=1e-5)
    assert k3[1].item() == pytest.approx(math.exp(-20) - 1 + 20, rel=1e-6)


def test_aggregation_of_a_single_token_and_of_empty_rows():
    loss = torch.tensor([[2.0, 9.0], [5.0, 7.0]])
    one = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # one real token; the second row is all padding
    assert aggregate(loss, one, "token_mean").item() == 2.0
    assert aggregate(loss, torch.zeros(2, 2), "token_mean").item() == 0.0
    # the empty row counts as a sequence of loss 0 (not 0 / 0)
    assert aggregate(loss, one, "seq_mean_token_mean").item() == 1.0


def test_token_sum_norm_uses_max_len_else_the_tensor_width():
    loss, mask = torch.tensor([[1.0, 2.0, 3.0]]), torch.ones(1, 3)
    assert aggregate(loss, mask, "seq_mean_token_sum_norm", max_len=5).item() == pytest.approx(6 / 5)
    # 1 sequence, T = 3
    assert aggregate(loss, mask, "seq_mean_token_sum_norm").item() == pytest.approx(6 / 3)


def test_token_logprobs_and_entropy_hand_values():
    logits = torch.tensor([[[0.0, math.log(3.0)], [5.0, 5.0]]])  # p = (1/4, 3/4) and (1/2, 1/2)
    lp = token_logprobs(logits, torch.tensor([[1, 0]]))
    assert close(lp, [[math.log(0.75), math.log(0.5)]])
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert close(entropy(logits), [[h, math.log(2.0)]])


def test_rescale_only_whitening_of_constant_values_stays_finite():
    # var = 0: x / sqrt(0 + 1e-8) = 5 / 1e-4
    out = whiten(torch.full((1, 2), 5.0), torch.ones(1, 2), shift_mean=False)
    assert out[0].tolist() == pytest.approx([5e4, 5e4], rel=1e-3)


def test_token_estimators_keep_the_inputs_device():
    # the meta device stands in for a GPU: a zero made on the default device would not mix with it
    x = torch.zeros(2, 3, device="meta")
    adv, ret = gae(x, x, x, gamma=1.0, lam=0.9)
    assert adv.device == ret.device == reinforce_pp_advantages(x, x).device == x.device
