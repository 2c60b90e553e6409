"""What the Denoise explorer computes: one clean example (or a cloud of 2-D points), ONE noise draw ε, and
what the model makes of x_t at a grid of timesteps.

For each t of the grid, x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε (Ho et al. 2020, eq. 4); the model's output is converted to
ε̂ and x̂_0 with the diffusion's formulas (whatever it predicts: ε, x_0 or v). Using the same ε at every t shows the
same example sinking into the same noise, and lets ε̂ be compared with the truth. Timesteps are 0-based indices
t = 0..T-1 (index t is the paper's step t+1). The page turns tensors into pictures with `to_display`, using the
ranges in DISPLAY_RANGES. The functions the page calls check the widget values they take, once, here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from core.checks import check_int
from core.data.images import to_uint8
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.rng import seeded_generator

# Value ranges mapped to black..white when showing tensors as pictures. Data and x̂_0 live in [-1, 1];
# ε ~ N(0, I) is shown on ±3 standard deviations; the error |ε − ε̂| on [0, 3].
DISPLAY_RANGES = {"data": (-1.0, 1.0), "noise": (-3.0, 3.0), "error": (0.0, 3.0)}
# Two schedules are the same forward process when their betas agree to this relative tolerance (float64 round-off).
SAME_BETAS_RTOL = 1e-12


def random_index(n: int, seed: int) -> int:
    """A uniformly drawn index in 0..n-1, reproducible from `seed` (the "random image" choice)."""
    n = check_int("n", n, 1)
    return int(torch.randint(n, (1,), generator=seeded_generator(seed)))


def random_subset(n: int, count: int, seed: int) -> torch.Tensor:
    """`min(count, n)` distinct indices in 0..n-1 drawn without replacement from `seed`, sorted."""
    n, count = check_int("n", n, 1), check_int("count", count, 1)
    return torch.randperm(n, generator=seeded_generator(seed))[: min(count, n)].sort().values


# ----------------------------------------------------------------------------------- timestep grid
def timestep_grid(T: int, count: int) -> torch.Tensor:
    """An ascending LongTensor of min(count, T) timesteps spread evenly over 0..T-1.

    count >= T gives every timestep 0..T-1; otherwise round(linspace(0, T-1, count)), which always
    contains 0 and T-1 and has distinct entries (consecutive values are (T-1)/(count-1) >= 1 apart).
    """
    T = check_int("T", T, 1)
    count = check_int("count", count, min(T, 2))
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


@torch.no_grad()
def denoise_sweep(model, diffusion: GaussianDiffusion, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                  batch_size: int = 64) -> DenoiseSweep:
    """Run the model on x_t = q_sample(x0, t, noise) for every t in `t` and every example of x0.

    The K·B inputs go through the model in chunks of at most `batch_size` (one forward pass per chunk).
    ε̂ and x̂_0 come from `diffusion.predictions`, so an x_0- or v-model is converted with the same formulas
    as during sampling; learned-variance channels are dropped. The model must be in eval mode.
    """
    if noise.shape != x0.shape or x0.ndim < 2:
        raise ValueError(f"x0 and noise must be batches [B, *shape] of the same shape, got {tuple(x0.shape)} and {tuple(noise.shape)}")
    diffusion.check_timesteps(t, t)  # the grid: integer indices in 0..T-1
    batch_size = check_int("batch_size", batch_size, 1)
    K, B = len(t), x0.shape[0]
    flat_t = t.repeat_interleave(B)  # [K·B]: t[0] for every example, then t[1], ...
    flat_x0 = x0.repeat(K, *([1] * (x0.ndim - 1)))
    flat_noise = noise.repeat(K, *([1] * (x0.ndim - 1)))
    flat_x_t = diffusion.q_sample(flat_x0, flat_t, flat_noise)
    pred_eps, pred_x0 = torch.empty_like(flat_x_t), torch.empty_like(flat_x_t)
    for start in range(0, K * B, batch_size):
        chunk = slice(start, start + batch_size)
        x_t, t_chunk = flat_x_t[chunk], flat_t[chunk]
        pred_x0[chunk], pred_eps[chunk] = diffusion.predictions(model(x_t, t_chunk), x_t, t_chunk)

    def per_t(flat):
        return flat.reshape(K, B, *x0.shape[1:])

    def mse(a, b):
        return ((a.double() - b.double()) ** 2).reshape(K, -1).mean(dim=1)

    return DenoiseSweep(
        t=t.clone(), alpha_bars=diffusion.schedule.alpha_bars[t].clone(), x0=x0.clone(), noise=noise.clone(),
        x_t=per_t(flat_x_t), pred_eps=per_t(pred_eps), pred_x0=per_t(pred_x0),
        eps_mse=mse(per_t(pred_eps), noise.unsqueeze(0)), x0_mse=mse(per_t(pred_x0), x0.unsqueeze(0)))


def same_forward_process(a: GaussianDiffusion, b: GaussianDiffusion) -> bool:
    """True if both diffusions noise data identically, so the same x_0 and ε give the same x_t for both models
    and their predictions can be compared (whatever each model predicts).

    Compares the schedules' betas (to round-off, SAME_BETAS_RTOL), not the settings that built them: a cosine
    schedule ignores its β range, and scale-with-T changes nothing at T = 1000, so different settings can
    describe the same process."""
    betas_a, betas_b = a.schedule.betas, b.schedule.betas
    return betas_a.shape == betas_b.shape and torch.allclose(betas_a, betas_b, rtol=SAME_BETAS_RTOL, atol=0.0)


def removal_arrows(sweep: DenoiseSweep, count: int) -> dict:
    """Line segments for 2-D point sweeps: from x_t to x_t − √(1−ᾱ_t)·ε (true) and x_t − √(1−ᾱ_t)·ε̂ (predicted).

    Removing the true scaled noise lands exactly on √ᾱ_t·x_0; the predicted arrow shows where the model
    thinks it lies. For the first `count` examples returns {"true": (xs, ys), "predicted": (xs, ys)} with
    xs, ys numpy arrays [K, 3·count]: start, end, NaN per arrow (the NaN breaks the line between arrows).
    """
    count = check_int("count", count, 1)
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
    example = check_int("example", example, 0, sweep.x0.shape[0] - 1)
    data, noise, error = (DISPLAY_RANGES[k] for k in ("data", "noise", "error"))
    return {
        "x_t": to_display(sweep.x_t[:, example], *data),
        "eps": to_display(sweep.noise[example], *noise),
        "eps_hat": to_display(sweep.pred_eps[:, example], *noise),
        "error": to_display(sweep.abs_error[:, example], *error),
        "x0_hat": to_display(sweep.pred_x0[:, example], *data),
        "x0": to_display(sweep.x0[example], *data),
    }


