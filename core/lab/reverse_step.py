"""What the One reverse step page computes: the true posterior against the model's Gaussian in 1-D, their KLs,
one prediction seen as ε, x_0 and v, and what happens without the noise of each step.

Plain math on top of `core.diffusion`; the page lays out widgets and figures. Timesteps are 0-based indices
(index t is the paper's step t+1); all numbers are float64 (the page shows differences as small as 1e-16).
The functions the page calls check the widget values they take, once, here.

Papers: Ho et al. 2020 (eq. 4 forward, eqs. 6-7 posterior, eq. 11 ε-form mean, Algorithm 2), Nichol &
Dhariwal 2021 (eq. 15 learned variance), Salimans & Ho 2022 (v-parameterization).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.checks import check_generator, check_int, check_number
from core.diffusion.gaussian_diffusion import VARIANCES, GaussianDiffusion, VarianceType
from core.diffusion.losses import normal_kl
from core.diffusion.oracle import GaussianMixture, OracleDenoiser
from core.diffusion.samplers import ddpm_sample
from core.diffusion.schedules import NoiseSchedule


# ------------------------------------------------------------------------------- 1-D Gaussians
def gaussian_pdf(x, mean: float, variance: float) -> torch.Tensor:
    """Density of N(mean, variance) at the points x (float64)."""
    mean = check_number("mean", mean)
    variance = check_number("variance", variance, 0.0, open_low=True)
    x = torch.as_tensor(x, dtype=torch.float64)
    return torch.exp(-0.5 * (x - mean) ** 2 / variance) / math.sqrt(2 * math.pi * variance)


def plot_range(means, variances, width: float = 4.5, points: int = 801) -> torch.Tensor:
    """An evenly spaced grid covering mean ± width·std of every Gaussian given (for density plots)."""
    means = torch.as_tensor(means, dtype=torch.float64)
    stds = torch.as_tensor(variances, dtype=torch.float64).sqrt()
    low = float((means - width * stds).min())
    high = float((means + width * stds).max())
    return torch.linspace(low, high, points, dtype=torch.float64)


# ------------------------------------------------------------------------------ one reverse step
def _variance_choice_output(variance: VarianceType, pred_x0: torch.Tensor, variance_interp: float) -> torch.Tensor:
    """What an x0-predicting model would output for this variance choice (extra channel v for "learned")."""
    if variance == "learned_range":
        return torch.cat([pred_x0, torch.full_like(pred_x0, variance_interp)], dim=1)
    return pred_x0


def _model_steps(schedule, x_t, t, pred_x0, variance_interp):
    """{variance choice: p_mean_variance output} for an "x0" model that predicts pred_x0 ([B, 1] tensors)."""
    return {variance: GaussianDiffusion(schedule, "x0", variance).p_mean_variance(
                _variance_choice_output(variance, pred_x0, variance_interp), x_t, t)
            for variance in VARIANCES}


@dataclass(frozen=True)
class ReverseStep1D:
    """One reverse step in 1-D, every number as a float. t is the 0-based index (paper step t+1)."""

    t: int
    x0: float
    noise: float
    x_t: float  # √ᾱ_t·x0 + √(1−ᾱ_t)·noise
    forward_mean: float  # q(x_t|x_0) = N(√ᾱ_t·x0, 1−ᾱ_t)
    forward_variance: float
    posterior_mean: float  # q(x_{t-1}|x_t, x_0) = N(μ̃_t, β̃_t)
    posterior_variance: float
    pred_x0: float  # the "model's" x0: the true one plus x0_error
    model_mean: float  # μ̃_t(x_t, pred_x0), shared by all variance choices
    model_variances: dict  # {variance choice: σ_t²}
    kls: dict  # {variance choice: KL(q(x_{t-1}|x_t,x_0) ‖ p(x_{t-1}|x_t))} in nats


def reverse_step_1d(schedule: NoiseSchedule, x0: float, t: int, noise: float, x0_error: float = 0.0,
                    variance_interp: float = 0.0) -> ReverseStep1D:
    """Anatomy of one reverse step for a 1-D x_0, at 0-based index t in 1..T-1.

    The "model" is ideal up to a chosen error: it predicts x̂_0 = x0 + x0_error, so its mean is the
    posterior mean at x̂_0 (eq. 7; the same as the ε-form eq. 11), and σ_t² is β_t, β̃_t or
    exp(f·log β_t + (1−f)·log β̃_t), f = (variance_interp+1)/2 (Nichol & Dhariwal eq. 15).
    """
    s = schedule
    check_int("T", s.T, 2)  # at index 0 β̃ = 0: the posterior is a point mass and every KL is infinite
    t = check_int("t", t, 1, s.T - 1)
    variance_interp = check_number("variance_interp", variance_interp, -1.0, 1.0)
    x0, noise, x0_error = check_number("x0", x0), check_number("noise", noise), check_number("x0_error", x0_error)
    diffusion = GaussianDiffusion(s, "x0")
    x0_tensor = torch.tensor([[x0]], dtype=torch.float64)
    t_tensor = torch.tensor([t])
    x_t = diffusion.q_sample(x0_tensor, t_tensor, torch.tensor([[noise]], dtype=torch.float64))
    posterior_mean, posterior_variance, _ = diffusion.q_posterior(x0_tensor, x_t, t_tensor)
    steps = _model_steps(s, x_t, t_tensor, x0_tensor + x0_error, variance_interp)
    kls = {variance: float(normal_kl(posterior_mean, posterior_variance.log(), out.mean, out.log_variance))
           for variance, out in steps.items()}
    alpha_bar = float(s.alpha_bars[t])
    return ReverseStep1D(
        t=t, x0=x0, noise=noise, x_t=float(x_t),
        forward_mean=math.sqrt(alpha_bar) * x0, forward_variance=1.0 - alpha_bar,
        posterior_mean=float(posterior_mean), posterior_variance=float(posterior_variance),
        pred_x0=x0 + x0_error, model_mean=float(steps["fixed_large"].mean),
        model_variances={variance: float(out.variance) for variance, out in steps.items()}, kls=kls)


def kl_curves(schedule: NoiseSchedule, x0_error: float = 0.0, variance_interp: float = 0.0):
    """KL(q(x_{t-1}|x_t,x_0) ‖ p(x_{t-1}|x_t)) for every index t = 1..T-1 and each variance choice.

    With x̂_0 = x_0 + e the two means differ by coef_x0(t)·e whatever x_0 and x_t are, so the KL depends
    only on t: ½·(log(σ²/β̃) + β̃/σ² + (coef_x0·e)²/σ² − 1). Returns (paper steps 2..T, {choice: KL tensor}).
    """
    s = schedule
    check_int("T", s.T, 2)  # a non-degenerate posterior needs t >= 1
    variance_interp = check_number("variance_interp", variance_interp, -1.0, 1.0)
    x0_error = check_number("x0_error", x0_error)
    t = torch.arange(1, s.T)
    zeros = torch.zeros(len(t), 1, dtype=torch.float64)  # x_0 = x_t = 0: the KL does not depend on them
    posterior_mean, posterior_variance, _ = GaussianDiffusion(s, "x0").q_posterior(zeros, zeros, t)
    steps = _model_steps(s, zeros, t, zeros + x0_error, variance_interp)
    kls = {variance: normal_kl(posterior_mean, posterior_variance.log(), out.mean, out.log_variance)[:, 0]
           for variance, out in steps.items()}
    return (t + 1).to(torch.float64), kls


# ---------------------------------------------------------------------------- parameterizations
@dataclass(frozen=True)
class ParameterizationViews:
    """One prediction seen as ε, x_0 and v, converted both ways, and the reverse-step mean computed twice."""

    t: int  # 0-based index
    x_t: float
    eps: float  # the ε prediction we start from
    x0_from_eps: float  # (x_t − √(1−ᾱ)·ε)/√ᾱ
    v_from_x0_eps: float  # √ᾱ·ε − √(1−ᾱ)·x_0
    x0_from_v: float  # √ᾱ·x_t − √(1−ᾱ)·v
    eps_from_v: float  # √(1−ᾱ)·x_t + √ᾱ·v
    eps_from_x0: float  # (x_t − √ᾱ·x_0)/√(1−ᾱ)
    mean_eps_form: float  # (1/√α_t)(x_t − β_t/√(1−ᾱ_t)·ε)            (Ho et al. eq. 11)
    mean_x0_form: float  # coef_x0·x_0 + coef_xt·x_t                   (Ho et al. eq. 7)

    @property
    def mean_difference(self) -> float:
        return self.mean_eps_form - self.mean_x0_form


def eps_form_mean(schedule: NoiseSchedule, x_t: float, t: int, eps: float) -> float:
    """Ho et al. eq. 11, written out from the schedule arrays: μ = (1/√α_t)·(x_t − β_t/√(1−ᾱ_t)·ε)."""
    beta, alpha, alpha_bar = float(schedule.betas[t]), float(schedule.alphas[t]), float(schedule.alpha_bars[t])
    return (x_t - beta / math.sqrt(1.0 - alpha_bar) * eps) / math.sqrt(alpha)


def parameterization_views(schedule: NoiseSchedule, x_t: float, t: int, eps: float) -> ParameterizationViews:
    """Start from an ε prediction at (x_t, t) and express it as x_0 and v with GaussianDiffusion's conversions;
    convert back, and compute the reverse-step mean in the ε form (eq. 11) and in the x_0 form (eq. 7)."""
    t = check_int("t", t, 0, schedule.T - 1)
    x_t, eps = check_number("x_t", x_t), check_number("eps", eps)
    diffusion = GaussianDiffusion(schedule, "eps")
    xt = torch.tensor([[x_t]], dtype=torch.float64)
    e = torch.tensor([[eps]], dtype=torch.float64)
    tt = torch.tensor([t])
    x0 = diffusion.predict_x0_from_eps(xt, tt, e)
    v = diffusion.v_from_x0_eps(x0, e, tt)
    mean_x0_form, _, _ = diffusion.q_posterior(x0, xt, tt)
    return ParameterizationViews(
        t=t, x_t=x_t, eps=eps, x0_from_eps=float(x0), v_from_x0_eps=float(v),
        x0_from_v=float(diffusion.predict_x0_from_v(xt, tt, v)), eps_from_v=float(diffusion.predict_eps_from_v(xt, tt, v)),
        eps_from_x0=float(diffusion.predict_eps_from_x0(xt, tt, x0)),
        mean_eps_form=eps_form_mean(schedule, x_t, t, eps), mean_x0_form=float(mean_x0_form))


# --------------------------------------------------------------------- why noise is added back
def total_variance(points: torch.Tensor) -> float:
    """Spread of a point cloud [N, D]: the trace of its (unbiased) sample covariance."""
    return float(points.to(torch.float64).var(dim=0, unbiased=True).sum())


def mixture_total_variance(means, stds, weights) -> float:
    """Exact trace of the covariance of Σ_k w_k N(μ_k, diag(s_k²)) (law of total variance):
    Σ_d [Σ_k w_k (s_kd² + μ_kd²) − (Σ_k w_k μ_kd)²]. stds is [K] (isotropic) or [K, D]; weights are normalised."""
    means = torch.as_tensor(means, dtype=torch.float64)
    stds = torch.as_tensor(stds, dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    weights = weights / weights.sum()
    variances = (stds[:, None] if stds.ndim == 1 else stds) ** 2 * torch.ones_like(means)
    second_moment = (weights[:, None] * (variances + means**2)).sum(0)
    mean = (weights[:, None] * means).sum(0)
    return float((second_moment - mean**2).sum())


@torch.no_grad()
def sample_without_noise(model, diffusion: GaussianDiffusion, x_T: torch.Tensor) -> torch.Tensor:
    """DDPM's ancestral loop with every z set to 0: x_{t-1} = μ_θ(x_t, t) for t = T..1 (the "no noise" ablation).

    Each step moves x_t to the mean of p_θ(x_{t-1}|x_t) — an average over every x_0 compatible with x_t — and
    never puts back the spread that averaging removed, so the samples contract. Compare core.diffusion.samplers.ddpm_sample.
    """
    x = x_T
    for t in reversed(range(diffusion.T)):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x, _ = diffusion.p_sample(model(x, t_batch), x, t_batch, noise=torch.zeros_like(x))  # z = 0
    return x


@dataclass(frozen=True)
class NoiseAblation:
    """Samples from the same x_T with and without the noise of each step, and their spreads."""

    data: torch.Tensor  # [n, 2] fresh draws from the data distribution (for reference)
    x_T: torch.Tensor  # [n, 2] the shared starting noise
    with_noise: torch.Tensor  # [n, 2] DDPM (Ho et al. Algorithm 2)
    without_noise: torch.Tensor  # [n, 2] the same loop with z = 0
    data_variance: float  # exact trace of the data covariance
    with_noise_variance: float
    without_noise_variance: float
    last_step_std: float  # √β_1: the noise DDPM would add at the last step, if it did


def noise_ablation(distribution: GaussianMixture, diffusion: GaussianDiffusion, n: int,
                   generator: torch.Generator) -> NoiseAblation:
    """Run DDPM and the noise-free loop from the same x_T ~ N(0, I) with the exact oracle denoiser of a
    core.diffusion.oracle.GaussianMixture (so any difference is the sampler's, not a network's)."""
    if not isinstance(distribution, GaussianMixture):
        raise ValueError(f"distribution must be a core.diffusion.oracle.GaussianMixture, got {type(distribution).__name__}")
    n = check_int("n", n, 2, 100_000)
    check_generator("generator", generator)
    model = OracleDenoiser(distribution, diffusion)
    shape = (n, distribution.dim)
    x_T = torch.randn(shape, generator=generator, dtype=torch.float64)
    with_noise = ddpm_sample(model, diffusion, shape, generator=generator, x_T=x_T)
    without_noise = sample_without_noise(model, diffusion, x_T)
    data = distribution.sample(n, generator, dtype=torch.float64)
    return NoiseAblation(
        data=data, x_T=x_T, with_noise=with_noise, without_noise=without_noise,
        data_variance=mixture_total_variance(distribution.means, distribution.variances.sqrt(), distribution.weights),
        with_noise_variance=total_variance(with_noise), without_noise_variance=total_variance(without_noise),
        last_step_std=math.sqrt(float(diffusion.schedule.betas[0])))
