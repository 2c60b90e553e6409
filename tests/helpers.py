"""Helpers shared by the page tests (AppTest) and the browser tests: tiny seeded checkpoints and figure readers.

`make_checkpoints` writes tiny, randomly initialised models (seeded, so reproducible) into a folder that the
app then uses instead of checkpoints/ (ui.catalog.CHECKPOINT_DIR or RDL_CHECKPOINT_DIR).
"""

import base64
import json
from pathlib import Path

import numpy as np
import torch
from streamlit.testing.v1 import AppTest

from core import checkpoints
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule
from core.nets.build import build_model

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TEST_T = 40
TINY_UNET = {"kind": "unet", "in_channels": 1, "image_size": 28, "channels": [8, 16], "num_res_blocks": [1, 1],
             "attention": False, "time_embed_dim": 16, "norm_groups": 4}
TINY_MLP = {"kind": "mlp", "data_dim": 2, "hidden": 32, "depth": 1, "time_embed_dim": 16}
# file stem -> (model config, prediction, variance, dataset, data shape)
MODELS = {
    "mnist_eps": (TINY_UNET, "eps", "fixed_large", "mnist", [1, 28, 28]),
    "mnist_x0": (TINY_UNET, "x0", "fixed_small", "mnist", [1, 28, 28]),
    "mnist_v": (TINY_UNET, "v", "learned_range", "mnist", [1, 28, 28]),
    "moons_eps": (TINY_MLP, "eps", "fixed_large", "two_moons", [2]),
}


def save_tiny(path: Path, config: dict, prediction: str, variance: str, dataset: str, shape: list, seed: int) -> None:
    diffusion = GaussianDiffusion(make_schedule("linear", TEST_T), prediction, variance)
    data_channels = shape[0]
    out = diffusion.out_channels(data_channels)
    config = {**config, **({"out_channels": out} if config["kind"] == "unet" else {"out_dim": out})}
    model = build_model(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # zero-initialised output layers would make every prediction 0: perturb all weights
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    checkpoints.save(path, model.eval(), diffusion, {"data": {"dataset": dataset, "shape": shape}, "steps": 0})


def make_checkpoints(folder: Path, names=tuple(MODELS)) -> Path:
    for seed, name in enumerate(names):
        save_tiny(folder / f"{name}.safetensors", *MODELS[name], seed=seed)
    return folder


def values(field) -> np.ndarray:
    """A numeric trace field of a figure dict: a list, or Plotly's base64 typed array {"dtype", "bdata"}."""
    if isinstance(field, dict):
        return np.frombuffer(base64.b64decode(field["bdata"]), dtype=np.dtype(field["dtype"]))
    return np.asarray(field)


def open_page(monkeypatch, folder: Path, page: str, active: str | None = None) -> AppTest:
    """Run app.py against `folder`, optionally pick the active model, then switch to `page`."""
    import ui.catalog

    monkeypatch.setattr(ui.catalog, "CHECKPOINT_DIR", Path(folder))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if active is not None:
        at.session_state["active_model_key"] = active
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart(at: AppTest, index: int = 0) -> dict:
    """The Plotly figure of the index-th chart on the page, as a dict."""
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def linear_betas(T, start=1e-4, end=0.02):
    """Ho et al.'s linear schedule in plain floats (independent of core.diffusion.schedules)."""
    return [start + (end - start) * i / (T - 1) for i in range(T)]


def alpha_bars_by_hand(betas):
    """ᾱ_t = Π_{s≤t} (1 − β_s), accumulated in plain floats."""
    out, product = [], 1.0
    for beta in betas:
        product *= 1.0 - beta
        out.append(product)
    return out
