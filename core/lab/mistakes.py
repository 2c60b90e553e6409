"""Common mistakes about the reverse process, each computed wrong and right so the numbers can be compared.

Every function returns plain numbers; the page only lays them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.checks import check_generator, check_int
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import GaussianMixture, OracleDenoiser
from core.diffusion.samplers import ddim_sample
from core.diffusion.schedules import COSINE_OFFSET, cosine_alpha_bar, make_schedule
from core.lab.objective import elbo_eps_weights


@dataclass(frozen=True)
class WrongRight:
    wrong: float
    right: float


def eps_from_v(x0: torch.Tensor, noise: torch.Tensor, step: int, T: int = 1000) -> WrongRight:
    """RMS error of ε recovered from the exact v at the paper's step t (linear schedule, T steps):
    wrong ε = √ᾱ·v + √(1−ᾱ)·x_t/√ᾱ, right ε = √(1−ᾱ)·x_t + √ᾱ·v. The wrong one is off by
    √(1−ᾱ)(1/√ᾱ − 1)·x_t, which explodes as ᾱ → 0."""
    step = check_int("step", step, 1, T)
    diffusion = GaussianDiffusion(make_schedule("linear", T), "v")
    t = torch.full((x0.shape[0],), step - 1, dtype=torch.long)
    alpha_bar = float(diffusion.schedule.alpha_bars[step - 1])
    x_t = diffusion.q_sample(x0, t, noise)
    v = diffusion.v_from_x0_eps(x0, noise, t)
    wrong = math.sqrt(alpha_bar) * v + math.sqrt(1 - alpha_bar) * x_t / math.sqrt(alpha_bar)
    right = diffusion.predict_eps_from_v(x_t, t, v)
    return WrongRight(wrong=float(((wrong - noise) ** 2).mean().sqrt()), right=float(((right - noise) ** 2).mean().sqrt()))


def eps_from_v_factor(step: int, T: int = 1000) -> float:
    """The factor √(1−ᾱ_t)(1/√ᾱ_t − 1) by which the wrong formula's error grows with x_t."""
    alpha_bar = float(make_schedule("linear", T).alpha_bars[check_int("step", step, 1, T) - 1])
    return math.sqrt(1 - alpha_bar) * (1 / math.sqrt(alpha_bar) - 1)


def cosine_without_square(step: int = 500, T: int = 1000) -> WrongRight:
    """ᾱ at the paper's step t of the cosine schedule (Nichol & Dhariwal eq. 17) with f(t) = cos(·) (wrong)
    and with f(t) = cos²(·) (right)."""
    step = check_int("step", step, 0, T)
    right = float(cosine_alpha_bar(torch.tensor(step / T, dtype=torch.float64)))
    angle = lambda u: (u + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2  # noqa: E731
    wrong = math.cos(angle(step / T)) / math.cos(angle(0.0))
    return WrongRight(wrong=wrong, right=right)


def short_linear_schedule(T: int = 150) -> dict:
    """ᾱ_T of the linear schedule β 1e-4..0.02 with T steps as is, and with β scaled by 1000/T."""
    T = check_int("T", T, 21, 10_000)
    return {"linear": float(make_schedule("linear", T).alpha_bars[-1]),
            "scaled": float(make_schedule("linear", T, scale_with_T=True).alpha_bars[-1])}


def elbo_weight_ends(T: int = 1000) -> dict:
    """The ELBO's weight on ‖ε − ε_θ‖² (σ² = β̃) at the paper's steps 2 and T, linear schedule."""
    weights = elbo_eps_weights(make_schedule("linear", check_int("T", T, 3, 10_000)))
    return {"small_t": float(weights[1]), "large_t": float(weights[-1])}


def deterministic_diversity(mixture: GaussianMixture, n: int, steps: int, generator: torch.Generator) -> dict:
    """Total variance (trace of the covariance) of n DDIM η = 0 samples drawn with the exact denoiser, from
    n different x_T, against the data's; and the spread of n samples from ONE x_T repeated (0: deterministic)."""
    n = check_int("n", n, 2, 20_000)
    check_generator("generator", generator)
    diffusion = GaussianDiffusion(make_schedule("linear", 1000), "eps", "fixed_small")
    oracle = OracleDenoiser(mixture, diffusion)
    samples = ddim_sample(oracle, diffusion, (n, mixture.dim), steps, eta=0.0, generator=generator).double()
    one_start = torch.randn(1, mixture.dim, generator=generator, dtype=torch.float64).repeat(n, 1)
    repeated = ddim_sample(oracle, diffusion, (n, mixture.dim), steps, eta=0.0, x_T=one_start).double()
    data = mixture.sample(n, generator, dtype=torch.float64)
    return {"samples": samples, "total_variance": float(samples.var(0).sum()), "data_variance": float(data.var(0).sum()),
            "same_start_variance": float(repeated.var(0).sum())}


@dataclass(frozen=True)
class TargetOfTraining:
    """At one x_t: the posteriors q(x_{t-1}|x_t, x_0) for several x_0 drawn from q(x_0|x_t), and what training reaches."""

    x_t: float
    x0_draws: torch.Tensor  # [K] x_0 ~ q(x_0|x_t)
    posterior_means: torch.Tensor  # [K] μ̃_t(x_t, x_0) for each draw
    posterior_variance: float  # β̃_t (the same for every x_0)
    expected_x0: float  # E[x_0|x_t], exact
    best_mean: float  # μ̃_t(x_t, E[x_0|x_t]): the mean of an ideal trained model

    @property
    def residual_kl(self) -> float:
        """E_{x_0|x_t}[KL(q(x_{t-1}|x_t,x_0) ‖ N(best_mean, β̃_t))] in nats, by Monte Carlo over the draws: what even
        the ideal model keeps (the means differ; the variances are equal, so KL = (μ̃ − best)²/(2β̃))."""
        return float(((self.posterior_means - self.best_mean) ** 2).mean() / (2 * self.posterior_variance))


def target_of_training(mixture: GaussianMixture, t: int, x_t: float, k: int, generator: torch.Generator) -> TargetOfTraining:
    """For a 1-D mixture at 0-based step t: x_0 drawn from the exact q(x_0|x_t) (by its mixture form) and the
    posterior mean each one gives. The network sees only x_t, so minimising the loss gives E[x_0|x_t]
    (the mean of the squared-error minimiser), never one particular q(x_{t-1}|x_t, x_0)."""
    check_generator("generator", generator)
    k = check_int("k", k, 1, 100_000)
    schedule = make_schedule("linear", 1000)
    t = check_int("t", t, 1, schedule.T - 1)
    ab = float(schedule.alpha_bars[t])
    x = torch.tensor([[float(x_t)]], dtype=torch.float64)
    # q(x_0|x_t) = Σ_k r_k N(m_k, v_k): component posteriors of a Gaussian prior and a Gaussian likelihood
    s2 = mixture.variances if mixture.variances.dim() == 1 else mixture.variances[:, 0]
    c = ab * s2 + 1 - ab
    log_r = mixture.log_weights - 0.5 * (x[0, 0] - math.sqrt(ab) * mixture.means[:, 0]) ** 2 / c - 0.5 * torch.log(c)
    r = torch.softmax(log_r, 0)
    m = mixture.means[:, 0] + math.sqrt(ab) * s2 / c * (x[0, 0] - math.sqrt(ab) * mixture.means[:, 0])
    v = s2 * (1 - ab) / c
    component = torch.multinomial(r, k, replacement=True, generator=generator)
    draws = m[component] + v[component].sqrt() * torch.randn(k, generator=generator, dtype=torch.float64)
    coef_x0, coef_xt = float(schedule.posterior_mean_coef_x0[t]), float(schedule.posterior_mean_coef_xt[t])
    expected = float((r * m).sum())
    return TargetOfTraining(x_t=float(x_t), x0_draws=draws, posterior_means=coef_x0 * draws + coef_xt * float(x_t),
                            posterior_variance=float(schedule.posterior_variance[t]), expected_x0=expected,
                            best_mean=coef_x0 * expected + coef_xt * float(x_t))


def score_from_v_notes(x_t: torch.Tensor, v: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """The course notes' score from v: −(√(1−ᾱ)·x_t + √ᾱ·v)/(1−ᾱ). Wrong: the denominator must be √(1−ᾱ)
    (core.lab.score_forms.score_from_v), so this is too large by the factor 1/√(1−ᾱ)."""
    if not 0.0 < alpha_bar < 1.0:
        raise ValueError(f"alpha_bar must lie strictly between 0 and 1, got {alpha_bar}")
    return -(math.sqrt(1 - alpha_bar) * x_t + math.sqrt(alpha_bar) * v) / (1 - alpha_bar)


def score_from_v_factor(step: int, T: int = 1000) -> float:
    """notes' score / true score = √(1−ᾱ_t)/(1−ᾱ_t) = 1/√(1−ᾱ_t) at the paper's step t (linear schedule, T steps)."""
    alpha_bar = float(make_schedule("linear", T).alpha_bars[check_int("step", step, 1, T) - 1])
    return 1 / math.sqrt(1 - alpha_bar)
