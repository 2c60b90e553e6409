"""Seeds: every random draw the app shows comes from a torch.Generator built here from a seed.

The seed range is checked once, here: a seed is an integer in 0..MAX_SEED (what `torch.Generator.manual_seed`
accepts without wrapping around, and what TrainConfig allows).
"""

from __future__ import annotations

import torch

from core.checks import check_int

MAX_SEED = 2**63 - 1


def seeded_generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A fresh generator (on `device`, default the CPU) seeded with `seed` (0 <= seed <= MAX_SEED)."""
    generator = torch.Generator() if device is None else torch.Generator(device=device)
    return generator.manual_seed(check_int("seed", seed, 0, MAX_SEED))


def seeded_noise(shape, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """ε ~ N(0, I) of the given shape from a fresh generator seeded with `seed` (float64 unless `dtype` says otherwise)."""
    return torch.randn(tuple(shape), generator=seeded_generator(seed), dtype=dtype)
