"""core.lab.signal against closed forms: a constant β gives ᾱ_t = (1 − β)^t."""

import math

import pytest
import torch

from core.diffusion.schedules import NoiseSchedule, make_schedule
from core.lab.signal import noise_only_fraction, signal_gone_step


@pytest.mark.parametrize("beta", [0.05, 0.2, 0.5])
def test_constant_beta_matches_the_closed_form(beta):
    T = 400
    schedule = NoiseSchedule.from_betas(torch.full((T,), beta, dtype=torch.float64))
    # (1 − β)^(t/2) <= 0.01  <=>  t >= 2·ln 0.01 / ln(1 − β)
    expected = math.ceil(2 * math.log(0.01) / math.log(1 - beta))
    assert signal_gone_step(schedule) == expected
    assert noise_only_fraction(schedule) == pytest.approx((T - expected) / T)


def test_ho_default_keeps_signal_nearly_to_the_end_and_large_beta_end_loses_it_early():
    default = make_schedule("linear", 1000)  # √ᾱ_T = 0.0064: crosses 1 % only near t ≈ 960
    assert 900 < signal_gone_step(default) < 1000
    harsh = make_schedule("linear", 1000, 1e-4, 0.999)
    assert signal_gone_step(harsh) < 200 and noise_only_fraction(harsh) > 0.8
    assert signal_gone_step(make_schedule("linear", 100)) is None  # √ᾱ_T = 0.6: never gone


def test_threshold_is_checked():
    with pytest.raises(ValueError, match="threshold"):
        signal_gone_step(make_schedule("linear", 10), threshold=0.0)
