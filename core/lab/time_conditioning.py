"""How the network knows t: the sinusoidal embedding, and what happens without it.

The embedding (Vaswani et al. 2017 §3.5; Ho et al. 2020 Appendix B) is `core.nets.embedding`. Because
emb(t) = [sin(t·f_i), cos(t·f_i)], the dot product of two embeddings is Σ_i cos((t − s)·f_i): the similarity
of two timesteps depends only on their distance, and near timesteps look alike.

The experiment trains three tiny 2-D models with the same data, seed and budget (Ho et al.'s Algorithm 1):
"normal" (t ~ Uniform, t given to the network), "single t" (every example at one fixed t, the network still
told t), and "no time input" (t ~ Uniform, but the network is always told t = 0, so it must denoise every
noise level with one function), then samples each with DDPM (Algorithm 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from core.checks import check_choice, check_int
from core.data.toys import sample_toy
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.samplers import ddpm_sample
from core.diffusion.schedules import make_schedule
from core.nets.config import ToyMLPConfig
from core.nets.embedding import timestep_embedding
from core.nets.toy_mlp import MLP_SIZES, ToyMLP
from core.rng import MAX_SEED
from core.sampling import autocast_network

Variant = Literal["normal", "single_t", "no_time"]
VARIANTS: tuple[Variant, ...] = ("normal", "single_t", "no_time")
VARIANT_LABELS = {"normal": "normal (t ~ Uniform, t given)", "single_t": "trained at one t only",
                  "no_time": "no time input (always told t = 0)"}
EXPERIMENT_T = 100  # a short chain keeps training and sampling to seconds on a CPU
EXPERIMENT_TOYS = ("eight_gaussians", "two_moons", "swiss_roll", "gaussian_mixture")


def embedding_matrix(T: int, dim: int) -> torch.Tensor:
    """[T, dim] the embedding of every 0-based timestep index 0..T−1 (rows), as the network receives it."""
    T = check_int("T", T, 1, 10_000)
    return timestep_embedding(torch.arange(T), dim)


def cosine_similarity(embeddings: torch.Tensor) -> torch.Tensor:
    """[T, T] cosine similarity between every pair of rows."""
    unit = embeddings / embeddings.norm(dim=1, keepdim=True)
    return unit @ unit.T


class WithoutTime(torch.nn.Module):
    """The same network, always told t = 0: it cannot know the noise level."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x, torch.zeros_like(t))


@dataclass(frozen=True)
class ExperimentSettings:
    dataset: str = "eight_gaussians"
    steps: int = 600  # optimiser steps per model
    batch: int = 256
    single_t: int = 50  # 0-based index of the one timestep the "single t" model sees
    n_samples: int = 1000
    seed: int = 0

    def checked(self) -> ExperimentSettings:
        check_choice("dataset", self.dataset, EXPERIMENT_TOYS)
        check_int("steps", self.steps, 1, 5000)
        check_int("batch", self.batch, 8, 4096)
        check_int("single_t", self.single_t, 0, EXPERIMENT_T - 1)
        check_int("n_samples", self.n_samples, 2, 10_000)
        check_int("seed", self.seed, 0, MAX_SEED)
        return self


def experiment_diffusion() -> GaussianDiffusion:
    """Linear β scaled to T = 100 (Nichol & Dhariwal's rule, so x_T is still almost pure noise), ε-prediction, σ² = β̃."""
    return GaussianDiffusion(make_schedule("linear", EXPERIMENT_T, scale_with_T=True), "eps", "fixed_small")


def train_variant(variant: Variant, settings: ExperimentSettings, progress: Callable[[int, int], None] | None = None):
    """Train one tiny ToyMLP (the "tiny" size) with Adam (lr 3e-3) for settings.steps steps; returns the model
    as the sampler must call it (wrapped in WithoutTime for "no_time")."""
    check_choice("variant", variant, VARIANTS)
    settings = settings.checked()
    diffusion = experiment_diffusion()
    generator = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng():  # nn.Module initialisation draws from the default generator: seed it, then restore it
        torch.manual_seed(settings.seed)
        model = ToyMLP(ToyMLPConfig(data_dim=2, out_dim=2, **MLP_SIZES["tiny"]))
    network = WithoutTime(model) if variant == "no_time" else model
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(settings.steps):
        # 1. a batch of clean points
        x0 = sample_toy(settings.dataset, settings.batch, generator)
        # 2. the timesteps this variant trains on
        if variant == "single_t":
            t = torch.full((settings.batch,), settings.single_t, dtype=torch.long)
        else:
            t = torch.randint(0, diffusion.T, (settings.batch,), generator=generator)
        # 3. the simple loss ‖ε − ε_θ(x_t, t)‖² and one Adam step
        noise = torch.randn(x0.shape, generator=generator)
        loss = ((network(diffusion.q_sample(x0, t, noise), t) - noise) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(step + 1, settings.steps)
    return network.eval()


def train_and_sample(variant: Variant, settings: ExperimentSettings,
                     progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Train one variant (progress(step, steps) while training), then draw settings.n_samples points with 100-step
    DDPM (Algorithm 2) from torch.Generator().manual_seed(seed + 2): the same x_T for every variant. The network
    samples under bf16 autocast where core.runtime enables it (core.sampling.autocast_network)."""
    settings = settings.checked()
    model = train_variant(variant, settings, progress)
    with torch.no_grad():
        return ddpm_sample(autocast_network(model), experiment_diffusion(), (settings.n_samples, 2),
                           generator=torch.Generator().manual_seed(settings.seed + 2))


def reference_points(settings: ExperimentSettings) -> torch.Tensor:
    """settings.n_samples data points (seed + 1), what the samples are compared with."""
    settings = settings.checked()
    return sample_toy(settings.dataset, settings.n_samples, torch.Generator().manual_seed(settings.seed + 1))


def run_experiment(settings: ExperimentSettings, progress: Callable[[float], None] | None = None) -> dict:
    """Train the three variants and sample from each (train_and_sample). Returns {"data": reference points,
    variant: samples}; progress(fraction) as training proceeds."""
    settings = settings.checked()
    results = {"data": reference_points(settings)}
    for k, variant in enumerate(VARIANTS):
        def report(done, total, k=k):
            if progress is not None:
                progress((k + done / total) / len(VARIANTS))
        results[variant] = train_and_sample(variant, settings, report)
    return results
