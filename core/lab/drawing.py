"""Draw your own 2-D data: brush shapes, points picked on a figure, and a model trained on them against the exact
denoiser of the same points.

Everything here is pure (no Streamlit). A drawn set is a float32 tensor [N, 2] that does not depend on any page
setting; it is bounded at the boundary: at most MAX_POINTS points, every coordinate finite and clipped to
[−LIMIT, LIMIT]. Brushes draw from a seeded torch.Generator, so a drawing is reproducible from its recipe.

Training reuses the playground's path (core.lab.playground.playground_config → core.training.step.build_state →
train_step, Ho et al. Algorithm 1) with the drawn points as the dataset; the comparison samples the trained network
and the exact denoiser of the drawn points (core.diffusion.oracle.EmpiricalDistribution, whose E[x₀ | x_t] is the
softmax-weighted average of the points) from the same x_T with DDPM (Algorithm 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from core.checks import check_choice, check_int, check_number
from core.data.datasets import Dataset
from core.diffusion.oracle import EmpiricalDistribution, OracleDenoiser
from core.diffusion.samplers import ddpm_sample
from core.lab.playground import playground_config
from core.metrics.points import sliced_wasserstein
from core.training.step import build_state, train_step

Shape = Literal["line", "circle", "blob"]
SHAPES: tuple[Shape, ...] = get_args(Shape)
MAX_POINTS = 2000
LIMIT = 1.5  # every coordinate is clipped to [−LIMIT, LIMIT] (the toys live in about [−1.1, 1.1])
MAX_BRUSH = 500  # points one brush stroke adds
JITTER = 0.02  # std of the scatter around a line or a circle
TRAIN_AS = "two_moons"  # the TrainConfig's dataset name; the drawn points replace that toy's data
TRAIN_T = 100  # a short chain (linear β scaled with T) so training and sampling take seconds
MAX_TRAIN_STEPS = 5000


def brush(shape: Shape, count: int, seed: int, center: tuple[float, float] = (0.0, 0.0), size: float = 0.5,
          angle_degrees: float = 0.0) -> torch.Tensor:
    """count points [count, 2]: a line of length 2·size through center at angle_degrees, a circle of radius size,
    or a Gaussian blob of std size/2, each drawn from torch.Generator().manual_seed(seed); clipped like every drawing."""
    check_choice("shape", shape, SHAPES)
    count = check_int("count", count, 1, MAX_BRUSH)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    cx = check_number("center x", center[0], -LIMIT, LIMIT)
    cy = check_number("center y", center[1], -LIMIT, LIMIT)
    size = check_number("size", size, 0.0, 2 * LIMIT, open_low=True)
    angle = math.radians(check_number("angle", angle_degrees, -360.0, 360.0))
    generator = torch.Generator().manual_seed(seed)
    if shape == "line":
        s = (torch.rand(count, generator=generator, dtype=torch.float64) * 2 - 1) * size
        points = torch.stack([s * math.cos(angle), s * math.sin(angle)], dim=1)
        points = points + JITTER * torch.randn(count, 2, generator=generator, dtype=torch.float64)
    elif shape == "circle":
        phi = torch.rand(count, generator=generator, dtype=torch.float64) * 2 * math.pi
        radius = size + JITTER * torch.randn(count, generator=generator, dtype=torch.float64)
        points = torch.stack([radius * phi.cos(), radius * phi.sin()], dim=1)
    else:
        points = (size / 2) * torch.randn(count, 2, generator=generator, dtype=torch.float64)
    return clip_points(points + torch.tensor([cx, cy], dtype=torch.float64))


def clip_points(points) -> torch.Tensor:
    """float32 [N, 2]: rows with a non-finite coordinate dropped, the rest clipped to [−LIMIT, LIMIT]."""
    tensor = torch.as_tensor(points, dtype=torch.float64)
    if tensor.numel() == 0:
        return torch.zeros(0, 2)
    if tensor.ndim != 2 or tensor.shape[1] != 2:
        raise ValueError(f"points must have shape [N, 2], got {tuple(tensor.shape)}")
    tensor = tensor[torch.isfinite(tensor).all(dim=1)]
    return tensor.clamp(-LIMIT, LIMIT).to(torch.float32)


def add_points(existing: torch.Tensor | None, new) -> tuple[torch.Tensor, int]:
    """(the drawing with `new` appended, how many of them were left out): never more than MAX_POINTS in all."""
    current = clip_points(existing) if existing is not None else torch.zeros(0, 2)
    added = clip_points(new)
    room = max(MAX_POINTS - len(current), 0)
    return torch.cat([current, added[:room]]), max(len(added) - room, 0)


def selected_points(event, curve: int | None = None) -> torch.Tensor:
    """The (x, y) of the points in a Plotly selection or click event as Streamlit reports it
    ({"selection": {"points": [{"x": .., "y": .., "curve_number": ..}, ...]}}), only those of trace `curve` if given;
    anything malformed is ignored, at most MAX_POINTS read."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError, IndexError):
        return torch.zeros(0, 2)
    if not isinstance(points, (list, tuple)):
        return torch.zeros(0, 2)
    rows = []
    for point in points[:MAX_POINTS]:
        try:
            x, y = float(point["x"]), float(point["y"])
            if curve is not None and int(point.get("curve_number", -1)) != curve:
                continue
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        rows.append((x, y))
    return clip_points(rows) if rows else torch.zeros(0, 2)


def canvas(resolution: int = 41) -> torch.Tensor:
    """[resolution², 2] an even grid over the drawing square: the points a box or lasso selection can pick."""
    resolution = check_int("resolution", resolution, 2, 101)
    axis = torch.linspace(-LIMIT, LIMIT, resolution)
    xs, ys = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


@dataclass(frozen=True)
class DrawnModel:
    """A network trained on a drawing, its diffusion, and its loss at every step."""

    model: torch.nn.Module
    diffusion: object
    losses: list


def train_on_points(points: torch.Tensor, steps: int, seed: int) -> DrawnModel:
    """The playground's tiny MLP trained for `steps` updates of Algorithm 1 on the drawn points (the playground
    recipe: batch 256, Adam with warm-up and cosine decay, EMA), linear β scaled with T = TRAIN_T. Returns the EMA."""
    data = clip_points(points)
    if len(data) < 2:
        raise ValueError("draw at least 2 points before training")
    steps = check_int("steps", steps, 10, MAX_TRAIN_STEPS)
    seed = check_int("seed", seed, 0, 2**31 - 1)
    config = playground_config(TRAIN_AS, "linear", TRAIN_T, total_steps=steps, scale_with_T=True, seed=seed)
    state = build_state(config, Dataset(name=TRAIN_AS, kind="points", data=data))
    losses = [train_step(state).loss for _ in range(steps)]
    return DrawnModel(model=state.ema.eval(), diffusion=state.diffusion, losses=losses)


@dataclass(frozen=True)
class Comparison:
    network: torch.Tensor  # [n, 2] DDPM samples of the network
    exact: torch.Tensor  # [n, 2] DDPM samples of the exact denoiser of the drawn points, from the same x_T
    distance_network: float  # sliced Wasserstein-1 to the drawn points
    distance_exact: float


@torch.no_grad()
def compare_with_exact(drawn: DrawnModel, points: torch.Tensor, n: int, seed: int) -> Comparison:
    """Sample n points with the trained network and with the exact denoiser of `points` (same x_T and noise seed)."""
    data = clip_points(points)
    n = check_int("n", n, 10, 5000)
    seed = check_int("seed", seed, 0, 2**31 - 1)
    oracle = OracleDenoiser(EmpiricalDistribution(data), drawn.diffusion)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    network = ddpm_sample(drawn.model, drawn.diffusion, (n, 2), generator=torch.Generator().manual_seed(seed + 1), x_T=x_T)
    exact = ddpm_sample(oracle, drawn.diffusion, (n, 2), generator=torch.Generator().manual_seed(seed + 1),
                        x_T=x_T.double()).float()

    def distance(samples):
        return sliced_wasserstein(samples.float(), data, generator=torch.Generator().manual_seed(seed + 2))

    return Comparison(network=network.float(), exact=exact, distance_network=distance(network), distance_exact=distance(exact))

