"""The training engine: a `TrainConfig` and a `Trainer` that runs the loop in a background thread.

One training step (Ho et al. 2020, Algorithm 1, with the Improved-DDPM hybrid loss when the variance is
learned, Nichol & Dhariwal 2021 eq. 16):
    x_0 ~ data (uniform minibatch, with replacement), t ~ U{0..T-1}, ε ~ N(0, I)
    loss = mean over the batch of GaussianDiffusion.training_losses(...)["loss"]
    Adam step (linear warm-up, then constant or cosine-decayed learning rate, optional grad-norm clipping)
    EMA update of the weights with decay_k = min(ema_decay, (1 + k)/(10 + k)) at update k = 0, 1, ...
The EMA warm-up keeps the average from being dominated by the random initial weights early on; the EMA
model is what previews, `export_model` and checkpoints use.

Every random draw (minibatches, t, ε) comes from one `torch.Generator` owned by the job, seeded with
`config.seed`; its state is saved in checkpoints, so a stopped or reloaded run continues exactly as an
uninterrupted one would. Nothing here imports Streamlit: the app polls `Trainer.snapshot()`.

Device and CPU threads: core/runtime.py.

Initial weights: the network is built while the global torch RNG is temporarily seeded with config.seed
(`torch.random.fork_rng`, restored afterwards), so the same config always starts from the same weights.
"""

from __future__ import annotations

import base64
import copy
import functools
import math
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from core import checkpoints
from core.data.datasets import DATASET_NAMES, TOY_NAMES, Dataset, load_dataset
from core.data.images import make_grid
from core.diffusion.gaussian_diffusion import PREDICTIONS, VARIANCES, GaussianDiffusion
from core.diffusion.samplers import ddim_sample, ddpm_sample
from core.diffusion.schedules import MAX_T, SCHEDULE_KINDS, make_schedule
from core.nets import build as models
from core.runtime import DEVICES, configure_cpu_threads, describe_device, resolve_device

LR_SCHEDULES = ("constant", "cosine")
STATES = ("idle", "queued", "running", "stopping", "stopped", "finished", "failed")
ACTIVE_STATES = ("queued", "running", "stopping")
LOSS_HISTORY_POINTS = 500  # the loss curve is averaged down so it never holds more points than this
PROFILE_BINS = 20  # per-timestep loss profile: t is split into this many equal bins
PROFILE_WINDOW = 512  # examples per bin after which the profile average becomes exponential
RATE_WINDOW = 50  # images/s is measured over the last this-many steps
DEFAULT_PREVIEW_IMAGES = 16
DEFAULT_PREVIEW_POINTS = 512
MAX_PREVIEW = 4096


# ------------------------------------------------------------------------------------------ config
@dataclass
class TrainConfig:
    """Everything that defines a training run (JSON round trip with `to_json` / `from_json`).

    The defaults are the recipe of the shipped MNIST models (tiny UNet, linear T = 1000, lr 2e-3 with 200
    warm-up steps, EMA 0.999 with warm-up; see checkpoints/README.md), which gives digits on a 2-core CPU.
    model_size:     a size of core.nets.build for the dataset kind (UNet sizes for images, MLP sizes for 2-D toys)
    schedule, T, beta_start, beta_end, scale_with_T:  see core.diffusion.schedules.make_schedule
    prediction, variance:  see core.diffusion.gaussian_diffusion.GaussianDiffusion
    learning_rate:  peak Adam learning rate, reached linearly over warmup_steps, then held ("constant")
                    or decayed to 0 at total_steps along a half cosine ("cosine")
    ema_decay:      0 disables the EMA (the EMA model then equals the raw model)
    grad_clip:      maximum global gradient norm; 0 disables clipping
    device:         "auto" (CUDA when available), "cpu" or "cuda"
    mixed_precision: bf16 autocast on CUDA GPUs that support it (ignored on CPU)
    preview_every:  steps between preview samples from the EMA model (0 = only at the end)
    preview_count:  samples per preview (None = 16 images or 512 points); preview_steps: DDIM steps (at most T)
    toy_points:     size of the training set drawn for a 2-D toy dataset
    """

    dataset: str = "mnist"
    model_size: str = "tiny"
    schedule: str = "linear"
    T: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    scale_with_T: bool = False
    prediction: str = "eps"
    variance: str = "fixed_small"
    batch_size: int = 64
    learning_rate: float = 2e-3
    lr_schedule: str = "constant"
    warmup_steps: int = 200
    total_steps: int = 3000
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    preview_every: int = 250
    preview_count: int | None = None
    preview_steps: int = 20
    toy_points: int = 8192

    def to_json(self) -> dict:
        """A plain dict of JSON-able values."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        """Inverse of `to_json`; missing entries take the defaults, unknown ones are an error. Validated."""
        if not isinstance(data, dict):
            raise ValueError(f"a training config must be a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config entries {unknown}; allowed: {sorted(known)}")
        config = cls(**data)
        config.validate()
        return config

    @property
    def data_kind(self) -> str:
        return "points" if self.dataset in TOY_NAMES else "image"

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the field, its value and what is allowed; returns self when valid."""
        _choice("dataset", self.dataset, DATASET_NAMES)
        _choice("model_size", self.model_size, models.SIZE_NAMES)
        _choice("schedule", self.schedule, SCHEDULE_KINDS)
        _integer("T", self.T, 1, MAX_T)
        for name in ("beta_start", "beta_end"):
            _number(name, getattr(self, name), 0.0, 1.0, open_low=True, open_high=True)
        _boolean("scale_with_T", self.scale_with_T)
        _choice("prediction", self.prediction, PREDICTIONS)
        _choice("variance", self.variance, VARIANCES)
        _integer("batch_size", self.batch_size, 1, 65536)
        _number("learning_rate", self.learning_rate, 0.0, 1.0, open_low=True)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _integer("warmup_steps", self.warmup_steps, 0)
        _integer("total_steps", self.total_steps, 1)
        _number("ema_decay", self.ema_decay, 0.0, 1.0, open_high=True)
        _number("grad_clip", self.grad_clip, 0.0, math.inf)
        _integer("seed", self.seed, 0, 2**63 - 1)
        _choice("device", self.device, DEVICES)
        _boolean("mixed_precision", self.mixed_precision)
        _integer("preview_every", self.preview_every, 0)
        if self.preview_count is not None:
            _integer("preview_count", self.preview_count, 1, MAX_PREVIEW)
        _integer("preview_steps", self.preview_steps, 1, MAX_T)
        _integer("toy_points", self.toy_points, 1, 10_000_000)
        # Combinations: make_schedule knows which beta ranges / scale_with_T settings are impossible.
        build_diffusion(self)
        return self

    @property
    def effective_preview_count(self) -> int:
        if self.preview_count is not None:
            return self.preview_count
        return DEFAULT_PREVIEW_POINTS if self.data_kind == "points" else DEFAULT_PREVIEW_IMAGES


def _choice(name, value, allowed, context=""):
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed{context}; expected one of {', '.join(map(str, allowed))}")


def _integer(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        raise ValueError(f"{name}={value!r} is not allowed; expected {allowed}")


def _number(name, value, low, high, open_low=False, open_high=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    ok = ok and (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    if not ok:
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ValueError(f"{name}={value!r} is not allowed; expected a number in {interval}")


def _boolean(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not allowed; expected True or False")


def build_diffusion(config: TrainConfig) -> GaussianDiffusion:
    """The GaussianDiffusion a config describes (make_schedule raises on impossible combinations)."""
    schedule = make_schedule(config.schedule, config.T, config.beta_start, config.beta_end, config.scale_with_T)
    return GaussianDiffusion(schedule, config.prediction, config.variance)


@functools.lru_cache(maxsize=8)
def load_training_data(name: str, seed: int, toy_points: int) -> Dataset:
    """The training split, loaded once per process: jobs share it (training never modifies it in place)."""
    return load_dataset(name, split="train", seed=seed, n_points=toy_points)


def learning_rate_at(config: TrainConfig, step: int) -> float:
    """Learning rate for update number `step` (0-based): linear warm-up, then constant or half-cosine."""
    peak = config.learning_rate
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return peak
    decay_steps = max(1, config.total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def ema_decay_at(ema_decay: float, step: int) -> float:
    """decay_k = min(ema_decay, (1 + k)/(10 + k)): a short average early, the full decay later."""
    return min(ema_decay, (1.0 + step) / (10.0 + step))


# ---------------------------------------------------------------------------------------- statistics
class LossHistory:
    """The loss curve, averaged down so it never holds more than `max_points` points.

    Each point averages `bucket` consecutive steps; when the list is full, neighbouring points are merged
    in pairs and `bucket` doubles, so every stored point is a plain mean over equally many steps.
    """

    def __init__(self, max_points: int = LOSS_HISTORY_POINTS):
        if max_points < 2 or max_points % 2:
            raise ValueError(f"max_points must be an even integer >= 2, got {max_points!r}")
        self.max_points = max_points
        self.bucket = 1
        self.steps: list[int] = []  # the last step (1-based) each point covers
        self.losses: list[float] = []
        self._pending_sum = 0.0
        self._pending_count = 0

    def add(self, step: int, loss: float) -> None:
        self._pending_sum += loss
        self._pending_count += 1
        if self._pending_count == self.bucket:
            self.steps.append(step)
            self.losses.append(self._pending_sum / self.bucket)
            self._pending_sum, self._pending_count = 0.0, 0
            if len(self.losses) == self.max_points:
                self.steps = self.steps[1::2]
                self.losses = [(a + b) / 2 for a, b in zip(self.losses[::2], self.losses[1::2])]
                self.bucket *= 2

    def state(self) -> dict:
        return {"max_points": self.max_points, "bucket": self.bucket, "steps": list(self.steps),
                "losses": list(self.losses), "pending_sum": self._pending_sum, "pending_count": self._pending_count}

    @classmethod
    def from_state(cls, state: dict) -> LossHistory:
        """Inverse of `state()` (checked: it may come from a file)."""
        history = cls(state["max_points"])
        _integer("bucket", state["bucket"], 1)
        _integer("pending_count", state["pending_count"], 0, state["bucket"] - 1)
        if not (len(state["steps"]) == len(state["losses"]) < history.max_points
                and all(isinstance(v, (int, float)) for v in state["steps"] + state["losses"] + [state["pending_sum"]])):
            raise ValueError("loss history: steps and losses must be equally long lists of numbers")
        history.bucket, history.steps, history.losses = state["bucket"], list(state["steps"]), list(state["losses"])
        history._pending_sum, history._pending_count = state["pending_sum"], state["pending_count"]
        return history


class TimestepProfile:
    """Running average of the per-example mse in PROFILE_BINS equal bins of t.

    With n examples seen in a bin (capped at `window`) and a batch of c examples with mean m, the average
    moves by c/n·(m − average): the exact mean for the first `window` examples, then an exponential
    average over roughly the last `window`, so the profile follows training instead of its start.
    """

    def __init__(self, T: int, bins: int = PROFILE_BINS, window: int = PROFILE_WINDOW):
        self.T, self.bins, self.window = T, min(bins, T), window
        self.averages = [math.nan] * self.bins
        self.counts = [0] * self.bins

    def bin_edges(self) -> list[int]:
        """Bin b holds t with edges[b] <= t < edges[b + 1]."""
        return [math.ceil(b * self.T / self.bins) for b in range(self.bins + 1)]

    def add(self, t: torch.Tensor, mse: torch.Tensor) -> None:
        which = (t.long() * self.bins) // self.T  # = b exactly for edges[b] <= t < edges[b+1]
        sums = torch.zeros(self.bins, dtype=torch.float64).index_add_(0, which, mse.double())
        counts = torch.bincount(which, minlength=self.bins)
        for b in torch.nonzero(counts).flatten().tolist():
            c = int(counts[b])
            batch_mean = float(sums[b]) / c
            self.counts[b] = min(self.counts[b] + c, self.window)
            previous = 0.0 if math.isnan(self.averages[b]) else self.averages[b]
            self.averages[b] = previous + c / self.counts[b] * (batch_mean - previous)

    def state(self) -> dict:
        return {"T": self.T, "bins": self.bins, "window": self.window,
                "averages": [None if math.isnan(a) else a for a in self.averages], "counts": list(self.counts)}

    @classmethod
    def from_state(cls, state: dict) -> TimestepProfile:
        """Inverse of `state()` (checked: it may come from a file)."""
        for name in ("T", "bins", "window"):
            _integer(name, state[name], 1)
        profile = cls(state["T"], state["bins"], state["window"])
        if not (len(state["averages"]) == len(state["counts"]) == profile.bins
                and all(a is None or isinstance(a, (int, float)) for a in state["averages"])
                and all(isinstance(c, int) and c >= 0 for c in state["counts"])):
            raise ValueError(f"timestep profile: averages and counts must be lists of {profile.bins} numbers")
        profile.averages = [math.nan if a is None else a for a in state["averages"]]
        profile.counts = list(state["counts"])
        return profile


@dataclass(frozen=True)
class Preview:
    """Samples from the EMA model after `step` steps: `samples` is a float CPU tensor ([n, C, H, W] in
    [-1, 1] for images, [n, 2] for points); `grid` the uint8 image grid (images only)."""

    step: int
    kind: str
    samples: torch.Tensor
    grid: object = None


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of a job's progress, safe to read from another thread."""

    state: str
    error: str | None
    message: str | None  # why it stopped, when stopped by someone other than the user
    step: int
    total_steps: int
    loss_steps: list
    loss_history: list  # each point is the mean loss of `loss_bucket` consecutive steps
    loss_bucket: int
    last_loss: float | None  # the latest batch
    profile_edges: list
    profile: list  # average mse per t bin (NaN where no example was seen yet)
    profile_counts: list
    images_per_second: float
    eta_seconds: float | None
    elapsed_seconds: float
    learning_rate: float
    device: str
    parameters: int
    preview: Preview | None
    config: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Trains one model for one TrainConfig in a daemon thread.

    start() / stop() / resume() / save(path) / snapshot() / export_model() may be called from any thread.
    `loss_hook(step, loss) -> loss`, if given, sees every batch loss (a 0-d tensor) before the backward pass
    and returns the loss to use: for monitoring, extra regularisers, or injecting faults in tests.
    `on_exit(trainer)` is called (outside the trainer's locks) whenever the thread ends.
    `dataset` may pass the already loaded core.data.datasets.Dataset of config.dataset.
    """

    def __init__(self, config: TrainConfig, loss_hook=None, on_exit=None, dataset=None):
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config = copy.deepcopy(config).validate()
        self.loss_hook, self.on_exit = loss_hook, on_exit
        self.device = resolve_device(self.config.device)
        self.diffusion = build_diffusion(self.config)
        if dataset is None:
            dataset = load_training_data(self.config.dataset, self.config.seed, self.config.toy_points)
        elif not isinstance(dataset, Dataset) or dataset.name != self.config.dataset:
            raise ValueError(f"dataset must be the core.data.datasets.Dataset {self.config.dataset!r} of the config, "
                             f"got {getattr(dataset, 'name', type(dataset).__name__)!r}")
        self.data_kind = dataset.kind
        self.data_shape = tuple(dataset.data.shape[1:])
        model_config = models.model_config_for(self.data_kind, self.data_shape, self.config.model_size,
                                               self.diffusion.out_channels(self.data_shape[0]))
        with torch.random.fork_rng(devices=[]):  # layer initialisers draw from the global RNG
            torch.manual_seed(self.config.seed)
            self.model = models.build_model(model_config)
        self.channels_last = self.device.type == "cuda" and self.data_kind == "image"
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model.to(self.device, memory_format=memory_format)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.data = dataset.data.to(self.device)
        if self.channels_last:
            self.data = self.data.contiguous(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.learning_rate)
        self.generator = torch.Generator(device=self.device).manual_seed(self.config.seed)
        self.autocast = (self.config.mixed_precision and self.device.type == "cuda"
                         and torch.cuda.is_bf16_supported())
        self.parameters = models.count_parameters(self.model)

        self.step = 0  # optimizer updates done
        self.history = LossHistory()
        self.profile = TimestepProfile(self.diffusion.T)
        self._lock = threading.Lock()  # guards the statistics and the state below
        self._model_lock = threading.Lock()  # held while weights, optimizer and step change together
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "idle"
        self._error: str | None = None
        self._message: str | None = None
        self._last_loss: float | None = None
        self._elapsed_before = 0.0  # training time of earlier runs (start/resume segments)
        self._run_started: float | None = None
        self._rate_window: deque = deque(maxlen=RATE_WINDOW)
        self._preview: Preview | None = None
        if self.device.type == "cpu":
            configure_cpu_threads()
        self._device_name = describe_device(self.device)

    # ----------------------------------------------------------------------------------- control
    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def mark_queued(self) -> None:
        """Used by a job registry: the job waits for a free slot (from idle or stopped)."""
        with self._lock:
            if self._state not in ("idle", "stopped", "finished"):
                raise ValueError(f"only an idle, stopped or finished job can be queued; this one is {self._state!r}")
            self._state = "queued"

    def start(self) -> None:
        """Begin training (from idle, or queued before its first step)."""
        with self._lock:
            if self._state not in ("idle", "queued") or self.step > 0:
                raise ValueError(f"start() needs a job that has not run yet; this one is {self._state!r} "
                                 f"at step {self.step} (use resume())")
            self._launch()

    def resume(self, total_steps: int | None = None) -> None:
        """Continue a stopped job (or a finished one, given a larger total_steps) from where it left off,
        with the same optimizer state, step count and generator state. Waits if a stop is under way."""
        if self.state == "stopping":
            self.join()  # the stop takes effect after the current step
        with self._lock:
            if self._state not in ("stopped", "finished", "queued"):
                raise ValueError(f"resume() needs a stopped job; this one is {self._state!r}")
            if total_steps is not None:
                self._set_total_steps(total_steps)
            if self.step >= self.config.total_steps:
                raise ValueError(f"the job already did all {self.config.total_steps} steps; "
                                 f"pass a larger total_steps to train further")
            self._launch()

    def set_total_steps(self, total_steps: int) -> None:
        """Change the planned number of steps of a job that is not training (must exceed the steps done)."""
        with self._lock:
            if self._state in ("running", "stopping"):
                raise ValueError(f"total_steps can only change while the job is not training; it is {self._state!r}")
            self._set_total_steps(total_steps)

    def _set_total_steps(self, total_steps: int) -> None:  # caller holds self._lock
        _integer("total_steps", total_steps, self.step + 1)
        self.config.total_steps = total_steps

    def _launch(self) -> None:  # caller holds self._lock
        self._stop_requested.clear()
        self._state, self._error, self._message = "running", None, None
        self._run_started = time.monotonic()
        self._rate_window.clear()
        self._thread = threading.Thread(target=self._run, name=f"trainer-{id(self):x}", daemon=True)
        self._thread.start()

    def stop(self, message: str | None = None) -> None:
        """Ask the loop to stop before its next step (the model stays consistent). Non-blocking."""
        with self._lock:
            if self._state == "running":
                self._state, self._message = "stopping", message
                self._stop_requested.set()
            elif self._state == "queued":
                self._state, self._message = "stopped", message

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the training thread to end; True when no thread is running."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # ------------------------------------------------------------------------------------ the loop
    def _run(self) -> None:
        try:
            while self.step < self.config.total_steps and not self._stop_requested.is_set():
                self._train_step()
                if self.config.preview_every and self.step % self.config.preview_every == 0:
                    self._make_preview()
            if self.step >= self.config.total_steps and (self._preview is None or self._preview.step != self.step):
                self._make_preview()
            final_state = "stopped" if self.step < self.config.total_steps else "finished"
            error = None
        except TrainingFailed as failure:
            final_state, error = "failed", str(failure)
        except Exception as exc:  # any error in the thread ends the job visibly instead of silently
            final_state, error = "failed", f"training stopped at step {self.step + 1}: {type(exc).__name__}: {exc}"
        with self._lock:
            self._elapsed_before += time.monotonic() - self._run_started
            self._run_started = None
            self._state, self._error = final_state, error
        if self.on_exit is not None:
            self.on_exit(self)

    def _train_step(self) -> None:
        config, k = self.config, self.step
        index = torch.randint(0, self.data.shape[0], (config.batch_size,), generator=self.generator,
                              device=self.device)
        x0 = self.data[index]
        if self.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            losses = self.diffusion.training_losses(self.model, x0, generator=self.generator)
        loss = losses["loss"].float().mean()
        if self.loss_hook is not None:
            loss = self.loss_hook(k, loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = config.grad_clip if config.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        # One host transfer per step: the loss and gradient norm (checked before the update) and the
        # per-example mse and t for the profile.
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
        batch = config.batch_size
        with self._model_lock:
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate_at(config, k)
            self.optimizer.step()
            self._update_ema(ema_decay_at(config.ema_decay, k))
            self.step = k + 1
        with self._lock:
            self._last_loss = loss_value
            self.history.add(k + 1, loss_value)
            self.profile.add(summary[2 + batch:], summary[2:2 + batch])
            self._rate_window.append((time.monotonic(), k + 1))

    @torch.no_grad()
    def _update_ema(self, decay: float) -> None:
        for ema_param, param in zip(self.ema.parameters(), self.model.parameters()):
            ema_param.lerp_(param, 1.0 - decay)  # ema ← decay·ema + (1 − decay)·param
        for ema_buffer, buffer in zip(self.ema.buffers(), self.model.buffers()):
            ema_buffer.copy_(buffer)

    @torch.no_grad()
    def _make_preview(self) -> None:
        """Samples from the EMA weights with a fixed seed, so successive previews are comparable: DDIM with
        clipped x̂₀ for images; respaced DDPM for 2-D points, where deterministic few-step DDIM throws a few
        tail points of x_T far away (x̂₀ = (x_t − √(1−ᾱ)ε̂)/√ᾱ amplifies ε̂'s error by 1/√ᾱ_T ≈ 150) and
        no clipping range fits every toy."""
        count = self.config.effective_preview_count
        steps = min(self.config.preview_steps, self.diffusion.T)
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 1)
        shape = (count, *self.data_shape)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            if self.data_kind == "image":
                samples = ddim_sample(self.ema, self.diffusion, shape, steps, eta=0.0, generator=generator,
                                      clip_x0=True, device=self.device)
            else:
                samples = ddpm_sample(self.ema, self.diffusion, shape, steps=steps, generator=generator,
                                      device=self.device)
        samples = samples.float().cpu()
        grid = None
        if self.data_kind == "image":
            grid = make_grid(samples.clamp(-1, 1), nrow=max(1, math.isqrt(count - 1) + 1))
        with self._lock:
            self._preview = Preview(step=self.step, kind=self.data_kind, samples=samples, grid=grid)

    # ------------------------------------------------------------------------------------ reading
    def _elapsed_now(self) -> float:  # caller holds self._lock
        running = self._run_started is not None
        return self._elapsed_before + (time.monotonic() - self._run_started if running else 0.0)

    def snapshot(self) -> Snapshot:
        with self._lock:
            elapsed = self._elapsed_now()
            rate = 0.0
            if len(self._rate_window) >= 2:
                (t0, s0), (t1, s1) = self._rate_window[0], self._rate_window[-1]
                rate = (s1 - s0) * self.config.batch_size / max(t1 - t0, 1e-9)
            remaining = self.config.total_steps - self.step
            eta = remaining * self.config.batch_size / rate if rate > 0 else (0.0 if remaining == 0 else None)
            return Snapshot(
                state=self._state, error=self._error, message=self._message, step=self.step,
                total_steps=self.config.total_steps, loss_steps=list(self.history.steps),
                loss_history=list(self.history.losses), loss_bucket=self.history.bucket, last_loss=self._last_loss,
                profile_edges=self.profile.bin_edges(), profile=list(self.profile.averages),
                profile_counts=list(self.profile.counts), images_per_second=rate, eta_seconds=eta,
                elapsed_seconds=elapsed, learning_rate=learning_rate_at(self.config, min(self.step, self.config.total_steps - 1)),
                device=self._device_name, parameters=self.parameters, preview=self._preview,
                config=self.config.to_json())

    def export_model(self, device="cpu") -> torch.nn.Module:
        """A copy of the EMA model (eval mode, on `device`) for sampling; training may continue meanwhile."""
        with self._model_lock:
            model = copy.deepcopy(self.ema)
        return model.to(device, memory_format=torch.contiguous_format).eval()

    # ---------------------------------------------------------------------------------- checkpoints
    def save(self, path) -> Path:
        """Write a checkpoint (EMA + raw weights, optimizer and generator state) at any time."""
        with self._model_lock:
            ema = copy.deepcopy(self.ema).to("cpu", memory_format=torch.contiguous_format)
            raw = copy.deepcopy(self.model).to("cpu", memory_format=torch.contiguous_format)
            optimizer_state = _to_cpu(self.optimizer.state_dict())
            generator_state = self.generator.get_state()
            step = self.step
        with self._lock:
            training = {
                "config": self.config.to_json(),
                "step": step,
                "generator_state": base64.b64encode(generator_state.numpy().tobytes()).decode("ascii"),
                "generator_device": self.device.type,
                "loss_history": self.history.state(),
                "profile": self.profile.state(),
            }
            metadata = {
                "training": training,
                "data": {"dataset": self.config.dataset, "shape": list(self.data_shape)},
                "steps": step,
                "final_loss": self._last_loss,
                "training_seconds": self._elapsed_now(),
                "device": self._device_name,
            }
        return checkpoints.save(path, ema, self.diffusion, metadata, raw_model=raw, optimizer_state=optimizer_state)

    @classmethod
    def from_checkpoint(cls, path, device: str | None = None, loss_hook=None, on_exit=None) -> Trainer:
        """A stopped Trainer that continues the saved run: resume() picks up at the saved step.

        device overrides the saved config's device ("auto" | "cpu" | "cuda"). The generator state only
        carries over to the same device type; on another device the run continues from a fresh seed.
        """
        state = checkpoints.load_for_resume(path)
        training = state.metadata["training"]
        if not isinstance(training, dict) or "config" not in training or state.raw_state is None:
            raise checkpoints.CheckpointError(f"{path} holds no training state to resume from "
                                              f"(it was not saved by a Trainer, or saved for sampling only)")
        try:
            config = TrainConfig.from_json(training["config"])
            if device is not None:
                config.device = device
            trainer = cls(config, loss_hook=loss_hook, on_exit=on_exit)
            trainer.model.load_state_dict(state.raw_state)
            trainer.ema.load_state_dict(state.model.state_dict())
            if state.optimizer_state is not None:
                trainer.optimizer.load_state_dict(state.optimizer_state)
            if training.get("generator_device") == trainer.device.type:
                raw = base64.b64decode(training["generator_state"], validate=True)
                trainer.generator.set_state(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
            trainer.step = _integer_field(training, "step")
            trainer.history = LossHistory.from_state(training["loss_history"])
            trainer.profile = TimestepProfile.from_state(training["profile"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            if isinstance(error, checkpoints.CheckpointError):
                raise
            raise checkpoints.CheckpointError(f"{path}: its training state cannot be resumed: {error}") from error
        trainer._elapsed_before = state.metadata["training_seconds"] or 0.0
        trainer._last_loss = state.metadata["final_loss"]
        trainer._state = "finished" if trainer.step >= config.total_steps else "stopped"
        return trainer


def _integer_field(container: dict, key: str) -> int:
    value = container[key]
    _integer(key, value, 0)
    return value


class TrainingFailed(RuntimeError):
    """The loss or gradient stopped being finite; the message says at which step."""


def _to_cpu(value):
    """Deep copy of a (nested) optimizer state dict with every tensor moved to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value
