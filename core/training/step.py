"""The training algorithm, top to bottom: a plain `TrainState` and `train_step` (no threads, no locks).

One training step (Ho et al. 2020, Algorithm 1, with the Improved-DDPM hybrid loss when the variance is
learned, Nichol & Dhariwal 2021 eq. 16), then an Adam update and an EMA update of the weights with
decay_k = min(ema_decay, (1 + k)/(10 + k)) at update k = 0, 1, ... The EMA warm-up keeps the average from
being dominated by the random initial weights early on; the EMA model is what previews and checkpoints use.

Every random draw (minibatches, t, ε) comes from `state.generator`, seeded with `config.seed`; its state is
saved in checkpoints, so a stopped or reloaded run continues exactly as an uninterrupted one would.
Initial weights: the network is built while the global torch RNG is temporarily seeded with config.seed
(`torch.random.fork_rng`, restored afterwards), so the same config always starts from the same weights.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass

import torch

from core import runtime
from core.data.datasets import Dataset, load_dataset
from core.data.images import make_grid
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.samplers import ddim_sample, ddpm_sample
from core.nets import build as models
from core.training.config import TrainConfig, build_diffusion, ema_decay_at, learning_rate_at, timestep_probabilities
from core.training.stats import Preview


class TrainingFailed(RuntimeError):
    """The loss or gradient stopped being finite; the message says at which step."""


@dataclass
class TrainState:
    """Everything that changes while training, and what it needs to take a step."""

    config: TrainConfig
    diffusion: GaussianDiffusion
    data: torch.Tensor  # the whole training set, on the device
    model: torch.nn.Module
    ema: torch.nn.Module  # the exponential moving average of `model`'s weights
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # every random draw of training
    step: int = 0  # optimizer updates done
    channels_last: bool = False
    autocast: bool = False  # bf16 autocast, where core.runtime says the device supports it
    t_probabilities: torch.Tensor | None = None  # how t is drawn (None = uniformly: config.timestep_probabilities)

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def data_kind(self) -> str:
        return "image" if self.data.ndim == 4 else "points"


@dataclass(frozen=True)
class StepResult:
    """What one step reports: the batch loss, the gradient norm before clipping, and per-example mse and t."""

    loss: float
    grad_norm: float
    mse: torch.Tensor  # [batch], on the CPU
    t: torch.Tensor  # [batch], on the CPU


@functools.lru_cache(maxsize=8)
def load_training_data(name: str, seed: int, toy_points: int) -> Dataset:
    """The training split, loaded once per process: jobs share it (training never modifies it in place)."""
    return load_dataset(name, split="train", seed=seed, n_points=toy_points)


def build_state(config: TrainConfig, dataset: Dataset | None = None) -> TrainState:
    """A fresh TrainState at step 0 for `config` (the dataset is loaded unless given)."""
    device = runtime.resolve_device(config.device)
    diffusion = build_diffusion(config)
    if dataset is None:
        dataset = load_training_data(config.dataset, config.seed, config.toy_points)
    elif not isinstance(dataset, Dataset) or dataset.name != config.dataset:
        raise ValueError(f"dataset must be the core.data.datasets.Dataset {config.dataset!r} of the config, "
                         f"got {getattr(dataset, 'name', type(dataset).__name__)!r}")
    data_shape = tuple(dataset.data.shape[1:])
    model_config = models.model_config_for(dataset.kind, data_shape, config.model_size,
                                           diffusion.out_channels(data_shape[0]))
    with torch.random.fork_rng(devices=[]):  # layer initialisers draw from the global RNG
        torch.manual_seed(config.seed)
        model = models.build_model(model_config)
    channels_last = device.type == "cuda" and dataset.kind == "image"  # faster convolutions on GPUs
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format)
    data = dataset.data.to(device)
    if channels_last:
        data = data.contiguous(memory_format=torch.channels_last)
    return TrainState(
        config=config, diffusion=diffusion, data=data, model=model,
        ema=copy.deepcopy(model).requires_grad_(False).eval(),
        optimizer=torch.optim.Adam(model.parameters(), lr=config.learning_rate),
        generator=torch.Generator(device=device).manual_seed(config.seed),
        channels_last=channels_last,
        autocast=config.mixed_precision and runtime.autocast_dtype(device) is not None,
        t_probabilities=timestep_probabilities(config, diffusion))


def train_step(state: TrainState, loss_hook=None) -> StepResult:
    """One update of Algorithm 1 (Ho et al. 2020); raises TrainingFailed (and changes nothing) when the loss
    or the gradient is not finite. `loss_hook(step, loss) -> loss` may replace the batch loss (tests, extras)."""
    config, k = state.config, state.step
    # 1. x_0 ~ q(x_0): a uniform minibatch with replacement (the same draw whatever the data order).
    index = torch.randint(0, state.data.shape[0], (config.batch_size,), generator=state.generator, device=state.device)
    x0 = state.data[index]
    if state.channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    # 2.-4. t ~ U{0..T-1} (or the configured noise-level distribution), ε ~ N(0, I), and the loss
    #       ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖² (or its x₀ / v / hybrid variant): all inside training_losses,
    #       which draws from the same generator.
    state.model.train()
    with runtime.autocast(state.device, enabled=state.autocast):
        losses = state.diffusion.training_losses(state.model, x0, generator=state.generator,
                                                 t_probabilities=state.t_probabilities)
    loss = losses["loss"].float().mean()
    if loss_hook is not None:
        loss = loss_hook(k, loss)
    # 5. Gradient of the batch loss, clipped to a global norm (large early gradients otherwise derail Adam).
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    max_norm = config.grad_clip if config.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), max_norm)
    # 6. One host transfer per step: loss and gradient norm (checked BEFORE the update, so a bad step changes
    #    nothing) plus the per-example mse and t for the loss-per-timestep profile.
    batch = config.batch_size
    summary = torch.cat([loss.detach().reshape(1), grad_norm.detach().float().reshape(1),
                         losses["mse"].detach().float(), losses["t"].float()]).cpu()
    loss_value, norm_value = float(summary[0]), float(summary[1])
    for what, value in (("loss", loss_value), ("gradient norm", norm_value)):
        if not math.isfinite(value):
            kind = "NaN" if math.isnan(value) else "infinite"
            raise TrainingFailed(
                f"training stopped at step {k + 1}: the {what} is {kind} (learning rate "
                f"{learning_rate_at(config, k):.3g}); the weights are those after step {k}. "
                f"Try a lower learning rate, gradient clipping or another schedule.")
    # 7. Adam step at this step's learning rate (warm-up, then constant or cosine).
    for group in state.optimizer.param_groups:
        group["lr"] = learning_rate_at(config, k)
    state.optimizer.step()
    # 8. EMA of the weights, with the warm-up decay.
    update_ema(state.ema, state.model, ema_decay_at(config.ema_decay, k))
    state.step = k + 1
    return StepResult(loss=loss_value, grad_norm=norm_value, mse=summary[2:2 + batch], t=summary[2 + batch:])


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model for the parameters; buffers are copied."""
    for ema_param, param in zip(ema.parameters(), model.parameters()):
        ema_param.lerp_(param, 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers()):
        ema_buffer.copy_(buffer)


@torch.no_grad()
def make_preview(state: TrainState) -> Preview:
    """Samples from the EMA weights with a fixed seed, so successive previews are comparable: DDIM with
    clipped x̂₀ for images; respaced DDPM for 2-D points, where deterministic few-step DDIM throws a few
    tail points of x_T far away (x̂₀ = (x_t − √(1−ᾱ)ε̂)/√ᾱ amplifies ε̂'s error by 1/√ᾱ_T ≈ 150) and
    no clipping range fits every toy."""
    config = state.config
    count = config.effective_preview_count
    steps = min(config.preview_steps, state.diffusion.T)
    generator = torch.Generator(device=state.device).manual_seed(config.seed + 1)
    shape = (count, *state.data.shape[1:])
    with runtime.autocast(state.device, enabled=state.autocast):
        if state.data_kind == "image":
            samples = ddim_sample(state.ema, state.diffusion, shape, steps, eta=0.0, generator=generator,
                                  clip_x0=True, device=state.device)
        else:
            samples = ddpm_sample(state.ema, state.diffusion, shape, steps=steps, generator=generator,
                                  device=state.device)
    samples = samples.float().cpu()
    grid = None
    if state.data_kind == "image":
        grid = make_grid(samples.clamp(-1, 1), nrow=max(1, math.isqrt(count - 1) + 1))
    return Preview(step=state.step, kind=state.data_kind, samples=samples, grid=grid)
