"""Do later steps correct earlier errors? Perturb x_t in the middle of a chain and run the rest twice.

A chain is run with the exact denoiser of a known distribution (core.diffusion.oracle, so nothing is learned
wrongly) from x_T down to the paper's step `perturb_step`. There a copy is pushed by δ (a random direction of
length `size` per chain) and both copies finish the chain with the same sampler and, for DDPM, the **same** noise
z at every step, so any difference at the end is the perturbation's. Tracked: the mean distance ‖x'_s − x_s‖
at every later step s.

DDPM (Ho et al. 2020, Algorithm 2): x_{s−1} = μ_θ(x_s, s) + σ_s z. The mean map pulls x_s towards where the data
is (its slope is below 1 wherever the denoiser is contracting), and the shared z does not depend on x_s, so the
distance shrinks step after step: later steps correct earlier errors.
DDIM η = 0 (Song et al. 2021, eq. 12 with σ = 0): x_{s−1} = √ᾱ_{s−1} x̂₀ + √(1−ᾱ_{s−1}) ε̂ is a deterministic
transport of the whole distribution (the probability-flow ODE); it keeps the x_t it was handed and carries a
perturbation through to the end. For data N(μ, I) its slope is √ᾱ_{s−1}√ᾱ_s + √(1−ᾱ_{s−1})√(1−ᾱ_s) ≈ 1: the
error is not corrected at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from core.checks import check_generator, check_int, check_number
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import OracleDenoiser
from core.diffusion.samplers import ddim_step

Sampler = Literal["ddpm", "ddim"]
SAMPLERS: tuple[Sampler, ...] = ("ddpm", "ddim")
MAX_CHAINS = 5_000


@dataclass(frozen=True)
class ErrorCorrection:
    """steps [M]: the paper's steps perturb_step, perturb_step−1, ..., 1, then 0 for the final x₀.
    distance: sampler -> [M] mean ‖x' − x‖ over the chains at each of those steps (distance[s][0] = size).
    final / final_perturbed: sampler -> [n, D] the end points of the unperturbed and perturbed chains."""

    steps: list
    distance: dict
    final: dict
    final_perturbed: dict
    size: float

    def remaining(self, sampler: Sampler) -> float:
        """Distance at x₀ as a fraction of the perturbation's size."""
        return float(self.distance[sampler][-1] / self.size)


@torch.no_grad()
def error_correction(distribution, diffusion: GaussianDiffusion, n: int, perturb_step: int, size: float,
                     generator: torch.Generator) -> ErrorCorrection:
    """See the module docstring. distribution: a core.diffusion.oracle GaussianMixture or EmpiricalDistribution;
    diffusion: its forward process (the prediction is converted by the oracle). perturb_step in 1..T−1 (paper)."""
    n = check_int("n", n, 1, MAX_CHAINS)
    perturb_step = check_int("perturb_step", perturb_step, 1, diffusion.T - 1)
    size = check_number("size", size, 0.0, 10.0, open_low=True)
    check_generator("generator", generator)
    eps_diffusion = GaussianDiffusion(diffusion.schedule, "eps", "fixed_small")
    model = OracleDenoiser(distribution, eps_diffusion)
    shape = (n, distribution.dim)
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    for index in range(diffusion.T - 1, perturb_step - 1, -1):  # paper steps T..perturb_step+1: to x_{perturb_step}
        t = torch.full((n,), index, dtype=torch.long)
        x, _ = eps_diffusion.p_sample(model(x, t), x, t, torch.randn(shape, generator=generator, dtype=torch.float64))
    direction = torch.randn(shape, generator=generator, dtype=torch.float64)
    perturbed_start = x + size * direction / direction.norm(dim=1, keepdim=True)
    noises = [torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(perturb_step)]
    distance, final, final_perturbed = {}, {}, {}
    for sampler in SAMPLERS:
        a, b = x.clone(), perturbed_start.clone()
        track = [float((b - a).norm(dim=1).mean())]
        for k, index in enumerate(range(perturb_step - 1, -1, -1)):  # paper steps perturb_step..1
            t = torch.full((n,), index, dtype=torch.long)
            if sampler == "ddpm":
                a, _ = eps_diffusion.p_sample(model(a, t), a, t, noises[k])
                b, _ = eps_diffusion.p_sample(model(b, t), b, t, noises[k])
            else:
                a = ddim_step(eps_diffusion, model(a, t), a, index, index - 1, 0.0, torch.zeros_like(a))[0]
                b = ddim_step(eps_diffusion, model(b, t), b, index, index - 1, 0.0, torch.zeros_like(b))[0]
            track.append(float((b - a).norm(dim=1).mean()))
        distance[sampler], final[sampler], final_perturbed[sampler] = torch.tensor(track, dtype=torch.float64), a, b
    return ErrorCorrection(steps=list(range(perturb_step, -1, -1)), distance=distance, final=final,
                           final_perturbed=final_perturbed, size=float(size))
