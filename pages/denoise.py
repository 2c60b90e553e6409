"""Denoise explorer: what the model sees (x_t) and what it predicts (ε̂, x̂₀) at every timestep.

All numbers come from core.lab.denoise; this page only lays out widgets and figures and caches results.
Timesteps are shown as the paper's step t = 1..T (core's index t is step t+1).
"""

from __future__ import annotations

import streamlit as st
import torch

from core.data.datasets import load_dataset
from core.lab import denoise
from core.rng import seeded_generator
from ui import catalog, figures
from ui.labels import PREDICTION_SYMBOLS

ARROWS = 25  # noise arrows drawn in the 2-D view
POINT_COUNT = 400  # held-out points pushed through the 2-D view


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
def sweep_figure(_sweeps: dict, key: tuple):
    """The scrubber for one or several sweeps of the same x_0 and ε (cached on `key`)."""
    first = next(iter(_sweeps.values()))
    steps = paper_steps(first)
    common = dict(curves=curves_of(_sweeps), curve_x=steps, curve_title="MSE (log scale)")
    if first.x0.ndim == 4:
        return figures.image_scrubber(image_rows(_sweeps), steps, **common)
    return figures.points_scrubber(point_panels(_sweeps), steps, **common)


def image_rows(sweeps: dict) -> list:
    P = figures.Panel
    pictures = {name: denoise.sweep_pictures(sweep) for name, sweep in sweeps.items()}
    first = next(iter(pictures.values()))
    if len(sweeps) == 1:
        return [[P("x_t (model input)", first["x_t"]), P("ε (true noise)", first["eps"], False),
                 P("ε̂ (predicted)", first["eps_hat"]), P("|ε − ε̂|", first["error"]),
                 P("x̂₀ (predicted)", first["x0_hat"]), P("x₀ (truth)", first["x0"], False)]]
    rows = [[P("x_t (same for all)", first["x_t"]), P("ε (true noise)", first["eps"], False), P("x₀ (truth)", first["x0"], False)]]
    for name, pics in pictures.items():
        rows.append([P(f"ε̂ · {name}", pics["eps_hat"]), P(f"|ε − ε̂| · {name}", pics["error"]), P(f"x̂₀ · {name}", pics["x0_hat"])])
    return rows


def point_panels(sweeps: dict) -> list:
    L = figures.Layer
    first = next(iter(sweeps.values()))
    x0 = first.x0.numpy()
    truth = L("x₀ (data)", x0[:, 0], x0[:, 1], color="lightgrey", opacity=0.8)
    if len(sweeps) == 1:
        arrows = denoise.removal_arrows(first, ARROWS)
        x_t = first.x_t.numpy()
        noisy = figures.PointPanel("x_t and the noise to remove", [
            L("x_t", x_t[..., 0], x_t[..., 1], color="grey", size=3, opacity=0.5),
            L("−√(1−ᾱ)·ε (true)", *arrows["true"], mode="lines", color="#2ca02c", opacity=0.9),
            L("−√(1−ᾱ)·ε̂ (predicted)", *arrows["predicted"], mode="lines", color="#d62728", opacity=0.9),
        ], (-3.2, 3.2))
        pred = first.pred_x0.numpy()
        predicted = L("x̂₀", pred[..., 0], pred[..., 1], color="#1f77b4")
        return [noisy, figures.PointPanel("x̂₀ (predicted) vs x₀", [truth, predicted], (-1.6, 1.6))]
    panels = []
    for i, (name, sweep) in enumerate(sweeps.items()):
        pred = sweep.pred_x0.numpy()
        panels.append(figures.PointPanel(f"x̂₀ · {name}", [truth, L(f"x̂₀ · {name}", pred[..., 0], pred[..., 1],
                                                                     color=figures.COLORS[i % len(figures.COLORS)])], (-1.6, 1.6)))
    return panels


# ------------------------------------------------------------------------------------------ widgets
def choose_example(loaded: catalog.LoadedModel, dataset: str) -> tuple[int, int, int]:
    """(example choice, noise seed, number of timesteps) from the widgets."""
    n_examples = len(held_out(dataset))
    T = loaded.diffusion.T
    left, middle, right = st.columns(3)
    with left:
        if loaded.is_image_model:
            mode = st.radio("Held-out image", ["by index", "random"], horizontal=True, key="denoise_mode")
            if mode == "by index":
                choice = st.number_input("Image index", 0, n_examples - 1, 0, key="denoise_index",
                                         help=f"One of the {n_examples} test digits the model never trained on.")
            else:
                image_seed = st.number_input("Image seed", 0, 2**31 - 1, 0, key="denoise_image_seed")
                choice = denoise.random_index(n_examples, int(image_seed))
                st.caption(f"→ test image #{choice}")
        else:
            choice = st.number_input("Point subset seed", 0, 2**31 - 1, 0, key="denoise_points_seed",
                                     help=f"Which {POINT_COUNT} of the {n_examples} held-out points are shown.")
    with middle:
        noise_seed = st.number_input("Noise seed", 0, 2**31 - 1, 0, key="denoise_noise_seed",
                                     help="Seed of the ONE noise draw ε used at every t.")
    with right:
        max_t = min(T, 200)
        n_t = st.slider("Timesteps shown", min(2, T), max_t, min(T, 100), key="denoise_n_t",
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


# --------------------------------------------------------------------------------------------- page
def main() -> None:
    st.title("Denoise explorer")
    st.markdown(
        "Take a clean example $x_0$ and **one** noise draw $\\varepsilon$, form "
        "$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$ for every $t$, and ask the "
        "active model what it sees. Whatever it predicts ($\\varepsilon$, $x_0$ or $v$) is converted to "
        "$\\hat\\varepsilon$ and $\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\hat\\varepsilon)/\\sqrt{\\bar\\alpha_t}$. "
        "Drag the slider (or press ▶): it runs in your browser, no recomputation.")
    loaded = catalog.require_active_model()
    if loaded is None:
        return
    dataset = loaded.dataset
    if len(loaded.data_shape) not in (1, 3) or dataset is None:
        st.error(f"{loaded.label} does not say which dataset it was trained on (or its data shape "
                 f"{loaded.data_shape} is not an image or a point), so there is nothing to denoise.")
        return
    try:
        choice, noise_seed, n_t = choose_example(loaded, dataset)
        sweep = compute_sweep(loaded, loaded.token, dataset, choice, noise_seed, n_t)
    except (ValueError, FileNotFoundError) as error:
        st.error(f"Could not run the explorer on {loaded.label}: {error}")
        return

    st.subheader(f"{loaded.label}: predicts {PREDICTION_SYMBOLS[loaded.diffusion.prediction]}")
    key = (loaded.token, choice, noise_seed, n_t)
    st.plotly_chart(sweep_figure({loaded.label: sweep}, key), key="denoise_scrubber")
    if loaded.is_image_model:
        st.caption("Pictures: x_t, x̂₀ and x₀ on [−1, 1] (values outside are clipped to black/white), ε and ε̂ "
                   "on [−3, 3], the error |ε − ε̂| on [0, 3]. The curves are mean squared errors over all pixels.")
    else:
        st.caption("Left: x_t with arrows that remove the scaled noise: the green one (true ε) lands exactly on "
                   "√ᾱ·x₀, the red one shows where the model would go. Right: the predicted x̂₀ against the data.")
    st.markdown(
        "Small $t$: $x_t$ is almost $x_0$, so $\\hat x_0$ is easy but $\\hat\\varepsilon$ must be read from tiny "
        "differences. Large $t$: $x_t$ is almost $\\varepsilon$, so $\\hat\\varepsilon$ is easy, while $\\hat x_0$ "
        "can only be a blurry average of plausible examples.")

    st.header("Compare parameterizations")
    try:
        compare_parameterizations(loaded, dataset, choice, noise_seed, n_t)
    except (ValueError, KeyError) as error:
        st.error(f"Could not compare the parameterizations: {error}")


def compare_parameterizations(loaded: catalog.LoadedModel, dataset: str, choice: int, noise_seed: int, n_t: int) -> None:
    models = comparable_models(loaded)
    if len(models) < 2:
        st.info(f"This needs models that predict different things (ε, x₀, v) on the same data ({dataset}) with "
                f"the same noise schedule; only the active {PREDICTION_SYMBOLS[loaded.diffusion.prediction]}-prediction "
                f"model is available. Train an x₀- or v-model on the Train page to compare.")
        return
    names = {p: f"{PREDICTION_SYMBOLS[p]}-model" for p in models}
    if not st.toggle(f"Show the comparison of {', '.join(names.values())} (runs {len(models)} models)",
                     key="denoise_compare_on"):
        return
    sweeps = {names[p]: compute_sweep(m, m.token, dataset, choice, noise_seed, n_t) for p, m in models.items()}
    st.markdown("The same $x_t$ goes into each model; every output is converted to $\\hat\\varepsilon$ and "
                "$\\hat x_0$ with the diffusion formulas. Models: " +
                ", ".join(f"**{names[p]}** = {m.label}" for p, m in models.items()))
    compare_key = tuple(m.token for m in models.values()) + (choice, noise_seed, n_t)
    st.plotly_chart(sweep_figure(sweeps, compare_key), key="denoise_compare")
    st.caption("An x₀-model's ε̂ error explodes at small t (ε̂ = (x_t − √ᾱ·x̂₀)/√(1−ᾱ) divides by a tiny number), "
               "an ε-model's x̂₀ error at large t (divides by √ᾱ). v-models stay balanced at both ends.")


main()
