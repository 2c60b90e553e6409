"""Whether one training step of a config fits in memory: checked before anything is built or started.

The estimate is core.nets.config's `training_step_bytes` (activations with gradients, weights, gradients, two
Adam moments and the EMA copy) for the network the config would build; the budget is MEMORY_SHARE of the memory
free where the run would train. Both the command line (`python -m core.train`) and the job registry
(`JobRegistry.submit`, hence the Train page) call `check_fits`, so a batch that cannot fit is refused with one
line before a worker starts, never as a crash in the first step.
"""

from __future__ import annotations

import torch

from core.nets.build import model_config_for
from core.nets.config import config_from_dict
from core.runtime import resolve_device
from core.training.config import TrainConfig, build_diffusion

MEMORY_SHARE = 0.8  # a training step may plan on this share of the memory available when it starts
# The shape of one training example per data kind: every image dataset of core.data.datasets is 28 x 28 grey
# (MNIST, its subset, Fashion-MNIST), every toy 2-D (tests/test_training.py checks this against the loaded data).
DATA_SHAPES = {"image": (1, 28, 28), "points": (2,)}


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory where the run trains: the GPU's free memory, or Linux's MemAvailable (None if unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            line = next(line for line in f if line.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError):
        return None


def training_step_bytes(config: TrainConfig) -> int:
    """Estimated bytes of one training step of the network `config` builds (nothing is allocated)."""
    shape = DATA_SHAPES[config.data_kind]
    out_channels = build_diffusion(config).out_channels(shape[0])
    net_config = config_from_dict(model_config_for(config.data_kind, shape, config.model_size, out_channels))
    return net_config.training_step_bytes(config.batch_size)


def check_fits(config: TrainConfig, device: torch.device | None = None, available_bytes: int | None = None) -> None:
    """Raise ValueError (one line) when a training step of `config` would need more than MEMORY_SHARE of the
    memory available on `device` (default: the config's device). `available_bytes` overrides the measurement
    (available_memory_bytes); where the free memory cannot be known, nothing is refused."""
    device = resolve_device(config.device) if device is None else device
    available = available_memory_bytes(device) if available_bytes is None else available_bytes
    needed = training_step_bytes(config)
    if available is not None and needed > MEMORY_SHARE * available:
        raise ValueError(f"batch size {config.batch_size} would need about {needed / 2**30:.1f} GiB for one training step "
                         f"of this {config.model_size} model, but only {available / 2**30:.1f} GiB is available on "
                         f"{device.type}; use a smaller batch size")
