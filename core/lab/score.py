"""The score view of ε-prediction, on a 2-D mixture whose noised density is known exactly.

Tweedie's formula (Efron 2011; used by Song et al. 2021 "Score-based generative modeling through SDEs", and
Ho et al. 2020 §3.2's remark that ε-prediction resembles denoising score matching):

    E[ε | x_t] = −√(1−ᾱ_t) · ∇_{x_t} log q_t(x_t)

Each training example supplies a one-sample "score" −ε/√(1−ᾱ_t), the gradient of log q(x_t|x_0), not of
log q_t(x_t): it points back to its own x_0. Its average over all x_0 that could have produced x_t is the true
score (Vincent 2011: denoising score matching has the same minimiser as matching ∇log q_t). The true score
here comes from autograd of the exact log density, independently of the oracle's Tweedie-based ε.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.checks import check_generator, check_int
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import GaussianMixture, OracleDenoiser


def autograd_score(mixture: GaussianMixture, x_t: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """∇_x log q_t(x) [N, D] by automatic differentiation of the exact mixture density (float64)."""
    x = x_t.detach().to(torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(mixture.marginal_log_prob(x, alpha_bar).sum(), x)
    return grad


@dataclass(frozen=True)
class TweedieCheck:
    expected_eps: torch.Tensor  # E[ε|x_t] from the exact posterior of x_0 (the oracle denoiser) [N, D]
    scaled_score: torch.Tensor  # −√(1−ᾱ_t)·∇log q_t(x_t) by autograd [N, D]

    @property
    def max_difference(self) -> float:
        return float((self.expected_eps - self.scaled_score).abs().max())


def tweedie_check(mixture: GaussianMixture, diffusion: GaussianDiffusion, x_t: torch.Tensor, t: int) -> TweedieCheck:
    """Both sides of Tweedie's formula at points x_t [N, D] and 0-based step t."""
    t = check_int("t", t, 0, diffusion.T - 1)
    alpha_bar = float(diffusion.schedule.alpha_bars[t])
    x = x_t.to(torch.float64)
    eps_diffusion = GaussianDiffusion(diffusion.schedule, "eps", "fixed_small")
    expected_eps = OracleDenoiser(mixture, eps_diffusion)(x, t)
    return TweedieCheck(expected_eps=expected_eps, scaled_score=-math.sqrt(1 - alpha_bar) * autograd_score(mixture, x, alpha_bar))


@dataclass(frozen=True)
class PerSampleScores:
    x0: torch.Tensor  # [N, D]
    x_t: torch.Tensor  # [N, D]
    one_sample: torch.Tensor  # −ε/√(1−ᾱ_t), what each training example supplies
    true: torch.Tensor  # ∇log q_t(x_t) at the same x_t

    @property
    def mean_squared_one_sample(self) -> float:
        """E‖−ε/√(1−ᾱ_t)‖²/D = 1/(1−ᾱ_t) in expectation."""
        return float((self.one_sample**2).mean())

    @property
    def mean_squared_true(self) -> float:
        return float((self.true**2).mean())

    @property
    def mean_squared_gap(self) -> float:
        """E‖−ε/σ − ∇log q_t‖²/D: the denoising-score-matching floor (the part no network can remove)."""
        return float(((self.one_sample - self.true) ** 2).mean())


def per_sample_scores(mixture: GaussianMixture, diffusion: GaussianDiffusion, t: int, n: int,
                      generator: torch.Generator) -> PerSampleScores:
    """n training examples at 0-based step t: x_0 ~ data, ε ~ N(0, I), x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε (eq. 4)."""
    t = check_int("t", t, 0, diffusion.T - 1)
    n = check_int("n", n, 2, 100_000)
    check_generator("generator", generator)
    alpha_bar = float(diffusion.schedule.alpha_bars[t])
    x0 = mixture.sample(n, generator, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    x_t = math.sqrt(alpha_bar) * x0 + math.sqrt(1 - alpha_bar) * noise
    return PerSampleScores(x0=x0, x_t=x_t, one_sample=-noise / math.sqrt(1 - alpha_bar),
                           true=autograd_score(mixture, x_t, alpha_bar))
