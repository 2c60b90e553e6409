"""Reading untrusted checkpoint files in bounded time and memory (see core.checkpoints for the order of the checks).

Each function checks one layer of the file and raises CheckpointError (a ValueError) with a one-line message.
"""

from __future__ import annotations

import struct

import torch

from core.checkpoints.info import INFO_FIELDS, CheckpointInfo, parse_json, short_text
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import numerical_problem
from core.nets.config import UNetConfig, config_from_dict

FORMAT_VERSION = 1
METADATA_KEY = "rdl"
OPTIMIZER_KEY = "rdl_optimizer"
EMA_PREFIX, RAW_PREFIX, OPTIM_PREFIX = "ema.", "raw.", "optim."
# Caps on a file's size. A "base" UNet is ~58 MB of float32 weights; raw weights + Adam state make ~4x that.
MAX_CHECKPOINT_BYTES = 256 * 2**20  # files on disk, written by our own training
MAX_UPLOAD_BYTES = 100 * 2**20  # untrusted uploads (sampling needs only the EMA weights)
MAX_HEADER_BYTES = 4 * 2**20  # a real header (names, shapes, metadata) is a few hundred kB at most
MAX_TENSORS = 4096  # a "base" UNet's EMA + raw weights + Adam state hold ~1,200 tensors
MAX_HEADER_DEPTH = 4  # {"name": {"shape": [...]}}
MAX_SAMPLING_BYTES = 2**30  # activations of one forward pass on a full sampling batch
SAMPLING_BATCH = {"unet": 64, "mlp": 4096}  # the largest batches the app and `core.sample` draw at once
# The probe: the network's output must be finite at timesteps spread evenly over 0..T-1, at least PROBE_BATCH of them
# and as many more (up to all T) as PROBE_FLOPS of forward passes allow, run SAMPLING_BATCH inputs at a time (so in
# the memory the sampling check allowed). A toy MLP is probed at every timestep (0.4 MFLOP each), the shipped MNIST
# UNet (140 MFLOP) at 71 of its 1,000; the costliest allowed UNet (about 68 GFLOP per input) at PROBE_BATCH.
PROBE_BATCH = 4
PROBE_FLOPS = 10 * 10**9
TRAINING_INFO_KEYS = INFO_FIELDS[2:]  # data, training, steps, final_loss, training_seconds, device, notes
DOCUMENT_KEYS = ("format_version", "model", "diffusion", *TRAINING_INFO_KEYS,
                 "torch_version", "created", "has_raw", "has_optimizer")


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, inconsistent or unsafe."""


# Where every derived array of a model's schedule must lie, read in float32 as the samplers compute (Ho et al. eqs. 4,
# 6-7: α_t = 1 − β_t, ᾱ_t = Π α_s, β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t, μ̃_t = coef_x0·x_0 + coef_xt·x_t, whose two
# weights lie in [0, 1]). None: no bound on that side beyond finiteness. numerical_problem's bounds imply all of these
# (tests/test_hostile_schedules.py); this is the direct check of the numbers a sampler will index.
_UNIT = (0.0, 1.0)
SCHEDULE_ARRAY_RANGES = {
    "betas": _UNIT, "alphas": _UNIT, "alpha_bars": _UNIT, "alpha_bars_prev": _UNIT, "posterior_variance": _UNIT,
    "posterior_log_variance_clipped": (None, 0.0), "posterior_mean_coef_x0": _UNIT, "posterior_mean_coef_xt": _UNIT,
    "snr": (0.0, None), "sqrt_alpha_bars": _UNIT, "sqrt_one_minus_alpha_bars": _UNIT, "sqrt_recip_alpha_bars": (1.0, None),
    "sqrt_recip_alpha_bars_minus_one": (0.0, None), "log_betas": (None, 0.0),
}
RANGE_TOLERANCE = 1e-4  # float rounding at the ends of [0, 1] (the posterior weights hold to 4 digits at the edges)


def schedule_arrays(diffusion: GaussianDiffusion) -> dict:
    """Every derived array of the diffusion's schedule and of the diffusion itself (what samplers and losses index)."""
    schedule = diffusion.schedule
    arrays = {name: getattr(schedule, name) for name in ("betas", "alphas", "alpha_bars", "alpha_bars_prev",
                                                         "posterior_variance", "posterior_log_variance_clipped",
                                                         "posterior_mean_coef_x0", "posterior_mean_coef_xt", "snr")}
    arrays.update(diffusion._arrays)
    return arrays


def array_problem(arrays: dict) -> str | None:
    """The first array (in SCHEDULE_ARRAY_RANGES) not finite in float32 or outside its range, in one line, or None."""
    for name, (low, high) in SCHEDULE_ARRAY_RANGES.items():
        if name not in arrays:
            continue
        values = arrays[name].to(torch.float32)
        finite = torch.isfinite(values)
        outside = ~finite
        if low is not None:
            outside |= values < low - RANGE_TOLERANCE
        if high is not None:
            outside |= values > high + RANGE_TOLERANCE
        if bool(outside.any()):
            i = int(torch.nonzero(outside)[0])
            allowed = f"in [{low:g}, {high:g}]" if low is not None and high is not None else \
                (f">= {low:g}" if low is not None else f"<= {high:g}")
            what = "finite" if low is None and high is None else f"finite and {allowed}"
            return f"{name}[{i}]={float(values[i]):.3g} (t={i + 1}) in float32, where it must be {what}"
    return None


def schedule_problem(diffusion: GaussianDiffusion) -> str | None:
    """Why a model with this diffusion would meet NaN, infinity or meaningless numbers (one line), or None: the
    schedule's bounds (core.diffusion.schedules.numerical_problem), then every derived array (array_problem)."""
    return numerical_problem(diffusion.schedule) or array_problem(schedule_arrays(diffusion))


def check_model_schedule(schedule):
    """A schedule (NoiseSchedule or GaussianDiffusion) a model may be trained or sampled with: raises ValueError with one
    line when schedule_problem finds one, else returns it. The one check for an uploaded checkpoint (_configs) and the
    Train page's own options, so training never makes a model that no upload would accept."""
    diffusion = schedule if isinstance(schedule, GaussianDiffusion) else GaussianDiffusion(schedule)
    problem = schedule_problem(diffusion)
    if problem:
        raise ValueError(f"the schedule's {problem}")
    return schedule


def channels_problem(model_config: dict, diffusion: GaussianDiffusion) -> str | None:
    """The network must output diffusion.out_channels(data channels): twice as many for learned variances."""
    data_channels = model_config.get("in_channels", model_config.get("data_dim"))
    out_channels = model_config.get("out_channels", model_config.get("out_dim"))
    if isinstance(data_channels, int) and out_channels != diffusion.out_channels(data_channels):
        return (f"the model outputs {out_channels} channels but a {diffusion.variance!r} diffusion on "
                f"{data_channels}-channel data needs {diffusion.out_channels(data_channels)}")
    return None


def header_length(prefix: bytes, size: int, name: str) -> int:
    """The safetensors header length, checked against the file size and MAX_HEADER_BYTES."""
    if len(prefix) < 8 or size < 8:
        raise CheckpointError(f"{name}: not a safetensors checkpoint (only {size} bytes; truncated?)")
    (header_len,) = struct.unpack("<Q", prefix[:8])
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(f"{name}: not a safetensors checkpoint (header length {header_len} bytes is "
                              f"absurd; the limit is {MAX_HEADER_BYTES}) - wrong file type or corrupted")
    if header_len > size - 8:
        raise CheckpointError(f"{name}: truncated or not a safetensors checkpoint (header needs {header_len} "
                              f"bytes, only {size - 8} follow)")
    return header_len


def parse_header(raw: bytes, name: str) -> tuple[dict, int]:
    """(the safetensors str->str metadata, the number of tensors) from the JSON header bytes; the tensor
    entries themselves are checked by safetensors."""
    try:
        header = parse_json(raw, "the safetensors header", MAX_HEADER_BYTES, MAX_HEADER_DEPTH)
    except ValueError as e:
        raise CheckpointError(f"{name}: corrupted safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: corrupted safetensors header (a JSON object was expected)")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{name}: corrupted safetensors header (__metadata__ is not an object of strings)")
    count = len(header) - ("__metadata__" in header)
    if count > MAX_TENSORS:
        raise CheckpointError(f"{name}: the file holds {count:,} tensors, more than the limit of {MAX_TENSORS:,}")
    return metadata, count


def checked_document(metadata: dict, name: str) -> dict:
    """The validated "rdl" JSON document (its info part through CheckpointInfo; configs checked in checked_configs)."""
    if METADATA_KEY not in metadata:
        raise CheckpointError(f"{name}: a safetensors file, but not a Reverse Diffusion Lab checkpoint "
                              f"(no {METADATA_KEY!r} metadata)")
    try:
        doc = parse_json(metadata[METADATA_KEY], f"the {METADATA_KEY!r} metadata")
    except ValueError as e:
        raise CheckpointError(f"{name}: {e}") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{name}: the {METADATA_KEY!r} metadata must be a JSON object")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{name}: unsupported checkpoint format_version {short_text(doc.get('format_version'), 20)} "
                              f"(this version of the app reads format_version {FORMAT_VERSION})")
    if set(doc) != set(DOCUMENT_KEYS):
        raise CheckpointError(f"{name}: checkpoint metadata keys {sorted(doc)[:20]} differ from the expected "
                              f"{sorted(DOCUMENT_KEYS)}")
    problem = None
    try:
        CheckpointInfo.from_document(doc)
    except (ValueError, TypeError) as e:
        problem = str(e)
    if problem is None and not all(isinstance(doc[k], bool) for k in ("has_raw", "has_optimizer")):
        problem = "'has_raw' and 'has_optimizer' must be true or false"
    if problem is None and not all(isinstance(doc[k], str) and len(doc[k]) < 100 for k in ("torch_version", "created")):
        problem = "'torch_version' and 'created' must be short strings"
    if problem:
        raise CheckpointError(f"{name}: invalid checkpoint metadata: {problem}")
    return doc


def checked_configs(doc: dict, name: str):
    """(model config dataclass, diffusion) of a document, checked against every bound before anything is built."""
    try:
        net_config = config_from_dict(doc["model"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{name}: invalid model config in checkpoint ({str(e)[:300]})") from None
    try:
        diffusion = GaussianDiffusion.from_config(doc["diffusion"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{name}: invalid diffusion config in checkpoint ({str(e)[:300]})") from None
    try:
        check_model_schedule(diffusion)
    except ValueError as e:
        raise CheckpointError(f"{name}: invalid diffusion config in checkpoint ({e})") from None
    problem = channels_problem(doc["model"], diffusion)
    if problem:
        raise CheckpointError(f"{name}: model and diffusion configs do not fit together: {problem}")
    batch = SAMPLING_BATCH[net_config.kind]
    needed = net_config.forward_bytes(batch)
    if needed > MAX_SAMPLING_BYTES:
        raise CheckpointError(f"{name}: sampling {batch} examples at once would need about {needed / 2**30:.1f} GiB for "
                              f"this network's activations, more than the limit of {MAX_SAMPLING_BYTES / 2**30:.0f} GiB")
    return net_config, diffusion


def forward_flops(net_config) -> int:
    """FLOPs of one forward pass on one input, from the config alone: 2 per multiply-add of every linear layer,
    convolution and attention product (what torch.utils.flop_counter counts; tests compare the two)."""
    E = net_config.time_embed_dim
    if not isinstance(net_config, UNetConfig):
        h = net_config.hidden  # time MLP, input lift, per block linear1 + emb_proj + linear2, output
        return 2 * (E * h + h * h + net_config.input_features * h + 3 * net_config.depth * h * h + h * net_config.out_dim)
    macs = 2 * E * E  # the time MLP
    for kind, i, o, side, _ in net_config.layers():
        n = side * side
        if kind in ("input_conv", "output"):
            macs += 9 * i * o * n
        elif kind == "res":  # conv1, conv2, the 1x1 skip when the width changes, the time projection (scale, shift)
            macs += 9 * i * o * n + 9 * o * o * n + (i * o * n if i != o else 0) + 2 * E * o
        elif kind == "down":  # stride 2: a quarter of the positions
            macs += 9 * i * o * (side // 2) ** 2
        elif kind == "up":  # the conv runs at the doubled side
            macs += 9 * i * o * 4 * n
        else:  # attention: qkv and output 1x1 convs, then scores and weighted sum over all n x n pairs
            macs += 4 * i * i * n + 2 * n * n * i
    return 2 * macs


def probe_timesteps(net_config, T: int) -> torch.Tensor:
    """The timesteps the probe runs the network at: evenly spread over 0..T-1 with both ends, as many as PROBE_FLOPS
    allows (all T when they fit), never fewer than PROBE_BATCH (or T)."""
    count = min(T, max(PROBE_BATCH, PROBE_FLOPS // forward_flops(net_config)))
    return torch.linspace(0, T - 1, count, dtype=torch.float64).round().long().unique()


def probe_model(model: torch.nn.Module, net_config, T: int, name: str) -> None:
    """The network's output must be finite at every probe timestep (probe_timesteps), on fixed random inputs:
    weights can be finite and still overflow (e.g. 3e38), or overflow at some timesteps only (through the time
    embedding), which would otherwise surface as NaN samples or a traceback in a page."""
    generator = torch.Generator().manual_seed(0)
    shape = (net_config.in_channels, net_config.image_size, net_config.image_size) if net_config.kind == "unet" \
        else (net_config.data_dim,)
    timesteps = probe_timesteps(net_config, T)
    finite = []
    for chunk in timesteps.split(SAMPLING_BATCH[net_config.kind]):
        x = torch.randn((len(chunk), *shape), generator=generator)
        try:
            with torch.no_grad():
                finite.append(torch.isfinite(model(x, chunk).flatten(1)).all(dim=1))
        except (RuntimeError, ValueError) as e:  # shapes were checked; anything else is still the file's fault
            raise CheckpointError(f"{name}: the network fails on a probe batch ({str(e)[:200]})") from None
    bad = timesteps[~torch.cat(finite)]
    if len(bad):
        raise CheckpointError(f"{name}: the network's output on a probe batch is not finite (NaN or infinite) at "
                              f"{len(bad)} of the {len(timesteps)} timesteps probed (the first: t={int(bad[0])}): its "
                              f"weights overflow in a forward pass")


def take_weights(tensors: dict, prefix: str, expected: dict, name: str) -> dict:
    """Pop the `prefix` weights out of `tensors`, checking names, shapes, dtypes and finiteness."""
    found = {k[len(prefix):]: tensors.pop(k) for k in [k for k in tensors if k.startswith(prefix)]}
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{name}: {prefix}* weights do not match the model rebuilt from its config "
                              f"(missing {missing[:5]}, unexpected {extra[:5]})")
    for key, value in found.items():
        if value.shape != expected[key].shape or value.dtype != expected[key].dtype:
            raise CheckpointError(f"{name}: weight {prefix}{key} has shape {tuple(value.shape)} and dtype {value.dtype}, "
                                  f"the model expects {tuple(expected[key].shape)} and {expected[key].dtype}")
        _check_finite(value, prefix + key, name)
    return found


def _check_finite(value: torch.Tensor, key: str, name: str) -> None:
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise CheckpointError(f"{name}: tensor {key} contains NaN or infinite values")


def decode_tensors(obj, tensors: dict, name: str):
    """Inverse of _encode; pops the optimizer tensors out of `tensors`."""
    if isinstance(obj, list):
        return [decode_tensors(v, tensors, name) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"__tensor__"}:
        key = obj["__tensor__"]
        if not isinstance(key, str) or not key.startswith(OPTIM_PREFIX) or key not in tensors:
            raise CheckpointError(f"{name}: optimizer state refers to a missing tensor {key!r}")
        value = tensors.pop(key)
        _check_finite(value, key, name)
        return value
    if set(obj) == {"__tuple__"} and isinstance(obj["__tuple__"], list):
        return tuple(decode_tensors(v, tensors, name) for v in obj["__tuple__"])
    if set(obj) == {"__dict__"} and isinstance(obj["__dict__"], list) and all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], (int, str)) for p in obj["__dict__"]):
        return {k: decode_tensors(v, tensors, name) for k, v in obj["__dict__"]}
    raise CheckpointError(f"{name}: malformed optimizer state entry {str(obj)[:80]}")
