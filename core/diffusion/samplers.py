"""Sampling loops: DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) and DDIM (Song et al. 2021).

The model is any callable `model(x_t, t) -> model_output` and is always called with the ORIGINAL timestep
indices, also when a loop visits fewer steps than T. Fewer DDPM steps use a respaced process whose betas
are recomputed from ᾱ (Nichol & Dhariwal §4); DDIM jumps between the kept timesteps directly.
All randomness comes from the `generator` argument: the same seed gives the same samples.
A network run under bf16 (or fp16) autocast returns a lower-precision output: the loops cast it to the dtype of x_t
before the update (`_model_output`), so the sampler's own arithmetic stays in x_t's precision.
On CUDA, image batches (4-D) reach the network in channels_last memory format, as in training (faster convolutions
on GPUs; `uses_channels_last`): the same numbers, other strides. What the loops return (x_0, trajectories) is
contiguous. The CPU path is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import torch

from core.checks import check_choice, check_int, check_number
from core.diffusion.gaussian_diffusion import GaussianDiffusion

Spacing = Literal["leading", "trailing", "linspace"]  # which timesteps a sampler with fewer than T steps visits
SPACINGS: tuple[Spacing, ...] = get_args(Spacing)


def timesteps(T: int, steps: int, spacing: Spacing = "leading") -> torch.Tensor:
    """The original timesteps a `steps`-step sampler visits, in descending order.

    "leading":  0, k, 2k, …, (steps−1)·k with k = T // steps  (DDIM's "uniform" skip; never reaches T−1
                unless steps = T)
    "trailing": round(T − i·T/steps) − 1 for i = 0..steps−1, i.e. T−1, …  (always starts at x_T; Lin et al. 2024)
    "linspace": round(linspace(0, T−1, steps))  (both ends included)
    """
    check_choice("spacing", spacing, SPACINGS)
    T = check_int("T", T, 1)
    steps = check_int("steps", steps, 1, T)
    if spacing == "leading":
        kept = torch.arange(steps, dtype=torch.long) * (T // steps)
    elif spacing == "trailing":
        kept = torch.round(T - torch.arange(steps, dtype=torch.float64) * (T / steps)).long() - 1
    else:
        kept = torch.round(torch.linspace(0, T - 1, steps, dtype=torch.float64)).long()
    return kept.sort(descending=True).values


@dataclass
class Trajectory:
    """What a sampler saw at the recorded steps (tensors on the CPU, index 0 = first step taken).

    t[i] is the original timestep; x_t[i] the sample entering that step; pred_x0[i] and pred_eps[i]
    the model's predictions there. `final` is the returned x_0.
    """

    t: list = field(default_factory=list)
    x_t: list = field(default_factory=list)
    pred_x0: list = field(default_factory=list)
    pred_eps: list = field(default_factory=list)
    final: torch.Tensor | None = None

    def add(self, t: int, x_t, pred_x0, pred_eps):
        self.t.append(int(t))
        for name, value in (("x_t", x_t), ("pred_x0", pred_x0), ("pred_eps", pred_eps)):
            getattr(self, name).append(value.detach().float().cpu().contiguous())


def _stride_of_record_option(record) -> int:
    """record=False -> 0 (nothing), True -> every step, an integer k -> every k-th step."""
    if record is False or record is None:
        return 0
    return 1 if record is True else check_int("record (keep every k-th step)", record, 1)


def uses_channels_last(shape, device: torch.device) -> bool:
    """Whether the loops hand x_t to the network in channels_last: image batches (4-D) on CUDA, as training does."""
    return torch.device(device).type == "cuda" and len(shape) == 4


def _memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """x with channels_last strides (`.to`, not `.contiguous`, which keeps the strides of a one-channel batch: those
    already count as channels_last, yet convolutions choose their layout from the strides), or x itself."""
    return x.to(memory_format=torch.channels_last) if channels_last else x


def _initial_noise(shape, generator, device, x_T):
    if x_T is not None:
        if tuple(x_T.shape) != tuple(shape):
            raise ValueError(f"x_T must have shape {tuple(shape)}, got {tuple(x_T.shape)}")
        return x_T.to(device)
    return torch.randn(shape, generator=generator, device=device)


def _device_for(generator, device):
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else torch.device("cpu")


def _model_output(model, x, t, channels_last=False):
    """model(x, t), cast to x's dtype when the network computed it in bf16 or fp16 (under autocast); a float32 or
    float64 output is returned as it is (the same tensor). channels_last: hand x over with channels_last strides
    (a copy each step: elementwise updates of a one-channel batch fall back to the default strides)."""
    output = model(_memory_format(x, channels_last), t)
    return output.to(x.dtype) if output.dtype in (torch.bfloat16, torch.float16) else output


def _result(x, trajectory):
    """x_0 (contiguous), or (x_0, trajectory) when the loop recorded one."""
    x = x.contiguous()
    if trajectory is None:
        return x
    trajectory.final = x.detach().float().cpu()
    return x, trajectory


@torch.no_grad()
def ddpm_sample(model, diffusion: GaussianDiffusion, shape, steps: int | None = None, spacing: Spacing = "leading", generator=None,
                clip_x0=False, record=False, progress=None, x_T=None, device=None):
    """Ancestral sampling x_T ~ N(0, I), then x_{t-1} ~ p_θ(x_{t-1}|x_t) down to x_0 (Ho et al. Algorithm 2).

    steps < T respaces the process to the visited timesteps. record=True (or k) also returns a
    Trajectory of every (every k-th, plus the last) step; progress(i, n) is called after each step.
    Returns x_0, or (x_0, Trajectory) when recording. The arguments are checked here, not in the loop.
    """
    if not isinstance(diffusion, GaussianDiffusion):
        raise ValueError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    steps = diffusion.T if steps is None else steps
    kept = timesteps(diffusion.T, steps, spacing).flip(0)  # ascending: index i of the respaced process
    process = diffusion if len(kept) == diffusion.T else diffusion.respaced(kept)
    every = _stride_of_record_option(record)
    device = _device_for(generator, device)
    channels_last = uses_channels_last(shape, device)
    trajectory = Trajectory() if every else None
    n = len(kept)
    # 1. x_T ~ N(0, I)
    x = _initial_noise(shape, generator, device, x_T)
    for step, i in enumerate(reversed(range(n))):
        # 2. the model sees the original timestep kept[i]; the (respaced) process uses its own index i
        t_model = torch.full((shape[0],), int(kept[i]), dtype=torch.long, device=device)
        t_process = torch.full((shape[0],), i, dtype=torch.long, device=device)
        model_output = _model_output(model, x, t_model, channels_last)
        # 3. z ~ N(0, I), drawn at every step (also the last, where it is not used) so the stream of draws is fixed
        noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
        # 4. x_{t-1} = μ_θ(x_t, t) + σ_t·z, no noise at t = 1 (Algorithm 2, line 4)
        x_prev, out = process.p_sample(model_output, x, t_process, noise, clip_x0=clip_x0)
        if trajectory is not None and (step % every == 0 or i == 0):
            trajectory.add(int(kept[i]), x, out.pred_x0, out.pred_eps)
        x = x_prev
        if progress is not None:
            progress(step + 1, n)
    # 5. return x_0
    return _result(x, trajectory)


def ddim_coefficients(alpha_bar, alpha_bar_prev, eta):
    """(√ᾱ_prev, √(1 − ᾱ_prev − σ²), σ): the weights of x̂_0, ε̂ and z in the DDIM update (eq. 12),
    with σ = η·√((1 − ᾱ_prev)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_prev). Element-wise on tensors of any shape."""
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)).sqrt()
    return alpha_bar_prev.sqrt(), (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt(), sigma


def ddim_step(diffusion: GaussianDiffusion, model_output, x_t, t, t_prev, eta, noise, clip_x0=False):
    """One DDIM update from timestep t to t_prev (Song et al. 2021, eq. 12):

    x_prev = √ᾱ_prev·x̂_0 + √(1 − ᾱ_prev − σ²)·ε̂ + σ·z,
    σ = η·√((1 − ᾱ_prev)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_prev).
    t_prev = −1 means ᾱ_prev = 1 (the step to x_0). η = 0 is deterministic; η = 1 with t_prev = t − 1
    has DDPM's fixed_small variance β̃_t. Learned variance channels, if any, are ignored.
    Returns (x_prev, pred_x0, pred_eps). A public one-step entry point, so it checks its arguments.
    """
    eta = check_number("eta", eta, 0.0)
    batch = x_t.shape[0]
    t = torch.as_tensor(t, dtype=torch.long, device=x_t.device).expand(batch)
    t_prev = torch.as_tensor(t_prev, dtype=torch.long, device=x_t.device).expand(batch)
    diffusion.check_timesteps(t, x_t)
    if x_t.device.type == "cpu" and bool(((t_prev < -1) | (t_prev >= t)).any()):
        raise ValueError(f"t_prev must satisfy -1 <= t_prev < t, got t={t.tolist()} t_prev={t_prev.tolist()}")
    pred_x0, pred_eps = diffusion.predictions(model_output, x_t, t, clip_x0)
    alpha_bar = diffusion._extract("alpha_bars", t, x_t)
    alpha_bar_prev = torch.where(t_prev.reshape(alpha_bar.shape) >= 0,
                                 diffusion._extract("alpha_bars", t_prev.clamp(min=0), x_t),
                                 torch.ones_like(alpha_bar))
    coef_x0, coef_eps, sigma = ddim_coefficients(alpha_bar, alpha_bar_prev, eta)
    x_prev = coef_x0 * pred_x0 + coef_eps * pred_eps + sigma * noise
    return x_prev, pred_x0, pred_eps


@torch.no_grad()
def ddim_sample(model, diffusion: GaussianDiffusion, shape, steps: int, eta: float = 0.0, spacing: Spacing = "leading", generator=None,
                clip_x0=False, record=False, progress=None, x_T=None, device=None):
    """DDIM sampling over `steps` timesteps (Song et al. 2021). Same return convention as ddpm_sample.

    The same update as `ddim_step`, with the per-step weights computed once up front in float64 (plain
    Python numbers in the loop: no per-step schedule look-ups and no host/device syncs). Noise is drawn
    only for steps with σ > 0, so η = 0 consumes no random numbers after x_T.
    """
    if not isinstance(diffusion, GaussianDiffusion):
        raise ValueError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    eta = check_number("eta", eta, 0.0)
    visited = timesteps(diffusion.T, steps, spacing)
    alpha_bars = diffusion.schedule.alpha_bars.to(torch.float64)
    alpha_bar = alpha_bars[visited]
    alpha_bar_prev = torch.cat([alpha_bars[visited[1:]], torch.ones(1, dtype=torch.float64)])  # ᾱ = 1 after the last step
    coef_x0, coef_eps, sigma = (c.tolist() for c in ddim_coefficients(alpha_bar, alpha_bar_prev, eta))
    visited = visited.tolist()
    every = _stride_of_record_option(record)
    device = _device_for(generator, device)
    channels_last = uses_channels_last(shape, device)
    trajectory = Trajectory() if every else None
    n = len(visited)
    # 1. x_T ~ N(0, I)
    x = _initial_noise(shape, generator, device, x_T)
    for step, t in enumerate(visited):
        # 2. x̂_0 and ε̂ from the model's output at timestep t
        t_model = torch.full((shape[0],), t, dtype=torch.long, device=device)
        pred_x0, pred_eps = diffusion.predictions(_model_output(model, x, t_model, channels_last), x, t_model, clip_x0)
        if trajectory is not None and (step % every == 0 or step == n - 1):
            trajectory.add(t, x, pred_x0, pred_eps)
        # 3. x_prev = √ᾱ_prev·x̂_0 + √(1 − ᾱ_prev − σ²)·ε̂ (eq. 12) ...
        x = coef_x0[step] * pred_x0 + coef_eps[step] * pred_eps
        # 4. ... + σ·z, drawn only when σ > 0
        if sigma[step] > 0:
            x = x + sigma[step] * torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
        if progress is not None:
            progress(step + 1, n)
    # 5. return x_0
    return _result(x, trajectory)
