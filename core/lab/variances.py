"""v, the reverse-step variance and DDIM, precisely: the numbers behind the usual one-line claims.

- v = √ᾱ_t·ε − √(1−ᾱ_t)·x_0 (Salimans & Ho 2022): v → ε as ᾱ_t → 1 (small t) and v → −x_0 as ᾱ_t → 0 (large t).
- For predictions that agree on x_t (x_t = √ᾱ x̂_0 + √(1−ᾱ) ε̂ and the same for the truth), subtracting gives
  x_0 − x̂_0 = −√((1−ᾱ)/ᾱ)·(ε − ε̂) and v − v̂ = (ε − ε̂)/√ᾱ, so
  ‖v − v̂‖² = ‖ε − ε̂‖²/ᾱ_t,  ‖x_0 − x̂_0‖² = ‖ε − ε̂‖²·(1−ᾱ_t)/ᾱ_t,  ‖v − v̂‖² = ‖x_0 − x̂_0‖²/(1−ᾱ_t).
- The best σ_t² for a mean μ̃_t(x_t, x̂_0) (Bao et al. 2022, Analytic-DPM, Thm. 1 in its per-x̂_0 form):
  minimising E KL(q(x_{t-1}|x_t,x_0) ‖ N(μ̃_t(x_t,x̂_0), σ²)) over σ² gives
  σ*² = β̃_t + c_t²·E‖x_0 − x̂_0‖²/D,  c_t = √ᾱ_{t-1}β_t/(1−ᾱ_t) (the x_0 coefficient of μ̃, Ho et al. eq. 7).
- β_t and β̃_t differ by the factor (1−ᾱ_{t-1})/(1−ᾱ_t): near 1 for small steps except at the very start,
  far from 1 when a few large steps are taken (respaced, Nichol & Dhariwal §4).
- DDIM (Song et al. 2021 eq. 12): x_{prev} = √ᾱ_prev·x̂_0 + √(1−ᾱ_prev−σ²)·ε̂ + σ·z, σ = η·√(β̃ of the jump).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.checks import check_choice, check_generator, check_int, check_number
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.samplers import ddim_coefficients, timesteps
from core.diffusion.schedules import NoiseSchedule, make_schedule
from core.rng import MAX_SEED
from core.sampling import SamplerMethod, autocast_network, sample

SAMPLERS = ("ddpm_beta", "ddpm_beta_tilde", "ddim_eta0", "ddim_eta1")
SAMPLER_LABELS = {"ddpm_beta": "DDPM, σ² = β", "ddpm_beta_tilde": "DDPM, σ² = β̃",
                  "ddim_eta0": "DDIM, η = 0", "ddim_eta1": "DDIM, η = 1"}
MAX_QUALITY_SAMPLES = 256
DIGIT_SHAPE = (1, 28, 28)  # the held-out MNIST digits the Training objective and "v, variances and DDIM" pages use


def digits_problem(data_shape) -> str | None:
    """Why a model cannot be run on the pages' clean examples, the held-out MNIST digits (one line), or None when it
    takes 1x28x28 images. A model of another shape (an upload that names no dataset, or another image dataset) would
    otherwise meet a digit of the wrong shape inside the network."""
    shape = tuple(data_shape)
    if shape == DIGIT_SHAPE:
        return None
    what = f"{'x'.join(map(str, shape))} images" if len(shape) == 3 else f"{shape[0]}-D points" if len(shape) == 1 \
        else f"data of shape {list(shape)}"
    return (f"This page runs the model on held-out MNIST digits (1x28x28), and the active model takes {what}; "
            f"choose an MNIST model in the sidebar.")


def v_weights(schedule: NoiseSchedule) -> dict:
    """Per step: v = w_eps·ε + w_x0·x_0 with w_eps = √ᾱ_t, w_x0 = −√(1−ᾱ_t)."""
    return {"eps": schedule.alpha_bars.sqrt(), "x0": -(1 - schedule.alpha_bars).sqrt()}


def v_similarity(schedule: NoiseSchedule, x0: torch.Tensor, noise: torch.Tensor) -> dict:
    """Per step: cosine similarity of v_t = √ᾱ_t ε − √(1−ᾱ_t) x_0 with ε and with −x_0, for one example."""
    x0, noise = x0.reshape(-1).double(), noise.reshape(-1).double()
    weights = v_weights(schedule)
    v = weights["eps"][:, None] * noise[None] + weights["x0"][:, None] * x0[None]  # [T, D]
    unit = v / v.norm(dim=1, keepdim=True)
    return {"eps": unit @ (noise / noise.norm()), "minus_x0": unit @ (-x0 / x0.norm())}


@dataclass(frozen=True)
class PredictionErrors:
    """Squared errors (mean over dimensions) of one prediction in the three parameterizations, at one t."""

    alpha_bar: float
    eps: float
    x0: float
    v: float


@torch.no_grad()
def prediction_errors(model, diffusion: GaussianDiffusion, x0: torch.Tensor, t: int, noise: torch.Tensor) -> PredictionErrors:
    """‖ε−ε̂‖², ‖x_0−x̂_0‖², ‖v−v̂‖² (means over the batch and dimensions) of the model at 0-based step t, each
    computed from its own definition (no identity used)."""
    t = check_int("t", t, 0, diffusion.T - 1)
    t_batch = torch.full((x0.shape[0],), t, dtype=torch.long)
    x_t = diffusion.q_sample(x0, t_batch, noise)
    prediction, _ = diffusion.split_model_output(model(x_t, t_batch), x_t)
    pred_x0, pred_eps = diffusion.pred_x0_eps(prediction, x_t, t_batch)
    pred_v = diffusion.v_from_x0_eps(pred_x0, pred_eps, t_batch)
    v = diffusion.v_from_x0_eps(x0, noise, t_batch)
    return PredictionErrors(alpha_bar=float(diffusion.schedule.alpha_bars[t]), eps=float(((noise - pred_eps) ** 2).mean()),
                            x0=float(((x0 - pred_x0) ** 2).mean()), v=float(((v - pred_v) ** 2).mean()))


def optimal_variance(schedule: NoiseSchedule, x0_error: torch.Tensor) -> torch.Tensor:
    """σ*² = β̃_t + c_t²·x0_error per step, x0_error = E‖x_0 − x̂_0‖²/D at each step (same length as the schedule)."""
    return schedule.posterior_variance + schedule.posterior_mean_coef_x0**2 * x0_error


@torch.no_grad()
def x0_error_curve(model, diffusion: GaussianDiffusion, x0: torch.Tensor, ts: torch.Tensor, generator: torch.Generator):
    """(mean, standard error over the examples) of ‖x_0 − x̂_0‖²/D at each 0-based step in ts."""
    check_generator("generator", generator)
    means, errors = [], []
    for t in ts.tolist():
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        t_batch = torch.full((x0.shape[0],), t, dtype=torch.long)
        x_t = diffusion.q_sample(x0, t_batch, noise)
        prediction, _ = diffusion.split_model_output(model(x_t, t_batch), x_t)
        pred_x0, _ = diffusion.pred_x0_eps(prediction, x_t, t_batch)
        per_example = ((x0 - pred_x0) ** 2).reshape(x0.shape[0], -1).mean(1).double()
        means.append(float(per_example.mean()))
        errors.append(float(per_example.std() / per_example.numel() ** 0.5) if per_example.numel() > 1 else float("nan"))
    return torch.tensor(means, dtype=torch.float64), torch.tensor(errors, dtype=torch.float64)


def beta_ratio(steps: int, T: int = 1000) -> torch.Tensor:
    """β_i/β̃_i = (1−ᾱ_i)/(1−ᾱ_{i−1}) at every step of the linear schedule (T steps) respaced to `steps`
    leading-spaced steps (what the Sample page's DDPM visits), for steps 2.. of the respaced chain."""
    steps = check_int("steps", steps, 2, T)
    base = make_schedule("linear", T)
    schedule = base if steps == T else base.respaced(timesteps(T, steps, "leading"))
    return (schedule.betas / schedule.posterior_variance)[1:]


def beta_ratio_reach(steps: int, threshold: float = 1.1, T: int = 1000) -> dict:
    """How much of a `steps`-step chain has β/β̃ above threshold: the count of such steps, and the smallest ᾱ_t
    (the noisiest step) where it still is."""
    steps = check_int("steps", steps, 2, T)
    ratio = beta_ratio(steps, T)
    base = make_schedule("linear", T)
    kept = torch.arange(T) if steps == T else timesteps(T, steps, "leading").flip(0)
    alpha_bars = base.alpha_bars[kept][1:]
    above = ratio > threshold
    return {"count": int(above.sum()), "of": len(ratio),
            "lowest_alpha_bar": float(alpha_bars[above].min()) if bool(above.any()) else None}


@dataclass(frozen=True)
class LearnedVariance:
    """What a learned-variance model's extra output ν does at a few steps (Nichol & Dhariwal eq. 15)."""

    steps: list  # the paper's t of each row
    nu_min: list
    nu_max: list
    outside: list  # fraction of ν values outside [−1, 1]
    log_ratio_min: list  # min over pixels of log(σ²/β̃_t): < 0 means below β̃ (ν < −1)
    log_ratio_max: list  # max over pixels of log(σ²/β_t): > 0 means above β (ν > 1)


@torch.no_grad()
def learned_variance_outputs(model, diffusion: GaussianDiffusion, x0: torch.Tensor, ts, generator: torch.Generator) -> LearnedVariance:
    """The ν channels of a "learned_range" model on x0 at each 0-based step in ts (one ε per step), and where the
    resulting σ² = exp(f·log β_t + (1−f)·log β̃_t), f = (ν+1)/2, falls: ν is not clipped, so ν > 1 puts σ² above β_t
    and ν < −1 below β̃_t."""
    check_generator("generator", generator)
    if diffusion.variance != "learned_range":
        raise ValueError(f"the model must learn its variance (variance='learned_range'), got {diffusion.variance!r}")
    rows = {k: [] for k in ("steps", "nu_min", "nu_max", "outside", "log_ratio_min", "log_ratio_max")}
    for t in [check_int("t", int(t), 0, diffusion.T - 1) for t in ts]:
        t_batch = torch.full((x0.shape[0],), t, dtype=torch.long)
        x_t = diffusion.q_sample(x0, t_batch, torch.randn(x0.shape, generator=generator, dtype=x0.dtype))
        output = model(x_t, t_batch)
        _, nu = diffusion.split_model_output(output, x_t)
        log_variance = diffusion.p_mean_variance(output, x_t, t_batch).log_variance.double()
        log_beta = float(diffusion.schedule.betas[t].log())
        log_beta_tilde = float(diffusion.schedule.posterior_log_variance_clipped[t])
        rows["steps"].append(t + 1)
        rows["nu_min"].append(float(nu.min()))
        rows["nu_max"].append(float(nu.max()))
        rows["outside"].append(float((nu.abs() > 1).double().mean()))
        rows["log_ratio_min"].append(float(log_variance.min()) - log_beta_tilde)
        rows["log_ratio_max"].append(float(log_variance.max()) - log_beta)
    return LearnedVariance(**rows)


def ddim_step_table(schedule: NoiseSchedule, steps: int, eta: float, spacing: str = "leading") -> list[dict]:
    """Per step of a `steps`-step DDIM run (Song et al. eq. 12): the paper's t and t_prev, and the weights of x̂_0,
    ε̂ and z, with the β̃ of the jump (σ² at η = 1). t_prev = 0 means the step to x_0 (ᾱ_prev = 1)."""
    steps = check_int("steps", steps, 1, schedule.T)
    eta = check_number("eta", eta, 0.0)
    visited = timesteps(schedule.T, steps, spacing)
    alpha_bar = schedule.alpha_bars[visited]
    alpha_bar_prev = torch.cat([schedule.alpha_bars[visited[1:]], torch.ones(1, dtype=torch.float64)])
    coef_x0, coef_eps, sigma = ddim_coefficients(alpha_bar, alpha_bar_prev, eta)
    jump_beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)
    t_prev = torch.cat([visited[1:] + 1, torch.zeros(1, dtype=torch.long)])
    return [{"t": int(a), "t_prev": int(b), "alpha_bar": float(ab), "alpha_bar_prev": float(abp), "x0_weight": float(c0),
             "eps_weight": float(ce), "sigma": float(sg), "jump_beta_tilde": float(bt)}
            for a, b, ab, abp, c0, ce, sg, bt in zip(visited + 1, t_prev, alpha_bar, alpha_bar_prev, coef_x0, coef_eps,
                                                     sigma, jump_beta_tilde)]


def ddim_sigma_squared(alpha_bar: float, alpha_bar_prev: float, eta: float) -> float:
    """σ² of Song et al. eq. 16: η²·(1−ᾱ_prev)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_prev)."""
    eta = check_number("eta", eta, 0.0)
    return eta**2 * (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)


@torch.no_grad()
def quality_run(model, diffusion: GaussianDiffusion, sampler: str, steps: int, data_shape, n: int, seed: int,
                progress: Callable[[int, int], None] | None = None, quality: Callable | None = None) -> dict:
    """One timed run: n samples of shape data_shape with `sampler` ("ddpm_beta", "ddpm_beta_tilde": DDPM, Ho et al.
    Algorithm 2, with σ² = β or β̃; "ddim_eta0", "ddim_eta1": Song et al. eq. 12) over `steps` steps from
    torch.Generator().manual_seed(seed), x̂_0 clipped to [−1, 1]; progress(i, n) after every sampler step;
    quality(samples) -> dict (e.g. core.metrics.mnist.mnist_quality) adds its numbers to the row. The network runs
    under bf16 autocast where core.runtime enables it, as on the Sample page (core.sampling.autocast_network)."""
    sampler = check_choice("sampler", sampler, SAMPLERS)
    steps = check_int("steps", steps, 1, diffusion.T)
    n = check_int("n", n, 2, MAX_QUALITY_SAMPLES)
    seed = check_int("seed", seed, 0, MAX_SEED)
    shape = (n, *data_shape)
    generator = torch.Generator().manual_seed(seed)
    model = autocast_network(model)
    start = time.perf_counter()
    if sampler.startswith("ddpm"):
        variance = "fixed_large" if sampler == "ddpm_beta" else "fixed_small"
        samples = sample(model, diffusion, SamplerMethod.DDPM, shape, steps, variance=variance, generator=generator,
                         clip_x0=True, progress=progress)
    else:
        samples = sample(model, diffusion, SamplerMethod.DDIM, shape, steps, eta=0.0 if sampler == "ddim_eta0" else 1.0,
                         generator=generator, clip_x0=True, progress=progress)
    row = {"sampler": SAMPLER_LABELS[sampler], "steps": steps, "seconds": time.perf_counter() - start, "n": n}
    if quality is not None:
        row.update(quality(samples))
    return row


def quality_vs_steps(model, diffusion: GaussianDiffusion, step_counts, samplers, data_shape, n: int, seed: int,
                     progress: Callable[[int, int], None] | None = None, quality: Callable | None = None) -> list[dict]:
    """quality_run for every sampler and step count, all from the same seed; progress(runs done, runs) after each."""
    rows, total = [], len(step_counts) * len(samplers)
    for sampler in samplers:
        for steps in step_counts:
            rows.append(quality_run(model, diffusion, sampler, steps, data_shape, n, seed, quality=quality))
            if progress is not None:
                progress(len(rows), total)
    return rows
