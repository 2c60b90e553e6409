"""core/lab/error_correction.py: for Gaussian data every step is affine with a slope computed by hand here, so the
distance between the perturbed and unperturbed chains must shrink by exactly the product of those slopes."""

import math

import pytest
import torch

from core.data.toys import toy_mixture_parameters
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import GaussianMixture
from core.diffusion.schedules import make_schedule
from core.lab.error_correction import error_correction

T = 40


def hand_alpha_bars():
    betas = [(1e-4 + (0.02 - 1e-4) * i / (T - 1)) * 1000 / T for i in range(T)]
    out, p = [], 1.0
    for beta in betas:
        p *= 1 - beta
        out.append(p)
    return betas, out


def hand_slopes(std: float, perturb_step: int):
    """Per step (paper steps perturb_step..1): the slope of DDPM's mean map and of DDIM η = 0 for data N(μ, std² I)."""
    betas, abs_ = hand_alpha_bars()
    ddpm, ddim = [], []
    for i in range(perturb_step - 1, -1, -1):
        ab, ab_prev = abs_[i], (abs_[i - 1] if i > 0 else 1.0)
        c = ab * std**2 + 1 - ab
        k = math.sqrt(ab) * std**2 / c  # slope of E[x₀|x_t]
        coef_x0 = math.sqrt(ab_prev) * betas[i] / (1 - ab)
        coef_xt = math.sqrt(1 - betas[i]) * (1 - ab_prev) / (1 - ab)
        ddpm.append(coef_x0 * k + coef_xt)
        ddim.append(math.sqrt(ab_prev) * k + math.sqrt(1 - ab_prev) * (1 - math.sqrt(ab) * k) / math.sqrt(1 - ab))
    return ddpm, ddim


@pytest.mark.parametrize("std", [1.0, 0.3])
def test_gaussian_data_distances_follow_the_hand_slopes(std):
    mixture = GaussianMixture([[0.4, -0.2]], [std], [1.0])
    diffusion = GaussianDiffusion(make_schedule("linear", T, scale_with_T=True), "eps")
    result = error_correction(mixture, diffusion, 50, 10, 0.5, torch.Generator().manual_seed(0))
    ddpm, ddim = hand_slopes(std, 10)
    assert result.steps == list(range(10, -1, -1))
    for sampler, slopes in (("ddpm", ddpm), ("ddim", ddim)):
        expected = [0.5]
        for slope in slopes:
            expected.append(expected[-1] * slope)
        assert result.distance[sampler].tolist() == pytest.approx(expected, rel=1e-9)
    if std == 1.0:  # data N(μ, I): DDIM's slope is cos(φ_prev − φ) with √ᾱ = cos φ, a product of cosines of small
        # angle steps, so it keeps almost all of the error; DDPM removes a good part of it
        assert result.remaining("ddim") > 0.95
        assert result.remaining("ddpm") < result.remaining("ddim") - 0.2


def test_mixture_ddpm_corrects_more_than_ddim_and_is_reproducible():
    mixture = GaussianMixture(*toy_mixture_parameters("gaussian_mixture"))
    diffusion = GaussianDiffusion(make_schedule("linear", T, scale_with_T=True), "eps")
    first = error_correction(mixture, diffusion, 100, 10, 0.5, torch.Generator().manual_seed(1))
    again = error_correction(mixture, diffusion, 100, 10, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(first.distance["ddpm"], again.distance["ddpm"]) and torch.equal(first.final["ddim"], again.final["ddim"])
    assert first.remaining("ddpm") < first.remaining("ddim")


def test_bad_arguments():
    mixture = GaussianMixture([[0.0]], [1.0], [1.0])
    diffusion = GaussianDiffusion(make_schedule("linear", T, scale_with_T=True), "eps")
    for kwargs in (dict(n=0), dict(perturb_step=T), dict(perturb_step=0), dict(size=0.0), dict(size=float("nan"))):
        arguments = dict(n=5, perturb_step=5, size=0.5) | kwargs
        with pytest.raises(ValueError):
            error_correction(mixture, diffusion, generator=torch.Generator(), **arguments)
