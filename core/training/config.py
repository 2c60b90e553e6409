"""`TrainConfig`, everything that defines a training run, and every training recipe of the app in one place.

A TrainConfig is validated once, when it is built (`__post_init__`, with core/checks.py); change one with
`dataclasses.replace`, which validates the new one. `to_json` / `from_json` round-trip it through JSON: that
is how a config crosses into a training worker process and into a checkpoint.

Recipes (each measured; see docs/benchmarks.md and checkpoints/README.md):
* MNIST_CPU_RECIPE: the defaults of TrainConfig itself, the recipe of the shipped MNIST models.
* MNIST_LIGHT_RECIPE / MNIST_STANDARD_RECIPE: the fast CPU recipes, made to be run under a time budget
  (core/training/budget.py plans the steps to fit it): x₀-prediction, training noise levels drawn log-normally
  (ln σ ~ N(0.5, 0.8²): Karras et al. 2022's p_train, with the mean and spread measured here), T = 200 with the β range
  scaled (Ho et al. use T = 1000) and a cosine learning-rate decay. Light: the "slim" UNet at batch 32; standard:
  the "tiny" UNet at batch 64. `pick_fast_recipe` chooses by the measured speed of the light one (the rule below).
  Measured on an AVX2 CPU without bf16 and on this project's bf16 CPU: docs/benchmarks.md, "Digits within a lesson".
* TOY_RECIPE: what the Train page switches to for a 2-D toy (the shipped toy models' recipe).
* PLAYGROUND_RECIPE: the 2-D playground's seconds-long CPU recipe (bench/playground_recipe.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from core.checkpoints.validate import check_model_schedule
from core.checks import check_bool, check_choice, check_int, check_number
from core.data.datasets import DATASET_NAMES, TOY_NAMES
from core.diffusion.gaussian_diffusion import PREDICTIONS, VARIANCES, GaussianDiffusion
from core.diffusion.schedules import MAX_T, SCHEDULE_KINDS, make_schedule
from core.nets.build import SIZE_NAMES
from core.rng import MAX_SEED
from core.runtime import DEVICES

LR_SCHEDULES = ("constant", "cosine")
NOISE_LEVELS = ("uniform", "lognormal")  # how training draws t (core.diffusion.gaussian_diffusion)
DEFAULT_PREVIEW_IMAGES = 16
DEFAULT_PREVIEW_POINTS = 512
MAX_PREVIEW = 4096


@dataclass
class TrainConfig:
    """Everything that defines a training run (JSON round trip with `to_json` / `from_json`).

    The defaults are MNIST_CPU_RECIPE: the recipe of the shipped MNIST models (tiny UNet, linear T = 1000,
    lr 2e-3 with 200 warm-up steps, EMA 0.999 with warm-up; see checkpoints/README.md).
    model_size:     a size of core.nets.build for the dataset kind (UNet sizes for images, MLP sizes for 2-D toys)
    schedule, T, beta_start, beta_end, scale_with_T:  see core.diffusion.schedules.make_schedule
    prediction, variance:  see core.diffusion.gaussian_diffusion.GaussianDiffusion
    learning_rate:  peak Adam learning rate, reached linearly over warmup_steps, then held ("constant")
                    or decayed to 0 at total_steps along a half cosine ("cosine")
    ema_decay:      0 disables the EMA (the EMA model then equals the raw model)
    grad_clip:      maximum global gradient norm; 0 disables clipping
    device:         "auto" (CUDA when available), "cpu" or "cuda"
    mixed_precision: bf16 autocast where core.runtime says the device supports it
    noise_levels:   "uniform" (t ~ U{1..T}, Ho et al.'s Algorithm 1) or "lognormal" (ln σ_t ~ N(lognormal_mean,
                    lognormal_std²), Karras et al. 2022's p_train: GaussianDiffusion.lognormal_timestep_probabilities)
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
    noise_levels: str = "uniform"
    lognormal_mean: float = 0.0
    lognormal_std: float = 1.2
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    preview_every: int = 250
    preview_count: int | None = None
    preview_steps: int = 20
    toy_points: int = 8192

    def __post_init__(self):
        """Raise ValueError naming the field, its value and what is allowed."""
        check_choice("dataset", self.dataset, DATASET_NAMES)
        check_choice("model_size", self.model_size, SIZE_NAMES)
        check_choice("schedule", self.schedule, SCHEDULE_KINDS)
        check_int("T", self.T, 1, MAX_T)
        for name in ("beta_start", "beta_end"):
            check_number(name, getattr(self, name), 0.0, 1.0, open_low=True, open_high=True)
        check_bool("scale_with_T", self.scale_with_T)
        check_choice("prediction", self.prediction, PREDICTIONS)
        check_choice("variance", self.variance, VARIANCES)
        check_int("batch_size", self.batch_size, 1, 65536)
        check_number("learning_rate", self.learning_rate, 0.0, 1.0, open_low=True)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_int("warmup_steps", self.warmup_steps, 0)
        check_int("total_steps", self.total_steps, 1)
        check_number("ema_decay", self.ema_decay, 0.0, 1.0, open_high=True)
        check_number("grad_clip", self.grad_clip, 0.0)
        check_choice("noise_levels", self.noise_levels, NOISE_LEVELS)
        check_number("lognormal_mean", self.lognormal_mean, -10.0, 10.0)
        check_number("lognormal_std", self.lognormal_std, 0.05, 10.0)
        check_int("seed", self.seed, 0, MAX_SEED)
        check_choice("device", self.device, DEVICES)
        check_bool("mixed_precision", self.mixed_precision)
        check_int("preview_every", self.preview_every, 0)
        if self.preview_count is not None:
            check_int("preview_count", self.preview_count, 1, MAX_PREVIEW)
        check_int("preview_steps", self.preview_steps, 1, MAX_T)
        check_int("toy_points", self.toy_points, 1, 10_000_000)
        build_diffusion(self)  # make_schedule knows which beta ranges / scale_with_T settings are impossible

    def validate(self) -> TrainConfig:
        """Check again (after a field was assigned directly); returns self when valid."""
        self.__post_init__()
        return self

    def to_json(self) -> dict:
        """A plain dict of JSON-able values."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        """Inverse of `to_json`; missing entries take the defaults, unknown ones are an error."""
        if not isinstance(data, dict):
            raise ValueError(f"a training config must be a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config entries {unknown}; allowed: {sorted(known)}")
        return cls(**data)

    @property
    def data_kind(self) -> str:
        return "points" if self.dataset in TOY_NAMES else "image"

    @property
    def effective_preview_count(self) -> int:
        if self.preview_count is not None:
            return self.preview_count
        return DEFAULT_PREVIEW_POINTS if self.data_kind == "points" else DEFAULT_PREVIEW_IMAGES


def build_diffusion(config: TrainConfig) -> GaussianDiffusion:
    """The GaussianDiffusion a config describes (make_schedule raises on impossible combinations, check_model_schedule on
    a schedule whose numbers a trained model could not be loaded or sampled with)."""
    schedule = make_schedule(config.schedule, config.T, config.beta_start, config.beta_end, config.scale_with_T)
    return check_model_schedule(GaussianDiffusion(schedule, config.prediction, config.variance))


def timestep_probabilities(config: TrainConfig, diffusion: GaussianDiffusion):
    """The distribution training draws t from: None for uniform (Algorithm 1), else P(t) of the log-normal levels."""
    if config.noise_levels == "uniform":
        return None
    return diffusion.lognormal_timestep_probabilities(config.lognormal_mean, config.lognormal_std)


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


# ------------------------------------------------------------------------------------------- recipes
# The CPU MNIST recipe is TrainConfig's defaults; on a GPU a bigger model and budget pay off (the Train page
# scales the budget by these factors when it finds one).
MNIST_CPU_RECIPE = TrainConfig()
# The fast CPU recipes (bench/cpu_recipe.py, docs/benchmarks.md "Digits within a lesson"). Each differs from the
# papers on purpose: x₀-prediction (Ho et al. predict ε), log-normal training noise levels (uniform t in Ho et al.),
# T = 200 (1000). On an AVX2 CPU, in the same seconds (n = 256 digits, floor 31.6): ε uniform FD 293, ε min-SNR-5 227,
# v 196, x₀ 181, x₀ with log-normal levels (0.5, 0.8) 128, and with the slim UNet 110. total_steps caps a budgeted run
# and is the length of an unbudgeted one.
_FAST = dict(T=200, scale_with_T=True, prediction="x0", noise_levels="lognormal", lognormal_mean=0.5,
             lognormal_std=0.8, lr_schedule="cosine", warmup_steps=100, total_steps=6000)
MNIST_LIGHT_RECIPE = TrainConfig(model_size="slim", batch_size=32, **_FAST)
MNIST_STANDARD_RECIPE = TrainConfig(model_size="tiny", batch_size=64, **_FAST)
# The rule: with a time budget, the standard recipe once the budget affords this many light steps (at equal
# seconds the two were equal near 1,900 light steps on the AVX2 CPU, the light one better below), else the light
# one; without a budget (a full run of total_steps) the standard one.
LIGHT_TO_STANDARD_STEPS = 1900
# GPU jobs keep the page-friendly "tiny" UNet: every page samples from a chosen model on the web server's CPU,
# where the "small" UNet costs 3.2x the tiny one on every interaction.
GPU_MNIST_SIZE, GPU_STEPS_FACTOR, GPU_BATCH_FACTOR = "tiny", 4, 2

# 2-D toys train in seconds with a bigger batch and a decaying learning rate (the shipped toy models' recipe);
# the Train page switches to it when a toy dataset is chosen.
TOY_RECIPE = TrainConfig(dataset="two_moons", model_size="small", batch_size=256, learning_rate=2e-3,
                         warmup_steps=100, total_steps=3000, lr_schedule="cosine", ema_decay=0.995)

# The playground's CPU recipe (measured with bench/playground_recipe.py, one torch thread): the "tiny" residual
# MLP, batch 256, 4000 Adam steps at 2e-3 with a cosine decay trains in 10-15 s of CPU time on every toy, and
# its DDPM-100 samples score within the metrics' noise of fresh data (the "small" MLP needs ~18 s for 2500
# steps and fits no better). toy_points is core.lab.playground.ORACLE_POINTS (2048), so for the non-mixture
# toys the memorising oracle is the optimal denoiser of exactly the training set.
PLAYGROUND_RECIPE = dict(model_size="tiny", batch_size=256, learning_rate=2e-3, lr_schedule="cosine",
                         warmup_steps=100, total_steps=4000, ema_decay=0.999, preview_every=500,
                         preview_steps=50, toy_points=2048, device="cpu")


def pick_fast_recipe(light_steps_per_second: float | None, budget_seconds: float | None) -> TrainConfig:
    """The fast CPU recipe for this machine and budget (the rule above LIGHT_TO_STANDARD_STEPS): standard when
    there is no budget or when budget × the light recipe's measured steps/s reaches LIGHT_TO_STANDARD_STEPS, else
    light; an unknown speed (None) picks light, the safe side on a slow machine."""
    if budget_seconds is None:
        return MNIST_STANDARD_RECIPE
    if light_steps_per_second is None:
        return MNIST_LIGHT_RECIPE
    affordable = check_number("light_steps_per_second", light_steps_per_second, 0.0) * budget_seconds
    return MNIST_STANDARD_RECIPE if affordable >= LIGHT_TO_STANDARD_STEPS else MNIST_LIGHT_RECIPE


def recipe_for(dataset: str, on_gpu: bool, light_steps_per_second: float | None = None,
               budget_seconds: float | None = None) -> TrainConfig:
    """The recipe the widgets start from: the toy recipe for 2-D data; on a GPU the fast recipe with the tiny UNet,
    a bigger batch and more steps; on a CPU `pick_fast_recipe` for the measured speed and the budget."""
    if dataset in TOY_NAMES:
        return TOY_RECIPE
    if on_gpu:
        return replace(MNIST_STANDARD_RECIPE, model_size=GPU_MNIST_SIZE,
                       total_steps=MNIST_STANDARD_RECIPE.total_steps * GPU_STEPS_FACTOR,
                       batch_size=MNIST_STANDARD_RECIPE.batch_size * GPU_BATCH_FACTOR)
    return pick_fast_recipe(light_steps_per_second, budget_seconds)
