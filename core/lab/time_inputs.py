"""How t enters the network: the sinusoidal embedding of the integer t versus t/T, and a raw Linear(t).

Sinusoidal (Vaswani et al. 2017 §3.5; Ho et al. 2020, Appendix B): emb(t)·emb(s) = Σᵢ cos((t − s) fᵢ), with
frequencies fᵢ from 1 down to 1/10000. Fed the integer index, neighbouring steps differ by a whole radian at f₀ and
the embedding stays in [−1, 1] whatever T is: nothing needs normalising. Fed t/T ∈ [0, 1), every phase (t − s) fᵢ is
below 1 radian, so all steps get nearly the same vector: normalising here *hurts*.

A raw Linear(t) is different: its output w·t + b grows with t, so t = 999 gives pre-activations about 1000× those of
t = 1 and the network sees wildly different scales; there t/T (or similar) is needed.
"""

from __future__ import annotations

import math

import torch

from core.checks import check_generator, check_int


def _sinusoid(positions: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[N, dim] the embedding formula of core.nets.embedding applied to any real positions (float64)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / (half - 1))
    angles = positions.to(torch.float64)[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def first_last_similarity(T: int, dim: int) -> dict:
    """Cosine similarity of the embeddings of the first and the last step, with the integer index t (0 and T−1) and
    with the fraction t/T (0 and (T−1)/T)."""
    T = check_int("T", T, 2, 10_000)
    dim = check_int("dim", dim, 4, 1024)
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    out = {}
    for name, positions in (("integer", torch.tensor([0.0, T - 1.0], dtype=torch.float64)),
                            ("fraction", torch.tensor([0.0, (T - 1) / T], dtype=torch.float64))):
        e = _sinusoid(positions, dim)
        out[name] = float(e[0] @ e[1] / (e[0].norm() * e[1].norm()))
    return out


def raw_linear_scales(T: int, width: int, generator: torch.Generator) -> dict:
    """RMS of a freshly initialised Linear(1, width)'s output (PyTorch's default init, seeded) at the first and
    the last step, fed t itself or t/T."""
    T = check_int("T", T, 2, 10_000)
    width = check_int("width", width, 1, 4096)
    check_generator("generator", generator)
    bound = 1.0  # PyTorch's default for fan_in = 1: weight and bias ~ U(−1/√fan_in, 1/√fan_in)
    weight = (torch.rand(width, generator=generator, dtype=torch.float64) * 2 - 1) * bound
    bias = (torch.rand(width, generator=generator, dtype=torch.float64) * 2 - 1) * bound

    def rms(t: float) -> float:
        return float((weight * t + bias).pow(2).mean().sqrt())

    return {"raw_first": rms(1.0), "raw_last": rms(T - 1.0), "normalised_first": rms(1.0 / T), "normalised_last": rms((T - 1) / T)}
