"""Building denoising networks from plain, JSON-able config dicts.

Every model built here has a `.config` dict with "kind": "unet" | "mlp" plus its config dataclass's
fields (`.net_config`, core.nets.config), and build_model(model.config) rebuilds the same architecture. Checkpoints store this
dict as JSON next to safetensors weights, so nothing is ever unpickled.
"""

import torch
from torch import nn

from core.nets.config import config_from_dict
from core.nets.toy_mlp import MLP_SIZES, ToyMLP
from core.nets.unet import UNET_SIZES, UNet

MODEL_KINDS = {"unet": UNet, "mlp": ToyMLP}
SIZE_NAMES = ("slim", "tiny", "small", "base")


def build_model(config: dict) -> nn.Module:
    """Construct a UNet or ToyMLP from `config` (see the module docstring); raises ValueError on bad input.

    The dict goes through its config dataclass (core.nets.config), which checks every field and the
    parameter count before anything is allocated."""
    net_config = config_from_dict(config)
    return MODEL_KINDS[net_config.kind](net_config)


def count_parameters(model: nn.Module) -> int:
    """Total number of parameter values (weights and biases) in `model`."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(parameter.numel() for parameter in model.parameters())


def model_config_for(dataset_kind: str, data_shape, size: str, out_channels: int) -> dict:
    """The config of the named-size network for one data sample shape.

    dataset_kind "image" with data_shape (C, H, W), H == W -> UNet; "points" with data_shape (D,) -> ToyMLP.
    out_channels is what the diffusion needs, i.e. diffusion.out_channels(C or D) (x2 for learned variance).
    """
    if dataset_kind not in ("image", "points"):
        raise ValueError(f"dataset_kind must be 'image' or 'points', got {dataset_kind!r}")
    if size not in SIZE_NAMES:
        raise ValueError(f"size must be one of {', '.join(SIZE_NAMES)}; got {size!r}")
    if isinstance(out_channels, bool) or not isinstance(out_channels, int) or out_channels < 1:
        raise ValueError(f"out_channels must be a positive integer, got {out_channels!r}")
    if isinstance(data_shape, torch.Size):
        data_shape = tuple(data_shape)
    if not isinstance(data_shape, (tuple, list)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in data_shape
    ):
        raise ValueError(f"data_shape must be a tuple of positive integers, got {data_shape!r}")

    if dataset_kind == "image":
        if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
            raise ValueError(f"image data_shape must be (C, H, W) with H == W, got {tuple(data_shape)}")
        channels, image_size, _ = data_shape
        config = {"kind": "unet", "in_channels": channels, "out_channels": out_channels, "image_size": image_size}
        config.update({key: list(v) if isinstance(v, tuple) else v for key, v in UNET_SIZES[size].items()})
        return config
    if len(data_shape) != 1:
        raise ValueError(f"points data_shape must be (D,), got {tuple(data_shape)}")
    return {"kind": "mlp", "data_dim": data_shape[0], "out_dim": out_channels, **MLP_SIZES[size]}
