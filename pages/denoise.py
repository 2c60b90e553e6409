"""Denoise explorer: what the model sees (x_t) and what it predicts (ε̂, x̂₀) at every timestep.

All numbers come from core.lab.denoise; this page only lays out widgets and figures and caches results.
Timesteps are shown as the paper's step t = 1..T (core's index t is step t+1).
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from core.data.datasets import load_dataset
from core.lab import bayes_x0, denoise
from core.rng import seeded_generator
from ui import catalog, export, exports, figures, layout
from ui.cached import shared_value
from ui.labels import PREDICTION_SYMBOLS
from ui.navigation import require_app_shell
from ui.settings import PageSettings, Preset, Setting, seed_setting

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

ARROWS = 25  # noise arrows drawn in the 2-D view
POINT_COUNT = 400  # held-out points pushed through the 2-D view
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


@st.cache_resource(show_spinner=False, max_entries=8)
def training_set(dataset: str) -> torch.Tensor:
    """The training split of a dataset (loaded once per server): the set E[x₀ | x_t] averages over."""
    return load_dataset(dataset, split="train").data


@st.cache_data(show_spinner="Computing the Bayes-optimal x̂₀ over the training set…", max_entries=32)
def compute_bayes(_sweep: denoise.DenoiseSweep, token: str, dataset: str, choice: int, noise_seed: int,
                  n_t: int) -> bayes_x0.BayesX0:
    """E[x₀ | x_t] for every x_t of the sweep [K, B, *shape] (cached like the sweep it belongs to)."""
    K, B = _sweep.x_t.shape[:2]
    flat = _sweep.x_t.reshape(K * B, *_sweep.x_t.shape[2:])
    result = bayes_x0.bayes_x0(flat, _sweep.alpha_bars.repeat_interleave(B), training_set(dataset))
    return bayes_x0.BayesX0(result.mean.reshape(_sweep.x_t.shape), result.effective_count.reshape(K, B))


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


def sweep_figure(sweeps: dict, active: int = 0):
    """The scrubber for one or several sweeps of the same x_0 and ε, showing frame `active` first."""
    first = next(iter(sweeps.values()))
    steps = paper_steps(first)
    common = dict(curves=curves_of(sweeps), curve_x=steps, curve_title="MSE (log scale)", active=active)
    if first.x0.ndim == 4:
        return figures.image_scrubber(image_rows(sweeps), steps, **common)
    return figures.points_scrubber(point_panels(sweeps), steps, **common)


def sweep_spec(sweeps: dict, key: tuple) -> dict:
    """The spec of sweep_figure(sweeps) (figures.spec_of), built once per `key` (the models' tokens, example, noise
    seed, timesteps) for the whole server (ui/cached.py: no pickled copy per use). A scrub step only picks its frame
    (figures.at_frame), so it never builds a figure."""
    return shared_value(("denoise_sweep_spec", key), lambda: figures.spec_of(sweep_figure(sweeps)))


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
        Setting("denoise_mode", MODES[0], "choice", choices=MODES, label="Held-out image", widget="radio", horizontal=True),
        Setting("denoise_index", 0, "int", 0, n_examples - 1, label="Image index",
                help=f"One of the {n_examples} test digits the model never trained on."),
        seed_setting("denoise_image_seed", "Image seed"),
        seed_setting("denoise_points_seed", "Point subset seed", f"Which {POINT_COUNT} of the {n_examples} held-out points are shown."),
        seed_setting("denoise_noise_seed", "Noise seed", "Seed of the ONE noise draw ε used at every t."),
        Setting("denoise_n_t", min(T, 100), "int", min(2, T), min(T, 200), label="Timesteps shown", widget="slider",
                help="An even grid over 1..T that always contains t = 1 and t = T."),
        Setting("denoise_t", 1, "int", 1, T, label="t (paper's step)", widget="scrubber"),
        Setting("denoise_compare_on", False, "bool", label="Show the comparison of the parameterizations", widget="toggle"),
        Setting("denoise_compare_t", 1, "int", 1, T, label="t (paper's step) in the comparison", widget="scrubber"),
        Setting("denoise_bayes_t", 1, "int", 1, T, label="t (paper's step) for the best possible x̂₀", widget="scrubber"),
    ], presets)


def choose_example(loaded: catalog.LoadedModel, dataset: str, page: PageSettings) -> tuple[int, int, int]:
    """(example choice, noise seed, number of timesteps) from the widgets."""
    n_examples = len(held_out(dataset))
    T = loaded.diffusion.T
    mode_column, left, middle, right = st.columns(4) if loaded.is_image_model else (None, *st.columns(3))
    with left:
        if loaded.is_image_model:
            if page.show("denoise_mode", mode_column) == "by index":
                choice = page.show("denoise_index")
            else:
                choice = denoise.random_index(n_examples, int(page.show("denoise_image_seed")))
                st.caption(f"→ test image #{choice}")
        else:
            choice = page.show("denoise_points_seed")
    with middle:
        noise_seed = page.show("denoise_noise_seed")
    with right:
        n_t = page.show("denoise_n_t") if T > 2 else T
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


def explanation(loaded: catalog.LoadedModel) -> None:
    T = loaded.diffusion.T
    factor = bayes_x0.noise_amplification(float(loaded.diffusion.schedule.alpha_bars[-1]))
    st.markdown(
        "Whatever the model predicts ($\\varepsilon$, $x_0$ or $v$) is converted to $\\hat\\varepsilon$ and "
        "$\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\hat\\varepsilon)/\\sqrt{\\bar\\alpha_t}$. "
        "Small $t$: $x_t$ is almost $x_0$, so $\\hat x_0$ is easy but $\\hat\\varepsilon$ must be read from tiny "
        "differences. Large $t$: $x_t$ is almost $\\varepsilon$, so $\\hat\\varepsilon$ is easy, but the conversion "
        "multiplies its error by $\\sqrt{1/\\bar\\alpha_t - 1}$ "
        f"(= {factor:.0f} at $t = T = {T}$ for this model's schedule): an $\\varepsilon$-model's $\\hat x_0$ there is "
        "**amplified noise**, not a blur. Only the Bayes-optimal $\\hat x_0 = E[x_0 \\mid x_t]$ is a blur, an average "
        "of the training examples that could have produced $x_t$; the next section shows both side by side.")


def scrubber(loaded: catalog.LoadedModel, sweep: denoise.DenoiseSweep, choice: int, noise_seed: int, n_t: int,
             page: PageSettings) -> None:
    """The first result: the pictures (or points) at the chosen t and the error curves. A fragment: a scrub step
    reruns only this section (the t travels in the page's link)."""
    st.fragment(scrubbed_view)(loaded, sweep, choice, noise_seed, n_t, page)


def scrubbed_view(loaded: catalog.LoadedModel, sweep: denoise.DenoiseSweep, choice: int, noise_seed: int, n_t: int,
                  page: PageSettings) -> None:
    shown = page.scrub("denoise_t", paper_steps(sweep))
    spec = sweep_spec({loaded.label: sweep}, (loaded.token, choice, noise_seed, n_t))
    figures.scrubbed_chart(spec, shown, "denoise_scrubber")
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


def bayes_figure(loaded: catalog.LoadedModel, sweep: denoise.DenoiseSweep, best: bayes_x0.BayesX0,
                 bayes_mse: torch.Tensor, active: int = 0):
    """The network's x̂₀ next to the Bayes-optimal one, with both x₀-MSE curves, showing frame `active` first."""
    x0 = sweep.x0.unsqueeze(0).double()
    curves = {"x₀-MSE · network": sweep.x0_mse.numpy(), "x₀-MSE · Bayes-optimal": bayes_mse.numpy()}
    steps = paper_steps(sweep)
    common = dict(curves=curves, curve_x=steps, curve_title="MSE against x₀ (log scale)", active=active)
    if loaded.is_image_model:
        data = denoise.DISPLAY_RANGES["data"]
        pictures = denoise.sweep_pictures(sweep)
        P = figures.Panel
        rows = [[P("x_t (same input)", pictures["x_t"]), P("x̂₀ · network", pictures["x0_hat"]),
                 P("E[x₀ | x_t] · Bayes-optimal", denoise.to_display(best.mean[:, 0], *data)),
                 P("x₀ (truth)", pictures["x0"], False)]]
        return figures.image_scrubber(rows, steps, **common)
    L = figures.Layer
    truth = L("x₀ (data)", x0[0, :, 0].numpy(), x0[0, :, 1].numpy(), color=figures.NEUTRAL, opacity=0.6)
    network, bayes = sweep.pred_x0.numpy(), best.mean.numpy()
    return figures.points_scrubber([
        figures.PointPanel("x̂₀ · network", [truth, L("x̂₀ · network", network[..., 0], network[..., 1],
                                                        color=figures.OKABE_ITO[0])], (-1.6, 1.6)),
        figures.PointPanel("E[x₀ | x_t] · Bayes-optimal", [truth, L("E[x₀ | x_t]", bayes[..., 0], bayes[..., 1],
                                                                     color=figures.OKABE_ITO[1])], (-1.6, 1.6)),
    ], steps, **common)




def best_possible(loaded: catalog.LoadedModel, sweep: denoise.DenoiseSweep, dataset: str, choice: int, noise_seed: int,
                  n_t: int, page: PageSettings) -> None:
    """The network's x̂₀ next to the Bayes-optimal x̂₀ = E[x₀ | x_t] over the training set, on the same x_t."""
    st.header("The network's x̂₀ and the best possible x̂₀")
    n_train = len(training_set(dataset))
    best = compute_bayes(sweep, loaded.token, dataset, choice, noise_seed, n_t)
    x0 = sweep.x0.unsqueeze(0).double()
    bayes_mse = ((best.mean.double() - x0) ** 2).reshape(len(sweep.t), -1).mean(dim=1)
    spec = shared_value(("denoise_bayes_spec", loaded.token, dataset, choice, noise_seed, n_t),  # once, like sweep_spec
                        lambda: figures.spec_of(bayes_figure(loaded, sweep, best, bayes_mse)))
    st.fragment(best_possible_view)(spec, sweep, best, bayes_mse, n_train, page)
    st.caption(
        "Bayes-optimal: $E[x_0 \\mid x_t] = \\sum_i w_i\\,x_0^i$ with $w_i \\propto "
        "\\exp(-\\lVert x_t - \\sqrt{\\bar\\alpha_t}\\,x_0^i\\rVert^2 / (2(1-\\bar\\alpha_t)))$ over the "
        f"{n_train} training examples: the smallest possible $x_0$-error on that data set. Large $t$: the weights "
        "spread over many examples and the average is a blur; the network's $\\hat x_0$ is its $\\hat\\varepsilon$ "
        "rescaled, so its small $\\varepsilon$ error is amplified into noise. Small $t$: one training example wins and "
        "the Bayes-optimal $\\hat x_0$ snaps to it: it memorises the training set, so for this held-out $x_0$ it is "
        "*worse* than the network, which generalises.")


def best_possible_view(spec: dict, sweep: denoise.DenoiseSweep, best: bayes_x0.BayesX0, bayes_mse: torch.Tensor,
                       n_train: int, page: PageSettings) -> None:
    """The Bayes-optimal scrubber, its figure and the numbers at the chosen t (a fragment: a scrub step reruns only
    this; the t travels in the page's link)."""
    steps = paper_steps(sweep)
    shown = page.scrub("denoise_bayes_t", steps)
    figures.scrubbed_chart(spec, shown, "denoise_bayes")
    alpha_bar = float(sweep.alpha_bars[shown])
    factor = bayes_x0.noise_amplification(alpha_bar)
    mixed = float(best.effective_count[shown].mean())
    st.markdown(
        f"At $t = {steps[shown]}$: $\\bar\\alpha_t$ = {alpha_bar:.3g}, so an $\\varepsilon$ error enters $\\hat x_0$ "
        f"multiplied by $\\sqrt{{1/\\bar\\alpha_t - 1}}$ = **{factor:.3g}**. The Bayes-optimal $\\hat x_0$ averages "
        f"effectively **{mixed:.3g}** of the {n_train} training examples "
        f"(1/Σwᵢ², MSE {bayes_mse[shown]:.3g} against the network's {float(sweep.x0_mse[shown]):.3g}).")


def compare_parameterizations(loaded: catalog.LoadedModel, dataset: str, choice: int, noise_seed: int, n_t: int,
                              page: PageSettings) -> None:
    st.header("Compare parameterizations")
    models = comparable_models(loaded)
    if len(models) < 2:
        st.info(f"This needs models that predict different things (ε, x₀, v) on the same data ({dataset}) with "
                f"the same noise schedule; only the active {PREDICTION_SYMBOLS[loaded.diffusion.prediction]}-prediction "
                f"model is available. Train an x₀- or v-model on the Train page to compare.")
        return
    names = {p: f"{PREDICTION_SYMBOLS[p]}-model" for p in models}
    st.caption(f"Runs {len(models)} models: {', '.join(names.values())}.")
    if not page.show("denoise_compare_on"):
        return
    sweeps = {names[p]: compute_sweep(m, m.token, dataset, choice, noise_seed, n_t) for p, m in models.items()}
    st.markdown("The same $x_t$ goes into each model; every output is converted to $\\hat\\varepsilon$ and "
                "$\\hat x_0$ with the diffusion formulas. Models: " +
                ", ".join(f"**{names[p]}** = {m.label}" for p, m in models.items()))
    compare_key = tuple(m.token for m in models.values()) + (choice, noise_seed, n_t)
    st.fragment(compared_view)(sweeps, compare_key, page)
    st.caption("An $x_0$-model's $\\hat\\varepsilon$ error explodes at small $t$ "
               "($\\hat\\varepsilon = (x_t - \\sqrt{\\bar\\alpha_t}\\,\\hat x_0)/\\sqrt{1-\\bar\\alpha_t}$ divides by a tiny "
               "number), an $\\varepsilon$-model's $\\hat x_0$ error at large $t$ (divides by $\\sqrt{\\bar\\alpha_t}$). "
               "$v$-models stay balanced at both ends.")


def parameterization_table() -> None:
    st.subheader("What to predict: ε, x₀ or v")
    st.table([
        {"predict": "ε (Ho et al.)",
         "for": "L_simple on ε gave the best samples in DDPM; target has unit variance at every t",
         "against": "x̂₀ = (x_t − √(1−ᾱ) ε̂)/√ᾱ amplifies the ε error by √(1/ᾱ − 1) at large t"},
        {"predict": "x₀",
         "for": "x̂₀ directly, a blurry E[x₀ | x_t] at large t rather than amplified noise; easy to clip",
         "against": "ε̂ = (x_t − √ᾱ x̂₀)/√(1−ᾱ) amplifies the x₀ error by √(ᾱ/(1−ᾱ)) at small t"},
        {"predict": "v = √ᾱ ε − √(1−ᾱ) x₀ (Salimans & Ho 2022)",
         "for": "unit-variance target; neither conversion blows up at either end; introduced for distillation",
         "against": "less intuitive; its MSE is the ε-MSE divided by ᾱ, a different weighting of t than L_simple"},
    ])


def compared_view(sweeps: dict, compare_key: tuple, page: PageSettings) -> None:
    shown = page.scrub("denoise_compare_t", paper_steps(next(iter(sweeps.values()))))
    figures.scrubbed_chart(sweep_spec(sweeps, compare_key), shown, "denoise_compare")


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
        choice, noise_seed, n_t = choose_example(loaded, dataset, page)
        sweep = compute_sweep(loaded, loaded.token, dataset, choice, noise_seed, n_t)
    except (ValueError, FileNotFoundError) as error:
        st.error(f"Could not run the explorer on {loaded.label}: {error}")
        return
    scrubber(loaded, sweep, choice, noise_seed, n_t, page)
    explanation(loaded)
    try:
        best_possible(loaded, sweep, dataset, choice, noise_seed, n_t, page)
    except ValueError as error:
        st.error(f"Could not compute the Bayes-optimal x̂₀: {error}")
    try:
        compare_parameterizations(loaded, dataset, choice, noise_seed, n_t, page)
    except (ValueError, KeyError) as error:
        st.error(f"Could not compare the parameterizations: {error}")
    parameterization_table()
    page.sync_url()


main()
