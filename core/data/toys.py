"""The 2-D toy distributions, drawn from a seeded torch.Generator, all on a common "unit scale": every toy lives
(up to small Gaussian tails) inside the square [-1, 1]^2, with a per-coordinate standard deviation of roughly
0.3..0.6. The two mixtures have a known density (`toy_mixture_parameters`), so their exact denoiser is known.
"""

from __future__ import annotations

import math

import torch

from core.checks import check_choice, check_generator, check_int

TOY_NAMES = ("swiss_roll", "two_moons", "eight_gaussians", "checkerboard", "gaussian_mixture")
MIXTURE_TOY_NAMES = ("eight_gaussians", "gaussian_mixture")

# Scales, in the final coordinates:
#   swiss_roll:       spiral of radius 1/3 .. 1 (1.5 turns), + N(0, 0.02^2) noise
#   two_moons:        two half circles of radius 2/3 (x in [-1, 1], y in [-0.5, 0.5] before noise),
#                     + N(0, (1/30)^2) noise
#   eight_gaussians:  8 isotropic Gaussians, means on the circle of radius 0.8, std 0.05, equal weights
#   checkerboard:     uniform on the 8 dark cells of a 4x4 board covering [-1, 1]^2 (no noise)
#   gaussian_mixture: 4 axis-aligned anisotropic Gaussians with weights 0.4, 0.3, 0.2, 0.1

EIGHT_GAUSSIANS_RADIUS = 0.8
EIGHT_GAUSSIANS_STD = 0.05
SWISS_ROLL_NOISE = 0.02
TWO_MOONS_NOISE = 0.05  # in the original moon units, before scaling by 1/1.5

GAUSSIAN_MIXTURE_MEANS = ((-0.4, -0.35), (0.45, -0.45), (0.35, 0.5), (-0.45, 0.55))
GAUSSIAN_MIXTURE_STDS = ((0.18, 0.07), (0.06, 0.16), (0.12, 0.12), (0.05, 0.05))
GAUSSIAN_MIXTURE_WEIGHTS = (0.4, 0.3, 0.2, 0.1)


def toy_mixture_parameters(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(means [K, 2], stds, weights [K]) in float64 of a mixture toy; `sample_toy` draws from it.

    The density is sum_k weights[k] * N(means[k], diag(stds[k]^2)). stds is [K] (isotropic) for
    "eight_gaussians" and [K, 2] (per-axis) for "gaussian_mixture".
    """
    check_choice("name", name, MIXTURE_TOY_NAMES)
    if name == "eight_gaussians":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        means = EIGHT_GAUSSIANS_RADIUS * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
        stds = torch.full((8,), EIGHT_GAUSSIANS_STD, dtype=torch.float64)
        weights = torch.full((8,), 1 / 8, dtype=torch.float64)
        return means, stds, weights
    return (torch.tensor(GAUSSIAN_MIXTURE_MEANS, dtype=torch.float64),
            torch.tensor(GAUSSIAN_MIXTURE_STDS, dtype=torch.float64),
            torch.tensor(GAUSSIAN_MIXTURE_WEIGHTS, dtype=torch.float64))


def sample_toy(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """n float32 points [n, 2] from toy `name` (one of TOY_NAMES), using only `generator` (a CPU one)."""
    check_choice("name", name, TOY_NAMES)
    n = check_int("n", n, 1)
    if check_generator("generator", generator).device.type != "cpu":
        raise ValueError(f"generator on {generator.device} is not allowed; expected a CPU torch.Generator")
    return sample_toy_with_labels(name, n, generator)[0]


def sample_toy_with_labels(name: str, n: int, generator: torch.Generator
                           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(points [n, 2] float32, labels [n] int64 or None: the mixture component or the moon) of a toy; the
    arguments are the caller's to check (sample_toy and load_dataset do)."""
    samplers = {"swiss_roll": _sample_swiss_roll, "two_moons": _sample_two_moons, "checkerboard": _sample_checkerboard,
                "eight_gaussians": _sample_mixture, "gaussian_mixture": _sample_mixture}
    points, labels = samplers[name](name, n, generator)
    return points.to(torch.float32), labels


def _sample_mixture(name, n, generator):
    """Pick component k with probability weights[k], then x = means[k] + stds[k] * z, z ~ N(0, I)."""
    means, stds, weights = toy_mixture_parameters(name)
    components = torch.multinomial(weights, n, replacement=True, generator=generator)
    if stds.dim() == 1:
        stds = stds[:, None].expand(-1, 2)
    noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return means[components] + stds[components] * noise, components


def _sample_swiss_roll(name, n, generator):
    """2-D swiss roll (as in sklearn's make_swiss_roll): angle t ~ U(1.5 pi, 4.5 pi), point
    t * (cos t, sin t), divided by 4.5 pi so the outermost turn has radius 1."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    spiral = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / (4.5 * math.pi)
    noise = SWISS_ROLL_NOISE * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return spiral + noise, None


def _sample_two_moons(name, n, generator):
    """sklearn-style moons: upper moon (cos a, sin a), lower moon (1 - cos a, 0.5 - sin a), a ~ U(0, pi),
    plus noise; then centred by (0.5, 0.25) and divided by 1.5 so that x spans [-1, 1]."""
    moon = torch.randint(0, 2, (n,), generator=generator)
    angle = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], dim=1)
    points = torch.where(moon[:, None] == 0, upper, lower)
    points = points + TWO_MOONS_NOISE * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    centre = torch.tensor([0.5, 0.25], dtype=torch.float64)
    return (points - centre) / 1.5, moon


def _sample_checkerboard(name, n, generator):
    """Uniform on the 8 cells (column i, row j) of a 4x4 board on [-1, 1]^2 with i + j even."""
    dark_cells = torch.tensor([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0],
                              dtype=torch.float64)
    cell = dark_cells[torch.randint(0, len(dark_cells), (n,), generator=generator)]
    within = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return -1 + 0.5 * (cell + within), None
