"""Computations behind the 2-D playground page (no Streamlit here).

A 2-D toy is small enough to compare a trained network with the *exact* answer everywhere:

* The oracle (core.diffusion.oracle): for the two Gaussian mixtures the Bayes-optimal denoiser of the true
  distribution; for the other toys the optimal denoiser of a fixed set of training points
  (EmpiricalDistribution, the "memorising" denoiser: at small t it pulls every x_t onto its nearest
  training point). `oracle_distribution` builds it.
* Fields on a grid (`compare_fields`): the model's ε̂(x_t, t) or score s(x_t, t) = −ε̂ / √(1−ᾱ_t) next to the
  oracle's E[ε | x_t] or ∇ log q_t(x_t) = −E[ε | x_t] / √(1−ᾱ_t) (Tweedie's formula; the score view of
  Song, Sohl-Dickstein et al. 2021, "Score-based generative modeling through SDEs"), their difference, and
  log q_t on the grid (where the difference matters).
* Loss per timestep (`timestep_loss`, `bin_average`): the model's simple loss ‖target − prediction‖²/D
  (Ho et al. 2020 eq. 14, in the model's own parameterisation) on fresh data, for comparison with the
  exact minimum `core.diffusion.oracle.loss_floor_curve`. With x_0 from the oracle's distribution their gap at t equals
  E_{x_t}‖prediction − E[target | x_t]‖²/D, the model's squared distance to the optimal prediction.
* Samples and quality (`run_pair`, `quality_table`, `metric_noise`): model and oracle run with the same x_T
  and the same noise, scored against fresh data with MMD² (RBF) and sliced Wasserstein-1 (core.metrics.points),
  next to the scores of perfect samples (other fresh data), the metrics' own noise.

Timesteps are 0-based indices t = 0..T-1 (index t is the paper's step t+1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

from core import sampling
from core.checkpoints.info import DataInfo, TrainingRecord
from core.checks import check_choice, check_generator, check_int, check_number
from core.data.datasets import load_dataset
from core.data.toys import MIXTURE_TOY_NAMES, TOY_NAMES, toy_mixture_parameters
from core.diffusion.gaussian_diffusion import GaussianDiffusion, Prediction, VarianceType
from core.diffusion.oracle import EmpiricalDistribution, GaussianMixture, OracleDenoiser
from core.diffusion.samplers import Spacing
from core.diffusion.schedules import ScheduleKind
from core.metrics.points import reference_bandwidths, sample_quality  # the one 2-D quality (also pages, bench)
from core.rng import MAX_SEED
from core.training.config import PLAYGROUND_RECIPE, TrainConfig

FieldKind = Literal["eps", "score"]  # ε̂ or the score −ε̂/√(1−ᾱ_t)
FIELD_KINDS: tuple[FieldKind, ...] = get_args(FieldKind)
ORACLE_POINTS = 2048  # training points the memorising oracle uses (cost grows linearly with this)
DEFAULT_TOY_SEED = 0  # TrainConfig's default seed and toy_points, for checkpoints that do not record theirs
DEFAULT_TOY_POINTS = TrainConfig().toy_points


# ------------------------------------------------------------------------------------ configuration
def playground_config(dataset: str, schedule: ScheduleKind = "linear", T: int = 1000, prediction: Prediction = "eps",
                      variance: VarianceType = "fixed_small", model_size: str = PLAYGROUND_RECIPE["model_size"],
                      total_steps: int = PLAYGROUND_RECIPE["total_steps"], scale_with_T: bool = False,
                      seed: int = 0) -> TrainConfig:
    """A validated TrainConfig for a 2-D toy with the playground's CPU recipe (see PLAYGROUND_RECIPE).

    A tiny MLP trains fastest on the CPU (a GPU only adds transfer overhead), so toy jobs never take the GPU slot.
    """
    check_choice("dataset", dataset, TOY_NAMES)
    recipe = {**PLAYGROUND_RECIPE, "model_size": model_size, "total_steps": total_steps}
    config = TrainConfig(dataset=dataset, schedule=schedule, T=T, prediction=prediction, variance=variance,
                         scale_with_T=scale_with_T, seed=seed, **recipe)
    return config.validate()


def toy_data_settings(metadata: dict) -> tuple[str, int, int]:
    """(toy name, seed, toy_points) of the training data a checkpoint's metadata describes.

    Checkpoints written by the Trainer record the TrainConfig; others fall back to its defaults.
    Raises ValueError if the model was not trained on a 2-D toy.
    """
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    name = DataInfo(**(metadata.get("data") or {})).dataset
    if name not in TOY_NAMES:
        raise ValueError(f"this model was trained on {name!r}, not on a 2-D toy; expected one of {', '.join(TOY_NAMES)}")
    training = metadata.get("training")
    config = {} if training is None else TrainingRecord.from_dict(training).config
    seed, points = config.get("seed", DEFAULT_TOY_SEED), config.get("toy_points", DEFAULT_TOY_POINTS)
    return name, check_int("seed", seed, 0, MAX_SEED), check_int("toy_points", points, 1)


# --------------------------------------------------------------------------------------------- oracle
def has_exact_density(name: str) -> bool:
    """True for the Gaussian-mixture toys, whose oracle is the true distribution's optimal denoiser."""
    check_choice("name", name, TOY_NAMES)
    return name in MIXTURE_TOY_NAMES


def oracle_distribution(name: str, seed: int = DEFAULT_TOY_SEED, toy_points: int = ORACLE_POINTS):
    """The distribution whose exact denoiser the playground calls "the oracle".

    Mixtures: GaussianMixture(toy_mixture_parameters(name)), the true distribution. Other toys: the uniform
    distribution over the first min(toy_points, ORACLE_POINTS) points of the training split that a job with
    this seed and toy_points trains on (core.data.datasets.load_dataset), i.e. the memorising optimal denoiser.
    """
    check_choice("name", name, TOY_NAMES)
    if has_exact_density(name):
        return GaussianMixture(*toy_mixture_parameters(name))
    points = load_dataset(name, split="train", seed=seed, n_points=toy_points).data  # checks seed and toy_points
    return EmpiricalDistribution(points[:ORACLE_POINTS])


def fresh_data(name: str, n: int, seed: int = DEFAULT_TOY_SEED, toy_points: int = DEFAULT_TOY_POINTS) -> torch.Tensor:
    """n points of the toy that no job with this seed has trained on: the start of the test split
    (load_dataset draws it after the training split from the same generator)."""
    check_choice("name", name, TOY_NAMES)
    n = check_int("n", n, 2)
    return load_dataset(name, split="test", seed=seed, n_points=max(n, toy_points)).data[:n]


# --------------------------------------------------------------------------------------------- fields
@dataclass(frozen=True)
class Grid:
    """A square grid of points: xs and ys [R] (ascending), points [R·R, 2] with x varying fastest, so
    values[points] reshaped to [R, R] is indexed [row = y, column = x] as a heat map expects."""

    xs: torch.Tensor
    ys: torch.Tensor
    points: torch.Tensor

    @property
    def resolution(self) -> int:
        return len(self.xs)

    @property
    def spacing(self) -> float:
        return float(self.xs[1] - self.xs[0]) if len(self.xs) > 1 else 1.0

    def image(self, values: torch.Tensor) -> np.ndarray:
        """One value per grid point -> a [R, R] numpy array (rows = y)."""
        return values.detach().reshape(self.resolution, self.resolution).cpu().numpy()


def square_grid(half_width: float, resolution: int) -> Grid:
    """resolution × resolution points evenly covering [−half_width, half_width]² (float32)."""
    half_width = check_number("half_width", half_width, 0.0, open_low=True)
    resolution = check_int("resolution", resolution, 2, 400)
    axis = torch.linspace(-half_width, half_width, resolution)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return Grid(xs=axis, ys=axis, points=torch.stack([x.reshape(-1), y.reshape(-1)], dim=1))


@torch.no_grad()
def predicted_field(model, diffusion: GaussianDiffusion, t: int, points: torch.Tensor, kind: FieldKind = "eps") -> torch.Tensor:
    """The model's ε̂(x, t) (kind "eps") or score −ε̂(x, t)/√(1−ᾱ_t) (kind "score") at points [N, 2], float64.

    The model sees the points in their own dtype (float32 for networks; float64 keeps the oracle exact).
    Whatever the model predicts (ε, x_0 or v; learned variance channels are dropped), ε̂ comes from the
    diffusion's conversion formulas, so models and the oracle are compared in the same units.
    """
    t_batch = torch.full((points.shape[0],), t, dtype=torch.long)
    _, pred_eps = diffusion.predictions(model(points, t_batch), points, t_batch)
    pred_eps = pred_eps.to(torch.float64)
    if kind == "eps":
        return pred_eps
    return -pred_eps / math.sqrt(1.0 - float(diffusion.schedule.alpha_bars[t]))


@dataclass(frozen=True)
class FieldComparison:
    """Fields at one timestep t on a grid: vectors [N, 2] (model None when there is no model), the
    pointwise difference ‖model − oracle‖ [N] (or None) and log q_t(x) [N] of the oracle's distribution."""

    grid: Grid
    t: int
    kind: FieldKind
    model: torch.Tensor | None
    oracle: torch.Tensor
    difference: torch.Tensor | None
    log_density: torch.Tensor


def compare_fields(model, oracle: OracleDenoiser, t: int, grid: Grid, kind: FieldKind = "eps") -> FieldComparison:
    """The model's and the oracle's field (see predicted_field) on `grid` at timestep t; model may be None."""
    t = check_int("t", t, 0, oracle.diffusion.T - 1)
    check_choice("kind", kind, FIELD_KINDS)
    exact = predicted_field(oracle, oracle.diffusion, t, grid.points.double(), kind)  # the oracle works in float64
    learned = difference = None
    if model is not None:
        learned = predicted_field(model, oracle.diffusion, t, grid.points, kind)
        difference = (learned - exact).norm(dim=1)
    return FieldComparison(grid=grid, t=t, kind=kind, model=learned, oracle=exact, difference=difference,
                           log_density=oracle.log_density(grid.points, t))


def arrow_scale(fields, spacing: float, quantile: float = 0.9) -> float:
    """Length factor that draws the `quantile`-quantile vector length of all `fields` as 0.9·spacing,
    one factor for all of them so their arrows can be compared."""
    spacing = check_number("spacing", spacing, 0.0, open_low=True)
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
    lengths = torch.cat([f.detach().to(torch.float64).norm(dim=1) for f in fields if f is not None])
    reference = float(torch.quantile(lengths, quantile)) if lengths.numel() else 0.0
    return 0.9 * spacing / reference if reference > 0 else 0.0


def arrow_segments(points: torch.Tensor, vectors: torch.Tensor, scale: float, max_length: float | None = None,
                   head: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Polyline coordinates (x, y) that draw one arrow per point, for a single Plotly line trace.

    Arrow i goes from points[i] to points[i] + scale·vectors[i] (shortened to max_length if longer) and has
    two head strokes of `head` times its length at ±25° from the shaft. Arrows are separated by NaN.
    """
    if points.shape != vectors.shape or points.shape[1:] != (2,):
        raise ValueError(f"points and vectors must have the same shape [N, 2], got {list(points.shape)} and {list(vectors.shape)}")
    scale = check_number("scale", scale, 0.0)
    p = points.detach().to(torch.float64)
    d = vectors.detach().to(torch.float64) * scale
    if max_length is not None:
        max_length = check_number("max_length", max_length, 0.0, open_low=True)
        length = d.norm(dim=1, keepdim=True)
        d = d * torch.clamp(max_length / length.clamp_min(1e-300), max=1.0)
    tip = p + d
    angle = math.radians(25.0)
    cos, sin = math.cos(angle), math.sin(angle)
    back = -head * d  # from the tip backwards, rotated by ±25°
    left = tip + torch.stack([cos * back[:, 0] - sin * back[:, 1], sin * back[:, 0] + cos * back[:, 1]], dim=1)
    right = tip + torch.stack([cos * back[:, 0] + sin * back[:, 1], -sin * back[:, 0] + cos * back[:, 1]], dim=1)
    gap = torch.full_like(p, float("nan"))
    # per arrow: start, tip, left barb, (gap), tip, right barb, (gap)
    path = torch.stack([p, tip, left, gap, tip, right, gap], dim=1).reshape(-1, 2).numpy()
    return path[:, 0], path[:, 1]


# ------------------------------------------------------------------------------------ loss per timestep
@torch.no_grad()
def timestep_loss(model, diffusion: GaussianDiffusion, sample_x0, ts, n: int, generator: torch.Generator,
                  batch_size: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's simple loss "mse" at each timestep of ts, on n fresh examples per timestep.

    For every t in ts: x_0 = sample_x0(n, generator) ([n, 2]), ε ~ N(0, I), and the per-example mse of
    diffusion.training_losses. Returns (means, standard_errors) float64 [len(ts)] (standard error =
    sample std / √n), the same convention as core.diffusion.oracle.loss_floor_curve, so the two can be compared.
    Everything runs in batches of at most batch_size examples.
    """
    n, batch_size = check_int("n", n, 2), check_int("batch_size", batch_size, 1)
    check_generator("generator", generator)
    ts = torch.as_tensor(ts)
    if ts.ndim != 1 or ts.numel() < 1 or ts.is_floating_point():
        raise ValueError(f"ts must be a non-empty 1-D sequence of integer timesteps, got {ts.tolist()!r}")
    diffusion.check_timesteps(ts, ts)
    t_all = ts.long().repeat_interleave(n)
    x0_all = sample_x0(t_all.numel(), generator)
    if not isinstance(x0_all, torch.Tensor) or x0_all.shape != (t_all.numel(), 2):
        raise ValueError("sample_x0(count, generator) must return a tensor of shape [count, 2]")
    noise_all = torch.randn(x0_all.shape, generator=generator, dtype=x0_all.dtype)
    per_example = []
    for start in range(0, t_all.numel(), batch_size):
        part = slice(start, start + batch_size)
        losses = diffusion.training_losses(model, x0_all[part], t=t_all[part], noise=noise_all[part])
        per_example.append(losses["mse"].to(torch.float64))
    per_example = torch.cat(per_example).reshape(ts.numel(), n)
    return per_example.mean(1), per_example.std(1) / math.sqrt(n)


def bin_average(ts, means, standard_errors, edges) -> tuple[list, list]:
    """Average per-timestep values over the bins [edges[b], edges[b+1]) of t (the Trainer's loss profile bins).

    Each bin's value is the plain mean over the evaluated timesteps inside it; its standard error is
    √(Σ se²)/k for k timesteps (independent estimates). Bins without an evaluated timestep give NaN.
    Returns two lists of floats, one entry per bin.
    """
    ts = torch.as_tensor(ts).long()
    means = torch.as_tensor(means, dtype=torch.float64)
    standard_errors = torch.as_tensor(standard_errors, dtype=torch.float64)
    if not (ts.ndim == means.ndim == standard_errors.ndim == 1 and len(ts) == len(means) == len(standard_errors)):
        raise ValueError("ts, means and standard_errors must be 1-D and equally long")
    edges = [int(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges[:-1], edges[1:])):
        raise ValueError(f"edges must be at least two strictly increasing integers, got {edges}")
    bin_means, bin_errors = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (ts >= low) & (ts < high)
        k = int(inside.sum())
        if k == 0:
            bin_means.append(math.nan)
            bin_errors.append(math.nan)
            continue
        bin_means.append(float(means[inside].mean()))
        bin_errors.append(float(standard_errors[inside].pow(2).sum().sqrt()) / k)
    return bin_means, bin_errors


# ---------------------------------------------------------------------------------- samples and quality
def run_pair(models: dict, diffusion: GaussianDiffusion, settings: sampling.SamplerSettings, n: int, seed: int,
             max_frames: int = 60) -> dict:
    """Sample n points with each model of `models` (name -> callable) using the same x_T and noise (seed).

    Returns name -> (x_0 [n, 2] float32, timesteps of the frames (list, −1 = final x_0), frames [F, n, 2] numpy),
    where the frames are x_t entering every k-th step (k chosen to keep at most about max_frames) then x_0.
    """
    n = check_int("n", n, 2)
    every = sampling.record_every(settings.steps, check_int("max_frames", max_frames, 2))
    results = {}
    for name, model in models.items():
        x0, trajectory = sampling.run_sampler(model, diffusion, settings, (n, 2), seed, record=every)
        frames = np.stack([x.numpy() for x in trajectory.x_t] + [trajectory.final.numpy()])
        results[name] = (x0.float(), list(trajectory.t) + [-1], frames)
    return results


def metric_noise(sample_x0, reference: torch.Tensor, n: int, repeats: int, generator: torch.Generator) -> dict:
    """How well *perfect* samples score: sample_quality of `repeats` independent draws sample_x0(n, generator)
    of the true distribution against `reference`. Returns {"mmd2": (mean, std), "sw1": (mean, std)}.

    A sampler whose scores fall within this range is as good as these metrics can tell at this sample size.
    """
    n, repeats = check_int("n", n, 2), check_int("repeats", repeats, 2)
    check_generator("generator", generator)
    bandwidths = reference_bandwidths(reference)
    scores = [sample_quality(sample_x0(n, generator), reference, bandwidths) for _ in range(repeats)]
    result = {}
    for metric in ("mmd2", "sw1"):
        values = torch.tensor([score[metric] for score in scores], dtype=torch.float64)
        result[metric] = (float(values.mean()), float(values.std()))
    return result


def quality_table(models: dict, diffusion: GaussianDiffusion, step_counts, n: int, seed: int,
                  reference: torch.Tensor, spacing: Spacing = "trailing", progress=None) -> list[dict]:
    """Rows {"sampler": "DDPM" | "DDIM", "steps", "<name> MMD²", "<name> SW₁", ...}: DDPM with the model's
    reverse variance and DDIM (η = 0) at each step count, every model sampled with the same seed (same x_T
    and noise), n points, scored against `reference` with sample_quality and reference_bandwidths.
    spacing: which timesteps fewer steps visit (core.diffusion.samplers.timesteps; "trailing" starts exactly at t = T).
    progress(i, total) is called after each sampler run.
    """
    counts = sorted({check_int("step count", s, 1, diffusion.T) for s in step_counts})
    if not counts:
        raise ValueError("step_counts must name at least one step count")
    bandwidths = reference_bandwidths(reference)
    rows, total, done = [], 2 * len(counts) * len(models), 0
    for method in ("ddpm", "ddim"):
        for steps in counts:
            settings = sampling.SamplerSettings(method=method, steps=steps, variance=diffusion.variance,
                                               eta=0.0, spacing=spacing, clip_x0=False)
            row = {"sampler": method.upper(), "steps": steps}
            for name, model in models.items():
                samples = sampling.run_sampler(model, diffusion, settings, (n, 2), seed)
                quality = sample_quality(samples.float(), reference, bandwidths)
                row[f"{name} MMD²"], row[f"{name} SW₁"] = quality["mmd2"], quality["sw1"]
                done += 1
                if progress is not None:
                    progress(done, total)
            rows.append(row)
    return rows
