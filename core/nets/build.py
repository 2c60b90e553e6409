"""Building denoising networks from plain, JSON-able config dicts.

Every model built here has a `.config` dict with "kind": "unet" | "mlp" plus its constructor
arguments, and build_model(model.config) rebuilds the same architecture. Checkpoints store this
dict as JSON next to safetensors weights, so nothing is ever unpickled.
"""

import torch
from torch import nn

from core.nets.toy_mlp import MLP_SIZES, ToyMLP
from core.nets.unet import UNET_SIZES, UNet

MODEL_KINDS = {"unet": UNet, "mlp": ToyMLP}
# Constructor arguments per kind: (required, optional). Lists are accepted where the model takes tuples.
_ARGUMENTS = {
    "unet": (
        ("in_channels", "out_channels", "image_size"),
        ("channels", "num_res_blocks", "attention", "num_heads", "time_embed_dim", "norm_groups", "dropout"),
    ),
    "mlp": ((), ("data_dim", "out_dim", "hidden", "depth", "time_embed_dim", "fourier_frequencies")),
}
SIZE_NAMES = ("tiny", "small", "base")


def build_model(config: dict) -> nn.Module:
    """Construct a UNet or ToyMLP from `config` (see the module docstring); raises ValueError on bad input."""
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict with a 'kind' key, got {type(config).__name__}")
    kind = config.get("kind")
    if kind not in MODEL_KINDS:
        raise ValueError(f"config['kind'] must be one of {', '.join(MODEL_KINDS)}; got {kind!r}")
    required, optional = _ARGUMENTS[kind]
    arguments = {key: value for key, value in config.items() if key != "kind"}
    unknown = sorted(set(arguments) - set(required) - set(optional))
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in a {kind!r} config; allowed: {', '.join(required + optional)}"
        )
    missing = [key for key in required if key not in arguments]
    if missing:
        raise ValueError(f"a {kind!r} config needs the key(s) {missing}")
    return MODEL_KINDS[kind](**arguments)


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
