"""Helpers shared by the page tests (AppTest) and the browser tests: tiny seeded checkpoints and figure readers.

`make_checkpoints` writes tiny, randomly initialised models (seeded, so reproducible) into a folder that the
app then uses instead of checkpoints/ (ui.catalog.CHECKPOINT_DIR or RDL_CHECKPOINT_DIR).
"""

import base64
import json
import re
from pathlib import Path

import numpy as np
import torch
from streamlit.testing.v1 import AppTest

from core import checkpoints
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule
from core.nets.build import build_model
from ui.text import escape_markdown

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


# ------------------------------------------------------------------- page settings (ui/settings.py) in AppTest
WIDGET_KINDS = ("slider", "select_slider", "number_input", "selectbox", "checkbox", "toggle", "radio", "multiselect")


def widget(at: AppTest, key: str):
    """The widget with this key, whatever its kind."""
    for kind in WIDGET_KINDS:
        try:
            return getattr(at, kind)(key=key)
        except KeyError:
            continue
    raise KeyError(f"no widget with key {key!r}")


def link_notices(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "Link setting ignored" in w.value]


def check_link_and_reset(at: AppTest, prefix: str, link: dict, shown: dict, bad: tuple[str, str]) -> AppTest:
    """On a page opened fresh (`at`, run once: what a new visitor sees), a shared link (query parameters `link`,
    strings as in a URL) sets the widgets to `shown`; one bad value (`bad` = (key, raw)) gives exactly one one-line
    notice and leaves its widget as a fresh visitor sees it; the page's Reset button brings every widget back.
    Returns the AppTest after the reset."""
    keys = [*shown, bad[0]]
    defaults = {key: widget(at, key).value for key in keys}
    for key, raw in {**link, bad[0]: bad[1]}.items():
        at.query_params[key] = raw
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    for key, value in shown.items():
        assert widget(at, key).value == value, (key, widget(at, key).value, value)
    notices = link_notices(at)
    assert len(notices) == 1 and escape_markdown(f"{bad[0]}=") in notices[0] and "\n" not in notices[0], notices
    assert widget(at, bad[0]).value == defaults[bad[0]]
    at.button(key=f"{prefix}_reset").click().run()
    assert not at.exception
    assert {key: widget(at, key).value for key in keys} == defaults
    return at


def presets(at: AppTest, prefix: str) -> list:
    return [button for button in at.button if button.key and button.key.startswith(f"{prefix}_preset_")]


# ------------------------------------------------------------------- math typeset in LaTeX, not as plain x_t
_MATH = re.compile(r"\$\$.+?\$\$|\$.+?\$|`[^`]*`|\[[^\]]*\]\([^)]*\)", re.S)  # math, code spans, links
_SCRIPT = re.compile(r"\S_[{\w(]")  # x_t, ᾱ_{t−1}, L_simple, σ_t written as plain text


def has_plain_scripts(text: str) -> bool:
    """True when Markdown `text` writes a sub- or superscript with `_` outside $...$, code spans and links."""
    return bool(_SCRIPT.search(_MATH.sub(" ", text)))


def plain_scripts(at: AppTest) -> list[str]:
    """Every text the page (main area) shows in Markdown (titles, markdown, captions, widget labels and help, metric labels,
    table headers, buttons) that writes a sub- or superscript with `_` outside $...$ (and outside code spans and
    links). Figures are not read: ui.figures.chart typesets them."""
    main = at.main  # the page, not the sidebar
    texts = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "warning", "info", "success")
             for e in getattr(main, kind)]
    for kind in (*WIDGET_KINDS, "button"):
        for element in getattr(main, kind):
            texts += [element.label, element.help or ""]
    texts += [m.label for m in main.metric] + [m.proto.help for m in main.metric]
    texts += [str(column) for table in main.table for column in table.value.columns]
    return [text for text in texts if has_plain_scripts(text)]
