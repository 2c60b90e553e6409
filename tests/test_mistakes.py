"""core.lab.mistakes: every number of the Common mistakes page, against hand computations."""

import math

import pytest
import torch

from core.data.toys import toy_mixture_parameters
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import GaussianMixture, OracleDenoiser
from core.diffusion.schedules import make_schedule
from core.lab.mistakes import (
    cosine_without_square,
    deterministic_diversity,
    elbo_weight_ends,
    eps_from_v,
    eps_from_v_factor,
    short_linear_schedule,
    target_of_training,
)
from core.lab.small_steps import default_mixture


def alpha_bar_linear(T, step):
    p = 1.0
    for i in range(step):
        p *= 1 - (1e-4 + (0.02 - 1e-4) * i / (T - 1))
    return p


def test_eps_from_v():
    for step, factor in ((301, 0.46), (901, 60)):
        ab = alpha_bar_linear(1000, step)
        assert eps_from_v_factor(step) == pytest.approx(math.sqrt(1 - ab) * (1 / math.sqrt(ab) - 1), rel=1e-9)
        assert eps_from_v_factor(step) == pytest.approx(factor, rel=0.01)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 1, 28, 28, generator=generator, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    result = eps_from_v(x0, noise, 901)
    assert result.right < 1e-12
    # the wrong error is the factor times x_t exactly
    ab = alpha_bar_linear(1000, 901)
    x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * noise
    assert result.wrong == pytest.approx(eps_from_v_factor(901) * float((x_t**2).mean().sqrt()), rel=1e-6)


def test_cosine_square_short_schedule_and_elbo_weights():
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2)  # noqa: E731
    result = cosine_without_square(500)
    assert result.wrong == pytest.approx(f(0.5) / f(0), rel=1e-12) and result.wrong == pytest.approx(0.703, abs=5e-4)
    assert result.right == pytest.approx(f(0.5) ** 2 / f(0) ** 2, rel=1e-12) and result.right == pytest.approx(0.494, abs=5e-4)
    short = short_linear_schedule(150)
    assert short["linear"] == pytest.approx(alpha_bar_linear(150, 150), rel=1e-9)
    assert short["linear"] == pytest.approx(0.219, abs=5e-4)
    assert short["scaled"] < 1e-3
    ends = elbo_weight_ends()
    assert ends["small_t"] > 50 * ends["large_t"]


def test_deterministic_sampling_keeps_the_spread():
    mixture = GaussianMixture(*toy_mixture_parameters("eight_gaussians"))
    result = deterministic_diversity(mixture, 400, 20, torch.Generator().manual_seed(0))
    assert result["total_variance"] == pytest.approx(result["data_variance"], rel=0.15)
    assert result["same_start_variance"] < 1e-20


def test_target_of_training_is_the_posterior_mean_of_x0():
    mixture = default_mixture()
    t, x_t = 299, 0.3
    result = target_of_training(mixture, t, x_t, 50_000, torch.Generator().manual_seed(0))
    diffusion = GaussianDiffusion(make_schedule("linear", 1000), "x0", "fixed_small")
    exact = float(OracleDenoiser(mixture, diffusion).expected_x0(torch.tensor([[x_t]], dtype=torch.float64), t))
    assert result.expected_x0 == pytest.approx(exact, rel=1e-9)
    se = float(result.x0_draws.std()) / math.sqrt(50_000)
    assert float(result.x0_draws.mean()) == pytest.approx(exact, abs=5 * se)
    assert float(result.posterior_means.mean()) == pytest.approx(result.best_mean, abs=5 * se)
    assert result.residual_kl > 0
