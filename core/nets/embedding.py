"""Sinusoidal timestep embedding (Vaswani et al. 2017, Sec. 3.5; used by Ho et al. 2020, Appendix B).

The network is told *which* noise level it is denoising by embedding the integer timestep index
t in {0, ..., T-1} with sines and cosines of geometrically spaced frequencies:

    f_i = max_period ** (-i / (half - 1)),      i = 0, ..., half - 1,   half = dim // 2
    embedding(t) = [sin(t * f_0), ..., sin(t * f_{half-1}), cos(t * f_0), ..., cos(t * f_{half-1})]

This is the layout of the original DDPM code (sines first, then cosines; the slowest frequency is
exactly 1 / max_period). The index itself is embedded, not t / T: neighbouring timesteps then differ
by a full unit of phase at the fastest frequency, which the network can resolve easily.
"""

import math

import torch


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Embed integer timesteps t (LongTensor [B]) into float32 vectors [B, dim].

    dim must be even and at least 4 (half >= 2 frequencies so the spacing formula is defined).
    """
    if not isinstance(t, torch.Tensor) or t.ndim != 1:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"t must be a 1-D integer tensor [B] of timestep indices, got {shape}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(
            f"t must hold integer timestep indices (e.g. torch.long), got dtype {t.dtype}; "
            "pass the index t, not a fraction t/T"
        )
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 4 or dim % 2 != 0:
        raise ValueError(f"dim must be an even integer >= 4, got {dim!r}")
    if not (isinstance(max_period, (int, float)) and max_period > 1):
        raise ValueError(f"max_period must be a number > 1, got {max_period!r}")

    half = dim // 2
    exponents = torch.arange(half, dtype=torch.float32, device=t.device) / (half - 1)
    frequencies = torch.exp(-math.log(max_period) * exponents)  # f_0 = 1 ... f_{half-1} = 1/max_period
    angles = t.to(torch.float32)[:, None] * frequencies[None, :]  # [B, half]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
