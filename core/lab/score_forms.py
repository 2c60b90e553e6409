"""The score ∇log q_t(x_t) from each parameterization's prediction (ε, x₀ or v).

From x_t = √ᾱ x₀ + √(1−ᾱ) ε (Ho et al. 2020, eq. 4) and Tweedie's formula E[ε | x_t] = −√(1−ᾱ) ∇log q_t(x_t):

    from ε:   s = −ε̂ / √(1−ᾱ)
    from x₀:  s = −(x_t − √ᾱ x̂₀) / (1−ᾱ)            (ε̂ = (x_t − √ᾱ x̂₀)/√(1−ᾱ) substituted)
    from v:   s = −(√(1−ᾱ) x_t + √ᾱ v̂) / √(1−ᾱ)       (ε̂ = √(1−ᾱ) x_t + √ᾱ v̂, Salimans & Ho 2022)

The x₀ form divides by 1−ᾱ, the ε and v forms by √(1−ᾱ): each is the ε form with its own ε̂ substituted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.checks import check_int
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import GaussianMixture, OracleDenoiser
from core.lab.score import autograd_score


def _check_alpha_bar(alpha_bar: float) -> float:
    if not 0.0 < alpha_bar < 1.0:
        raise ValueError(f"alpha_bar must lie strictly between 0 and 1, got {alpha_bar}")
    return float(alpha_bar)


def score_from_eps(eps: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    return -eps / math.sqrt(1 - _check_alpha_bar(alpha_bar))


def score_from_x0(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    alpha_bar = _check_alpha_bar(alpha_bar)
    return -(x_t - math.sqrt(alpha_bar) * x0) / (1 - alpha_bar)


def score_from_v(x_t: torch.Tensor, v: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    alpha_bar = _check_alpha_bar(alpha_bar)
    return -(math.sqrt(1 - alpha_bar) * x_t + math.sqrt(alpha_bar) * v) / math.sqrt(1 - alpha_bar)


@dataclass(frozen=True)
class ScoreForms:
    """At points x_t [N, D] and one step: the score from exact ε, x₀ and v predictions, and by autograd."""

    alpha_bar: float
    from_eps: torch.Tensor
    from_x0: torch.Tensor
    from_v: torch.Tensor
    autograd: torch.Tensor

    def max_difference(self) -> dict:
        return {name: float((getattr(self, name) - self.autograd).abs().max()) for name in ("from_eps", "from_x0", "from_v")}


def score_forms(mixture: GaussianMixture, diffusion: GaussianDiffusion, x_t: torch.Tensor, t: int) -> ScoreForms:
    """The three conversions applied to the exact (oracle) ε, x₀ and v of a mixture at 0-based step t, against the
    score by automatic differentiation of the exact noised density (an independent route)."""
    t = check_int("t", t, 0, diffusion.T - 1)
    alpha_bar = float(diffusion.schedule.alpha_bars[t])
    x = x_t.to(torch.float64)
    exact = {p: OracleDenoiser(mixture, GaussianDiffusion(diffusion.schedule, p, "fixed_small"))(x, t) for p in ("eps", "x0", "v")}
    return ScoreForms(alpha_bar=alpha_bar, from_eps=score_from_eps(exact["eps"], alpha_bar),
                      from_x0=score_from_x0(x, exact["x0"], alpha_bar), from_v=score_from_v(x, exact["v"], alpha_bar),
                      autograd=autograd_score(mixture, x, alpha_bar))
