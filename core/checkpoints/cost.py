"""What one sampling run with a model costs, before it runs: so a page can ask before a long run, and cap its steps.

A file within every bound of core.checkpoints.validate can still cost far more per network call than the shipped
model (issue 21 item 7: a 35.6 MB upload took 64x the shipped model's CPU time per call). The cost is estimated as

    seconds ≈ forward_flops(config) · n · calls / rate

with forward_flops the FLOPs of one forward pass on one input, computed from the model's config alone
(core.checkpoints.validate.forward_flops, checked against torch's FLOP counter in the tests), n the samples drawn at
once, calls the number of network calls (one per sampler step: Algorithm 2 of Ho et al. and DDIM's eq. 12 both call
the network once per visited timestep), and `rate` this machine's measured FLOP/s for such networks: a timed probe of a
fixed reference network (the shipped MNIST UNet's "tiny" architecture, REFERENCE_BATCH inputs, best of
REFERENCE_REPEATS calls, under the same bf16 autocast as sampling), measured once per process and bounded to
about REFERENCE_BATCH · REFERENCE_REPEATS · 0.14 GFLOP of work. Wider networks use a CPU's arithmetic units better
than the reference, so the estimate errs on the long side.
"""

from __future__ import annotations

import math
import threading
import time

import torch

from core.checkpoints.validate import forward_flops
from core.nets.build import build_model
from core.nets.config import config_from_dict
from core.nets.unet import UNET_SIZES

REFERENCE_CONFIG = {"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 28,
                    **{key: list(value) if isinstance(value, tuple) else value for key, value in UNET_SIZES["tiny"].items()}}
REFERENCE_BATCH = 8
REFERENCE_REPEATS = 3

_rate_lock = threading.Lock()
_rate: list[float] = []  # the measured FLOP/s, once per process


def network_config(model):
    """The config dataclass of a network built by core.nets.build (its `.config` dict), or None for anything else
    (the exact oracle denoisers: no network to estimate)."""
    config = getattr(getattr(model, "model", model), "config", None)  # through PredictionOnly / AutocastNetwork
    if not isinstance(config, dict):
        return None
    try:
        return config_from_dict(config)
    except ValueError:
        return None


def call_flops(model, n: int) -> int | None:
    """FLOPs of one network call on n inputs (forward_flops · n), or None when `model` is not a built network."""
    config = network_config(model)
    return None if config is None else forward_flops(config) * int(n)


def measure_flops_per_second() -> float:
    """Time the reference network (see the module docstring) and return its FLOP/s: REFERENCE_BATCH inputs per call,
    the fastest of REFERENCE_REPEATS calls after one untimed call, under core.sampling's bf16 autocast policy."""
    from core.sampling import autocast_network  # core.sampling imports core.checkpoints: import here, not at the top

    generator = torch.Generator().manual_seed(0)
    network = autocast_network(build_model(REFERENCE_CONFIG).eval())
    x = torch.randn((REFERENCE_BATCH, 1, 28, 28), generator=generator)
    t = torch.full((REFERENCE_BATCH,), 10, dtype=torch.long)
    best = math.inf
    with torch.no_grad():
        network(x, t)
        for _ in range(REFERENCE_REPEATS):
            started = time.perf_counter()
            network(x, t)
            best = min(best, time.perf_counter() - started)
    return forward_flops(config_from_dict(REFERENCE_CONFIG)) * REFERENCE_BATCH / max(best, 1e-9)


def flops_per_second() -> float:
    """This process's measured FLOP/s (measure_flops_per_second, once; later calls return the same number)."""
    with _rate_lock:
        if not _rate:
            _rate.append(measure_flops_per_second())
        return _rate[0]


def sampling_seconds(model, n: int, calls: int, rate: float) -> float | None:
    """Estimated seconds of `calls` network calls on n inputs at `rate` FLOP/s (None for a model that is no network)."""
    flops = call_flops(model, n)
    return None if flops is None else flops * int(calls) / float(rate)


def max_calls(model, n: int, seconds: float, rate: float) -> int | None:
    """The most network calls on n inputs that fit in `seconds` at `rate` (at least 1), None for a model that is no
    network: what a page caps its step count at."""
    flops = call_flops(model, n)
    return None if flops is None else max(1, int(seconds * float(rate) // flops))
