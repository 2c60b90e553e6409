"""core.diffusion.losses: the Gaussian KL and the discretized decoder likelihood of the variational bound.

Checked against independent computations: numerical integration of p·log(p/q), and the bins of the
decoder (Ho et al. 2020 eq. 13) summed over all 256 pixel values, and math.erf in plain Python floats.
"""

import math

import pytest
import torch

from core.diffusion.losses import discretized_gaussian_log_likelihood, mean_over_data_dims, normal_kl


@pytest.mark.parametrize("m1, v1, m2, v2", [(0.0, 1.0, 1.0, 4.0), (0.3, 0.01, 0.25, 0.02), (-1.0, 2.0, 0.5, 0.7)])
def test_normal_kl_matches_numerical_integration(m1, v1, m2, v2):
    x = torch.linspace(m1 - 14 * math.sqrt(v1), m1 + 14 * math.sqrt(v1), 40001, dtype=torch.float64)
    log_p = -0.5 * (x - m1) ** 2 / v1 - 0.5 * math.log(2 * math.pi * v1)
    log_q = -0.5 * (x - m2) ** 2 / v2 - 0.5 * math.log(2 * math.pi * v2)
    numerical = float(torch.trapezoid(log_p.exp() * (log_p - log_q), x))
    kl = normal_kl(*(torch.tensor(v, dtype=torch.float64) for v in (m1, math.log(v1), m2, math.log(v2))))
    assert float(kl) == pytest.approx(numerical, rel=1e-7)


def test_normal_kl_hand_value():
    # KL(N(0,1) ‖ N(1,4)) = ½(log 4 + 1/4 + 1/4 − 1)
    kl = normal_kl(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(1.0), torch.tensor(math.log(4.0)))
    assert float(kl) == pytest.approx(0.5 * (math.log(4) - 0.5), rel=1e-6)


def test_normal_kl_is_zero_for_equal_gaussians_and_positive_otherwise():
    mean, log_var = torch.tensor([0.2, -1.0]), torch.tensor([-3.0, 0.5])
    assert torch.equal(normal_kl(mean, log_var, mean, log_var), torch.zeros(2))
    assert bool((normal_kl(mean, log_var, mean + 0.1, log_var) > 0).all())


@pytest.mark.parametrize("mean, std", [(0.0, 0.01), (0.37, 0.2), (-0.95, 0.05), (0.2, 3.0)])
def test_decoder_bins_sum_to_one_and_match_the_gaussian_integral(mean, std):
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1.0  # every 8-bit value in [-1, 1]
    log_likelihood = discretized_gaussian_log_likelihood(
        levels, torch.full_like(levels, mean), torch.full_like(levels, 2 * math.log(std)))
    assert float(log_likelihood.exp().sum()) == pytest.approx(1.0, abs=1e-9)
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))
    for index in (0, 100, 200, 255):
        x = float(levels[index])
        upper = 1.0 if index == 255 else phi((x + 1 / 255 - mean) / std)
        lower = 0.0 if index == 0 else phi((x - 1 / 255 - mean) / std)
        if upper - lower > 1e-10:
            assert float(log_likelihood[index]) == pytest.approx(math.log(upper - lower), rel=1e-6)


def test_mean_over_data_dims():
    x = torch.arange(24, dtype=torch.float64).reshape(2, 3, 4)
    assert mean_over_data_dims(x).tolist() == [5.5, 17.5]
