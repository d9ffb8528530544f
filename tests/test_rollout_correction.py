"""Rollout correction weights and statistics against hand-computed values.

Inputs are built from the ratios r = pi_old / mu each case wants (train = engine + ln r); every expected
weight, sum and mean below is worked out by hand from those ratios, not by the formula under test."""
import math

import pytest
import torch

from rlvr.algorithms.rollout_correction import rollout_metrics, rollout_stats, rollout_weights


def logprobs(ratios: list[list[float]], junk: tuple = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, engine) [B, T] with exp(train - engine) = ratios; then engine[b, t] = v for each (b, t, v) in
    `junk` (what an engine may leave past a response's end)."""
    B, T = len(ratios), len(ratios[0])
    engine = (-1.0 - 0.5 * torch.arange(T).float()).expand(B, T).clone()
    train = engine + torch.tensor(ratios).log()
    for b, t, v in junk:
        engine[b, t] = v
    return train, engine


# one response, five tokens: r = 0.6, 1.5, 3.0, 0.25, 1.0
ONE = [[0.6, 1.5, 3.0, 0.25, 1.0]]

# four responses of up to three tokens; row 3 counts nowhere (an overlong response filtered out)
RATIOS = [[1.25, 2.4, 1.0], [0.4, 1.0, 1.0], [1.2, 1.25, 1.0], [5.0, 5.0, 5.0]]
MASK = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 0], [0, 0, 0]]).float()
# the engine's numbers past a response's end are not to be trusted: nan and a huge value there
PAD = ((0, 2, math.nan), (2, 2, 1e9))


@pytest.mark.parametrize("cap, mode, expected", [
    (2.0, "none", [1.0, 1.0, 1.0, 1.0, 1.0]),
    (2.0, "tis", [0.6, 1.5, 2.0, 0.25, 1.0]),  # 3.0 truncated to 2; nothing raised
    (2.0, "mask", [0.6, 1.5, 0.0, 0.0, 1.0]),  # 3.0 > 2 and 0.25 < 1/2 dropped, the rest keep r
    (3.5, "tis", [0.6, 1.5, 3.0, 0.25, 1.0]),  # everything under the cap
    (3.5, "mask", [0.6, 1.5, 3.0, 0.0, 1.0]),  # 0.25 < 1/3.5 = 0.2857 dropped
])
def test_token_level_weights(cap, mode, expected):
    train, engine = logprobs(ONE)
    w = rollout_weights(train, engine, torch.ones(1, 5), mode, "token", cap)
    torch.testing.assert_close(w, torch.tensor([expected]))


@pytest.mark.parametrize("level, mode, expected", [
    ("token", "none", [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]]),
    ("token", "tis", [[1.25, 2.0, 1], [0.4, 1.0, 1.0], [1.2, 1.25, 1], [1, 1, 1]]),
    ("token", "mask", [[1.25, 0.0, 1], [0.0, 1.0, 1.0], [1.2, 1.25, 1], [1, 1, 1]]),
    # one ratio per response, the product over its masked tokens: 1.25 * 2.4 = 3.0, 0.4, 1.2 * 1.25 = 1.5
    ("sequence", "none", [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]]),
    ("sequence", "tis", [[2.0, 2.0, 1], [0.4, 0.4, 0.4], [1.5, 1.5, 1], [1, 1, 1]]),
    ("sequence", "mask", [[0.0, 0.0, 1], [0.0, 0.0, 0.0], [1.5, 1.5, 1], [1, 1, 1]]),
])
def test_weights_by_level_with_padding(level, mode, expected):
    """Weight 1.0 wherever the mask is 0 (padding, filtered rows), whatever the engine wrote there."""
    train, engine = logprobs(RATIOS, PAD)
    w = rollout_weights(train, engine, MASK, mode, level, 2.0)
    torch.testing.assert_close(w, torch.tensor(expected).float())


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("mode", ["none", "tis", "mask"])
def test_equal_logprobs_are_the_identity(mode, level):
    """The hf engine in float32: the trainer's old log-probabilities are the engine's own numbers."""
    train, _ = logprobs(RATIOS)
    w = rollout_weights(train, train.clone(), MASK, mode, level, 2.0)
    assert torch.equal(w, torch.ones(4, 3))


@pytest.mark.parametrize("level, above", [("token", 2.0), ("sequence", 1.0)])
def test_huge_log_ratios_give_finite_weights_and_stats(level, above):
    train = torch.zeros(2, 2)
    engine = torch.tensor([[-1000.0, -500.0], [1000.0, 0.0]])  # log r = 1000, 500 | -1000, (pad)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    tis = rollout_weights(train, engine, mask, "tis", level, 2.0)
    masked = rollout_weights(train, engine, mask, "mask", level, 2.0)
    torch.testing.assert_close(tis, torch.tensor([[2.0, 2.0], [0.0, 1.0]]))  # min(inf, 2) = 2; e^-1000 = 0
    torch.testing.assert_close(masked, torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    sums, extremes = rollout_stats(train, engine, mask, "tis", level, 2.0)
    assert all(math.isfinite(v) for v in [*sums.values(), *extremes.values()])
    assert extremes["ratio_max"] == pytest.approx(485165195.4, rel=1e-5)  # bounded at e^20
    assert sums["above"] == above and sums["below"] == 1.0


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("mode", ["none", "tis", "mask"])
def test_weights_carry_no_gradient(mode, level):
    train, engine = logprobs(RATIOS)
    train.requires_grad_(True)
    w = rollout_weights(train, engine, MASK, mode, level, 2.0)
    assert not w.requires_grad and w.grad_fn is None


@pytest.mark.parametrize("mode, weight, corrected", [
    ("none", 5.0, 0.0),
    ("tis", 0.6 + 1.5 + 2.0 + 0.25 + 1.0, 1.0),  # 5.35: only 3.0 is changed (to 2)
    ("mask", 0.6 + 1.5 + 1.0, 2.0),  # 3.1: 3.0 and 0.25 dropped
])
def test_token_stats(mode, weight, corrected):
    train, engine = logprobs(ONE)
    sums, extremes = rollout_stats(train, engine, torch.ones(1, 5), mode, "token", 2.0)
    # k3 = r - 1 - ln r: 0.6 -> 0.1108256, 1.5 -> 0.0945349, 3.0 -> 0.9013877, 0.25 -> 0.6362944, 1 -> 0
    k3 = 0.1108256 + 0.0945349 + 0.9013877 + 0.6362944
    expected = {"units": 5.0, "tokens": 5.0, "ratio": 6.35, "weight": weight, "above": 1.0, "below": 1.0,
                "corrected": corrected, "k3": k3}
    assert sums == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert extremes == pytest.approx({"ratio_max": 3.0, "ratio_min": 0.25}, rel=1e-5)
    m = rollout_metrics(sums, extremes)
    assert m == pytest.approx({
        "rollout_correction/ratio_mean": 1.27, "rollout_correction/weight_mean": weight / 5,
        "rollout_correction/ratio_max": 3.0, "rollout_correction/ratio_min": 0.25,
        "rollout_correction/corrected_share": corrected / 5, "rollout_correction/above_cap_share": 0.2,
        "rollout_correction/below_floor_share": 0.2, "rollout_correction/k3": 0.3486085}, rel=1e-5)


def test_sequence_stats_count_responses_and_skip_padding():
    train, engine = logprobs(RATIOS, PAD)
    sums, extremes = rollout_stats(train, engine, MASK, "tis", "sequence", 2.0)
    # responses 3.0, 0.4, 1.5 (row 3 counts nowhere); k3 over the 7 masked tokens:
    # 1.25 -> 0.0268564, 2.4 -> 0.5245313, 0.4 -> 0.3162907, 1.0 -> 0 (twice),
    # 1.2 -> 0.0176784, 1.25 -> 0.0268564
    k3 = 0.0268564 + 0.5245313 + 0.3162907 + 0.0176784 + 0.0268564
    assert sums == pytest.approx({"units": 3.0, "tokens": 7.0, "ratio": 4.9, "weight": 2.0 + 0.4 + 1.5,
                                  "above": 1.0, "below": 1.0, "corrected": 1.0, "k3": k3}, rel=1e-5)
    assert extremes == pytest.approx({"ratio_max": 3.0, "ratio_min": 0.4}, rel=1e-5)
    masked, _ = rollout_stats(train, engine, MASK, "mask", "sequence", 2.0)
    assert masked["weight"] == pytest.approx(1.5) and masked["corrected"] == 2.0


@pytest.mark.parametrize("level", ["token", "sequence"])
def test_stats_combine_over_ranks(level):
    """Two ranks' sums added and extremes max/min-ed give the whole batch's metrics; so does a third
    rank with nothing to count (its extremes are the identities -inf, +inf)."""
    train, engine = logprobs(RATIOS, PAD)
    whole = rollout_metrics(*rollout_stats(train, engine, MASK, "mask", level, 2.0))
    parts = [rollout_stats(train[i], engine[i], MASK[i], "mask", level, 2.0) for i in ([0, 1], [2, 3], [3])]
    assert parts[2][1] == {"ratio_max": -math.inf, "ratio_min": math.inf}
    sums = {k: sum(p[0][k] for p in parts) for k in parts[0][0]}
    extremes = {"ratio_max": max(p[1]["ratio_max"] for p in parts),
                "ratio_min": min(p[1]["ratio_min"] for p in parts)}
    assert rollout_metrics(sums, extremes) == pytest.approx(whole)


def test_metrics_from_sums():
    sums = {"units": 4.0, "tokens": 10.0, "ratio": 4.4, "weight": 4.0, "above": 1.0, "below": 2.0,
            "corrected": 3.0, "k3": 0.5}
    assert rollout_metrics(sums, {"ratio_max": 2.5, "ratio_min": 0.3}) == pytest.approx({
        "rollout_correction/ratio_mean": 1.1, "rollout_correction/weight_mean": 1.0,
        "rollout_correction/ratio_max": 2.5, "rollout_correction/ratio_min": 0.3,
        "rollout_correction/corrected_share": 0.75, "rollout_correction/above_cap_share": 0.25,
        "rollout_correction/below_floor_share": 0.5, "rollout_correction/k3": 0.05})


@pytest.mark.parametrize("level", ["token", "sequence"])
def test_extremes_ignore_padding(level):
    """Every counted ratio above 1 (1.5, 1.2; response 1.8): the padding's r = 1 must not be the minimum,
    nor, every ratio below 1 (0.5, 0.8; response 0.4), the maximum."""
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    high = rollout_stats(*logprobs([[1.5, 1.2, 1.0]]), mask, "tis", level, 2.0)[1]
    low = rollout_stats(*logprobs([[0.5, 0.8, 1.0]]), mask, "tis", level, 2.0)[1]
    expected = {"token": (1.2, 0.8), "sequence": (1.8, 0.4)}[level]
    assert high["ratio_min"] == pytest.approx(expected[0]) and low["ratio_max"] == pytest.approx(expected[1])


def test_metrics_with_nothing_counted():
    nothing = torch.zeros(2, 3)
    m = rollout_metrics(*rollout_stats(nothing, nothing, nothing, "tis", "token", 2.0))
    assert math.isnan(m["rollout_correction/ratio_max"]) and math.isnan(m["rollout_correction/ratio_min"])
    assert m["rollout_correction/ratio_mean"] == 0.0 and m["rollout_correction/corrected_share"] == 0.0


@pytest.mark.parametrize("mode, level, cap, message", [
    ("clip", "token", 2.0, "unknown rollout correction mode 'clip'"),
    ("tis", "geometric", 2.0, "unknown rollout correction level 'geometric'"),
    ("tis", "token", 1.0, "cap must be above 1"),
])
def test_bad_arguments(mode, level, cap, message):
    train, engine = logprobs(ONE)
    with pytest.raises(ValueError, match=message):
        rollout_weights(train, engine, torch.ones(1, 5), mode, level, cap)


def test_ratios_exactly_at_the_cap_and_floor_are_kept():
    """r = C and r = 1/C lie inside the band [1/C, C]: mask mode keeps them and nothing counts as above
    or below (log r = +-ln 2 exactly, in float32 as the comparison is)."""
    ln2 = torch.tensor(math.log(2.0), dtype=torch.float32)
    train = torch.stack([ln2, -ln2, torch.tensor(0.0)]).view(1, 3)
    engine, mask = torch.zeros(1, 3), torch.ones(1, 3)
    weights = rollout_weights(train, engine, mask, "mask", "token", 2.0)
    assert weights[0].tolist() == pytest.approx([2.0, 0.5, 1.0])
    sums, _ = rollout_stats(train, engine, mask, "mask", "token", 2.0)
    assert (sums["above"], sums["below"], sums["corrected"]) == (0.0, 0.0, 0.0)


def test_metrics_of_a_single_unit():
    sums = {"units": 1.0, "tokens": 1.0, "ratio": 1.5, "weight": 1.5, "above": 0.0, "below": 0.0,
            "corrected": 0.0, "k3": 0.25}
    m = rollout_metrics(sums, {"ratio_max": 1.5, "ratio_min": 1.5})
    assert m["rollout_correction/ratio_mean"] == 1.5 and m["rollout_correction/weight_mean"] == 1.5
    assert m["rollout_correction/k3"] == 0.25
    assert m["rollout_correction/ratio_max"] == 1.5 and m["rollout_correction/ratio_min"] == 1.5
