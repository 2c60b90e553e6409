"""Small computations behind the teaching pages (schedule lab, anatomy of one reverse step).

Everything here is plain math on top of `core.diffusion.schedules` and `core.diffusion.gaussian_diffusion`; the pages only lay out
widgets and figures. Conventions:
- Functions take 0-based timestep indices t = 0..T-1 (index t is the paper's step t+1), like the rest of core.
  The pages *display* the paper's step t = 1..T; `paper_steps(T)` gives that axis.
- All numbers are float64: the pages show differences as small as 1e-16 and must not see float32 round-off.

Papers: Ho et al. 2020 (DDPM; eq. 4 forward, eqs. 6-7 posterior, eq. 11 ε-form mean), Nichol & Dhariwal 2021
(Improved DDPM; eq. 15 learned variance, §3.2 and Fig. 5 on scaling β with T, eq. 17 cosine),
Salimans & Ho 2022 (v-parameterization), Lin et al. 2024 (residual signal at t = T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.diffusion.gaussian_diffusion import VARIANCES, GaussianDiffusion
from core.diffusion.losses import normal_kl
from core.diffusion.oracle import GaussianMixture, OracleDenoiser
from core.diffusion.samplers import ddpm_sample
from core.diffusion.schedules import MAX_T, SCHEDULE_KINDS, NoiseSchedule, make_schedule

# x_T counts as "pure noise" when less than 5 % of x_0's amplitude is left in it (√ᾱ_T ≤ 0.05, i.e.
# terminal SNR ≤ 0.0025). Ho et al.'s linear 1e-4..0.02 with T = 1000 leaves 0.0064; Lin et al. 2024 show
# that even √ᾱ_T ≈ 0.07 (Stable Diffusion) visibly leaks signal, so the bar sits just below that.
TERMINAL_SIGNAL_THRESHOLD = 0.05
SNAPSHOT_FRACTIONS = (0, 1, 2, 3, 4)  # x_t at t = k·T/4 for these k

VARIANCE_LABELS = {  # how the pages name the three choices of σ_t² (Nichol & Dhariwal eq. 15 for "learned")
    "fixed_large": "σ² = β_t",
    "fixed_small": "σ² = β̃_t",
    "learned_range": "σ² learned (interpolated)",
}


# --------------------------------------------------------------------------------------- validation
def _check_schedule(schedule) -> NoiseSchedule:
    if not isinstance(schedule, NoiseSchedule):
        raise ValueError(f"schedule must be a NoiseSchedule (see core.diffusion.schedules.make_schedule), got {type(schedule).__name__}")
    return schedule


def _check_number(name: str, value, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")
    return float(value)


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def _check_generator(generator) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


# ------------------------------------------------------------------------------- 1-D Gaussians
def gaussian_pdf(x, mean: float, variance: float) -> torch.Tensor:
    """Density of N(mean, variance) at the points x (float64)."""
    mean = _check_number("mean", mean)
    variance = _check_number("variance", variance)
    if variance <= 0:
        raise ValueError(f"variance must be > 0, got {variance!r}")
    x = torch.as_tensor(x, dtype=torch.float64)
    return torch.exp(-0.5 * (x - mean) ** 2 / variance) / math.sqrt(2 * math.pi * variance)


def gaussian_kl(mean_p: float, variance_p: float, mean_q: float, variance_q: float) -> float:
    """KL(N(mean_p, variance_p) ‖ N(mean_q, variance_q)) in nats:
    ½·(log(σ_q²/σ_p²) + σ_p²/σ_q² + (μ_p − μ_q)²/σ_q² − 1)."""
    values = [_check_number(name, value) for name, value in
              (("mean_p", mean_p), ("variance_p", variance_p), ("mean_q", mean_q), ("variance_q", variance_q))]
    for name, value in (("variance_p", values[1]), ("variance_q", values[3])):
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    m1, v1, m2, v2 = (torch.tensor(value, dtype=torch.float64) for value in values)
    return float(normal_kl(m1, v1.log(), m2, v2.log()))


def plot_range(means, variances, width: float = 4.5, points: int = 801) -> torch.Tensor:
    """An evenly spaced grid covering mean ± width·std of every Gaussian given (for density plots)."""
    means = torch.as_tensor(means, dtype=torch.float64)
    stds = torch.as_tensor(variances, dtype=torch.float64).sqrt()
    low = float((means - width * stds).min())
    high = float((means + width * stds).max())
    return torch.linspace(low, high, points, dtype=torch.float64)


# ----------------------------------------------------------------------------- schedule curves
def paper_steps(T: int) -> torch.Tensor:
    """The paper's steps 1..T (index t is step t+1): the x axis of every schedule plot."""
    return torch.arange(1, T + 1, dtype=torch.float64)


def schedule_curves(schedule: NoiseSchedule) -> dict:
    """Every curve of the schedule lab, as float64 tensors of length T, indexed by the paper's step 1..T.

    "beta" β_t, "posterior_variance" β̃_t (0 at t = 1), "alpha_bar" ᾱ_t, "signal" √ᾱ_t and "noise" √(1−ᾱ_t)
    (the weights of x_0 and ε in x_t, eq. 4), "log_snr" log(ᾱ_t/(1−ᾱ_t)), and the posterior-mean
    coefficients "coef_x0" and "coef_xt" of μ̃_t = coef_x0·x_0 + coef_xt·x_t (eq. 7); plus the x axes
    "t" (1..T) and "t_over_T" (t/T, to compare schedules with different T).
    """
    s = _check_schedule(schedule)
    return {
        "t": paper_steps(s.T),
        "t_over_T": paper_steps(s.T) / s.T,
        "beta": s.betas,
        "posterior_variance": s.posterior_variance,
        "alpha_bar": s.alpha_bars,
        "signal": s.alpha_bars.sqrt(),
        "noise": (1.0 - s.alpha_bars).sqrt(),
        "log_snr": s.snr.log(),
        "coef_x0": s.posterior_mean_coef_x0,
        "coef_xt": s.posterior_mean_coef_xt,
    }


def _terminal_signal_or_none(kind: str, T: int, beta_start, beta_end, scale_with_T: bool) -> float | None:
    """√ᾱ_T of a schedule built with these settings, or None if those settings are not allowed."""
    try:
        return make_schedule(kind, T, beta_start, beta_end, scale_with_T).terminal_signal
    except ValueError:
        return None


def terminal_noise_warning(schedule: NoiseSchedule, threshold: float = TERMINAL_SIGNAL_THRESHOLD) -> str | None:
    """A warning (Markdown) when x_T still carries more than `threshold` of x_0's amplitude, else None.

    Sampling starts from pure noise N(0, I), but training only ever saw x_T = √ᾱ_T·x_0 + √(1−ᾱ_T)·ε;
    if √ᾱ_T is not small the model never learned what to do with pure noise (Lin et al. 2024).
    The message gives the numbers and, for the named kinds, the √ᾱ_T each fix would reach.
    """
    s = _check_schedule(schedule)
    threshold = _check_number("threshold", threshold, 0.0, 1.0)
    signal = s.terminal_signal
    if signal <= threshold:
        return None
    lines = [
        f"**x_T is far from pure noise:** √ᾱ_T = {signal:.3g}, so {100 * signal:.1f} % of the digit's amplitude "
        f"is still in x_T (terminal SNR ᾱ_T/(1−ᾱ_T) = {s.terminal_snr:.3g}; pure noise would need √ᾱ_T ≤ {threshold:g}). "
        "Sampling starts from pure noise N(0, I), which the model never saw during training at t = T.",
        "",
        "Fixes:",
    ]
    if s.kind in SCHEDULE_KINDS and s.kind != "cosine":
        settings = (s.beta_start, s.beta_end)
        if not s.scale_with_T and s.T != 1000:
            scaled = _terminal_signal_or_none(s.kind, s.T, *settings, True)
            lines.append(f"- turn on **scale-with-T** (β range × 1000/T): √ᾱ_T = {scaled:.3g}" if scaled is not None
                         else f"- scale-with-T is impossible here: β_end × 1000/T would reach 1 (T = {s.T} is too small)")
        if s.T < 1000:
            longer = _terminal_signal_or_none(s.kind, 1000, *settings, s.scale_with_T)
            if longer is not None:
                lines.append(f"- use a **larger T**: with T = 1000, √ᾱ_T = {longer:.3g}")
        lines.append(f"- raise **β_end** (now {s.beta_end:g}): the total noise added grows with Σβ_t")
    if s.kind != "cosine":
        cosine = make_schedule("cosine", s.T).terminal_signal
        lines.append(f"- use the **cosine** schedule (Nichol & Dhariwal eq. 17): √ᾱ_T = {cosine:.3g} with T = {s.T}")
    else:  # cosine always ends at ≈ 0; only a hand-made or respaced schedule could get here
        lines.append("- rebuild the schedule so that ᾱ_T ≈ 0")
    return "\n".join(lines)


def snapshot_steps(T: int) -> list[int]:
    """The paper's steps 0, T/4, T/2, 3T/4, T (floored); step 0 means x_0 itself."""
    T = _check_int("T", T, 1, MAX_T)
    return [k * T // 4 for k in SNAPSHOT_FRACTIONS]


def forward_snapshots(schedule: NoiseSchedule, x0: torch.Tensor, noise: torch.Tensor):
    """x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε (eq. 4) at the paper's steps of `snapshot_steps`, ONE noise draw ε for all.

    x0 and noise have the same shape [C, H, W] (or any shape); returns (steps, tensor [5, *x0.shape] float64).
    Using one ε for every t shows the same digit sinking into the same noise.
    """
    s = _check_schedule(schedule)
    if not isinstance(x0, torch.Tensor) or not isinstance(noise, torch.Tensor) or x0.shape != noise.shape:
        raise ValueError("x0 and noise must be tensors of the same shape, got "
                         f"{getattr(x0, 'shape', type(x0).__name__)} and {getattr(noise, 'shape', type(noise).__name__)}")
    steps = snapshot_steps(s.T)
    x0, noise = x0.to(torch.float64), noise.to(torch.float64)
    frames = []
    for step in steps:
        alpha_bar = 1.0 if step == 0 else float(s.alpha_bars[step - 1])  # ᾱ_0 = 1: x_0 itself
        frames.append(math.sqrt(alpha_bar) * x0 + math.sqrt(1.0 - alpha_bar) * noise)
    return steps, torch.stack(frames)


# ------------------------------------------------------------------------------ one reverse step
def _variance_choice_output(variance: str, pred_x0: torch.Tensor, variance_interp: float) -> torch.Tensor:
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


def _check_reverse_step_schedule(schedule) -> NoiseSchedule:
    s = _check_schedule(schedule)
    if s.T < 2:
        raise ValueError(f"a reverse step with a non-degenerate posterior needs T >= 2, got T={s.T}")
    return s


def reverse_step_1d(schedule: NoiseSchedule, x0: float, t: int, noise: float, x0_error: float = 0.0,
                    variance_interp: float = 0.0) -> ReverseStep1D:
    """Anatomy of one reverse step for a 1-D x_0, at 0-based index t in 1..T-1.

    The "model" is ideal up to a chosen error: it predicts x̂_0 = x0 + x0_error, so its mean is the
    posterior mean at x̂_0 (eq. 7; the same as the ε-form eq. 11), and σ_t² is β_t, β̃_t or
    exp(f·log β_t + (1−f)·log β̃_t), f = (variance_interp+1)/2 (Nichol & Dhariwal eq. 15).
    """
    s = _check_reverse_step_schedule(schedule)
    _check_int("t", t, 1, s.T - 1)  # at index 0 β̃ = 0: the posterior is a point mass and every KL is infinite
    variance_interp = _check_number("variance_interp", variance_interp, -1.0, 1.0)
    x0 = _check_number("x0", x0)
    noise = _check_number("noise", noise)
    x0_error = _check_number("x0_error", x0_error)
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
    s = _check_reverse_step_schedule(schedule)
    variance_interp = _check_number("variance_interp", variance_interp, -1.0, 1.0)
    x0_error = _check_number("x0_error", x0_error)
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
    s = _check_schedule(schedule)
    t = _check_int("t", t, 0, s.T - 1)
    x_t, eps = _check_number("x_t", x_t), _check_number("eps", eps)
    beta, alpha, alpha_bar = float(s.betas[t]), float(s.alphas[t]), float(s.alpha_bars[t])
    return (x_t - beta / math.sqrt(1.0 - alpha_bar) * eps) / math.sqrt(alpha)


def parameterization_views(schedule: NoiseSchedule, x_t: float, t: int, eps: float) -> ParameterizationViews:
    """Start from an ε prediction at (x_t, t) and express it as x_0 and v with core.diffusion.gaussian_diffusion's conversions;
    convert back, and compute the reverse-step mean in the ε form (eq. 11) and in the x_0 form (eq. 7)."""
    s = _check_schedule(schedule)
    t = _check_int("t", t, 0, s.T - 1)
    x_t, eps = _check_number("x_t", x_t), _check_number("eps", eps)
    diffusion = GaussianDiffusion(s, "eps")
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
        mean_eps_form=eps_form_mean(s, x_t, t, eps), mean_x0_form=float(mean_x0_form))


# --------------------------------------------------------------------- why noise is added back
def total_variance(points: torch.Tensor) -> float:
    """Spread of a point cloud [N, D]: the trace of its (unbiased) sample covariance."""
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[0] < 2:
        raise ValueError(f"points must be a tensor [N, D] with N >= 2, got {getattr(points, 'shape', type(points).__name__)}")
    return float(points.to(torch.float64).var(dim=0, unbiased=True).sum())


def mixture_total_variance(means, stds, weights) -> float:
    """Exact trace of the covariance of Σ_k w_k N(μ_k, diag(s_k²)) (law of total variance):
    Σ_d [Σ_k w_k (s_kd² + μ_kd²) − (Σ_k w_k μ_kd)²]. stds is [K] (isotropic) or [K, D]; weights are normalised."""
    means = torch.as_tensor(means, dtype=torch.float64)
    stds = torch.as_tensor(stds, dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if means.ndim != 2 or weights.shape != (means.shape[0],) or stds.shape not in ((means.shape[0],), tuple(means.shape)):
        raise ValueError(f"need means [K, D], stds [K] or [K, D] and weights [K]; got {list(means.shape)}, "
                         f"{list(stds.shape)}, {list(weights.shape)}")
    if bool((weights < 0).any()) or float(weights.sum()) <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {weights.tolist()}")
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
    if not isinstance(diffusion, GaussianDiffusion):
        raise ValueError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    if not isinstance(x_T, torch.Tensor) or x_T.ndim < 2:
        raise ValueError(f"x_T must be a tensor [B, ...], got {getattr(x_T, 'shape', type(x_T).__name__)}")
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


def noise_ablation(distribution, diffusion: GaussianDiffusion, n: int, generator: torch.Generator) -> NoiseAblation:
    """Run DDPM and the noise-free loop from the same x_T ~ N(0, I) with the exact oracle denoiser of a
    core.diffusion.oracle.GaussianMixture (so any difference is the sampler's, not a network's)."""
    if not isinstance(distribution, GaussianMixture):
        raise ValueError(f"distribution must be a core.diffusion.oracle.GaussianMixture, got {type(distribution).__name__}")
    n = _check_int("n", n, 2, 100_000)
    _check_generator(generator)
    model = OracleDenoiser(distribution, diffusion)
    shape = (n, distribution.dim)
    x_T = torch.randn(shape, generator=generator, dtype=torch.float64)
    with_noise = ddpm_sample(model, diffusion, shape, generator=generator, x_T=x_T)
    without_noise = sample_without_noise(model, diffusion, x_T)
    data = distribution.sample(n, generator, dtype=torch.float64)
    stds = distribution.variances.sqrt()
    return NoiseAblation(
        data=data, x_T=x_T, with_noise=with_noise, without_noise=without_noise,
        data_variance=mixture_total_variance(distribution.means, stds, distribution.weights),
        with_noise_variance=total_variance(with_noise), without_noise_variance=total_variance(without_noise),
        last_step_std=math.sqrt(float(diffusion.schedule.betas[0])))
