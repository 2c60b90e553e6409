"""Sample: run DDPM or DDIM with the active model and watch samples emerge from noise.

The sampling itself is core.lab.sampling.run_sampler (core.diffusion.samplers underneath); this page lays out widgets,
shows progress and keeps the last results in the session so moving a slider doesn't resample.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from core.data.datasets import TOY_NAMES, load_dataset
from core.data.images import make_grid
from core.lab import sampling
from ui import catalog, figures
from ui.labels import VARIANCE_LABELS

SPACING_HELP = ("leading: 0, k, 2k, … (DDIM paper); trailing: starts exactly at t = T; "
                "linspace: both ends included.")
TRAJECTORY_SAMPLES = 4  # samples followed in the trajectory scrubber
MAX_RECORDS = 60  # trajectory entries kept, whatever the number of steps (memory stays bounded)
POINT_RANGE = (-1.6, 1.6)
RESULTS_KEPT = 3  # sampling results kept per session (per kind of result)


# ------------------------------------------------------------------------------------------ widgets
def sampler_settings(loaded: catalog.LoadedModel) -> tuple[sampling.SamplerSettings, int, int]:
    """(settings, number of samples, seed) from the widgets."""
    T = loaded.diffusion.T
    variances = [v for v in VARIANCE_LABELS if v != "learned_range" or loaded.diffusion.variance == "learned_range"]
    left, middle, right = st.columns(3)
    with left:
        method = st.radio("Sampler", ["ddim", "ddpm"], format_func=str.upper, horizontal=True, key="sample_method",
                          help="DDPM: ancestral sampling (Ho et al., Algorithm 2). DDIM: Song et al. eq. 12.")
        if method == "ddpm":
            variance = st.selectbox("Reverse variance σ_t²", variances, format_func=VARIANCE_LABELS.get,
                                    index=variances.index(loaded.diffusion.variance), key="sample_variance")
            eta = 0.0
        else:
            eta = st.slider("η (0 = deterministic, 1 ≈ DDPM with σ² = β̃)", 0.0, 1.0, 0.0, 0.1, key="sample_eta")
            variance = loaded.diffusion.variance
    with middle:
        steps = st.number_input("Steps", 1, T, min(T, 50), key="sample_steps",
                                help=f"1..T = {T}; fewer DDPM steps respace the process (Nichol & Dhariwal §4).")
        spacing = st.selectbox("Timestep spacing", ["leading", "trailing", "linspace"], key="sample_spacing", help=SPACING_HELP)
        clip = st.checkbox("Clip x̂₀ to [−1, 1]", loaded.is_image_model, key="sample_clip",
                           help="Pixels live in [−1, 1], so clipping the predicted x₀ there helps images; "
                                "2-D toys have tails outside it, so it is off for them by default.")
    with right:
        if loaded.is_image_model:
            n = st.slider("Samples", 1, 64, 16, key="sample_n")
        else:
            n = st.slider("Points", 100, 4000, 1000, 100, key="sample_points")
        seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="sample_seed", help="Same seed, same x_T and same noise.")
    settings = sampling.SamplerSettings(method=method, steps=int(steps), variance=variance, eta=float(eta),
                                       spacing=spacing, clip_x0=bool(clip))
    return settings, int(n), int(seed)


def progress_reporter(text: str):
    """A progress(i, n) callback that feeds an st.progress bar (updated at most 100 times)."""
    bar = st.progress(0.0, text=text)
    last = [-1]

    def report(i: int, n: int) -> None:
        percent = int(100 * i / n)
        if percent != last[0]:
            last[0] = percent
            bar.progress(i / n, text=f"{text} step {i}/{n}")
    return bar, report


def remember(name: str, key: tuple, value) -> None:
    """Keep the latest results per key in the session (a few, so memory stays bounded)."""
    store = st.session_state.setdefault(name, {})
    store[key] = value
    while len(store) > RESULTS_KEPT:
        store.pop(next(iter(store)))


def recall(name: str, key: tuple):
    return st.session_state.get(name, {}).get(key)


# ------------------------------------------------------------------------------------------ results
def picture_of(batch: torch.Tensor, nrow: int = 8) -> np.ndarray:
    return make_grid(batch.clamp(-1, 1), nrow=nrow)


def paper_label(t: int) -> str:
    """Core's timestep index t as the paper's step (t+1); −1 marks the final x₀."""
    return "0 (x₀)" if t < 0 else str(t + 1)


def show_images(samples: torch.Tensor, trajectory, T: int) -> None:
    st.subheader("Samples")
    st.plotly_chart(figures.picture_row({f"{len(samples)} samples": picture_of(samples)}, height=420), key="sample_grid")
    st.subheader("Trajectory")
    pictures = sampling.trajectory_pictures(trajectory, TRAJECTORY_SAMPLES, nrow=TRAJECTORY_SAMPLES)
    rows = [[figures.Panel("x_t (what the sampler holds)", pictures["x_t"]),
             figures.Panel("x̂₀ (the model's guess at this step)", pictures["pred_x0"])]]
    labels = [paper_label(t) for t in pictures["t"]]
    st.plotly_chart(figures.image_scrubber(rows, labels, prefix="t = "), key="sample_trajectory")
    st.caption("From x_T (left end of the slider) to the final x₀ (right end). Early on x̂₀ is a blurry average; "
               "the details are decided in the last steps.")
    st.subheader("Snapshots")
    strip = {f"t = {paper_label(t)}": picture_of(x[:TRAJECTORY_SAMPLES], nrow=2) for t, x in sampling.snapshots(trajectory, T)}
    st.plotly_chart(figures.picture_row(strip), key="sample_snapshots")


def show_points(samples: torch.Tensor, trajectory, T: int, dataset: str | None) -> None:
    L = figures.Layer
    layers = []
    if dataset in TOY_NAMES:
        data = load_dataset(dataset, split="test", n_points=len(samples)).data.numpy()
        layers.append(L("data (held out)", data[:, 0], data[:, 1], color="lightgrey", size=3))
    points = samples.numpy()
    layers.append(L("samples", points[:, 0], points[:, 1], color="#1f77b4", size=3))
    st.subheader("Samples")
    st.plotly_chart(figures.point_panels([figures.PointPanel("samples vs data", layers, POINT_RANGE)]), key="sample_points_plot")
    st.subheader("Trajectory")
    x_t = torch.stack(trajectory.x_t + [trajectory.final]).numpy()
    pred = torch.stack(trajectory.pred_x0 + [trajectory.final]).numpy()
    labels = [paper_label(t) for t in trajectory.t + [-1]]
    panels = [figures.PointPanel("x_t", [L("x_t", x_t[..., 0], x_t[..., 1], color="grey", size=3)], (-3.2, 3.2)),
              figures.PointPanel("x̂₀ at this step", [L("x̂₀", pred[..., 0], pred[..., 1], color="#1f77b4", size=3)], POINT_RANGE)]
    st.plotly_chart(figures.points_scrubber(panels, labels), key="sample_points_trajectory")


@st.cache_data(show_spinner="Classifying the samples…", max_entries=16)
def mnist_scores(_samples: torch.Tensor, result_key: tuple) -> tuple[dict, dict]:
    """(quality of the samples, the same numbers for as many real digits), cached per sampling result."""
    from core.metrics.mnist import mnist_quality, mnist_real_floor
    return mnist_quality(_samples), mnist_real_floor(len(_samples))


@st.cache_data(show_spinner="Comparing with held-out data…", max_entries=16)
def point_scores(_samples: torch.Tensor, dataset: str, result_key: tuple) -> tuple[float, float]:
    """(MMD², sliced Wasserstein-1) of 2-D samples against as many held-out points, cached per result."""
    from core.metrics.points import mmd_rbf, sliced_wasserstein
    data = load_dataset(dataset, split="test", n_points=len(_samples)).data
    return mmd_rbf(_samples, data), sliced_wasserstein(_samples, data)


def show_quality_metrics(samples: torch.Tensor, loaded: catalog.LoadedModel, result_key: tuple) -> None:
    """Sample-quality numbers from core (the metrics themselves live in core.metrics.points / core.metrics.mnist)."""
    st.subheader("Quality metrics")
    try:
        if loaded.dataset == "mnist" and loaded.data_shape == (1, 28, 28):
            if len(samples) < 2:
                st.info("Quality metrics need at least 2 samples.")
                return
            quality, floor = mnist_scores(samples, result_key)
            columns = st.columns(3)
            columns[0].metric("Fréchet distance (MNIST features)", f"{quality['fd']:.2f}",
                              help=f"Real digits, same n: {floor['fd']:.2f}. Lower is better.")
            columns[1].metric("Inception score (MNIST classifier)", f"{quality['inception_score']:.2f}",
                              help=f"Real digits: {floor['inception_score']:.2f}. 1..10, higher is better.")
            columns[2].metric("Confidently classified", f"{100 * quality['confident_fraction']:.0f} %",
                              help=f"Real digits: {100 * floor['confident_fraction']:.0f} %.")
            st.caption(f"Measured with the small MNIST classifier on these {quality['n']} samples; the help icons give "
                       f"the same numbers for {floor['n']} real digits. Not comparable with published FIDs.")
        elif loaded.dataset in TOY_NAMES:
            mmd, sliced = point_scores(samples, loaded.dataset, result_key)
            columns = st.columns(2)
            columns[0].metric("MMD² (RBF) to held-out data", f"{mmd:.4f}", help="0 for a perfect model (up to noise).")
            columns[1].metric("Sliced Wasserstein-1", f"{sliced:.4f}", help="0 for a perfect model (up to noise).")
        else:
            st.caption(f"No quality metrics for dataset {loaded.dataset!r}.")
    except (ValueError, FileNotFoundError, OSError) as error:
        st.info(f"Quality metrics are not available: {error}")


# ------------------------------------------------------------------------------------------ compare
def compare_step_counts(loaded: catalog.LoadedModel, settings: sampling.SamplerSettings, seed: int) -> None:
    st.header("Compare step counts")
    T = loaded.diffusion.T
    options = sorted({s for s in (5, 10, 20, 50, 100, 250, 500, T) if s <= T})
    counts = st.multiselect("Step counts", options, default=[s for s in (10, 50, 100, T) if s <= T], key="compare_counts")
    both = st.checkbox("DDPM and DDIM (η = 0) side by side", True, key="compare_both")
    n = 8 if loaded.is_image_model else 500
    methods = ["ddpm", "ddim"] if both else [settings.method]
    key = (loaded.token, tuple(sorted(counts)), tuple(methods), settings.variance, settings.eta, settings.spacing,
           settings.clip_x0, seed)
    st.caption(f"Every run starts from the same x_T (seed {seed}, {n} samples); with DDIM η = 0 the only "
               "difference is the number of steps.")
    if st.button("Run comparison", key="compare_run", disabled=not counts):
        runs = {}
        for method in methods:
            for steps in sorted(counts):
                run = sampling.SamplerSettings(method=method, steps=steps, variance=settings.variance,
                                              eta=settings.eta if method == settings.method else 0.0,
                                              spacing=settings.spacing, clip_x0=settings.clip_x0)
                bar, report = progress_reporter(f"{run.label()}:")
                runs[(method, steps)] = sampling.run_sampler(loaded.model, loaded.diffusion, run, (n, *loaded.data_shape), seed,
                                                            progress=report)
                bar.empty()
        remember("compare_results", key, runs)
    runs = recall("compare_results", key)
    if runs is None:
        return
    for method in methods:
        st.markdown(f"**{method.upper()}**")
        results = {f"{steps} steps": runs[(method, steps)] for steps in sorted(counts)}
        if loaded.is_image_model:
            st.plotly_chart(figures.picture_row({k: picture_of(v, nrow=4) for k, v in results.items()}), key=f"compare_{method}")
        else:
            panels = [figures.PointPanel(k, [figures.Layer(k, v[:, 0].numpy(), v[:, 1].numpy(), size=3)], POINT_RANGE)
                      for k, v in results.items()]
            st.plotly_chart(figures.point_panels(panels, height=320), key=f"compare_{method}")


# --------------------------------------------------------------------------------------------- page
def main() -> None:
    st.title("Sample")
    st.markdown("Start from pure noise $x_T \\sim \\mathcal N(0, I)$ and apply the reverse step again and again. "
                "**DDPM** adds fresh noise $\\sigma_t z$ at every step; **DDIM** jumps between a few timesteps "
                "and, with $\\eta = 0$, adds none.")
    loaded = catalog.require_active_model()
    if loaded is None:
        return
    if len(loaded.data_shape) not in (1, 3):
        st.error(f"{loaded.label} does not say the shape of its data ({loaded.data_shape}), so it cannot be sampled here.")
        return
    settings, n, seed = sampler_settings(loaded)
    key = (loaded.token, settings, n, seed)
    try:
        sampling.check_settings(settings, loaded.diffusion)
        first_visit = "sample_results" not in st.session_state
        if st.button("Sample", type="primary", key="sample_run") or first_visit:
            bar, report = progress_reporter(f"{settings.label()}:")
            record = sampling.record_every(settings.steps, MAX_RECORDS)
            samples, trajectory = sampling.run_sampler(loaded.model, loaded.diffusion, settings, (n, *loaded.data_shape),
                                                      seed, record=record, progress=report)
            bar.empty()
            if loaded.is_image_model:  # only the first few are shown along the way: keep the session small
                trajectory = sampling.keep_first(trajectory, TRAJECTORY_SAMPLES)
            remember("sample_results", key, (samples, trajectory))
    except ValueError as error:
        st.error(str(error))
        return
    result = recall("sample_results", key)
    if result is None:
        st.info("Settings changed: press **Sample** to run them.")
    else:
        samples, trajectory = result
        st.caption(f"{settings.label()}, spacing {settings.spacing}, clip x̂₀ {'on' if settings.clip_x0 else 'off'}, seed {seed}.")
        if loaded.is_image_model:
            show_images(samples, trajectory, loaded.diffusion.T)
        else:
            show_points(samples, trajectory, loaded.diffusion.T, loaded.dataset)
        show_quality_metrics(samples, loaded, key)
    try:
        compare_step_counts(loaded, settings, seed)
    except ValueError as error:
        st.error(str(error))


main()
