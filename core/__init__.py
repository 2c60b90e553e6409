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

# The public API, loaded on first use (PEP 562): `import core.diffusion.schedules` then loads the schedules and
# nothing of training/, metrics/ or checkpoints/ (tests/test_core_imports.py); `from core import Trainer` loads
# what Trainer needs. name -> the module that defines it.
_PUBLIC = {
    "load": "core.checkpoints", "save": "core.checkpoints",
    "load_dataset": "core.data.datasets",
    "GaussianDiffusion": "core.diffusion.gaussian_diffusion",
    "EmpiricalDistribution": "core.diffusion.oracle", "GaussianMixture": "core.diffusion.oracle",
    "OracleDenoiser": "core.diffusion.oracle",
    "ddim_sample": "core.diffusion.samplers", "ddim_step": "core.diffusion.samplers", "ddpm_sample": "core.diffusion.samplers",
    "timesteps": "core.diffusion.samplers",
    "NoiseSchedule": "core.diffusion.schedules", "make_schedule": "core.diffusion.schedules",
    "confident_fraction": "core.metrics.mnist", "frechet_distance": "core.metrics.mnist", "inception_score": "core.metrics.mnist",
    "mnist_fd": "core.metrics.mnist", "mnist_quality": "core.metrics.mnist", "mnist_real_floor": "core.metrics.mnist",
    "mmd_rbf": "core.metrics.points", "sliced_wasserstein": "core.metrics.points",
    "build_model": "core.nets.build", "ToyMLP": "core.nets.toy_mlp", "UNet": "core.nets.unet",
    "TrainConfig": "core.training.trainer", "Trainer": "core.training.trainer",
}


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


__all__ = [
    "EmpiricalDistribution", "GaussianDiffusion", "GaussianMixture", "NoiseSchedule", "OracleDenoiser", "ToyMLP",
    "TrainConfig", "Trainer", "UNet", "build_model", "confident_fraction", "ddim_sample", "ddim_step",
    "ddpm_sample", "frechet_distance", "inception_score", "load", "load_dataset", "make_schedule", "mmd_rbf",
    "mnist_fd", "mnist_quality", "mnist_real_floor", "save", "sliced_wasserstein", "timesteps",
]
