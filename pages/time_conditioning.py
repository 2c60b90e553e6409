"""Time conditioning: how the network is told t (the sinusoidal embedding), and what it produces without it.

Every number comes from core.lab.time_conditioning; this page lays out widgets and figures.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
import torch

from core.data.toys import sample_toy
from core.lab.time_conditioning import (
    EXPERIMENT_T,
    EXPERIMENT_TOYS,
    VARIANT_LABELS,
    VARIANTS,
    ExperimentSettings,
    cosine_similarity,
    embedding_matrix,
    reference_points,
    train_and_sample,
    train_variant,
)
from core.lab.time_inputs import first_last_similarity, raw_linear_scales
from core.metrics.points import sliced_wasserstein
from ui import layout, runs
from ui.code import show_code
from ui.figures import COLORS, Layer, PointPanel, chart, point_panels
from ui.labels import TOY_LABELS
from ui.navigation import require_app_shell
from ui.settings import PageSettings, Preset, Setting, seed_setting, widget

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

POINT_RANGE = (-4.5, 4.5)
T_CHOICES, DIM_CHOICES, STEP_CHOICES = (50, 100, 200, 500, 1000), (16, 32, 64, 128), (200, 400, 600, 1000)
PRESETS = [
    Preset("A short chain, T = 50", {"time_T": 50},
           "Over 50 steps the slow frequencies barely turn: every pair of steps keeps a cosine similarity above 0.47 "
           "($d = 64$), while at $T = 1000$ distant steps are nearly orthogonal."),
    Preset("Few frequencies, d = 16", {"time_dim": 16},
           "Only 8 frequencies: the similarity map shows coarse bands, and some distant steps even point the opposite "
           "way (cosine down to −0.24)."),
]


def page_settings() -> PageSettings:
    return PageSettings("time", [
        Setting("time_T", 1000, "int", choices=T_CHOICES, label="$T$"),
        Setting("time_dim", 64, "int", choices=DIM_CHOICES, label="Embedding dimension $d$"),
        Setting("time_dataset", EXPERIMENT_TOYS[0], "choice", choices=EXPERIMENT_TOYS, label="Data", format_func=TOY_LABELS.get),
        Setting("time_steps", 600, "int", choices=STEP_CHOICES, label="Adam steps"),
        Setting("time_single_t", EXPERIMENT_T // 2, "int", 1, EXPERIMENT_T, label="The one $t$ (paper's step)", widget="slider"),
        seed_setting("time_seed"),
    ], PRESETS, uses_model=False)  # the page does not use the active model: links leave it out


@st.cache_data(show_spinner=False, max_entries=16)
def embedding_figures(T: int, dim: int) -> tuple[go.Figure, go.Figure]:
    embeddings = embedding_matrix(T, dim)
    heat = go.Figure(go.Heatmap(z=embeddings.numpy(), x=list(range(dim)), y=list(range(1, T + 1)), colorscale="RdBu",
                                zmin=-1, zmax=1, colorbar=dict(title="value")))
    heat.update_layout(title="emb(t): sines (left half), cosines (right half)", height=340,
                       margin=dict(l=10, r=10, t=40, b=10), xaxis_title="dimension", yaxis_title="t (paper's step)")
    similarity = cosine_similarity(embeddings)
    sim = go.Figure(go.Heatmap(z=similarity.numpy(), x=list(range(1, T + 1)), y=list(range(1, T + 1)),
                               colorscale="Viridis", zmin=float(similarity.min()), zmax=1, colorbar=dict(title="cos")))
    sim.update_layout(title="cosine similarity between emb(t) and emb(s)", height=340,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title="s", yaxis_title="t")
    return heat, sim


def embedding_section() -> None:
    st.subheader("1. The sinusoidal embedding")
    st.markdown("The network gets the step index $t$ as a vector of sines and cosines of geometrically spaced "
                "frequencies (Vaswani et al. 2017 §3.5, used by Ho et al. 2020, Appendix B), then a small MLP:")
    st.latex(r"f_i = 10000^{-i/(d/2-1)},\qquad \mathrm{emb}(t) = \big[\sin(t f_0),\dots,\sin(t f_{d/2-1}),\ "
             r"\cos(t f_0),\dots,\cos(t f_{d/2-1})\big]")
    columns = st.columns(2)
    T = int(widget("time_T", columns[0]))
    dim = int(widget("time_dim", columns[1]))
    heat, sim = embedding_figures(T, dim)
    left, right = st.columns(2)
    chart(heat, key="time_heatmap", where=left)
    chart(sim, key="time_similarity", where=right)
    st.markdown("Since $\\sin a \\sin b + \\cos a \\cos b = \\cos(a - b)$, $\\mathrm{emb}(t)\\cdot\\mathrm{emb}(s) = "
                "\\sum_i \\cos((t - s) f_i)$: the similarity depends only on the distance $t - s$, which is why the "
                "right map is constant along its diagonals. "
                "Neighbouring steps get almost the same vector (their noise levels are almost the same); distant "
                "steps get different ones, so one network can behave differently at every noise level.")
    show_code(embedding_matrix, cosine_similarity)


def experiment(settings: ExperimentSettings, pressed: bool) -> dict | None:
    """{"data", "fresh data", variant: samples} as numpy arrays: each variant trained and sampled under a progress
    box with Cancel (ui/runs.py) when pressed, else taken from the server-wide cache (None if any is missing)."""
    jobs = [(("time_conditioning", settings, variant), VARIANT_LABELS[variant],
             lambda progress, variant=variant: train_and_sample(variant, settings, progress).numpy()) for variant in VARIANTS]
    found = runs.cached_runs(jobs, "time_cancel", "Training") if pressed else [runs.result_cache().get(k) for k, _, _ in jobs]
    if any(hit is None for hit in found):
        return None
    results = {variant: hit[0] for variant, hit in zip(VARIANTS, found)}
    results["data"] = reference_points(settings).numpy()
    results["fresh data"] = sample_toy(settings.dataset, settings.n_samples,
                                       torch.Generator().manual_seed(settings.seed + 3)).numpy()
    return results


def experiment_section() -> None:
    st.subheader("2. Take the time input away")
    st.markdown(f"Three tiny 2-D models (ToyMLP \"tiny\", 33k parameters), the same data, seed and number of "
                f"Adam steps, $T = {EXPERIMENT_T}$ (linear $\\beta$ scaled with $T$). Only what the network learns about "
                "$t$ differs; each then samples with 100-step DDPM from the same $x_T$.")
    columns = st.columns(4)
    dataset = widget("time_dataset", columns[0])
    steps = int(widget("time_steps", columns[1]))
    single_t = int(widget("time_single_t", columns[2]))
    seed = int(widget("time_seed", columns[3]))
    settings = ExperimentSettings(dataset=dataset, steps=steps, single_t=single_t - 1, seed=seed)
    pressed = st.button("Train the three models (a few seconds each)", key="time_run")
    runs.cancelled_notice("time_cancel")
    results = experiment(settings, pressed)
    if results is None:
        st.info("Press the button to train (about 4 s per model for 600 steps on a 2-core CPU).")
        return
    reference = torch.as_tensor(results["data"])
    panels = [PointPanel("data", [Layer("data", results["data"][:, 0], results["data"][:, 1], color="grey", size=3)],
                         POINT_RANGE)]
    distances = {}
    for i, variant in enumerate(VARIANTS):
        points = results[variant]
        panels.append(PointPanel(VARIANT_LABELS[variant], [Layer(variant, points[:, 0], points[:, 1],
                                                                   color=COLORS[i], size=3)], POINT_RANGE))
        distances[variant] = sliced_wasserstein(torch.as_tensor(points), reference, generator=torch.Generator().manual_seed(0))
    chart(point_panels(panels, height=360), key="time_samples")
    distances["fresh data"] = sliced_wasserstein(torch.as_tensor(results["fresh data"]), reference,
                                                 generator=torch.Generator().manual_seed(0))
    columns = st.columns(4)
    for column, (name, distance) in zip(columns, distances.items()):
        column.metric(f"sliced Wasserstein to data: {name.replace('_', ' ')}", f"{distance:.3f}")
    st.markdown(f"**Trained at one $t$** ({single_t}): the network has only ever denoised one noise level, and every "
                "other step of the chain gets that denoiser anyway. **No time input:** one function must serve every "
                "noise level and can only guess the level from $x_t$ itself, which is ambiguous wherever points with "
                "different amounts of noise overlap. Compare the distances with the fresh-data floor.")
    st.caption("Sliced Wasserstein distance (128 random projections) between 1,000 samples and 1,000 data points; "
               "\"fresh data\" is a second draw of 1,000 data points: the distance a perfect sampler would get.")
    show_code(train_variant, train_and_sample)


def integer_or_fraction() -> None:
    st.subheader("3. Integer $t$, $t/T$, or a raw Linear($t$)?")
    T, dim = 1000, 64
    similarity = first_last_similarity(T, dim)
    scales = raw_linear_scales(T, dim, torch.Generator().manual_seed(0))
    st.markdown(
        "Course notes often call normalising $t$ to $[0, 1]$ *essential*. That depends on how $t$ enters the network:")
    st.table([
        {"input": "sinusoidal embedding of the integer index t (this app, Ho et al.)",
         "first vs last step": f"cosine similarity {similarity['integer']:+.3f}",
         "verdict": "no normalising needed: every value is in [−1, 1] whatever T is, and distant steps are far apart"},
        {"input": "sinusoidal embedding of t/T",
         "first vs last step": f"cosine similarity {similarity['fraction']:+.3f}",
         "verdict": "harmful: every phase (t − s)·fᵢ stays below 1 radian, so all steps get almost the same vector"},
        {"input": "raw Linear(1, 64) fed t",
         "first vs last step": f"output RMS {scales['raw_first']:.2f} at t = 1, {scales['raw_last']:.0f} at t = {T - 1}",
         "verdict": "needs normalising: the output grows with t, so large t swamps everything else"},
        {"input": "raw Linear(1, 64) fed t/T",
         "first vs last step": f"output RMS {scales['normalised_first']:.2f} and {scales['normalised_last']:.2f}",
         "verdict": "fine: the same scale at every step"},
    ])
    st.caption(f"$T = {T}$, $d = {dim}$; the Linear layer has PyTorch's default initialisation (seed 0). The similarity "
               "is $\\sum_i \\cos((t - s) f_i)/(d/2)$ with $t - s = 999$ for the index and $0.999$ for the fraction.")
    show_code(first_last_similarity, raw_linear_scales)


def intro() -> None:
    st.title("Time conditioning")
    st.markdown("One network denoises every noise level. It can only do that if it knows which one it is looking at.")


def main() -> None:
    page = page_settings()
    page.restore()
    layout.title_row(intro, page)
    page.notices()
    embedding_section()
    experiment_section()
    integer_or_fraction()
    page.sync_url()


main()
