"""Seeds: every random draw the app shows comes from a torch.Generator built here from a seed.

The seed range is defined once, here: a seed is an integer in 0..MAX_SEED = 2**53 - 1, the largest integer a
browser's number input (a JavaScript double) keeps exactly, so a seed typed on a page, carried by a link, given to
the CLI or stored in a checkpoint is always the same number; `torch.Generator.manual_seed` takes all of them without
wrapping around. Pages, URL parameters (ui/settings.py), the CLI and TrainConfig all check against MAX_SEED.
"""

from __future__ import annotations

import torch

from core.checks import check_int

MAX_SEED = 2**53 - 1  # Number.MAX_SAFE_INTEGER


def seeded_generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A fresh generator (on `device`, default the CPU) seeded with `seed` (0 <= seed <= MAX_SEED)."""
    generator = torch.Generator() if device is None else torch.Generator(device=device)
    return generator.manual_seed(check_int("seed", seed, 0, MAX_SEED))


def seeded_noise(shape, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """ε ~ N(0, I) of the given shape from a fresh generator seeded with `seed` (float64 unless `dtype` says otherwise)."""
    return torch.randn(tuple(shape), generator=seeded_generator(seed), dtype=dtype)
