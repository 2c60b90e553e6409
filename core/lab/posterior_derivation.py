"""The posterior q(x_{t-1}|x_t, x_0) derived step by step, with one schedule's numbers filled in (1-D).

Ho et al. 2020 eqs. 6-7, the way the derivation goes:
1. one-step kernel (eq. 2):       q(x_t|x_{t-1}) = N(√α_t·x_{t-1}, β_t)
2. jump from x_0 (eq. 4):         q(x_{t-1}|x_0) = N(√ᾱ_{t-1}·x_0, 1−ᾱ_{t-1})
3. Bayes + Markov property:       q(x_{t-1}|x_t, x_0) ∝ q(x_t|x_{t-1}, x_0)·q(x_{t-1}|x_0) = q(x_t|x_{t-1})·q(x_{t-1}|x_0)
4. complete the square in x = x_{t-1}: the log of the product is −½(A·x² − 2B·x) + const with
   A = α_t/β_t + 1/(1−ᾱ_{t-1})  (precision),   B = √α_t·x_t/β_t + √ᾱ_{t-1}·x_0/(1−ᾱ_{t-1})
5. so the posterior is N(B/A, 1/A); simplifying with ᾱ_t = α_t·ᾱ_{t-1} gives (eq. 7)
   β̃_t = 1/A = (1−ᾱ_{t-1})/(1−ᾱ_t)·β_t,   μ̃_t = B/A = √ᾱ_{t-1}β_t/(1−ᾱ_t)·x_0 + √α_t(1−ᾱ_{t-1})/(1−ᾱ_t)·x_t
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.checks import check_int, check_number
from core.diffusion.schedules import NoiseSchedule


@dataclass(frozen=True)
class PosteriorDerivation:
    step: int  # the paper's t (2..T)
    x0: float
    x_t: float
    alpha: float  # α_t
    beta: float  # β_t
    alpha_bar: float  # ᾱ_t
    alpha_bar_prev: float  # ᾱ_{t-1}
    precision: float  # A
    linear: float  # B
    variance: float  # 1/A
    mean: float  # B/A
    closed_form_variance: float  # (1−ᾱ_{t-1})/(1−ᾱ_t)·β_t
    coef_x0: float  # √ᾱ_{t-1}β_t/(1−ᾱ_t)
    coef_xt: float  # √α_t(1−ᾱ_{t-1})/(1−ᾱ_t)

    @property
    def closed_form_mean(self) -> float:
        return self.coef_x0 * self.x0 + self.coef_xt * self.x_t

    def log_product(self, x: float) -> float:
        """log q(x_t|x_{t-1}=x) + log q(x_{t-1}=x|x_0), the unnormalised log posterior of step 3 (with constants)."""
        kernel = -0.5 * (self.x_t - math.sqrt(self.alpha) * x) ** 2 / self.beta - 0.5 * math.log(2 * math.pi * self.beta)
        jump_var = 1 - self.alpha_bar_prev
        jump = -0.5 * (x - math.sqrt(self.alpha_bar_prev) * self.x0) ** 2 / jump_var - 0.5 * math.log(2 * math.pi * jump_var)
        return kernel + jump


def derive_posterior(schedule: NoiseSchedule, step: int, x0: float, x_t: float) -> PosteriorDerivation:
    """Every number of the derivation for the paper's step t = `step` (2..T; at t = 1, 1−ᾱ_0 = 0 and the
    posterior is the point mass at x_0)."""
    step = check_int("step", step, 2, schedule.T)
    x0 = check_number("x0", x0)
    x_t = check_number("x_t", x_t)
    i = step - 1
    alpha, beta = float(schedule.alphas[i]), float(schedule.betas[i])
    alpha_bar, alpha_bar_prev = float(schedule.alpha_bars[i]), float(schedule.alpha_bars[i - 1])
    precision = alpha / beta + 1.0 / (1.0 - alpha_bar_prev)
    linear = math.sqrt(alpha) * x_t / beta + math.sqrt(alpha_bar_prev) * x0 / (1.0 - alpha_bar_prev)
    return PosteriorDerivation(
        step=step, x0=x0, x_t=x_t, alpha=alpha, beta=beta, alpha_bar=alpha_bar, alpha_bar_prev=alpha_bar_prev,
        precision=precision, linear=linear, variance=1.0 / precision, mean=linear / precision,
        closed_form_variance=(1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * beta,
        coef_x0=math.sqrt(alpha_bar_prev) * beta / (1.0 - alpha_bar),
        coef_xt=math.sqrt(alpha) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar))


def normalised_product(d: PosteriorDerivation, points: int = 401, width: float = 5.0):
    """(grid, density): the product of step 3 normalised numerically (trapezoid rule) on μ̃ ± width·√β̃, to lay
    over N(μ̃_t, β̃_t)."""
    points = check_int("points", points, 11, 100_001)
    sd = math.sqrt(d.closed_form_variance)
    grid = [d.closed_form_mean + width * sd * (2 * k / (points - 1) - 1) for k in range(points)]
    logs = [d.log_product(x) for x in grid]
    top = max(logs)
    values = [math.exp(v - top) for v in logs]
    area = sum((values[k] + values[k + 1]) / 2 * (grid[k + 1] - grid[k]) for k in range(points - 1))
    return grid, [v / area for v in values]
