"""AppTests of the Denoise explorer (pages/denoise.py) through the real app.py, with throwaway checkpoints.

`make_checkpoints` writes tiny, randomly initialised models (seeded, so reproducible) into a temporary
folder that the app uses instead of checkpoints/; test_page_sample.py imports it too.
"""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core import checkpoints
from core.diffusion import GaussianDiffusion
from core.models import build_model
from core.schedules import make_schedule

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


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run far faster on one thread than on two oversubscribed ones (the test machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def values(field) -> np.ndarray:
    """A numeric trace field of a figure dict: a list, or Plotly's base64 typed array {"dtype", "bdata"}."""
    if isinstance(field, dict):
        return np.frombuffer(base64.b64decode(field["bdata"]), dtype=np.dtype(field["dtype"]))
    return np.asarray(field)


def open_page(monkeypatch, folder: Path, page: str, active: str | None = None) -> AppTest:
    """Run app.py against `folder`, optionally pick the active model, then switch to `page`."""
    import ui.state

    monkeypatch.setattr(ui.state, "CHECKPOINT_DIR", Path(folder))
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


def test_image_model_renders_scrubber_and_comparison(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py")
    assert not at.error and len(at.get("plotly_chart")) == 1  # the comparison waits for its toggle
    at.toggle(key="denoise_compare_on").set_value(True).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2  # the scrubber of the active model and the ε / x₀ / v comparison
    scrubber = chart(at, 0)
    assert len(scrubber["frames"]) == TEST_T  # every timestep, since T = 40 < 100 shown
    assert [s["label"] for s in scrubber["layout"]["sliders"][0]["steps"]] == [str(t) for t in range(1, TEST_T + 1)]
    images = [trace for trace in scrubber["data"] if trace["type"] == "image"]
    assert len(images) == 6 and all(trace["source"].startswith("data:image/png;base64,") for trace in images)
    comparison = chart(at, 1)
    titles = {annotation["text"] for annotation in comparison["layout"]["annotations"]}
    assert {"x̂₀ · ε-model", "x̂₀ · x₀-model", "x̂₀ · v-model"} <= titles
    curves = {trace["name"] for trace in comparison["data"] if trace["type"] == "scatter"}
    assert {"ε-MSE · ε-model", "x₀-MSE · v-model", "ε-MSE · x₀-model"} <= curves


def test_widgets_change_what_is_computed(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py")
    first = chart(at)
    at.number_input(key="denoise_index").set_value(7).run()
    assert not at.exception
    by_image = chart(at)
    assert by_image["data"][0]["source"] != first["data"][0]["source"]  # another x_t
    at.number_input(key="denoise_noise_seed").set_value(3).run()
    assert chart(at)["data"][1]["source"] != by_image["data"][1]["source"]  # another ε
    at.slider(key="denoise_n_t").set_value(10).run()
    assert not at.exception
    labels = [s["label"] for s in chart(at)["layout"]["sliders"][0]["steps"]]
    assert labels == [str(1 + round(k * 39 / 9)) for k in range(10)]  # the even grid over t = 1..40


def test_random_image_choice(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py")
    at.radio(key="denoise_mode").set_value("random").run()
    assert not at.exception
    assert any("test image #" in c.value for c in at.caption)


def test_point_model_path(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py", active="shipped:moons_eps")
    assert not at.error
    figure = chart(at)
    assert len(figure["frames"]) == TEST_T
    names = {trace["name"] for trace in figure["data"]}
    assert {"x_t", "x̂₀", "x₀ (data)", "−√(1−ᾱ)·ε (true)", "−√(1−ᾱ)·ε̂ (predicted)"} <= names
    at.number_input(key="denoise_points_seed").set_value(5).run()
    assert not at.exception and not np.array_equal(values(chart(at)["data"][0]["x"]), values(figure["data"][0]["x"]))
    assert any("only the active ε-prediction model" in info.value for info in at.info)  # no other 2-D model to compare with


def test_no_model_shows_a_clear_message(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path, "pages/denoise.py")
    assert any("No model is available" in info.value for info in at.info)
    assert not at.get("plotly_chart")


@pytest.mark.skipif(not (ROOT / "checkpoints" / "mnist_eps.safetensors").exists(), reason="no shipped checkpoint yet")
def test_shipped_default_model_renders(monkeypatch):
    at = open_page(monkeypatch, ROOT / "checkpoints", "pages/denoise.py")
    assert not at.error and at.get("plotly_chart")
