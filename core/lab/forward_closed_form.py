"""q(x_t | x₀) in closed form, by composing the one-step Gaussians of the forward process.

Ho et al. 2020, eq. 2: q(x_t | x_{t−1}) = N(√α_t x_{t−1}, β_t I), α_t = 1 − β_t. If x_{t−1} | x₀ ~ N(m_{t−1} x₀, v_{t−1} I)
then x_t = √α_t x_{t−1} + √β_t ε_t is a linear map of a Gaussian plus an independent Gaussian, so

    m_t = √α_t · m_{t−1},        v_t = α_t · v_{t−1} + β_t,        m_0 = 1, v_0 = 0.

By induction m_t = √ᾱ_t (a product of √α_s) and v_t = 1 − ᾱ_t, since α_t(1 − ᾱ_{t−1}) + β_t = α_t − ᾱ_t + 1 − α_t:
eq. 4, q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t) I). This module computes the recursion (not the product) and runs the
chain step by step, so the closed form can be checked against both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.checks import check_generator, check_int, check_number
from core.diffusion.schedules import NoiseSchedule


def composed_moments(schedule: NoiseSchedule) -> tuple[torch.Tensor, torch.Tensor]:
    """(m_t, v_t) for the paper's steps t = 1..T [T] in float64 by the one-step recursion above."""
    alphas = 1.0 - schedule.betas.to(torch.float64)
    means, variances = torch.empty_like(alphas), torch.empty_like(alphas)
    m, v = 1.0, 0.0
    for i, alpha in enumerate(alphas.tolist()):
        m, v = alpha**0.5 * m, alpha * v + (1.0 - alpha)
        means[i], variances[i] = m, v
    return means, variances


@dataclass(frozen=True)
class ChainMoments:
    steps: list  # the paper's steps t at which the chain was measured
    mean: list  # sample mean of x_t over the chains
    variance: list  # sample variance of x_t over the chains (unbiased)
    n: int


def run_chain(schedule: NoiseSchedule, x0: float, steps: list, n: int, generator: torch.Generator) -> ChainMoments:
    """n independent 1-D chains x_t = √α_t x_{t−1} + √β_t ε_t from x₀, one step at a time, measured at `steps`."""
    x0 = check_number("x0", x0, -10.0, 10.0)
    n = check_int("n", n, 2, 200_000)
    check_generator("generator", generator)
    wanted = sorted({check_int("step", s, 1, schedule.T) for s in steps})
    betas = schedule.betas.to(torch.float64).tolist()
    x = torch.full((n,), x0, dtype=torch.float64)
    means, variances = [], []
    for i, beta in enumerate(betas[: wanted[-1]]):
        x = (1.0 - beta) ** 0.5 * x + beta**0.5 * torch.randn(n, generator=generator, dtype=torch.float64)
        if i + 1 in wanted:
            means.append(float(x.mean()))
            variances.append(float(x.var()))
    return ChainMoments(steps=wanted, mean=means, variance=variances, n=n)
