"""Computations behind the Denoise explorer and Sample pages (no Streamlit here).

Denoise explorer: take one clean example x_0 (or a cloud of 2-D points), ONE noise draw ε, and for a grid of
timesteps t form x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε (Ho et al. 2020, eq. 4); ask the model for its prediction and
convert it to ε̂ and x̂_0 with the diffusion's formulas (whatever it predicts: ε, x_0 or v). Using the same ε
at every t shows the same example sinking into the same noise, and lets ε̂ be compared with the truth.

Sample page: run DDPM (Ho et al. Algorithm 2, respaced as in Nichol & Dhariwal §4) or DDIM (Song et al. 2021,
eq. 12) with a chosen variance, step count and seed, and pick the steps shown in the snapshot strip.

Timesteps are 0-based indices t = 0..T-1 as everywhere in core (index t is the paper's step t+1).
The page code converts tensors to pictures with `to_display`, using the ranges in DISPLAY_RANGES.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

from core.data.images import make_grid, to_uint8
from core.diffusion.gaussian_diffusion import VARIANCES, GaussianDiffusion, VarianceType
from core.diffusion.samplers import SPACINGS, Spacing, Trajectory, ddim_sample, ddpm_sample
from core.rng import seeded_generator

SamplerMethod = Literal["ddpm", "ddim"]
SAMPLER_METHODS: tuple[SamplerMethod, ...] = get_args(SamplerMethod)
# Value ranges mapped to black..white when showing tensors as pictures. Data and x̂_0 live in [-1, 1];
# ε ~ N(0, I) is shown on ±3 standard deviations; the error |ε − ε̂| on [0, 3].
DISPLAY_RANGES = {"data": (-1.0, 1.0), "noise": (-3.0, 3.0), "error": (0.0, 3.0)}


# ------------------------------------------------------------------------------------- validation
def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def _check_diffusion(diffusion) -> GaussianDiffusion:
    if not isinstance(diffusion, GaussianDiffusion):
        raise ValueError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    return diffusion


def random_index(n: int, seed: int) -> int:
    """A uniformly drawn index in 0..n-1, reproducible from `seed` (the "random image" choice)."""
    n = _check_int("n", n, 1)
    return int(torch.randint(n, (1,), generator=seeded_generator(seed)))


def random_subset(n: int, count: int, seed: int) -> torch.Tensor:
    """`min(count, n)` distinct indices in 0..n-1 drawn without replacement from `seed`, sorted."""
    n, count = _check_int("n", n, 1), _check_int("count", count, 1)
    return torch.randperm(n, generator=seeded_generator(seed))[: min(count, n)].sort().values


# ----------------------------------------------------------------------------------- timestep grid
def timestep_grid(T: int, count: int) -> torch.Tensor:
    """An ascending LongTensor of min(count, T) timesteps spread evenly over 0..T-1.

    count >= T gives every timestep 0..T-1; otherwise round(linspace(0, T-1, count)), which always
    contains 0 and T-1 and has distinct entries (consecutive values are (T-1)/(count-1) >= 1 apart).
    """
    T = _check_int("T", T, 1)
    count = _check_int("count", count, 2) if T > 1 else _check_int("count", count, 1)
    if count >= T:
        return torch.arange(T, dtype=torch.long)
    return torch.round(torch.linspace(0, T - 1, count, dtype=torch.float64)).long()


# ----------------------------------------------------------------------------------- denoise sweep
@dataclass
class DenoiseSweep:
    """What the model makes of x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε at each timestep of a grid.

    t [K] (0-based indices, ascending), alpha_bars [K] float64; x0 and noise [B, *shape];
    x_t, pred_eps, pred_x0 [K, B, *shape]; eps_mse and x0_mse [K] float64: the mean over the B examples
    and all dimensions of (ε̂ − ε)² and (x̂_0 − x_0)².
    """

    t: torch.Tensor
    alpha_bars: torch.Tensor
    x0: torch.Tensor
    noise: torch.Tensor
    x_t: torch.Tensor
    pred_eps: torch.Tensor
    pred_x0: torch.Tensor
    eps_mse: torch.Tensor
    x0_mse: torch.Tensor

    @property
    def abs_error(self) -> torch.Tensor:
        """|ε − ε̂| [K, B, *shape]."""
        return (self.noise.unsqueeze(0) - self.pred_eps).abs()


def _check_sweep_inputs(diffusion, x0, t, noise):
    _check_diffusion(diffusion)
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.ndim < 2:
        raise ValueError(f"x0 must be a float tensor [B, *shape] (a batch of examples), got {getattr(x0, 'shape', type(x0).__name__)}")
    if not isinstance(noise, torch.Tensor) or noise.shape != x0.shape:
        raise ValueError(f"noise must be a tensor with the shape of x0 {tuple(x0.shape)}, "
                         f"got {getattr(noise, 'shape', type(noise).__name__)}")
    if not isinstance(t, torch.Tensor) or t.dtype != torch.long or t.ndim != 1 or len(t) == 0:
        raise ValueError(f"t must be a non-empty 1-D LongTensor of timestep indices, got {t!r}")
    if int(t.min()) < 0 or int(t.max()) >= diffusion.T:
        raise ValueError(f"t must lie in 0..{diffusion.T - 1}, got values {int(t.min())}..{int(t.max())}")


@torch.no_grad()
def denoise_sweep(model, diffusion: GaussianDiffusion, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                  batch_size: int = 64) -> DenoiseSweep:
    """Run the model on x_t = q_sample(x0, t, noise) for every t in `t` and every example of x0.

    The K·B inputs go through the model in chunks of at most `batch_size` (one forward pass per chunk).
    ε̂ and x̂_0 come from `diffusion.pred_x0_eps`, so an x_0- or v-model is converted with the same formulas
    as during sampling; learned-variance channels are dropped. The model must be in eval mode.
    """
    _check_sweep_inputs(diffusion, x0, t, noise)
    batch_size = _check_int("batch_size", batch_size, 1)
    K, B = len(t), x0.shape[0]
    flat_t = t.repeat_interleave(B)  # [K·B]: t[0] for every example, then t[1], ...
    flat_x0 = x0.repeat(K, *([1] * (x0.ndim - 1)))
    flat_noise = noise.repeat(K, *([1] * (x0.ndim - 1)))
    flat_x_t = diffusion.q_sample(flat_x0, flat_t, flat_noise)
    pred_eps, pred_x0 = torch.empty_like(flat_x_t), torch.empty_like(flat_x_t)
    for start in range(0, K * B, batch_size):
        chunk = slice(start, start + batch_size)
        x_t, t_chunk = flat_x_t[chunk], flat_t[chunk]
        prediction, _ = diffusion.split_model_output(model(x_t, t_chunk), x_t)
        pred_x0[chunk], pred_eps[chunk] = diffusion.pred_x0_eps(prediction, x_t, t_chunk)

    def per_t(flat):
        return flat.reshape(K, B, *x0.shape[1:])

    def mse(a, b):
        return ((a.double() - b.double()) ** 2).reshape(K, -1).mean(dim=1)

    return DenoiseSweep(
        t=t.clone(), alpha_bars=diffusion.schedule.alpha_bars[t].clone(), x0=x0.clone(), noise=noise.clone(),
        x_t=per_t(flat_x_t), pred_eps=per_t(pred_eps), pred_x0=per_t(pred_x0),
        eps_mse=mse(per_t(pred_eps), noise.unsqueeze(0)), x0_mse=mse(per_t(pred_x0), x0.unsqueeze(0)))


def same_forward_process(a: GaussianDiffusion, b: GaussianDiffusion) -> bool:
    """True if both diffusions noise data identically (same schedule), so the same x_0 and ε give the same
    x_t for both models and their predictions can be compared (whatever each model predicts)."""
    return _check_diffusion(a).schedule.to_config() == _check_diffusion(b).schedule.to_config()


def removal_arrows(sweep: DenoiseSweep, count: int) -> dict:
    """Line segments for 2-D point sweeps: from x_t to x_t − √(1−ᾱ_t)·ε (true) and x_t − √(1−ᾱ_t)·ε̂ (predicted).

    Removing the true scaled noise lands exactly on √ᾱ_t·x_0; the predicted arrow shows where the model
    thinks it lies. For the first `count` examples returns {"true": (xs, ys), "predicted": (xs, ys)} with
    xs, ys numpy arrays [K, 3·count]: start, end, NaN per arrow (the NaN breaks the line between arrows).
    """
    count = _check_int("count", count, 1)
    if sweep.x0.ndim != 2 or sweep.x0.shape[1] != 2:
        raise ValueError(f"removal_arrows needs a sweep over 2-D points, got examples of shape {tuple(sweep.x0.shape[1:])}")
    count = min(count, sweep.x0.shape[0])
    scale = (1.0 - sweep.alpha_bars).sqrt().to(sweep.x_t.dtype)[:, None, None]  # [K, 1, 1]
    start = sweep.x_t[:, :count]
    ends = {"true": start - scale * sweep.noise[:count].unsqueeze(0), "predicted": start - scale * sweep.pred_eps[:, :count]}
    arrows = {}
    for name, end in ends.items():
        segments = torch.stack([start, end, torch.full_like(start, float("nan"))], dim=2)  # [K, count, 3, 2]
        segments = segments.reshape(len(sweep.t), 3 * count, 2).numpy()
        arrows[name] = (segments[..., 0], segments[..., 1])
    return arrows


# ------------------------------------------------------------------------------------------ display
def to_display(x, low: float, high: float) -> np.ndarray:
    """Map values in [low, high] linearly to uint8 0..255 (clamped). Images [..., C, H, W] become
    [..., H, W] for C = 1 and [..., H, W, 3] for C = 3, ready for a picture."""
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"low and high must be finite numbers with high > low, got {low!r} and {high!r}")
    array = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if array.ndim < 3 or array.shape[-3] not in (1, 3):
        raise ValueError(f"x must have shape [..., C, H, W] with C = 1 or 3, got {array.shape}")
    pixels = to_uint8(2.0 * (array - low) / (high - low) - 1.0)
    return pixels[..., 0, :, :] if pixels.shape[-3] == 1 else np.moveaxis(pixels, -3, -1)


def sweep_pictures(sweep: DenoiseSweep, example: int = 0) -> dict:
    """uint8 pictures of one example of an image sweep: "x_t", "eps_hat", "error", "x0_hat" [K, H, W(, 3)]
    change with t; "eps" and "x0" [H, W(, 3)] do not. Ranges from DISPLAY_RANGES."""
    example = _check_int("example", example, 0, sweep.x0.shape[0] - 1)
    data, noise, error = (DISPLAY_RANGES[k] for k in ("data", "noise", "error"))
    return {
        "x_t": to_display(sweep.x_t[:, example], *data),
        "eps": to_display(sweep.noise[example], *noise),
        "eps_hat": to_display(sweep.pred_eps[:, example], *noise),
        "error": to_display(sweep.abs_error[:, example], *error),
        "x0_hat": to_display(sweep.pred_x0[:, example], *data),
        "x0": to_display(sweep.x0[example], *data),
    }


# ----------------------------------------------------------------------------------------- sampling
@dataclass(frozen=True)
class SamplerSettings:
    """One sampler run. method "ddpm" uses `variance` (σ_t² = β_t, β̃_t or learned); "ddim" uses `eta`."""

    method: SamplerMethod = "ddim"
    steps: int = 50
    variance: VarianceType = "fixed_large"
    eta: float = 0.0
    spacing: Spacing = "leading"
    clip_x0: bool = True

    def label(self) -> str:
        if self.method == "ddim":
            return f"DDIM η={self.eta:g}, {self.steps} steps"
        return f"DDPM {self.variance}, {self.steps} steps"


class PredictionOnly(torch.nn.Module):
    """Wraps a learned-variance model and drops its variance channels, so it can sample with a fixed σ_t²."""

    def __init__(self, model, data_channels: int):
        super().__init__()
        self.model = model
        self.data_channels = data_channels

    def forward(self, x_t, t):
        return self.model(x_t, t)[:, : self.data_channels]


def check_settings(settings: SamplerSettings, diffusion: GaussianDiffusion) -> SamplerSettings:
    """Validate settings against the model's diffusion; raises ValueError naming the bad field."""
    _check_diffusion(diffusion)
    if not isinstance(settings, SamplerSettings):
        raise ValueError(f"settings must be a SamplerSettings, got {type(settings).__name__}")
    if settings.method not in SAMPLER_METHODS:
        raise ValueError(f"method must be one of {', '.join(SAMPLER_METHODS)}; got {settings.method!r}")
    _check_int("steps", settings.steps, 1, diffusion.T)
    if settings.spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}; got {settings.spacing!r}")
    if settings.variance not in VARIANCES:
        raise ValueError(f"variance must be one of {', '.join(VARIANCES)}; got {settings.variance!r}")
    if settings.variance == "learned_range" and diffusion.variance != "learned_range":
        raise ValueError(f"variance 'learned_range' needs a model trained with learned variances; this model "
                         f"uses {diffusion.variance!r} (choose fixed_large or fixed_small)")
    eta = settings.eta
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not math.isfinite(eta) or eta < 0:
        raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
    if not isinstance(settings.clip_x0, bool):
        raise ValueError(f"clip_x0 must be True or False, got {settings.clip_x0!r}")
    return settings


def sampling_process(model, diffusion: GaussianDiffusion, variance: VarianceType, data_channels: int):
    """(model, diffusion) to sample with reverse-step variance `variance` instead of the trained one.

    The schedule and prediction stay; only σ_t² changes. A learned-variance model sampled with a fixed
    variance is wrapped in PredictionOnly so its extra channels are ignored.
    """
    _check_diffusion(diffusion)
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {', '.join(VARIANCES)}; got {variance!r}")
    if variance == "learned_range" and diffusion.variance != "learned_range":
        raise ValueError(f"variance 'learned_range' needs a model trained with learned variances, not {diffusion.variance!r}")
    if variance == diffusion.variance:
        return model, diffusion
    if diffusion.variance == "learned_range":
        model = PredictionOnly(model, _check_int("data_channels", data_channels, 1))
    return model, GaussianDiffusion(diffusion.schedule, diffusion.prediction, variance)


def record_every(steps: int, max_records: int) -> int:
    """The k of record=k that keeps at most about max_records trajectory entries (the last step is
    always kept too): ceil(steps / max_records)."""
    steps, max_records = _check_int("steps", steps, 1), _check_int("max_records", max_records, 1)
    return max(1, -(-steps // max_records))


def run_sampler(model, diffusion: GaussianDiffusion, settings: SamplerSettings, shape, seed: int,
                record=False, progress=None):
    """Sample `shape` = (n, *data_shape) with `settings`, all randomness from `seed`.

    x_T is the first draw of a generator seeded with `seed`, so runs with the same seed and shape start
    from the same noise whatever the settings (what "compare step counts" relies on). Returns x_0, or
    (x_0, Trajectory) when record is True or k (see core.diffusion.samplers).
    """
    check_settings(settings, diffusion)
    shape = tuple(shape)
    if len(shape) < 2 or not all(isinstance(d, int) and d >= 1 for d in shape):
        raise ValueError(f"shape must be (n, *data_shape) of positive integers, got {shape!r}")
    generator = seeded_generator(seed)
    x_T = torch.randn(shape, generator=generator)
    common = dict(steps=settings.steps, spacing=settings.spacing, generator=generator,
                  clip_x0=settings.clip_x0, record=record, progress=progress, x_T=x_T)
    if settings.method == "ddim":
        return ddim_sample(model, diffusion, shape, eta=float(settings.eta), **common)
    model, process = sampling_process(model, diffusion, settings.variance, shape[1])
    return ddpm_sample(model, process, shape, **common)


def snapshot_positions(recorded_t, T: int, fractions=(1.0, 0.75, 0.5, 0.25)) -> list[int]:
    """For each fraction f, the index into `recorded_t` (timesteps a trajectory recorded) whose timestep is
    nearest to f·(T−1); the snapshot strip shows those x_t and then the final x_0."""
    T = _check_int("T", T, 1)
    recorded = torch.as_tensor(list(recorded_t), dtype=torch.float64)
    if recorded.ndim != 1 or len(recorded) == 0:
        raise ValueError("recorded_t must be a non-empty list of timesteps")
    positions = []
    for f in fractions:
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"fractions must lie in [0, 1], got {f!r}")
        positions.append(int((recorded - f * (T - 1)).abs().argmin()))
    return positions


def trajectory_pictures(trajectory, count: int, nrow: int = 8) -> dict:
    """Grids of the first `count` samples along a recorded image trajectory, for a scrubber:
    {"t": [R+1] timesteps (−1 for the final x_0), "x_t": [R+1, H', W'(, 3)] uint8, "pred_x0": same}.

    Entry r shows the sample entering recorded step r and the x̂_0 predicted there; the last entry shows
    the final x_0 in both columns. x_t is clipped to the data range [-1, 1] for display.
    """
    count = _check_int("count", count, 1)
    if trajectory is None or trajectory.final is None or not trajectory.t:
        raise ValueError("trajectory must be a finished, recorded Trajectory (run the sampler with record=...)")
    if trajectory.final.ndim != 4:
        raise ValueError(f"trajectory_pictures needs image samples [N, C, H, W], got {tuple(trajectory.final.shape)}")
    count = min(count, trajectory.final.shape[0])
    columns = {"x_t": trajectory.x_t + [trajectory.final], "pred_x0": trajectory.pred_x0 + [trajectory.final]}
    pictures = {name: np.stack([make_grid(batch[:count].clamp(-1, 1), nrow=nrow) for batch in batches])
                for name, batches in columns.items()}
    pictures["t"] = list(trajectory.t) + [-1]
    return pictures


def snapshots(trajectory, T: int) -> list:
    """The snapshot strip of a recorded trajectory: [(t, x_t batch)] at the recorded steps nearest to
    t = T−1, ¾(T−1), ½(T−1), ¼(T−1) (see snapshot_positions), then (−1, final x_0)."""
    if trajectory is None or trajectory.final is None or not trajectory.t:
        raise ValueError("trajectory must be a finished, recorded Trajectory (run the sampler with record=...)")
    positions = snapshot_positions(trajectory.t, T)
    return [(trajectory.t[p], trajectory.x_t[p]) for p in positions] + [(-1, trajectory.final)]


def keep_first(trajectory, count: int):
    """A copy of a recorded Trajectory holding only its first `count` samples (to keep what a page stores small)."""
    count = _check_int("count", count, 1)
    if trajectory is None or trajectory.final is None:
        raise ValueError("trajectory must be a finished, recorded Trajectory (run the sampler with record=...)")
    return Trajectory(t=list(trajectory.t), x_t=[x[:count] for x in trajectory.x_t],
                      pred_x0=[x[:count] for x in trajectory.pred_x0], pred_eps=[x[:count] for x in trajectory.pred_eps],
                      final=trajectory.final[:count])
