"""Whether one training step of a config fits in memory: checked before anything is built or started.

The estimate is core.nets.config's `training_step_bytes` (activations with gradients, weights, gradients, two
Adam moments and the EMA copy) for the network the config would build; the budget is MEMORY_SHARE of the memory
free where the run would train. Both the command line (`python -m core.train`) and the job registry
(`JobRegistry.submit`, hence the Train page) call `check_fits`, so a batch that cannot fit is refused with one
line before a worker starts, never as a crash in the first step.

The web server asks without initialising CUDA: a GPU's free memory comes from core.runtime.cuda_inventory (read once
per server process), unless this process already uses CUDA (the command line after building its model), where
torch answers directly. An "auto" job may train on any device of core.runtime.job_devices; `check_fits` returns
those it fits on, and the registry sends it only there.
"""

from __future__ import annotations

import torch

from core import runtime
from core.nets.build import model_config_for
from core.nets.config import config_from_dict
from core.training.config import TrainConfig, build_diffusion

MEMORY_SHARE = 0.8  # a training step may plan on this share of the memory available when it starts
# The shape of one training example per data kind: every image dataset of core.data.datasets is 28 x 28 grey
# (MNIST, its subset, Fashion-MNIST), every toy 2-D (tests/test_training.py checks this against the loaded data).
DATA_SHAPES = {"image": (1, 28, 28), "points": (2,)}


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory where the run trains: the GPU's free memory, or Linux's MemAvailable (None if unknown)."""
    if device.type == "cuda":
        if torch.cuda.is_initialized():  # this process computes on CUDA already: ask torch, now
            return torch.cuda.mem_get_info(device)[0]
        index = device.index or 0
        gpus = [gpu for gpu in runtime.cuda_inventory() if gpu.index == index]
        return gpus[0].free_bytes if gpus else None
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


def check_fits(config: TrainConfig, device: torch.device | None = None, available_bytes: int | None = None) -> tuple:
    """Raise ValueError (one line) when a training step of `config` would need more than MEMORY_SHARE of the
    memory available on `device`, or, without a device, on every device the config's jobs may train on
    (core.runtime.job_devices; "cuda" without a GPU is refused). Returns the device types it fits on, preferred
    first. `available_bytes` overrides the measurement (available_memory_bytes); where the free memory cannot be
    known, nothing is refused."""
    if device is None and config.device == "cuda" and not runtime.cuda_inventory():
        raise ValueError(runtime.NO_CUDA)
    candidates = [torch.device(name) for name in runtime.job_devices(config.device)] if device is None else [device]
    needed = training_step_bytes(config)
    fitting, refusals = [], []
    for candidate in candidates:
        available = available_memory_bytes(candidate) if available_bytes is None else available_bytes
        if available is not None and needed > MEMORY_SHARE * available:
            refusals.append(f"batch size {config.batch_size} would need about {needed / 2**30:.1f} GiB for one training "
                            f"step of this {config.model_size} model, but only {available / 2**30:.1f} GiB is available "
                            f"on {candidate.type}; use a smaller batch size")
        else:
            fitting.append(candidate.type)
    if not fitting:
        raise ValueError(refusals[0])
    return tuple(fitting)
