"""Training noise levels drawn from Karras et al. 2022's log-normal p_train (GaussianDiffusion.lognormal_timestep_probabilities)
instead of uniformly: the probabilities are checked by Monte Carlo (a continuous ln σ rounded to the nearest level by
brute force), the draw inside training_losses by its frequencies, and the uniform default by its old random stream."""

import pytest
import torch

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule
from core.training.config import TrainConfig, build_diffusion, timestep_probabilities


def diffusion(kind="linear", T=200):
    return GaussianDiffusion(make_schedule(kind, T, scale_with_T=kind == "linear"), "x0", "fixed_small")


@pytest.mark.parametrize("kind, mean, std", [("linear", 0.0, 1.2), ("linear", -1.2, 1.2), ("cosine", 0.5, 0.8)])
def test_probabilities_match_a_rounded_continuous_draw(kind, mean, std):
    process = diffusion(kind)
    probabilities = process.lognormal_timestep_probabilities(mean, std)
    assert probabilities.shape == (200,) and probabilities.dtype == torch.float64
    assert abs(float(probabilities.sum()) - 1.0) < 1e-12 and float(probabilities.min()) >= 0.0
    # Monte Carlo: ln σ ~ N(mean, std²), each draw assigned to the level with the nearest ln σ_t (brute force)
    log_sigma = 0.5 * torch.log((1 - process.schedule.alpha_bars) / process.schedule.alpha_bars)
    draws = mean + std * torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    nearest = torch.cat([(chunk[:, None] - log_sigma[None, :]).abs().argmin(dim=1) for chunk in draws.split(20_000)])
    frequencies = torch.bincount(nearest, minlength=200).double() / draws.numel()
    standard_error = (probabilities * (1 - probabilities) / draws.numel()).sqrt()
    assert bool(((frequencies - probabilities).abs() <= 5 * standard_error + 1e-4).all())


def test_training_draws_t_from_the_probabilities_and_uniform_is_unchanged():
    process = diffusion()
    probabilities = process.lognormal_timestep_probabilities(0.0, 1.2)
    model = lambda x, t: torch.zeros_like(x)
    x0 = torch.zeros(50_000, 2)
    drawn = process.training_losses(model, x0, generator=torch.Generator().manual_seed(1), t_probabilities=probabilities)["t"]
    frequencies = torch.bincount(drawn, minlength=200).double() / drawn.numel()
    assert float((frequencies - probabilities).abs().max()) < 0.01
    # half the draws have σ_t < 1 (ln σ < 0 = the mean), i.e. ᾱ_t > 1/2
    assert abs(float((process.schedule.alpha_bars[drawn] > 0.5).double().mean()) - 0.5) < 0.02
    # uniform (the default): the same t as torch.randint on the same generator, as before this option existed
    uniform = process.training_losses(model, x0[:64], generator=torch.Generator().manual_seed(2))["t"]
    assert torch.equal(uniform, torch.randint(0, 200, (64,), generator=torch.Generator().manual_seed(2)))


def test_the_config_chooses_the_distribution():
    uniform = TrainConfig(dataset="two_moons", T=50)
    assert timestep_probabilities(uniform, build_diffusion(uniform)) is None
    lognormal = TrainConfig(dataset="two_moons", T=50, noise_levels="lognormal", lognormal_mean=0.5, lognormal_std=0.7)
    expected = build_diffusion(lognormal).lognormal_timestep_probabilities(0.5, 0.7)
    assert torch.equal(timestep_probabilities(lognormal, build_diffusion(lognormal)), expected)
    for field, bad in (("noise_levels", "gaussian"), ("lognormal_std", 0.0), ("lognormal_mean", float("nan"))):
        with pytest.raises(ValueError, match=field):
            TrainConfig(dataset="two_moons", **{field: bad})
