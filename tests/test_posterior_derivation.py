"""core.lab.posterior_derivation: the completed square equals eq. 7 and GaussianDiffusion's posterior."""

import math

import pytest
import torch

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule
from core.lab.posterior_derivation import derive_posterior, normalised_product


@pytest.mark.parametrize("kind, T, step", [("linear", 1000, 2), ("linear", 1000, 300), ("cosine", 100, 57), ("sigmoid", 50, 50)])
def test_filled_numbers_equal_the_diffusion_posterior(kind, T, step):
    schedule = make_schedule(kind, T)
    d = derive_posterior(schedule, step, 0.6, 0.2)
    assert d.variance == pytest.approx(d.closed_form_variance, rel=1e-9)
    assert d.mean == pytest.approx(d.closed_form_mean, rel=1e-9, abs=1e-12)
    diffusion = GaussianDiffusion(schedule, "eps", "fixed_small")
    t = torch.tensor([step - 1])
    mean, variance, _ = diffusion.q_posterior(torch.tensor([[0.6]], dtype=torch.float64), torch.tensor([[0.2]], dtype=torch.float64), t)
    assert d.mean == pytest.approx(float(mean), rel=1e-9, abs=1e-12)
    assert d.variance == pytest.approx(float(variance), rel=1e-9)
    assert (d.coef_x0, d.coef_xt) == pytest.approx((float(schedule.posterior_mean_coef_x0[step - 1]),
                                                    float(schedule.posterior_mean_coef_xt[step - 1])), rel=1e-12)


def test_the_normalised_product_has_the_posterior_moments():
    d = derive_posterior(make_schedule("linear", 1000), 300, 0.6, 0.2)
    grid, density = normalised_product(d, points=2001, width=8)
    dx = grid[1] - grid[0]
    mean = sum(x * p for x, p in zip(grid, density)) * dx
    variance = sum((x - mean) ** 2 * p for x, p in zip(grid, density)) * dx
    assert mean == pytest.approx(d.closed_form_mean, rel=1e-6)
    assert variance == pytest.approx(d.closed_form_variance, rel=1e-4)
    # at the mean the normalised density is the Gaussian's peak
    peak = density[len(density) // 2]
    assert peak == pytest.approx(1 / math.sqrt(2 * math.pi * d.closed_form_variance), rel=1e-6)


def test_step_one_is_rejected():
    with pytest.raises(ValueError, match="step"):
        derive_posterior(make_schedule("linear", 10, scale_with_T=False), 1, 0.0, 0.0)
