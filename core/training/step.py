"""The training algorithm, top to bottom: a plain `TrainState` and `train_step` (no threads, no locks).

One training step (Ho et al. 2020, Algorithm 1, with the Improved-DDPM hybrid loss when the variance is
learned, Nichol & Dhariwal 2021 eq. 16), then an Adam update and an EMA update of the weights with
decay_k = min(ema_decay, (1 + k)/(10 + k)) at update k = 0, 1, ... The EMA warm-up keeps the average from
being dominated by the random initial weights early on; the EMA model is what previews and checkpoints use.

Every random draw (minibatches, t, ε) comes from `state.generator`, seeded with `config.seed`; its state is
saved in checkpoints, so a stopped or reloaded run continues exactly as an uninterrupted one would.
Initial weights: the network is built while the global torch RNG is temporarily seeded with config.seed
(`torch.random.fork_rng`, restored afterwards), so the same config always starts from the same weights.

A loss or gradient that is not finite changes no weights and is reported (TrainingFailed) with its step. On the CPU
the step's summary (loss, gradient norm, per-example mse and t) reaches the host in one transfer and is checked
before the Adam and EMA updates. On CUDA (`TrainState.device_guard`) the host does not wait before updating: the
check runs on the device, fused Adam skips its update when the step's `found_inf` flag is set (its moments and step
count stay as they were), the EMA moves by (1 − decay)·(1 − flag), and the flag is sticky, so once a step was bad no
later step changes a weight either. The summary is copied into pinned host memory without blocking. `train_step`
still reads it at the end of its step (one wait, after everything is queued); `queue_step` returns the PREVIOUS
step's summary instead, read while the GPU computes this one, so the host never waits for the device, and `settle`
reads the last one (before reading weights on the host, saving, or ending a run).
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
from core.nets import build as models
from core.sampling import SamplerMethod, sample
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
    device_guard: bool = False  # non-finite steps are caught on the device (CUDA; see the module docstring)
    skip: torch.Tensor | None = None  # device_guard: 1.0 once a step was not finite (no later update applies)
    in_flight: InFlight | None = None  # queue_step: the summary of the last step, not read yet
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
    step: int = 0  # the update it reports, 1-based (state.step right after that update)


@dataclass
class InFlight:
    """A guarded step whose summary is on its way to the host: `summary` fills when `ready` (a CUDA event, None on
    the CPU) has passed."""

    step: int  # 0-based index of the update
    summary: torch.Tensor  # [2 + 2·batch]: loss, gradient norm, mse, t
    ready: object = None


@functools.lru_cache(maxsize=8)
def load_training_data(name: str, seed: int, toy_points: int) -> Dataset:
    """The training split, loaded once per process: jobs share it (training never modifies it in place)."""
    return load_dataset(name, split="train", seed=seed, n_points=toy_points)


def build_state(config: TrainConfig, dataset: Dataset | None = None, device_guard: bool | None = None) -> TrainState:
    """A fresh TrainState at step 0 for `config` (the dataset is loaded unless given). device_guard: check steps on
    the device (fused Adam with found_inf); default on CUDA only (tests force it on the CPU)."""
    device = runtime.resolve_device(config.device)
    guard = device.type == "cuda" if device_guard is None else bool(device_guard)
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
        optimizer=torch.optim.Adam(model.parameters(), lr=config.learning_rate, **({"fused": True} if guard else {})),
        device_guard=guard,
        generator=torch.Generator(device=device).manual_seed(config.seed),
        channels_last=channels_last,
        autocast=config.mixed_precision and runtime.autocast_dtype(device) is not None,
        t_probabilities=timestep_probabilities(config, diffusion))


def train_step(state: TrainState, loss_hook=None) -> StepResult:
    """One update of Algorithm 1 (Ho et al. 2020); raises TrainingFailed (and changes no weights) when the loss
    or the gradient is not finite. `loss_hook(step, loss) -> loss` may replace the batch loss (tests, extras).
    With state.device_guard (CUDA) the check runs on the device and this waits once, at the end, for the summary."""
    if state.device_guard:
        if state.in_flight is not None:
            raise ValueError("a queued step has not been reported yet: call settle(state) before train_step")
        state.in_flight = _queue_guarded_step(state, loss_hook)
        return settle(state)
    config, k = state.config, state.step
    loss, grad_norm, losses = _gradients(state, loss_hook)
    # 6. One host transfer per step: loss and gradient norm (checked BEFORE the update, so a bad step changes
    #    nothing) plus the per-example mse and t for the loss-per-timestep profile.
    result = _report(state, k, _summary(loss, grad_norm, losses).cpu())
    # 7. Adam step at this step's learning rate (warm-up, then constant or cosine).
    for group in state.optimizer.param_groups:
        group["lr"] = learning_rate_at(config, k)
    state.optimizer.step()
    # 8. EMA of the weights, with the warm-up decay.
    update_ema(state.ema, state.model, ema_decay_at(config.ema_decay, k))
    state.step = k + 1
    return result


def queue_step(state: TrainState, loss_hook=None) -> StepResult | None:
    """One update of Algorithm 1 without waiting for the device: returns the summary of the oldest step not yet
    reported, which is this step's on a state without device_guard (the CPU: `train_step`) and the PREVIOUS
    step's with it (CUDA; None after the first), read while the device computes this one. A bad step raises
    TrainingFailed naming it, with state.step set back to it (no later update was applied). Call `settle` for
    the last step before reading the weights on the host, saving or ending the run."""
    if not state.device_guard:
        return train_step(state, loss_hook)
    previous, state.in_flight = state.in_flight, _queue_guarded_step(state, loss_hook)
    if previous is None:
        return None
    try:
        return _read(state, previous)
    except TrainingFailed:
        state.in_flight = None
        raise


def settle(state: TrainState) -> StepResult | None:
    """The summary of the step `queue_step` left in flight (None when there is none); raises TrainingFailed for
    a bad one, with state.step set back to it."""
    pending, state.in_flight = state.in_flight, None
    return None if pending is None else _read(state, pending)


def _gradients(state: TrainState, loss_hook):
    """Steps 1-5 of a training step: (batch loss, gradient norm before clipping, training_losses' dict)."""
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
    return loss, grad_norm, losses


def _summary(loss, grad_norm, losses) -> torch.Tensor:
    """[loss, gradient norm, mse..., t...] in one float32 tensor on the device: one transfer for all of it."""
    return torch.cat([loss.detach().reshape(1), grad_norm.detach().float().reshape(1),
                      losses["mse"].detach().float(), losses["t"].float()])


def _report(state: TrainState, k: int, summary: torch.Tensor) -> StepResult:
    """The StepResult of update k from its summary on the host; TrainingFailed (state.step set back to k, whose
    weights are those after step k) when the loss or the gradient norm is not finite."""
    config, batch = state.config, state.config.batch_size
    loss_value, norm_value = float(summary[0]), float(summary[1])
    for what, value in (("loss", loss_value), ("gradient norm", norm_value)):
        if not math.isfinite(value):
            state.step = k
            kind = "NaN" if math.isnan(value) else "infinite"
            raise TrainingFailed(
                f"training stopped at step {k + 1}: the {what} is {kind} (learning rate "
                f"{learning_rate_at(config, k):.3g}); the weights are those after step {k}. "
                f"Try a lower learning rate, gradient clipping or another schedule.")
    return StepResult(loss=loss_value, grad_norm=norm_value, mse=summary[2:2 + batch], t=summary[2 + batch:], step=k + 1)


def _queue_guarded_step(state: TrainState, loss_hook) -> InFlight:
    """Queue one whole step on the device with no host wait: gradients, the finite check into the sticky skip
    flag, the summary's copy to the host, fused Adam with found_inf = that flag and the guarded EMA."""
    config, k = state.config, state.step
    loss, grad_norm, losses = _gradients(state, loss_hook)
    summary = _summary(loss, grad_norm, losses)
    bad = summary[:2].isfinite().logical_not().any().float()
    state.skip = bad if state.skip is None else torch.maximum(state.skip, bad)
    host, ready = to_host(summary)  # queued before the updates: a reader waits for the gradients, not for Adam
    _ensure_fused(state.optimizer)
    state.optimizer.found_inf = state.skip  # read by fused Adam: no update, moments and step count unchanged
    for group in state.optimizer.param_groups:
        group["lr"] = learning_rate_at(config, k)
    state.optimizer.step()
    update_ema(state.ema, state.model, ema_decay_at(config.ema_decay, k), skip=state.skip)
    state.step = k + 1
    return InFlight(step=k, summary=host, ready=ready)


def _ensure_fused(optimizer: torch.optim.Optimizer) -> None:
    """Only fused Adam reads found_inf. A guarded state restored from an unfused run's checkpoint (the CPU's) gets
    fused=False back from the saved optimizer state, with its step counts on the host: fuse it again, once."""
    for group in optimizer.param_groups:
        if group.get("fused"):
            continue
        group["fused"], group["foreach"] = True, False
        for param in group["params"]:
            param_state = optimizer.state.get(param, {})
            if torch.is_tensor(param_state.get("step")):
                param_state["step"] = param_state["step"].to(device=param.device, dtype=torch.float32)


def to_host(tensor: torch.Tensor):
    """(a host copy of `tensor`, a CUDA event that has passed once the copy is complete): on CUDA a non-blocking
    copy into pinned memory, so the caller does not wait; elsewhere a plain copy and no event."""
    if tensor.device.type != "cuda":
        return tensor.cpu(), None
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    ready = torch.cuda.Event()
    ready.record()
    return host, ready


def _read(state: TrainState, pending: InFlight) -> StepResult:
    if pending.ready is not None:
        pending.ready.synchronize()  # waits for this step's copy only, not for the steps queued after it
    return _report(state, pending.step, pending.summary)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, skip: torch.Tensor | None = None) -> None:
    """ema ← decay·ema + (1 − decay)·model for the parameters, in one foreach call; buffers are copied. skip: a
    0-d tensor on the device, 1.0 to leave the EMA as it is (a guarded step that was not finite)."""
    ema_params, params = list(ema.parameters()), list(model.parameters())
    if skip is None:
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    else:
        differences = torch._foreach_sub(params, ema_params)
        torch._foreach_mul_(differences, (1.0 - skip) * (1.0 - decay))
        torch._foreach_add_(ema_params, differences)
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
            samples = sample(state.ema, state.diffusion, SamplerMethod.DDIM, shape, steps, eta=0.0, generator=generator,
                             clip_x0=True, device=state.device)
        else:
            samples = sample(state.ema, state.diffusion, SamplerMethod.DDPM, shape, steps, generator=generator,
                             device=state.device)
    samples = samples.float().cpu()
    grid = None
    if state.data_kind == "image":
        grid = make_grid(samples.clamp(-1, 1), nrow=max(1, math.isqrt(count - 1) + 1))
    return Preview(step=state.step, kind=state.data_kind, samples=samples, grid=grid)
