"""Every preference loss against numbers worked out by hand (sigma(x) = 1 / (1 + e^-x))."""
import math

import pytest
import torch

from rlvr.algorithms.preference import (
    dpo_loss,
    implicit_reward,
    ipo_loss,
    kto_loss,
    kto_reference_point,
    log_odds,
    orpo_loss,
    preference_stats,
    simpo_loss,
)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# One pair: the policy raised the chosen response by 1 nat and lowered the rejected one by 1, so h = 2.
CHOSEN, REJECTED, REF_CHOSEN, REF_REJECTED = t(-1.0), t(-3.0), t(-2.0), t(-2.0)


def test_implicit_rewards_accuracy_and_margin():
    chosen = implicit_reward(t(-1.0, -5.0), t(-2.0, -4.0), beta=0.5)  # [0.5, -0.5]
    rejected = implicit_reward(t(-3.0, -4.0), t(-2.0, -4.0), beta=0.5)  # [-0.5, 0]
    assert chosen.tolist() == [0.5, -0.5] and rejected.tolist() == [-0.5, 0.0]
    accuracy, margin = preference_stats(chosen, rejected)
    assert accuracy.item() == 0.5 and margin.item() == pytest.approx((1.0 - 0.5) / 2)


@pytest.mark.parametrize("beta, expected", [(0.1, 0.598139), (1.0, 0.126928)])
def test_dpo_hand_values_and_the_effect_of_beta(beta, expected):
    # -log sigmoid(beta * 2): a larger beta makes the same log-ratio gap count for more
    assert dpo_loss(CHOSEN, REJECTED, REF_CHOSEN, REF_REJECTED, beta).item() == pytest.approx(expected, abs=1e-5)


def test_dpo_at_the_reference_is_log_two_whatever_beta():
    for beta in (0.01, 0.1, 5.0):
        assert dpo_loss(t(-2.0), t(-2.0), t(-2.0), t(-2.0), beta).item() == pytest.approx(math.log(2))


def test_dpo_label_smoothing_is_conservative_dpo():
    # 0.9 * -log sigmoid(2) + 0.1 * -log sigmoid(-2)
    loss = dpo_loss(CHOSEN, REJECTED, REF_CHOSEN, REF_REJECTED, beta=1.0, label_smoothing=0.1)
    assert loss.item() == pytest.approx(0.326928, abs=1e-5)
    # with smoothing the loss has a finite minimiser: at h = log((1 - eps) / eps) / beta the gradient vanishes
    h = torch.tensor([math.log(0.9 / 0.1)], requires_grad=True)
    dpo_loss(h, t(0.0), t(0.0), t(0.0), beta=1.0, label_smoothing=0.1).sum().backward()
    assert h.grad.item() == pytest.approx(0.0, abs=1e-6)


def test_dpo_gradient_raises_chosen_and_lowers_rejected():
    chosen, rejected = t(-2.0).requires_grad_(), t(-2.0).requires_grad_()
    dpo_loss(chosen, rejected, t(-2.0), t(-2.0), beta=0.1).sum().backward()
    # d/dh of -log sigmoid(beta h) at h = 0 is -beta / 2
    assert chosen.grad.item() == pytest.approx(-0.05) and rejected.grad.item() == pytest.approx(0.05)


@pytest.mark.parametrize("beta, expected", [(0.1, 9.0), (0.5, 1.0), (0.25, 0.0)])
def test_ipo_is_squared_distance_to_one_over_two_beta(beta, expected):
    # h = 2 against targets 5, 1 and 2
    assert ipo_loss(CHOSEN, REJECTED, REF_CHOSEN, REF_REJECTED, beta).item() == pytest.approx(expected)


def test_ipo_pulls_an_overshooting_gap_back_unlike_dpo():
    h = torch.tensor([2.0], requires_grad=True)
    ipo_loss(h, t(0.0), t(0.0), t(0.0), beta=1.0).sum().backward()  # target 0.5: loss 2.25, slope 2 * 1.5
    assert h.grad.item() == pytest.approx(3.0)  # positive: a step lowers h
    h2 = torch.tensor([2.0], requires_grad=True)
    dpo_loss(h2, t(0.0), t(0.0), t(0.0), beta=1.0).sum().backward()
    assert h2.grad.item() < 0  # DPO keeps pushing h up


def test_kto_hand_values():
    logps, ref = t(-1.0, -1.0), t(-2.0, -2.0)  # r = 1 for both
    desirable = torch.tensor([True, False])
    loss = kto_loss(logps, ref, desirable, z_ref=0.5, beta=1.0)
    assert loss.tolist() == pytest.approx([1 - 0.622459, 1 - 0.377541], abs=1e-5)  # 1 - sigma(+-0.5)
    weighted = kto_loss(logps, ref, desirable, z_ref=0.5, beta=1.0, desirable_weight=1.0, undesirable_weight=2.0)
    assert weighted.tolist() == pytest.approx([0.377541, 1.244919], abs=1e-5)


def test_kto_reference_point_is_a_clamped_detached_kl_estimate():
    assert kto_reference_point(t(-1.0, -3.0), t(-2.0, -2.0)).item() == 0.0  # gaps 1, -1: mean 0
    assert kto_reference_point(t(-3.0, -4.0), t(-2.0, -2.0)).item() == 0.0  # mean -1.5, clamped to 0
    assert kto_reference_point(t(-1.0, 0.0), t(-2.0, -2.0)).item() == pytest.approx(1.5)
    # padding examples carry weight 0 and do not move the estimate
    assert kto_reference_point(t(-1.0, 0.0, 9.0), t(-2.0, -2.0, 0.0), t(1.0, 1.0, 0.0)).item() == pytest.approx(1.5)
    kl_logps = t(-1.0, 0.0).requires_grad_()
    assert not kto_reference_point(kl_logps, t(-2.0, -2.0)).requires_grad


def test_kto_reference_point_moves_the_loss():
    # a desirable example with r = 1: against z = 0 the loss is 1 - sigma(1); against z = 1 it is 1/2
    one = torch.tensor([True])
    assert kto_loss(t(-1.0), t(-2.0), one, z_ref=0.0, beta=1.0).item() == pytest.approx(0.268941, abs=1e-5)
    assert kto_loss(t(-1.0), t(-2.0), one, z_ref=1.0, beta=1.0).item() == pytest.approx(0.5)
    # and for an undesirable one a higher z_ref makes the same r look better (lower loss)
    zero = torch.tensor([False])
    assert (kto_loss(t(-1.0), t(-2.0), zero, z_ref=1.0, beta=1.0).item()
            < kto_loss(t(-1.0), t(-2.0), zero, z_ref=0.0, beta=1.0).item())


def test_log_odds_hand_values_and_certainty():
    assert log_odds(t(math.log(0.5))).item() == pytest.approx(0.0, abs=1e-6)  # p = 1/2: odds 1
    assert log_odds(t(math.log(0.8))).item() == pytest.approx(math.log(4.0), abs=1e-5)
    assert math.isfinite(log_odds(t(0.0)).item())  # p = 1 would be infinite odds


def test_orpo_hand_value():
    # l_w = -0.4 / 2 = -0.2, l_l = -2.4 / 3 = -0.8; log odds 1.507772 and -0.203382
    loss = orpo_loss(t(-0.4), t(-2.4), t(2.0), t(3.0), lam=0.1)
    assert loss.item() == pytest.approx(0.2 + 0.1 * 0.166071, abs=1e-5)
    # lam = 0 leaves plain SFT on the chosen response (mean token NLL)
    assert orpo_loss(t(-0.4), t(-2.4), t(2.0), t(3.0), lam=0.0).item() == pytest.approx(0.2)


def test_simpo_hand_value_and_length_normalisation():
    # chosen: -4 over 8 tokens (-0.5 per token); rejected: -3 over 2 tokens (-1.5 per token).
    # Summed, the rejected answer looks likelier (-3 > -4); per token the chosen one is (-0.5 > -1.5).
    loss = simpo_loss(t(-4.0), t(-3.0), t(8.0), t(2.0), beta=2.0, gamma=0.5)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1.5))), abs=1e-6)  # 2(-0.5) - 2(-1.5) - 0.5
    # scaling a response's length and log-probability together changes nothing
    assert simpo_loss(t(-8.0), t(-6.0), t(16.0), t(4.0), 2.0, 0.5).item() == pytest.approx(loss.item())


def test_simpo_margin_gamma_raises_the_loss():
    losses = [simpo_loss(t(-1.0), t(-2.0), t(1.0), t(1.0), beta=1.0, gamma=g).item() for g in (0.0, 1.0, 2.0)]
    assert losses[0] < losses[1] < losses[2]
    assert losses[1] == pytest.approx(math.log(2))  # margin exactly met: sigmoid(0)


def test_kto_beta_scales_the_gain():
    # r = 1, z_ref = 0.5, beta = 2: 1 - sigma(2 * 0.5) and 1 - sigma(2 * -0.5)
    loss = kto_loss(t(-1.0, -1.0), t(-2.0, -2.0), torch.tensor([True, False]), z_ref=0.5, beta=2.0)
    assert loss.tolist() == pytest.approx([0.268941, 0.731059], abs=1e-5)
    # desirable weight applies to desirable examples only
    w = kto_loss(t(-1.0, -1.0), t(-2.0, -2.0), torch.tensor([True, False]), z_ref=0.5, beta=2.0,
                 desirable_weight=3.0)
    assert w.tolist() == pytest.approx([3 * 0.268941, 0.731059], abs=1e-5)


def test_preference_stats_count_ties_as_misses():
    accuracy, margin = preference_stats(t(1.0, 2.0, 0.5), t(0.0, 1.0, 0.5))  # win, win, tie
    assert accuracy.item() == pytest.approx(2 / 3) and margin.item() == pytest.approx(2 / 3)


def test_kto_reference_point_with_no_weight_is_zero_not_nan():
    assert kto_reference_point(t(-1.0, 0.0), t(-2.0, -2.0), t(0.0, 0.0)).item() == 0.0
