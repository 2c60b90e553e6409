"""Sampling's one home: the DDPM-or-DDIM choice (SamplerMethod, `sample`) that the command line, the trainer's
previews, the pages and bench/ call; DDPM (Ho et al. 2020, Algorithm 2, respaced as in Nichol & Dhariwal §4) or
DDIM (Song et al. 2021, eq. 12) with a chosen variance, step count and seed; the one wrapper that drops a
learned-variance model's variance channels (`drop_variance_channels`); and what the Sample page shows (the steps of
the snapshot strip and the trajectory scrubber).

Timesteps are 0-based indices t = 0..T-1 (index t is the paper's step t+1). `check_settings` validates the
page's widget values once; the samplers underneath do not re-check them.

Precision: every sampling path of the pages and of `python -m core.sample` calls the network through
`autocast_network`: its forward pass runs under bf16 autocast where core.runtime enables it for the device (CUDA;
CPUs with bf16 in hardware, $RDL_CPU_BF16 forcing it), and its output is cast back to float32 before the sampler's
update, so the sampler's own arithmetic (Algorithm 2, eq. 12) stays float32 (float64 for its coefficients).
Where autocast is off, the network's float32 output passes through unchanged: the samples are bit-identical to
calling the network directly. Callables that are not torch modules (the exact oracle denoisers) are never
wrapped: they keep their own precision. The pages' numbers that compare predictions with exact values (errors
per t, the ELBO, loss floors, fields against the oracle) keep float32: bf16's relative error of 2^-8 is amplified
by √(1−ᾱ_t)/√ᾱ_t (about 157 at t = T for Ho et al.'s linear schedule) when ε̂ is turned into x̂₀ (measured on the
shipped mnist_eps model, 16 test digits: the x̂₀ MSE at t = 1000 is 3.26 in fp32 and 3.53 in bf16, at t = 900 0.71 and
0.75), while a sample's clipped x̂₀ and its final pixels barely move (bf16 changes a 10-step DDIM sample by an RMS of
0.017, against 0.71 between the samples of two seeds: tests/test_bf16_sampling.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch

from core import runtime
from core.checks import check_bool, check_choice, check_int, check_number
from core.data.images import make_grid
from core.diffusion.gaussian_diffusion import VARIANCES, GaussianDiffusion, VarianceType
from core.diffusion.samplers import SPACINGS, Spacing, Trajectory, ddim_sample, ddpm_sample
from core.rng import seeded_generator


class SamplerMethod(StrEnum):
    """The reverse process a sampler runs. A str, so settings, links and CLI flags keep the plain words."""

    DDPM = "ddpm"  # Ho et al. 2020, Algorithm 2 (σ_t² = β_t, β̃_t or learned), respaced for fewer steps
    DDIM = "ddim"  # Song et al. 2021, eq. 12 (η scales the noise; η = 0 is deterministic)


SAMPLER_METHODS: tuple[SamplerMethod, ...] = tuple(SamplerMethod)


@dataclass(frozen=True)
class SamplerSettings:
    """One sampler run. method "ddpm" uses `variance` (σ_t² = β_t, β̃_t or learned); "ddim" uses `eta`."""

    method: SamplerMethod = SamplerMethod.DDIM
    steps: int = 50
    variance: VarianceType = "fixed_large"
    eta: float = 0.0
    spacing: Spacing = "leading"
    clip_x0: bool = True


class PredictionOnly(torch.nn.Module):
    """Wraps a learned-variance model and drops its variance channels, so it can sample with a fixed σ_t²
    (made by drop_variance_channels)."""

    def __init__(self, model, data_channels: int):
        super().__init__()
        self.model = model
        self.data_channels = data_channels

    def forward(self, x_t, t):
        return self.model(x_t, t)[:, : self.data_channels]


def drop_variance_channels(model, diffusion: GaussianDiffusion, data_channels: int):
    """`model` for a fixed-variance process: a learned-variance model (its output [N, 2C, ...]: the prediction, then
    Nichol & Dhariwal's v) wrapped in PredictionOnly so only its C prediction channels are used; any other model
    unchanged."""
    if diffusion.variance == "learned_range":
        return PredictionOnly(model, data_channels)
    return model


class AutocastNetwork(torch.nn.Module):
    """A network called under `runtime.autocast` for its input's device, returning float32 (see the module docstring)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x_t, t):
        with runtime.autocast(x_t.device):
            output = self.model(x_t, t)
        return output.float()  # the same tensor when it already is float32


def autocast_network(model):
    """`model` wrapped in AutocastNetwork when it is a torch module (a network), else `model` itself (the oracles)."""
    if isinstance(model, torch.nn.Module) and not isinstance(model, AutocastNetwork):
        return AutocastNetwork(model)
    return model


def check_settings(settings: SamplerSettings, diffusion: GaussianDiffusion) -> SamplerSettings:
    """Validate the page's settings against the model's diffusion (once, before sampling); raises ValueError
    naming the bad field."""
    check_choice("method", settings.method, SAMPLER_METHODS)
    check_int("steps", settings.steps, 1, diffusion.T)
    check_choice("spacing", settings.spacing, SPACINGS)
    check_choice("variance", settings.variance, VARIANCES)
    if settings.variance == "learned_range" and diffusion.variance != "learned_range":
        raise ValueError(f"variance 'learned_range' needs a model trained with learned variances; this model "
                         f"uses {diffusion.variance!r} (choose fixed_large or fixed_small)")
    check_number("eta", settings.eta, 0.0)
    check_bool("clip_x0", settings.clip_x0)
    return settings


def sampling_process(model, diffusion: GaussianDiffusion, variance: VarianceType, data_channels: int):
    """(model, diffusion) to sample with reverse-step variance `variance` instead of the trained one.

    The schedule and prediction stay; only σ_t² changes. A learned-variance model sampled with a fixed
    variance is wrapped in PredictionOnly so its extra channels are ignored.
    """
    if variance == diffusion.variance:
        return model, diffusion
    return drop_variance_channels(model, diffusion, data_channels), GaussianDiffusion(diffusion.schedule, diffusion.prediction, variance)


def sample(model, diffusion: GaussianDiffusion, method: SamplerMethod | str, shape, steps: int, *,
           variance: VarianceType | None = None, eta: float = 0.0, **sampler_options):
    """The one DDPM-or-DDIM choice. DDIM: core.diffusion.samplers.ddim_sample with `eta`; DDPM: ddpm_sample with
    reverse-step variance `variance` (None: the trained one; see sampling_process), where eta must be 0.
    sampler_options (spacing, generator, clip_x0, device, x_T, record, progress) pass on unchanged, so a call gives
    exactly the samples of calling the sampler itself."""
    method = SamplerMethod(check_choice("method", method, SAMPLER_METHODS))
    if method is SamplerMethod.DDIM:
        return ddim_sample(model, diffusion, shape, steps, eta=eta, **sampler_options)
    if eta != 0.0:
        raise ValueError(f"eta={eta!r} applies to DDIM only; DDPM's noise is set by its variance")
    model, process = sampling_process(model, diffusion, variance or diffusion.variance, shape[1])
    return ddpm_sample(model, process, shape, steps=steps, **sampler_options)


def record_every(steps: int, max_records: int) -> int:
    """The k of record=k that keeps at most about max_records trajectory entries (the last step is
    always kept too): ceil(steps / max_records)."""
    return max(1, -(-steps // max_records))


def run_sampler(model, diffusion: GaussianDiffusion, settings: SamplerSettings, shape, seed: int,
                record=False, progress=None):
    """Sample `shape` = (n, *data_shape) with `settings`, all randomness from `seed`.

    x_T is the first draw of a generator seeded with `seed`, so runs with the same seed and shape start
    from the same noise whatever the settings (what "compare step counts" relies on). A network runs under
    bf16 autocast where core.runtime enables it (`autocast_network`). Returns x_0, or (x_0, Trajectory) when
    record is True or k (see core.diffusion.samplers).
    """
    check_settings(settings, diffusion)
    shape = tuple(check_int("shape entry", d, 1) for d in shape)
    if len(shape) < 2:
        raise ValueError(f"shape={shape!r} is not allowed; expected (n, *data_shape)")
    generator = seeded_generator(seed)
    x_T = torch.randn(shape, generator=generator)
    model = autocast_network(model)
    is_ddim = settings.method == SamplerMethod.DDIM
    return sample(model, diffusion, settings.method, shape, settings.steps, variance=None if is_ddim else settings.variance,
                  eta=float(settings.eta) if is_ddim else 0.0, spacing=settings.spacing, generator=generator,
                  clip_x0=settings.clip_x0, record=record, progress=progress, x_T=x_T)


def _recorded(trajectory) -> Trajectory:
    """The trajectory if a sampler has finished recording it (the pictures below need one)."""
    if not isinstance(trajectory, Trajectory) or trajectory.final is None or not trajectory.t:
        raise ValueError("trajectory must be a finished, recorded Trajectory (run the sampler with record=...)")
    return trajectory


def snapshot_positions(recorded_t, T: int, fractions=(1.0, 0.75, 0.5, 0.25)) -> list[int]:
    """For each fraction f, the index into `recorded_t` (timesteps a trajectory recorded) whose timestep is
    nearest to f·(T−1); the snapshot strip shows those x_t and then the final x_0."""
    recorded = torch.as_tensor(list(recorded_t), dtype=torch.float64)
    return [int((recorded - f * (T - 1)).abs().argmin()) for f in fractions]


def trajectory_pictures(trajectory, count: int, nrow: int = 8) -> dict:
    """Grids of the first `count` samples along a recorded image trajectory, for a scrubber:
    {"t": [R+1] timesteps (−1 for the final x_0), "x_t": [R+1, H', W'(, 3)] uint8, "pred_x0": same}.

    Entry r shows the sample entering recorded step r and the x̂_0 predicted there; the last entry shows
    the final x_0 in both columns. x_t is clipped to the data range [-1, 1] for display.
    """
    trajectory, count = _recorded(trajectory), check_int("count", count, 1)
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
    trajectory = _recorded(trajectory)
    positions = snapshot_positions(trajectory.t, T)
    return [(trajectory.t[p], trajectory.x_t[p]) for p in positions] + [(-1, trajectory.final)]


def keep_first(trajectory, count: int) -> Trajectory:
    """A copy of a recorded Trajectory holding only its first `count` samples (to keep what a page stores small)."""
    trajectory, count = _recorded(trajectory), check_int("count", count, 1)
    return Trajectory(t=list(trajectory.t), x_t=[x[:count] for x in trajectory.x_t],
                      pred_x0=[x[:count] for x in trajectory.pred_x0], pred_eps=[x[:count] for x in trajectory.pred_eps],
                      final=trajectory.final[:count])
