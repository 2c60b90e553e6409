"""Reverse Diffusion Lab core: plain PyTorch, no Streamlit.

The layers, from the papers up (each imports only the ones above it):
    diffusion/   schedules, the Gaussian diffusion process, DDPM/DDIM samplers, exact (oracle) denoisers
    nets/        timestep embedding, UNet, toy MLP, build (config -> model)
    data/        MNIST and the 2-D toys, image grids
    checkpoints  safetensors + JSON files, validated, never pickled
    training/    config and recipes, the training loop, background jobs
    metrics/     2-D point metrics, MNIST classifier metrics
    lab/         what the teaching pages compute (numbers and figure data, no widgets)
    train, sample   the command-line tools (`python -m core.train`, `python -m core.sample`)

The names below are the public API: `from core import GaussianDiffusion, make_schedule, ddpm_sample`.
"""

import os

# Idle OpenMP threads sleep instead of spinning, in every process that uses core (set before torch loads its OpenMP
# runtime, which reads it once). On 2 idle AVX2 cores the light recipe's step costs the same either way (133-135 vs
# 131-135 ms) and the standard one 5-10 % more; on a busy machine spinning threads cost up to 16x (docs/benchmarks.md,
# "CPU threads" and "Digits within a lesson"). An explicit OMP_WAIT_POLICY is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from core.checkpoints import load, save
from core.data.datasets import load_dataset
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import EmpiricalDistribution, GaussianMixture, OracleDenoiser
from core.diffusion.samplers import ddim_sample, ddim_step, ddpm_sample, timesteps
from core.diffusion.schedules import NoiseSchedule, make_schedule
from core.metrics.mnist import confident_fraction, frechet_distance, inception_score, mnist_fd, mnist_quality, mnist_real_floor
from core.metrics.points import mmd_rbf, sliced_wasserstein
from core.nets.build import build_model
from core.nets.toy_mlp import ToyMLP
from core.nets.unet import UNet
from core.training.trainer import TrainConfig, Trainer

__all__ = [
    "EmpiricalDistribution", "GaussianDiffusion", "GaussianMixture", "NoiseSchedule", "OracleDenoiser", "ToyMLP",
    "TrainConfig", "Trainer", "UNet", "build_model", "confident_fraction", "ddim_sample", "ddim_step",
    "ddpm_sample", "frechet_distance", "inception_score", "load", "load_dataset", "make_schedule", "mmd_rbf",
    "mnist_fd", "mnist_quality", "mnist_real_floor", "save", "sliced_wasserstein", "timesteps",
]
