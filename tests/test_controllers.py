"""The KL controller and the running reward moments against numbers worked out by hand."""
import math

import pytest

from rlvr.algorithms.controllers import KLController, RunningMoments


def test_adaptive_kl_inside_the_clip_band():
    c = KLController(0.1, target=6.0, horizon=10000)
    c.update(kl=6.6, n_samples=256)  # e = (6.6 - 6) / 6 = 0.1, not clipped
    assert c.beta == pytest.approx(0.1 * (1 + 0.1 * 256 / 10000), rel=1e-12)


@pytest.mark.parametrize("kl, error", [(12.0, 0.2), (600.0, 0.2), (0.0, -0.2), (3.0, -0.2)])
def test_adaptive_kl_error_is_clipped_both_ways(kl, error):
    c = KLController(0.1, target=6.0, horizon=10000)
    c.update(kl=kl, n_samples=256)
    assert c.beta == pytest.approx(0.1 * (1 + error * 256 / 10000), rel=1e-12)


def test_default_horizon_is_ten_thousand():
    c = KLController(0.1, target=6.0)
    c.update(kl=12.0, n_samples=500)
    assert c.beta == pytest.approx(0.1 * (1 + 0.2 * 500 / 10000), rel=1e-12)


@pytest.mark.parametrize("kl", [math.nan, math.inf, -math.inf])
def test_a_non_finite_kl_leaves_beta_alone(kl):
    c = KLController(0.1, target=6.0)
    c.update(kl=kl, n_samples=256)
    assert c.beta == 0.1


def test_kl_controller_state_round_trip():
    c = KLController(0.1, target=6.0)
    c.update(kl=12.0, n_samples=256)
    fresh = KLController(0.1, target=6.0)
    fresh.load_state_dict(c.state_dict())
    assert fresh.beta == c.beta != 0.1
    fresh.update(kl=12.0, n_samples=256)  # and it continues from the restored beta
    assert fresh.beta == pytest.approx(0.1 * (1 + 0.2 * 256 / 10000) ** 2, rel=1e-12)


def test_fresh_moments_normalise_as_the_identity():
    m = RunningMoments()
    assert (m.mean, m.std, m.count) == (0.0, 1.0, 0)


def test_moments_of_one_value_and_of_nothing():
    m = RunningMoments()
    m.update([])
    assert (m.mean, m.var, m.count) == (0.0, 1.0, 0)
    m.update([5.0])
    assert (m.mean, m.var, m.count) == (5.0, 0.0, 1)
    assert m.std == pytest.approx(1e-4)  # the variance floor 1e-8 keeps a division by std finite


def test_moments_combine_batches_like_one_batch():
    m = RunningMoments()
    m.update([1.0, 2.0, 3.0])
    m.update([4.0, 5.0])
    m.update([10.0])
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 10.0]
    mean = sum(values) / 6  # 25 / 6
    var = sum((v - mean) ** 2 for v in values) / 6
    assert m.mean == pytest.approx(mean) and m.var == pytest.approx(var) and m.count == 6
    assert m.std == pytest.approx(math.sqrt(var))


def test_moments_state_round_trip():
    m = RunningMoments()
    m.update([1.0, 2.0, 3.0])
    fresh = RunningMoments()
    fresh.load_state_dict(m.state_dict())
    assert (fresh.mean, fresh.var, fresh.count) == (2.0, pytest.approx(2 / 3), 3)
    fresh.update([4.0, 5.0])
    assert fresh.mean == pytest.approx(3.0) and fresh.var == pytest.approx(2.0) and fresh.count == 5
