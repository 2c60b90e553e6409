"""Denoise explorer: what the model sees (x_t) and what it predicts (ε̂, x̂₀) at every timestep.

All numbers come from core.lab.denoise; this page only lays out widgets and figures and caches results.
Timesteps are shown as the paper's step t = 1..T (core's index t is step t+1).
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from core.data.datasets import load_dataset
from core.lab import denoise
from core.rng import seeded_generator
from ui import catalog, export, exports, figures, layout
from ui.figures import chart
from ui.labels import PREDICTION_SYMBOLS
from ui.navigation import require_app_shell
from ui.settings import PERSIST, PageSettings, Preset, Setting

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

ARROWS = 25  # noise arrows drawn in the 2-D view
POINT_COUNT = 400  # held-out points pushed through the 2-D view
SEED_MAX = 2**31 - 1
STRIP_LABELS = ("x_t", "noise eps", "predicted eps", "|eps - predicted eps|", "predicted x_0", "x_0")  # the slide PNG
MODES = ("by index", "random")
PRESETS = [
    Preset("Digit #7, 10 timesteps", {"denoise_index": 7, "denoise_n_t": 10},
           "A coarse grid: easy to step through one t at a time on a projector."),
    Preset("ε, x₀ and v models on the same $x_t$", {"denoise_compare_on": True},
           "Where each parameterization's error explodes (needs the three shipped MNIST models)."),
    Preset("Another noise draw", {"denoise_noise_seed": 3}, "The same digit sinking into different noise."),
]


# ---------------------------------------------------------------------------------------- caching
@st.cache_resource(show_spinner=False, max_entries=8)
def held_out(dataset: str):
    """The test split of a dataset (loaded once per server)."""
    return load_dataset(dataset, split="test")


def _examples(dataset: str, choice: int, is_image: bool) -> torch.Tensor:
    """x_0 batch: one test image (choice = its index) or POINT_COUNT test points (choice = subset seed)."""
    data = held_out(dataset).data
    if is_image:
        return data[choice : choice + 1]
    return data[denoise.random_subset(len(data), POINT_COUNT, choice)]


@st.cache_data(show_spinner="Running the model over the timesteps…", max_entries=32)
def compute_sweep(_loaded: catalog.LoadedModel, token: str, dataset: str, choice: int, noise_seed: int,
                  n_t: int) -> denoise.DenoiseSweep:
    """Cached on (model token, dataset, example choice, noise seed, number of timesteps)."""
    x0 = _examples(dataset, choice, _loaded.is_image_model)
    noise = torch.randn(x0.shape, generator=seeded_generator(noise_seed))
    t = denoise.timestep_grid(_loaded.diffusion.T, n_t)
    return denoise.denoise_sweep(_loaded.model, _loaded.diffusion, x0, t, noise, batch_size=64 if _loaded.is_image_model else 8192)


def paper_steps(sweep: denoise.DenoiseSweep) -> list:
    return (sweep.t + 1).tolist()


def curves_of(sweeps: dict) -> dict:
    """Loss curves name -> values, for one or several sweeps (named by their model)."""
    curves = {}
    for name, sweep in sweeps.items():
        suffix = f" · {name}" if len(sweeps) > 1 else ""
        curves[f"ε-MSE{suffix}"] = sweep.eps_mse.numpy()
        curves[f"x₀-MSE{suffix}"] = sweep.x0_mse.numpy()
    return curves


@st.cache_data(show_spinner="Drawing…", max_entries=32)
def sweep_figure(_sweeps: dict, key: tuple, active: int = 0):
    """The scrubber for one or several sweeps of the same x_0 and ε (cached on `key` and the shown frame)."""
    first = next(iter(_sweeps.values()))
    steps = paper_steps(first)
    common = dict(curves=curves_of(_sweeps), curve_x=steps, curve_title="MSE (log scale)", active=active)
    if first.x0.ndim == 4:
        return figures.image_scrubber(image_rows(_sweeps), steps, **common)
    return figures.points_scrubber(point_panels(_sweeps), steps, **common)


def image_rows(sweeps: dict) -> list:
    P = figures.Panel
    pictures = {name: denoise.sweep_pictures(sweep) for name, sweep in sweeps.items()}
    first = next(iter(pictures.values()))
    if len(sweeps) == 1:
        # symbols only: six titles side by side must not run into each other on a phone (390 px); the caption
        # under the figure says what each one is
        return [[P("x_t", first["x_t"]), P("ε", first["eps"], False), P("ε̂", first["eps_hat"]),
                 P("|ε − ε̂|", first["error"]), P("x̂₀", first["x0_hat"]), P("x₀", first["x0"], False)]]
    rows = [[P("x_t (same for all)", first["x_t"]), P("ε (true noise)", first["eps"], False), P("x₀ (truth)", first["x0"], False)]]
    for name, pics in pictures.items():
        rows.append([P(f"ε̂ · {name}", pics["eps_hat"]), P(f"|ε − ε̂| · {name}", pics["error"]), P(f"x̂₀ · {name}", pics["x0_hat"])])
    return rows


def point_panels(sweeps: dict) -> list:
    L = figures.Layer
    first = next(iter(sweeps.values()))
    x0 = first.x0.numpy()
    truth = L("x₀ (data)", x0[:, 0], x0[:, 1], color=figures.NEUTRAL, opacity=0.6)
    if len(sweeps) == 1:
        arrows = denoise.removal_arrows(first, ARROWS)
        x_t = first.x_t.numpy()
        noisy = figures.PointPanel("x_t and the noise to remove", [
            L("x_t", x_t[..., 0], x_t[..., 1], color=figures.NEUTRAL, size=3, opacity=0.5),
            L("−√(1−ᾱ)·ε (true)", *arrows["true"], mode="lines", color=figures.OKABE_ITO[0], opacity=0.9),
            L("−√(1−ᾱ)·ε̂ (predicted)", *arrows["predicted"], mode="lines", color=figures.OKABE_ITO[1], opacity=0.9),
        ], (-3.2, 3.2))
        pred = first.pred_x0.numpy()
        predicted = L("x̂₀", pred[..., 0], pred[..., 1], color=figures.OKABE_ITO[0])
        return [noisy, figures.PointPanel("x̂₀ (predicted) vs x₀", [truth, predicted], (-1.6, 1.6))]
    panels = []
    for i, (name, sweep) in enumerate(sweeps.items()):
        pred = sweep.pred_x0.numpy()
        panels.append(figures.PointPanel(f"x̂₀ · {name}", [truth, L(f"x̂₀ · {name}", pred[..., 0], pred[..., 1],
                                                                     color=figures.COLORS[i % len(figures.COLORS)])], (-1.6, 1.6)))
    return panels


# ------------------------------------------------------------------------------------------ widgets
def page_settings(loaded: catalog.LoadedModel, n_examples: int) -> PageSettings:
    T = loaded.diffusion.T
    presets = [p for p in PRESETS if p.values.get("denoise_index", 0) < n_examples and p.values.get("denoise_n_t", 2) <= T]
    if not loaded.is_image_model:
        presets = [p for p in presets if "denoise_index" not in p.values]
    return PageSettings("denoise", [
        Setting("denoise_mode", MODES[0], "choice", choices=MODES),
        Setting("denoise_index", 0, "int", 0, n_examples - 1),
        Setting("denoise_image_seed", 0, "int", 0, SEED_MAX),
        Setting("denoise_points_seed", 0, "int", 0, SEED_MAX),
        Setting("denoise_noise_seed", 0, "int", 0, SEED_MAX),
        Setting("denoise_n_t", min(T, 100), "int", min(2, T), min(T, 200)),
        Setting("denoise_compare_on", False, "bool"),
    ], presets)


def choose_example(loaded: catalog.LoadedModel, dataset: str) -> tuple[int, int, int]:
    """(example choice, noise seed, number of timesteps) from the widgets."""
    n_examples = len(held_out(dataset))
    T = loaded.diffusion.T
    mode_column, left, middle, right = st.columns(4) if loaded.is_image_model else (None, *st.columns(3))
    with left:
        if loaded.is_image_model:
            mode = mode_column.radio("Held-out image", MODES, horizontal=True, key="denoise_mode", persist_state=PERSIST)
            if mode == "by index":
                choice = st.number_input("Image index", 0, n_examples - 1, 0, key="denoise_index", persist_state=PERSIST,
                                         help=f"One of the {n_examples} test digits the model never trained on.")
            else:
                image_seed = st.number_input("Image seed", 0, SEED_MAX, 0, key="denoise_image_seed", persist_state=PERSIST)
                choice = denoise.random_index(n_examples, int(image_seed))
                st.caption(f"→ test image #{choice}")
        else:
            choice = st.number_input("Point subset seed", 0, SEED_MAX, 0, key="denoise_points_seed", persist_state=PERSIST,
                                     help=f"Which {POINT_COUNT} of the {n_examples} held-out points are shown.")
    with middle:
        noise_seed = st.number_input("Noise seed", 0, SEED_MAX, 0, key="denoise_noise_seed", persist_state=PERSIST,
                                     help="Seed of the ONE noise draw ε used at every t.")
    with right:
        max_t = min(T, 200)
        n_t = st.slider("Timesteps shown", min(2, T), max_t, min(T, 100), key="denoise_n_t", persist_state=PERSIST,
                        help="An even grid over 1..T that always contains t = 1 and t = T.") if T > 2 else T
    return int(choice), int(noise_seed), int(n_t)


def comparable_models(loaded: catalog.LoadedModel) -> dict:
    """One model per parameterization (ε, x₀, v) trained on the same data with the same schedule;
    the active model represents its own parameterization."""
    def same_setting(other: catalog.LoadedModel) -> bool:
        return (other.dataset == loaded.dataset and other.data_shape == loaded.data_shape
                and denoise.same_forward_process(other.diffusion, loaded.diffusion))

    chosen = {loaded.diffusion.prediction: loaded}
    for other in catalog.models_of(same_setting).values():
        chosen.setdefault(other.diffusion.prediction, other)
    return {p: chosen[p] for p in PREDICTION_SYMBOLS if p in chosen}


# ------------------------------------------------------------------------------------------ sections
def intro() -> catalog.LoadedModel | None:
    """The title and what the page does for the active model (None, after saying why, if there is none)."""
    st.title("Denoise explorer")
    loaded = catalog.require_active_model()
    model = (f" `{loaded.label}` predicts ${PREDICTION_SYMBOLS.get(loaded.diffusion.prediction, '?')}$." if loaded is not None else "")
    st.markdown("One clean example $x_0$, **one** noise draw $\\varepsilon$, "
                "$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$ at every $t$: "
                "what does the active model see?" + model)
    return loaded


def explanation() -> None:
    st.markdown(
        "Whatever the model predicts ($\\varepsilon$, $x_0$ or $v$) is converted to $\\hat\\varepsilon$ and "
        "$\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\hat\\varepsilon)/\\sqrt{\\bar\\alpha_t}$. "
        "Small $t$: $x_t$ is almost $x_0$, so $\\hat x_0$ is easy but $\\hat\\varepsilon$ must be read from tiny "
        "differences. Large $t$: $x_t$ is almost $\\varepsilon$, so $\\hat\\varepsilon$ is easy, while $\\hat x_0$ "
        "can only be a blurry average of plausible examples.")


def scrubber(loaded: catalog.LoadedModel, sweep: denoise.DenoiseSweep, choice: int, noise_seed: int, n_t: int) -> None:
    """The first result: the pictures (or points) at the chosen t and the error curves."""
    labels = paper_steps(sweep)
    shown = layout.keyboard_scrubber("t (paper's step)", labels, key="denoise_t")
    key = (loaded.token, choice, noise_seed, n_t)
    chart(sweep_figure({loaded.label: sweep}, key, shown), key="denoise_scrubber")
    if loaded.is_image_model:
        st.caption("Pictures, left to right: the model's input $x_t$, the true noise $\\varepsilon$, the predicted "
                   "$\\hat\\varepsilon$, the error, the predicted $\\hat x_0$ and the truth $x_0$. "
                   "$x_t$, $\\hat x_0$ and $x_0$ on [−1, 1] (values outside are clipped to black/white), "
                   "$\\varepsilon$ and $\\hat\\varepsilon$ on [−3, 3], the error $|\\varepsilon - \\hat\\varepsilon|$ on [0, 3]. "
                   "The curves are mean squared errors over all pixels. The slider above the figure works with the "
                   "keyboard (Tab to it, then ← →); the one under it animates in the browser.")
    else:
        st.caption("Left: $x_t$ with arrows that remove the scaled noise: the **blue** one (true $\\varepsilon$) lands "
                   "exactly on $\\sqrt{\\bar\\alpha_t}\\,x_0$, the **vermillion** one shows where the model would go. "
                   "Right: the predicted $\\hat x_0$ against the data.")
    show_exports(loaded, sweep, choice, noise_seed, n_t, shown)


def show_exports(loaded: catalog.LoadedModel, sweep: denoise.DenoiseSweep, choice: int, noise_seed: int, n_t: int,
                 shown: int) -> None:
    step = int(sweep.t[shown]) + 1
    columns = st.columns(3)
    curves = {"t": paper_steps(sweep), "eps_mse": sweep.eps_mse.tolist(), "x0_mse": sweep.x0_mse.tolist()}
    with columns[0]:
        exports.csv_button("CSV of the MSE curves", curves, f"denoise_mse_{choice}_{noise_seed}.csv", key="denoise_csv")
    with columns[1]:
        if loaded.is_image_model:
            def frame() -> np.ndarray:
                pictures = denoise.sweep_pictures(sweep)
                return export.labelled_tiles(
                    [pictures["x_t"][shown], pictures["eps"], pictures["eps_hat"][shown], pictures["error"][shown],
                     pictures["x0_hat"][shown], pictures["x0"]], STRIP_LABELS,
                    export.slide_title(loaded.label, loaded.diffusion.prediction, f"t = {step} of {loaded.diffusion.T}"))
            exports.png_button(f"PNG of the pictures at t = {step} (slide)", frame, f"denoise_t{step}.png", key="denoise_png")
    with columns[2]:
        exports.npz_button("Sweep (.npz)", lambda: {
            "t": sweep.t.numpy() + 1, "x0": sweep.x0.numpy(), "noise": sweep.noise.numpy(), "x_t": sweep.x_t.numpy(),
            "pred_eps": sweep.pred_eps.numpy(), "pred_x0": sweep.pred_x0.numpy()}, "denoise_sweep.npz", key="denoise_npz")
    path = catalog.shipped_models().get(loaded.key, (None, "model.safetensors"))[1]
    take = (f"load_dataset({loaded.dataset!r}, split='test').data[{choice}:{choice + 1}]" if loaded.is_image_model else
            f"load_dataset({loaded.dataset!r}, split='test').data[denoise.random_subset(500, {POINT_COUNT}, {choice})]")
    exports.reproduce_box(None, (
        "import torch\n"
        "from core import checkpoints\n"
        "from core.data.datasets import load_dataset\n"
        "from core.lab import denoise\nfrom core.rng import seeded_generator\n\n"
        f"model, diffusion, metadata = checkpoints.load({exports.relative_to_root(path)!r})\n"
        f"x0 = {take}\n"
        f"noise = torch.randn(x0.shape, generator=seeded_generator({noise_seed}))\n"
        f"sweep = denoise.denoise_sweep(model, diffusion, x0, denoise.timestep_grid(diffusion.T, {n_t}), noise)\n"
        "print(sweep.eps_mse, sweep.x0_mse)  # the two curves; sweep.t + 1 is the paper's step"),
        "The same sweep in Python, from the repository root.")


def compare_parameterizations(loaded: catalog.LoadedModel, dataset: str, choice: int, noise_seed: int, n_t: int) -> None:
    st.header("Compare parameterizations")
    models = comparable_models(loaded)
    if len(models) < 2:
        st.info(f"This needs models that predict different things (ε, x₀, v) on the same data ({dataset}) with "
                f"the same noise schedule; only the active {PREDICTION_SYMBOLS[loaded.diffusion.prediction]}-prediction "
                f"model is available. Train an x₀- or v-model on the Train page to compare.")
        return
    names = {p: f"{PREDICTION_SYMBOLS[p]}-model" for p in models}
    if not st.toggle(f"Show the comparison of {', '.join(names.values())} (runs {len(models)} models)",
                     key="denoise_compare_on", persist_state=PERSIST):
        return
    sweeps = {names[p]: compute_sweep(m, m.token, dataset, choice, noise_seed, n_t) for p, m in models.items()}
    st.markdown("The same $x_t$ goes into each model; every output is converted to $\\hat\\varepsilon$ and "
                "$\\hat x_0$ with the diffusion formulas. Models: " +
                ", ".join(f"**{names[p]}** = {m.label}" for p, m in models.items()))
    compare_key = tuple(m.token for m in models.values()) + (choice, noise_seed, n_t)
    shown = layout.keyboard_scrubber("t (paper's step) in the comparison", paper_steps(next(iter(sweeps.values()))),
                                     key="denoise_compare_t")
    chart(sweep_figure(sweeps, compare_key, shown), key="denoise_compare")
    st.caption("An $x_0$-model's $\\hat\\varepsilon$ error explodes at small $t$ "
               "($\\hat\\varepsilon = (x_t - \\sqrt{\\bar\\alpha_t}\\,\\hat x_0)/\\sqrt{1-\\bar\\alpha_t}$ divides by a tiny "
               "number), an $\\varepsilon$-model's $\\hat x_0$ error at large $t$ (divides by $\\sqrt{\\bar\\alpha_t}$). "
               "$v$-models stay balanced at both ends.")


# --------------------------------------------------------------------------------------------- page
def main() -> None:
    loaded, share = layout.title_row(intro)
    if loaded is None:
        return
    dataset = loaded.dataset
    if len(loaded.data_shape) not in (1, 3) or dataset is None:
        st.error(f"{loaded.label} does not say which dataset it was trained on (or its data shape "
                 f"{loaded.data_shape} is not an image or a point), so there is nothing to denoise.")
        return
    try:
        page = page_settings(loaded, len(held_out(dataset)))
        page.restore()
        page.notices()
        with share:
            page.controls()
        choice, noise_seed, n_t = choose_example(loaded, dataset)
        sweep = compute_sweep(loaded, loaded.token, dataset, choice, noise_seed, n_t)
    except (ValueError, FileNotFoundError) as error:
        st.error(f"Could not run the explorer on {loaded.label}: {error}")
        return
    scrubber(loaded, sweep, choice, noise_seed, n_t)
    explanation()
    try:
        compare_parameterizations(loaded, dataset, choice, noise_seed, n_t)
    except (ValueError, KeyError) as error:
        st.error(f"Could not compare the parameterizations: {error}")
    page.sync_url()


main()
