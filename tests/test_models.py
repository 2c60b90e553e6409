"""Tests for the denoising networks: embedding, UNet, ToyMLP and the config-based builder."""

import json
import math
import re
import weakref
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import core.nets.toy_mlp
import core.nets.unet
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule
from core.nets.build import build_model, count_parameters, model_config_for
from core.nets.config import BOUNDS, MAX_PARAMETERS, ToyMLPConfig, UNetConfig, config_from_dict
from core.nets.embedding import timestep_embedding
from core.nets.toy_mlp import MLP_SIZES, ToyMLP
from core.nets.unet import UNET_SIZES, ResBlock, UNet

ROOT = Path(__file__).resolve().parent.parent
SIZES = ("slim", "tiny", "small", "base")
PREDICTIONS = ("eps", "x0", "v")
VARIANCES = ("fixed_large", "learned_range")


def make_unet(in_channels: int, out_channels: int, image_size: int, size: str = "tiny") -> UNet:
    return UNet(UNetConfig(in_channels, out_channels, image_size, **UNET_SIZES[size]))


def make_mlp(data_dim: int = 2, out_dim: int = 2, size: str | None = None, **fields) -> ToyMLP:
    return ToyMLP(ToyMLPConfig(data_dim, out_dim, **(MLP_SIZES[size] if size else {}), **fields))


def _randomize_(model: torch.nn.Module, seed: int = 0) -> None:
    """Overwrite every parameter (including the zero-initialised ones) with small random values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))


# ------------------------------------------------------------------------------------------ embedding
def test_embedding_matches_the_formula_by_hand():
    # dim 6 -> half 3 -> frequencies 10000^(-0/2), 10000^(-1/2), 10000^(-2/2) = 1, 0.01, 0.0001
    emb = timestep_embedding(torch.tensor([5, 0, 999]), 6)
    assert emb.shape == (3, 6) and emb.dtype == torch.float32
    expected_t5 = [math.sin(5), math.sin(0.05), math.sin(0.0005), math.cos(5), math.cos(0.05), math.cos(0.0005)]
    assert torch.allclose(emb[0], torch.tensor(expected_t5), atol=1e-6)
    assert torch.equal(emb[1], torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
    assert emb[2, 0].item() == pytest.approx(math.sin(999), abs=1e-4)
    assert emb[2, 4].item() == pytest.approx(math.cos(9.99), abs=1e-5)
    # max_period sets the slowest frequency: dim 4, max_period 100 -> frequencies 1 and 1/100
    emb = timestep_embedding(torch.tensor([30]), 4, max_period=100)
    assert torch.allclose(emb[0], torch.tensor([math.sin(30), math.sin(0.3), math.cos(30), math.cos(0.3)]), atol=1e-5)


def test_embedding_distinguishes_every_timestep():
    emb = timestep_embedding(torch.arange(1000), 64)
    distances = torch.cdist(emb, emb)
    distances.fill_diagonal_(float("inf"))
    assert distances.min() > 0.1  # no two of the 1000 indices share (or nearly share) an embedding


@pytest.mark.parametrize(
    "t, dim, match",
    [
        (torch.tensor([0.5]), 8, "integer"),
        (torch.tensor([[1, 2]]), 8, "1-D"),
        ([1, 2], 8, "1-D"),
        (torch.tensor([1]), 7, "dim"),
        (torch.tensor([1]), 2, "dim"),
    ],
)
def test_embedding_rejects_bad_input(t, dim, match):
    with pytest.raises(ValueError, match=match):
        timestep_embedding(t, dim)


# ------------------------------------------------------------------------------------- output shapes
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("variance", VARIANCES)
def test_unet_output_shape_for_every_size_and_parameterization(size, prediction, variance):
    diffusion = GaussianDiffusion(make_schedule("linear", 10), prediction, variance)
    out_channels = diffusion.out_channels(1)
    assert out_channels == (2 if variance == "learned_range" else 1)
    model = build_model(model_config_for("image", (1, 28, 28), size, out_channels))
    x = torch.randn(2, 1, 28, 28)
    out = model(x, torch.tensor([0, 9]))
    assert out.shape == (2, out_channels, 28, 28)
    # the diffusion accepts it as a model output for this parameterization
    losses = diffusion.training_losses(model, x, generator=torch.Generator().manual_seed(0))
    assert losses["loss"].shape == (2,)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("variance", VARIANCES)
def test_toy_mlp_output_shape(size, variance):
    out_dim = GaussianDiffusion(make_schedule("linear", 10), "eps", variance).out_channels(2)
    model = build_model(model_config_for("points", (2,), size, out_dim))
    assert isinstance(model, ToyMLP)
    assert model(torch.randn(5, 2), torch.arange(5)).shape == (5, out_dim)


def test_unet_handles_rgb_32x32():
    model = make_unet(3, 6, 32, "tiny")
    assert model(torch.randn(2, 3, 32, 32), torch.tensor([3, 400])).shape == (2, 6, 32, 32)


def test_models_reject_wrong_input_shapes():
    unet = make_unet(1, 1, 28, "tiny")
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\]"):
        unet(torch.randn(2, 1, 32, 32), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="t must"):
        unet(torch.randn(2, 1, 28, 28), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"\[B, 2\]"):
        make_mlp()(torch.randn(4, 3), torch.arange(4))


# ----------------------------------------------------------------------------- initialisation, learning
@pytest.mark.parametrize(
    "make", [lambda: make_unet(1, 2, 28, "tiny"), lambda: make_mlp(2, 4, "tiny")]
)
def test_zero_initialised_output_is_exactly_zero(make):
    torch.manual_seed(0)
    model = make()
    shape = (3, 1, 28, 28) if isinstance(model, UNet) else (3, 2)
    out = model(torch.randn(shape), torch.tensor([0, 500, 999]))
    assert torch.count_nonzero(out) == 0


def test_time_embedding_reaches_the_output():
    model = make_unet(1, 1, 28, "tiny")
    _randomize_(model)
    x = torch.randn(1, 1, 28, 28).repeat(2, 1, 1, 1)
    out = model(x, torch.tensor([10, 700]))
    assert (out[0] - out[1]).abs().max() > 1e-3  # same image, different t -> different output


@pytest.mark.parametrize("kind", ["unet", "mlp"])
def test_a_few_adam_steps_reduce_the_loss_on_a_fixed_batch(kind):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    if kind == "unet":
        model = make_unet(1, 1, 28, "tiny")
        x = torch.randn(4, 1, 28, 28, generator=generator)
        target = 0.5 * x + 0.3  # a learnable function of the input
    else:
        model = make_mlp(2, 2, "tiny")
        x = torch.randn(64, 2, generator=generator)
        target = torch.stack([x[:, 1], -x[:, 0]], dim=1)
    t = torch.randint(0, 1000, (x.shape[0],), generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = torch.nn.functional.mse_loss(model(x, t), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ------------------------------------------------------------------------------------ configs, builder
@pytest.mark.parametrize("kind, size", [(k, s) for k in ("image", "points") for s in SIZES])
def test_build_model_round_trip_through_json(kind, size):
    shape = (1, 28, 28) if kind == "image" else (2,)
    model = build_model(model_config_for(kind, shape, size, 2))
    rebuilt = build_model(json.loads(json.dumps(model.config)))
    assert rebuilt.config == model.config
    assert [(n, p.shape) for n, p in rebuilt.named_parameters()] == [(n, p.shape) for n, p in model.named_parameters()]
    # the weights load one-to-one, and then both compute the same function
    _randomize_(model)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn((2, *shape))
    assert torch.equal(model(x, torch.tensor([1, 2])), rebuilt(x, torch.tensor([1, 2])))


def test_model_config_for_picks_the_architecture():
    config = model_config_for("image", (3, 32, 32), "small", 6)
    assert config["kind"] == "unet" and config["in_channels"] == 3 and config["out_channels"] == 6
    assert config["image_size"] == 32 and config["channels"] == list(UNET_SIZES["small"]["channels"])
    config = model_config_for("points", torch.Size([2]), "base", 4)
    assert config == {"kind": "mlp", "data_dim": 2, "out_dim": 4, **MLP_SIZES["base"]}


UNET_OK = {"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 28}


@pytest.mark.parametrize(
    "config, match",
    [
        ([("kind", "unet")], "dict"),
        ({"in_channels": 1}, "kind"),
        ({"kind": "transformer"}, "kind"),
        ({**UNET_OK, "width": 3}, "unknown key.*width"),
        ({"kind": "unet", "in_channels": 1, "image_size": 28}, "out_channels"),
        ({**UNET_OK, "in_channels": 0}, "in_channels"),
        ({**UNET_OK, "channels": [16, 30, 64]}, "norm_groups"),
        ({**UNET_OK, "channels": [16, 32], "num_res_blocks": [1, 1, 1]}, "num_res_blocks"),
        ({**UNET_OK, "image_size": 30}, "image_size"),
        ({**UNET_OK, "channels": []}, "channels"),
        ({**UNET_OK, "attention": "yes"}, "attention"),
        ({**UNET_OK, "dropout": 1.5}, "dropout"),
        ({**UNET_OK, "time_embed_dim": 33}, "time_embed_dim"),
        ({**UNET_OK, "num_heads": 3}, "num_heads"),
        ({"kind": "mlp", "hidden": 0}, "hidden"),
        ({"kind": "mlp", "depth": 2.5}, "depth"),
    ],
)
def test_bad_configs_raise_clear_value_errors(config, match):
    with pytest.raises(ValueError, match=match):
        build_model(config)


@pytest.mark.parametrize(
    "args, match",
    [
        (("video", (1, 28, 28), "tiny", 1), "dataset_kind"),
        (("image", (1, 28, 28), "huge", 1), "size"),
        (("image", (1, 28, 28), "tiny", 0), "out_channels"),
        (("image", (1, 28, 32), "tiny", 1), "H == W"),
        (("points", (2, 2), "tiny", 2), r"\(D,\)"),
    ],
)
def test_model_config_for_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        model_config_for(*args)


# ----------------------------------------------------------------------------------- parameter counts
def test_resblock_parameter_count_by_hand():
    block = ResBlock(16, 32, emb_dim=64, groups=8, dropout=0.0)
    by_hand = (
        2 * 16  # norm1 (scale, shift)
        + 16 * 32 * 9 + 32  # conv1
        + 64 * 64 + 64  # emb_proj -> (scale, shift) for 32 channels
        + 2 * 32  # norm2
        + 32 * 32 * 9 + 32  # conv2
        + 16 * 32 + 32  # 1x1 skip
    )
    assert count_parameters(block) == by_hand


def _documented_counts(module) -> dict:
    """{size: count} from lines like '"tiny" ... -> 123,456 parameters' in a module docstring."""
    found = re.findall(r'"(\w+)".*->\s*([\d,]+) parameters', module.__doc__)
    return {name: int(count.replace(",", "")) for name, count in found}


def test_documented_parameter_counts_are_exact():
    unet_counts = _documented_counts(core.nets.unet)
    mlp_counts = _documented_counts(core.nets.toy_mlp)
    assert set(unet_counts) == set(SIZES) and set(mlp_counts) == set(SIZES)
    for size in SIZES:
        assert count_parameters(make_unet(1, 1, 28, size)) == unet_counts[size]
        assert count_parameters(make_mlp(2, 2, size)) == mlp_counts[size]


@pytest.mark.parametrize("size, low, high", [("slim", 0.2e6, 0.8e6), ("tiny", 0.2e6, 0.8e6), ("small", 1.0e6, 2.5e6), ("base", 4e6, 9e6)])
def test_unet_sizes_are_in_their_advertised_ranges(size, low, high):
    assert low <= count_parameters(make_unet(1, 1, 28, size)) <= high


def test_count_parameters_rejects_non_modules():
    with pytest.raises(ValueError, match="nn.Module"):
        count_parameters([torch.zeros(3)])


def test_fourier_features_by_hand():
    from core.nets.toy_mlp import fourier_features

    x = torch.tensor([[0.25, -0.5]])
    features = fourier_features(x, 2)
    expected = [0.25, -0.5,
                math.sin(math.pi * 0.25), math.sin(2 * math.pi * 0.25), math.sin(-math.pi * 0.5), math.sin(-2 * math.pi * 0.5),
                math.cos(math.pi * 0.25), math.cos(2 * math.pi * 0.25), math.cos(-math.pi * 0.5), math.cos(-2 * math.pi * 0.5)]
    torch.testing.assert_close(features[0], torch.tensor(expected), atol=1e-6, rtol=0)
    torch.testing.assert_close(fourier_features(x, 0), x)
    with pytest.raises(ValueError, match="fourier_frequencies"):
        ToyMLPConfig(2, 2, fourier_frequencies=40)


# ------------------------------------------------------------------- config dataclasses: bounds, cost
class LiveTensorPeak(TorchDispatchMode):
    """Measures the peak bytes of tensor storages created inside the mode and still alive (views share one
    storage: it is released when the last tensor using it is freed). A second method, independent of the
    estimate in core.nets.config, which counts layers from the config."""

    def __init__(self):
        super().__init__()
        self.sizes, self.users, self.current, self.peak = {}, {}, 0, 0

    def _release(self, key):
        self.users[key] -= 1
        if self.users[key] == 0:
            self.current -= self.sizes.pop(key)
            del self.users[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                key = tensor.untyped_storage().data_ptr()
                if key not in self.sizes:
                    self.sizes[key], self.users[key] = tensor.untyped_storage().nbytes(), 0
                    self.current += self.sizes[key]
                    self.peak = max(self.peak, self.current)
                self.users[key] += 1
                weakref.finalize(tensor, self._release, key)
        return out


COST_CASES = [
    UNetConfig(1, 1, 28, **UNET_SIZES["tiny"]),
    UNetConfig(1, 2, 28, **UNET_SIZES["small"]),
    UNetConfig(3, 6, 32, **UNET_SIZES["tiny"]),
    UNetConfig(1, 1, 16, channels=(32,), num_res_blocks=(2,), num_heads=4, time_embed_dim=32),
    UNetConfig(4, 8, 64, channels=(8, 16, 16, 32), num_res_blocks=(1, 2, 1, 1), attention=False, norm_groups=4),
    ToyMLPConfig(2, 2, **MLP_SIZES["small"]),
    ToyMLPConfig(2, 4, hidden=512, depth=4, time_embed_dim=64),
    ToyMLPConfig(16, 32, hidden=40, depth=1, time_embed_dim=4, fourier_frequencies=3),
]


@pytest.mark.parametrize("config", COST_CASES, ids=lambda c: c.kind)
def test_parameter_count_from_the_config_matches_the_built_module(config):
    assert config.parameter_count() == count_parameters(build_model(config.to_dict()))


@pytest.mark.parametrize("config", COST_CASES, ids=lambda c: c.kind)
@pytest.mark.parametrize("grad", [False, True], ids=["sampling", "training"])
def test_memory_estimate_is_within_a_factor_two_of_the_measured_peak(config, grad):
    model = build_model(config.to_dict())
    _randomize_(model)
    batch = 8 if config.kind == "unet" else 1024
    shape = (batch, config.in_channels, config.image_size, config.image_size) if config.kind == "unet" \
        else (batch, config.data_dim)
    x, t = torch.randn(shape), torch.randint(0, 1000, (batch,))
    with torch.set_grad_enabled(grad), LiveTensorPeak() as tracker:
        out = model(x, t)
    del out
    estimate = config.forward_bytes(batch, grad=grad)
    assert 0.5 <= estimate / tracker.peak <= 2.0, (estimate, tracker.peak)
    assert config.forward_bytes(2 * batch, grad=grad) == 2 * estimate  # activations scale with the batch
    assert config.training_step_bytes(batch) == config.forward_bytes(batch, grad=True) + 20 * config.parameter_count()


@pytest.mark.parametrize("config", COST_CASES, ids=lambda c: c.kind)
def test_configs_round_trip_through_json_with_the_models_keys(config):
    as_json = json.loads(json.dumps(config.to_dict()))
    assert config_from_dict(as_json) == config
    assert build_model(as_json).config == as_json  # the same keys a model's .config (and old checkpoints) use


SHIPPED = sorted(path for path in (ROOT / "checkpoints").glob("*.safetensors") if "classifier" not in path.stem)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_checkpoint_configs_are_within_the_bounds_and_round_trip(path):
    from core.checkpoints import read_metadata

    model_config = read_metadata(path)["model"]
    assert config_from_dict(model_config).to_dict() == model_config


OUT_OF_BOUNDS = [
    ({"kind": "mlp", "depth": 100_000}, "depth=100000 is not allowed; expected an integer in 1..32"),
    ({"kind": "mlp", "depth": 10**6}, "depth=1000000"),
    ({"kind": "mlp", "hidden": 2**62}, "hidden=4611686018427387904 is not allowed"),
    ({"kind": "mlp", "data_dim": 17}, "data_dim=17"),
    ({"kind": "mlp", "fourier_frequencies": -1}, "fourier_frequencies=-1"),
    ({"kind": "mlp", "hidden": 2048, "depth": 32}, f"more than the limit of {MAX_PARAMETERS:,}"),
    ({"kind": "mlp", "hidden": True}, "hidden=True"),
    ({"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 32, "num_res_blocks": [100_000] * 3},
     r"num_res_blocks\[0\]=100000 is not allowed; expected an integer in 1..4"),
    ({"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 100_000}, "image_size=100000"),
    ({"kind": "unet", "in_channels": 5, "out_channels": 1, "image_size": 28}, "in_channels=5"),
    ({"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 32, "channels": [8] * 6,
      "num_res_blocks": [1] * 6}, "expected a list of 1..5 integers"),
    ({"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 28, "channels": [16, 32, 2**40]},
     r"channels\[2\]=1099511627776"),
    ({"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 28, "time_embed_dim": 4096}, "time_embed_dim=4096"),
    ({"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 28, "dropout": float("nan")}, "dropout=nan"),
    ({"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 64, "channels": [512, 512, 512, 512],
      "num_res_blocks": [4, 4, 4, 4]}, "parameters, more than the limit"),
]


@pytest.mark.parametrize("config, message", OUT_OF_BOUNDS)
def test_configs_out_of_bounds_are_rejected_before_anything_is_built(config, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(config)


def test_bounds_are_finite_and_admit_every_named_size():
    assert all(isinstance(low, int) and isinstance(high, int) and low <= high for low, high in BOUNDS.values())
    for size in SIZES:
        for in_channels, image_size in ((1, 28), (3, 32)):
            UNetConfig(in_channels, 2 * in_channels, image_size, **UNET_SIZES[size])
        ToyMLPConfig(2, 4, **MLP_SIZES[size])


def test_models_take_only_a_config_dataclass():
    with pytest.raises(ValueError, match="UNetConfig"):
        UNet({"in_channels": 1})
    with pytest.raises(ValueError, match="ToyMLPConfig"):
        ToyMLP(UNetConfig(1, 1, 28))
