"""Sample: run DDPM or DDIM with the active model and watch samples emerge from noise.

The sampling itself is core.sampling.run_sampler (core.diffusion.samplers underneath); this page lays out widgets,
shows progress (with Cancel) and keeps results in a server-wide cache, so moving a slider back doesn't resample.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from core import sampling
from core.checkpoints import cost
from core.data.datasets import TOY_NAMES, load_dataset
from core.data.images import make_grid
from core.diffusion.samplers import SPACINGS
from core.lab.bayes_x0 import noise_amplification
from ui import catalog, export, exports, figures, runs, session, warm
from ui.cached import shared_figure, shared_value
from ui.figures import chart
from ui.labels import VARIANCE_LABELS, sampler_label
from ui.navigation import require_app_shell
from ui.sampling_numbers import ddim_update_panel, quality_settings, quality_vs_steps_panel
from ui.settings import PageSettings, Preset, Setting, seed_setting

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

SPACING_HELP = ("leading: 0, k, 2k, … (DDIM paper); trailing: starts exactly at t = T; "
                "linspace: both ends included.")
METHODS = ("ddim", "ddpm")
TRAJECTORY_SAMPLES = warm.TRAJECTORY_SAMPLES  # samples followed in the trajectory scrubber
POINT_RANGE = (-1.6, 1.6)
GRID_COLUMNS = 8
ASK_SECONDS = 10.0  # a run estimated longer than this waits for "Run anyway" (core/checkpoints/cost.py)
MAX_RUN_SECONDS = 600.0  # a run estimated longer than this is refused: fewer steps or samples (its cap is named)
PRESETS = [
    Preset("β vs β̃ at 10 steps: σ² = β", {"sample_method": "ddpm", "sample_steps": 10, "sample_variance": "fixed_large"},
           "DDPM with only 10 steps and the large variance: noisy digits. Compare with the next preset."),
    Preset("β vs β̃ at 10 steps: σ² = β̃", {"sample_method": "ddpm", "sample_steps": 10, "sample_variance": "fixed_small"},
           "The same 10 steps with the posterior variance β̃: clean digits (Nichol & Dhariwal §3.1)."),
    Preset("DDIM, 10 steps, no noise (η = 0)", {"sample_method": "ddim", "sample_steps": 10, "sample_eta": 0.0},
           "Deterministic DDIM: good digits in 10 steps (Song et al. 2021)."),
    Preset("DDIM η = 1 ≈ DDPM", {"sample_method": "ddim", "sample_steps": 50, "sample_eta": 1.0},
           "With η = 1 DDIM adds fresh noise like DDPM with σ² = β̃."),
]


# ----------------------------------------------------------------------------------------- settings
def variance_options(loaded: catalog.LoadedModel) -> list[str]:
    return [v for v in VARIANCE_LABELS if v != "learned_range" or loaded.diffusion.variance == "learned_range"]


def compare_options(T: int) -> list[int]:
    return sorted({s for s in (5, 10, 20, 50, 100, 250, 500, T) if s <= T})


def page_settings(loaded: catalog.LoadedModel) -> PageSettings:
    """What a link can carry on this page, with the active model's ranges (steps 1..T, its variances)."""
    T = loaded.diffusion.T
    first, n, seed = warm.sample_defaults(loaded)  # the first view, as the warm-up computes it
    size = (Setting("sample_n", n, "int", 1, 64, label="Samples", widget="slider") if loaded.is_image_model else
            Setting("sample_points", n, "int", 100, 4000, label="Points", widget="slider", step=100))
    presets = [p for p in PRESETS if p.values.get("sample_steps", 1) <= T]
    return PageSettings("sample", [
        Setting("sample_method", first.method, "choice", choices=METHODS, label="Sampler", widget="radio", horizontal=True,
                format_func=str.upper, help="DDPM: ancestral sampling (Ho et al., Algorithm 2). DDIM: Song et al. eq. 12."),
        Setting("sample_variance", first.variance, "choice", choices=tuple(variance_options(loaded)),
                label="Reverse variance $\\sigma_t^2$", format_func=VARIANCE_LABELS.get),
        Setting("sample_eta", first.eta, "float", 0.0, 1.0, step=0.1,
                label="$\\eta$ (0 = deterministic, 1 ≈ DDPM with $\\sigma^2 = \\tilde\\beta$)"),
        Setting("sample_steps", first.steps, "int", 1, T, label="Steps",
                help=f"1..T = {T}; fewer DDPM steps respace the process (Nichol & Dhariwal §4)."),
        Setting("sample_spacing", first.spacing, "choice", choices=SPACINGS, label="Timestep spacing", help=SPACING_HELP),
        Setting("sample_clip", first.clip_x0, "bool", label="Clip $\\hat x_0$ to [−1, 1]",
                help="Pixels live in [−1, 1], so clipping the predicted x₀ there helps images; "
                     "2-D toys have tails outside it, so it is off for them by default."),
        size,
        seed_setting("sample_seed", default=seed, help="Same seed, same $x_T$ and same noise."),
        Setting("sample_trajectory_t", None, "int", 0, T, label="Trajectory step (t)", widget="scrubber",
                format_func=step_label),
        Setting("compare_counts", [s for s in (10, 50, 100, T) if s <= T], "ints", choices=tuple(compare_options(T)),
                label="Step counts"),
        Setting("compare_both", True, "bool", label="DDPM and DDIM (η = 0) side by side"),
        *quality_settings("sample"),
    ], presets)


def sampler_settings(loaded: catalog.LoadedModel, page: PageSettings) -> tuple[sampling.SamplerSettings, int, int]:
    """(settings, number of samples, seed) from the widgets (two columns, so the Sample button stays high)."""
    left, right = st.columns(2)
    with left:
        method = page.show("sample_method")
        steps = page.show("sample_steps")
        n = page.show("sample_n" if loaded.is_image_model else "sample_points")
    with right:
        if method == "ddpm":
            variance = page.show("sample_variance")
            eta = 0.0
        else:
            eta = page.show("sample_eta")
            variance = loaded.diffusion.variance
        spacing = page.show("sample_spacing")
        seed = page.show("sample_seed")
    clip = page.show("sample_clip")
    settings = sampling.SamplerSettings(method=method, steps=int(steps), variance=variance, eta=float(eta),
                                       spacing=spacing, clip_x0=bool(clip))
    return settings, int(n), int(seed)


# ------------------------------------------------------------------------------------------ running
def sampling_key(loaded: catalog.LoadedModel, settings: sampling.SamplerSettings, n: int, seed: int) -> tuple:
    return warm.sample_key(loaded, settings, n, seed)


def run_sampling(loaded: catalog.LoadedModel, settings: sampling.SamplerSettings, n: int, seed: int):
    """(samples, trajectory, seconds) for these settings, from the cache or computed under a progress bar (once per
    server: the warm-up (ui/warm.py) or another session may already be computing it; then this one waits)."""
    key, label, work = warm.sample_job(loaded, settings, n, seed)
    (samples, trajectory), seconds = runs.cached_run(key, label, work, "sample_cancel")
    return samples, trajectory, seconds


def run_allowed(loaded: catalog.LoadedModel, settings: sampling.SamplerSettings, n: int) -> bool:
    """Whether a run that is not in the cache may start now, from its estimated cost (core.checkpoints.cost): at
    most ASK_SECONDS starts at once; longer runs wait for "Run anyway"; runs over MAX_RUN_SECONDS are refused with the
    step count that fits (an uploaded network may cost far more per call than the shipped one: issue 21 item 7)."""
    rate = cost.flops_per_second()
    seconds = cost.sampling_seconds(loaded.model, n, settings.steps, rate)
    if seconds is None or seconds <= ASK_SECONDS:
        return True
    per_sample = cost.call_flops(loaded.model, 1) / 1e9
    why = (f"{settings.steps} calls of a network that costs {per_sample:.2f} GFLOP per sample, on {n} samples; "
           f"this server computes about {rate / 1e9:.0f} GFLOP/s")
    cap = cost.max_calls(loaded.model, n, MAX_RUN_SECONDS, rate)
    if settings.steps > cap:
        st.error(f"This run would take about {seconds / 60:.0f} minutes ({why}): more than the {MAX_RUN_SECONDS / 60:.0f} "
                 f"minutes a page runs at once. With this model and {n} samples, use at most {cap} steps (or fewer "
                 f"samples), or sample on your own machine with the command-line tool.")
        return False
    notice = st.empty()
    with notice.container():
        st.warning(f"This run is estimated at about {seconds:.0f} s ({why}).", icon=":material/hourglass_top:")
        go = st.button("Run anyway", key="sample_run_anyway", icon=":material/play_arrow:")
    if go:
        notice.empty()
    return go


# ------------------------------------------------------------------------------------------ results
def picture_of(batch: torch.Tensor, nrow: int = GRID_COLUMNS) -> np.ndarray:
    return make_grid(batch.clamp(-1, 1), nrow=nrow)


def paper_label(t: int) -> str:
    """Core's timestep index t as the paper's step (t+1); −1 marks the final x₀."""
    return step_label(t + 1)


def step_label(step: int) -> str:
    """The paper's step as the trajectory scrubber shows it: 0 is the final x₀."""
    return "0 (x₀)" if step <= 0 else str(step)


def show_sample_grid(samples: torch.Tensor, result_key: tuple) -> None:
    """The grid of samples: one figure per sampling result for the whole server (ui/cached.py)."""
    fig = shared_figure(("sample_grid", result_key),
                        lambda: figures.picture_row({f"{len(samples)} samples": picture_of(samples)}, height=400))
    chart(fig, key="sample_grid")


def show_trajectory(trajectory, T: int, alpha_bar_T: float, page: PageSettings, result_key: tuple) -> None:
    st.subheader("Trajectory")
    pictures = shared_value(("trajectory_pictures", result_key), lambda: sampling.trajectory_pictures(
        trajectory, TRAJECTORY_SAMPLES, nrow=TRAJECTORY_SAMPLES))  # once per result for the whole server: read only
    rows = [[figures.Panel("x_t (what the sampler holds)", pictures["x_t"]),
             figures.Panel("x̂₀ (the model's guess at this step)", pictures["pred_x0"])]]
    steps = [max(int(t) + 1, 0) for t in pictures["t"]]
    spec = shared_value(("trajectory_spec", result_key), lambda: figures.spec_of(  # once per result for the whole server
        figures.image_scrubber(rows, [step_label(step) for step in steps], prefix="t = ")))
    st.fragment(trajectory_view)(spec, steps, page)
    st.caption("From $x_T$ (left end of the slider) to the final $x_0$ (right end). What $\\hat x_0$ looks like early "
               "depends on what the model predicts: an $\\varepsilon$-model's $\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}"
               "\\,\\hat\\varepsilon)/\\sqrt{\\bar\\alpha_t}$ multiplies its small $\\varepsilon$ error by "
               f"$\\sqrt{{1/\\bar\\alpha_t - 1}}$ ({noise_amplification(alpha_bar_T):.0f} at $t = T$ here), so early on it "
               "is **amplified noise**; an $x_0$- or $v$-model's $\\hat x_0$ approximates $E[x_0 \\mid x_t]$, a blurry "
               "average (the Denoise page shows both). Either way the details are decided in the last steps. The slider "
               "above the figure works with the keyboard (Tab to it, then ← →).")
    st.subheader("Snapshots")
    chart(shared_figure(("sample_snapshots", result_key), lambda: figures.picture_row(
        {f"t = {paper_label(t)}": picture_of(x[:TRAJECTORY_SAMPLES], nrow=2) for t, x in sampling.snapshots(trajectory, T)})),
          key="sample_snapshots")


def point_layers(samples: torch.Tensor, dataset: str | None) -> list:
    L = figures.Layer
    layers = []
    if dataset in TOY_NAMES:
        data = load_dataset(dataset, split="test", n_points=len(samples)).data.numpy()
        layers.append(L("data (held out)", data[:, 0], data[:, 1], color=figures.NEUTRAL, size=3))
    points = samples.numpy()
    layers.append(L("samples", points[:, 0], points[:, 1], color=figures.OKABE_ITO[0], size=3))
    return layers


def show_point_samples(samples: torch.Tensor, dataset: str | None, result_key: tuple) -> None:
    """The samples over held-out data: one figure per sampling result for the whole server (ui/cached.py)."""
    fig = shared_figure(("sample_points", result_key, dataset), lambda: figures.point_panels(
        [figures.PointPanel("samples vs data", point_layers(samples, dataset), POINT_RANGE)]))
    chart(fig, key="sample_points_plot")


def trajectory_view(spec: dict, steps: list[int], page: PageSettings) -> None:
    """The image trajectory's scrubber and figure (a fragment: a scrub step reruns only this)."""
    shown = page.scrub("sample_trajectory_t", steps)
    figures.scrubbed_chart(spec, shown, "sample_trajectory")


def show_point_trajectory(trajectory, page: PageSettings, result_key: tuple) -> None:
    L = figures.Layer
    st.subheader("Trajectory")
    x_t = torch.stack(trajectory.x_t + [trajectory.final]).numpy()
    pred = torch.stack(trajectory.pred_x0 + [trajectory.final]).numpy()
    panels = [figures.PointPanel("x_t", [L("x_t", x_t[..., 0], x_t[..., 1], color=figures.NEUTRAL, size=3)], (-3.2, 3.2)),
              figures.PointPanel("x̂₀ at this step", [L("x̂₀", pred[..., 0], pred[..., 1], color=figures.OKABE_ITO[0], size=3)],
                                 POINT_RANGE)]
    steps = [max(t + 1, 0) for t in trajectory.t + [-1]]
    spec = shared_value(("point_trajectory_spec", result_key), lambda: figures.spec_of(  # once per result, like Sample's
        figures.points_scrubber(panels, [step_label(step) for step in steps])))
    st.fragment(point_trajectory_view)(spec, steps, page)


def point_trajectory_view(spec: dict, steps: list[int], page: PageSettings) -> None:
    """The point trajectory's scrubber and figure (a fragment: a scrub step reruns only this)."""
    shown = page.scrub("sample_trajectory_t", steps)
    figures.scrubbed_chart(spec, shown, "sample_points_trajectory")


@st.cache_data(show_spinner="Classifying the samples…", max_entries=16)
def mnist_scores(_samples: torch.Tensor, result_key: tuple) -> tuple[dict, dict]:
    """(quality of the samples, the same numbers for as many real digits), cached per sampling result."""
    from core.metrics.mnist import mnist_quality, mnist_real_floor
    return mnist_quality(_samples), mnist_real_floor(len(_samples))


@st.cache_data(show_spinner="Comparing with held-out data…", max_entries=16)
def point_scores(_samples: torch.Tensor, dataset: str, result_key: tuple) -> tuple[float, float]:
    """(MMD², sliced Wasserstein-1) of 2-D samples against as many held-out points, cached per result."""
    from core.metrics.points import sample_quality
    quality = sample_quality(_samples, load_dataset(dataset, split="test", n_points=len(_samples)).data)
    return quality["mmd2"], quality["sw1"]


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
            columns[0].metric("MMD² (RBF) to held-out data", f"{mmd:.1e}" if mmd > 0 else f"≈ 0 (estimate {mmd:.1e})",
                              help="Unbiased estimate of the squared MMD: 0 for a perfect model up to sampling noise, "
                                   "so by chance it can dip below 0, which reads as ≈ 0.")
            columns[1].metric("Sliced Wasserstein-1", f"{sliced:.4f}", help="0 for a perfect model (up to noise).")
        else:
            st.caption(f"No quality metrics for dataset {loaded.dataset!r}.")
    except (ValueError, FileNotFoundError, OSError) as error:
        st.info(f"Quality metrics are not available: {error}")


# ------------------------------------------------------------------------------------------ exports
def checkpoint_file(loaded: catalog.LoadedModel) -> tuple[str | None, str]:
    """(the checkpoint's file on the server or None, how the user's copy is called in the commands): a shipped
    model by its path in the repository, a model trained here by the name its download gets."""
    shipped = catalog.shipped_models().get(loaded.key)
    if shipped is not None:
        return shipped[1], exports.relative_to_root(shipped[1])
    job = session.get_registry().get(loaded.key.split(":", 1)[1]) if loaded.key.startswith("trained:") else None
    if job is not None and job.checkpoint is not None and Path(job.checkpoint).exists():
        return str(job.checkpoint), f"{loaded.dataset}-trained-step{loaded.metadata.get('steps', 0)}.safetensors"
    return None, "model.safetensors"


def cli_command(loaded: catalog.LoadedModel, settings: sampling.SamplerSettings, n: int, seed: int) -> str | None:
    """`python -m core.sample ...` for these settings, or None where the CLI cannot express them (a model
    the user cannot download here, or a DDPM variance other than the model's own)."""
    path, name = checkpoint_file(loaded)
    if path is None or (settings.method == "ddpm" and settings.variance != loaded.diffusion.variance):
        return None
    return exports.command_line("core.sample", {
        "checkpoint": name, "sampler": settings.method, "steps": settings.steps,
        "eta": settings.eta if settings.method == "ddim" else None, "spacing": settings.spacing, "n": n, "seed": seed,
        "clip": settings.clip_x0, "device": "cpu", "out": "samples.png"})


def python_snippet(loaded: catalog.LoadedModel, settings: sampling.SamplerSettings, n: int, seed: int) -> str:
    return (f"from core import checkpoints\n"
            f"from core.sampling import SamplerSettings, run_sampler\n\n"
            f"model, diffusion, metadata = checkpoints.load({checkpoint_file(loaded)[1]!r})\n"
            f"settings = {settings!r}\n"
            f"samples = run_sampler(model, diffusion, settings, {(n, *loaded.data_shape)!r}, seed={seed})")


def show_exports(loaded: catalog.LoadedModel, settings: sampling.SamplerSettings, n: int, seed: int,
                 samples: torch.Tensor, trajectory) -> None:
    columns = st.columns(3)
    name = f"samples_{settings.method}_{settings.steps}steps_seed{seed}"
    with columns[0]:
        if loaded.is_image_model:
            title = export.slide_title(loaded.label, loaded.diffusion.prediction,
                                       f"{settings.method.upper()}, {settings.steps} steps, seed {seed} · t = 0 (final x_0)")
            exports.png_button("PNG of the samples (slide)", lambda: export.labelled_tiles(
                export.grid_tiles(samples), [f"#{i + 1}" for i in range(n)], title, columns=math.isqrt(n - 1) + 1),
                f"{name}.png", key="sample_png")
        else:
            exports.csv_button("CSV of the points", lambda: {"x": samples[:, 0].tolist(), "y": samples[:, 1].tolist()},
                               f"{name}.csv", key="sample_csv")
    with columns[1]:
        exports.npz_button("Samples (.npz)", lambda: {
            "samples": samples.numpy(), "trajectory_t": np.asarray(trajectory.t), "seed": seed, "steps": settings.steps,
            "method": settings.method, "eta": settings.eta, "variance": settings.variance, "spacing": settings.spacing,
            "clip_x0": settings.clip_x0, "model": loaded.label}, f"{name}.npz", key="sample_npz")
    with columns[2]:
        catalog_download(loaded)
    command = cli_command(loaded, settings, n, seed)
    note = ("The command writes the same samples as a PNG grid (square-ish, like the PNG button). "
            if command else "The command-line tool samples with the model's own variance from a file; for these "
            "settings use the Python snippet. ")
    if not loaded.key.startswith("shipped:") or "/" not in checkpoint_file(loaded)[1]:  # not in the repository's checkpoints/
        note += "Save the model's checkpoint (the Checkpoint button) into the repository root first. "
    exports.reproduce_box(command, python_snippet(loaded, settings, n, seed), note + "Run from the repository root.")


def catalog_download(loaded: catalog.LoadedModel) -> None:
    """One click: the active model's checkpoint, read into memory when clicked (no file written anywhere)."""
    path, name = checkpoint_file(loaded)
    if path is None:
        return
    st.download_button("Checkpoint", lambda: Path(path).read_bytes(), file_name=Path(name).name,
                       mime="application/octet-stream", key="sample_checkpoint", icon=":material/download:",
                       on_click="ignore")


# ------------------------------------------------------------------------------------------ compare
def compare_step_counts(loaded: catalog.LoadedModel, settings: sampling.SamplerSettings, seed: int,
                        page: PageSettings) -> None:
    st.header("Compare step counts")
    counts = page.show("compare_counts")
    both = page.show("compare_both")
    n = 8 if loaded.is_image_model else 500
    methods = ["ddpm", "ddim"] if both else [settings.method]
    st.caption(f"Every run starts from the same $x_T$ (seed {seed}, {n} samples); with DDIM $\\eta = 0$ the only "
               "difference is the number of steps.")
    requested = st.button("Run comparison", key="compare_run", disabled=not counts)
    runs.cancelled_notice("compare_cancel")
    jobs = []
    for method in methods:
        for steps in sorted(counts):
            run = sampling.SamplerSettings(method=method, steps=steps, variance=settings.variance,
                                          eta=settings.eta if method == settings.method else 0.0,
                                          spacing=settings.spacing, clip_x0=settings.clip_x0)
            jobs.append((("compare", loaded.token, run, n, seed), sampler_label(run), lambda progress, run=run: sampling.run_sampler(
                loaded.model, loaded.diffusion, run, (n, *loaded.data_shape), seed, progress=progress)))
    cache = runs.result_cache()
    if requested:
        found = runs.cached_runs(jobs, "compare_cancel", "Comparison")
    else:  # shown again without recomputing while every run is still in the cache
        found = [cache.get(key) for key, _, _ in jobs]
    if not counts or any(hit is None for hit in found):
        return
    pairs = [(method, steps) for method in methods for steps in sorted(counts)]  # the order of `jobs`
    results = {pair: hit[0] for pair, hit in zip(pairs, found)}
    seconds = {pair: hit[1] for pair, hit in zip(pairs, found)}
    for method in methods:
        times = ", ".join(f"{steps}: {seconds[(method, steps)]:.1f} s" for steps in sorted(counts))
        st.markdown(f"**{method.upper()}**")
        shown = {f"{steps} steps": results[(method, steps)] for steps in sorted(counts)}
        if loaded.is_image_model:
            pictures = {k: picture_of(v, nrow=4) for k, v in shown.items()}
            chart(figures.picture_row(pictures), key=f"compare_{method}")
            exports.png_button(f"PNG of the {method.upper()} row", lambda pictures=pictures: figures.side_by_side(list(pictures.values())),
                               f"compare_{method}_seed{seed}.png", key=f"compare_png_{method}")
        else:
            panels = [figures.PointPanel(k, [figures.Layer(k, v[:, 0].numpy(), v[:, 1].numpy(), size=3)], POINT_RANGE)
                      for k, v in shown.items()]
            chart(figures.point_panels(panels, height=320), key=f"compare_{method}")
        st.caption(f"Sampling time per run (measured when it was computed): {times}.")


# ------------------------------------------------------------------------------ the update, in numbers
def update_and_quality(loaded: catalog.LoadedModel, settings: sampling.SamplerSettings) -> None:
    """The DDIM update with this run's weights, and quality vs steps measured on demand (ui/sampling_numbers.py)."""
    st.header("The update in numbers")
    eta = settings.eta if settings.method == "ddim" else 1.0
    if settings.method != "ddim":
        st.markdown("DDPM with $\\sigma_t^2 = \\tilde\\beta_t$ on the visited steps is DDIM with $\\eta = 1$: the weights "
                    f"of a DDIM run with {settings.steps} steps and $\\eta = 1$:")
    ddim_update_panel(loaded.diffusion.schedule, settings.steps, eta, settings.spacing)
    if loaded.is_image_model and loaded.dataset in ("mnist", "mnist_full"):
        st.subheader("Quality versus steps")
        quality_vs_steps_panel(loaded, "sample")


# --------------------------------------------------------------------------------------------- page
def intro() -> None:
    st.title("Sample")
    st.markdown("Start from pure noise $x_T \\sim \\mathcal N(0, I)$ and apply the reverse step again and again. "
                "**DDPM** adds fresh noise $\\sigma_t z$ at every step; **DDIM** jumps between a few timesteps "
                "and, with $\\eta = 0$, adds none.")


def active_model() -> catalog.LoadedModel | None:
    loaded = catalog.require_active_model()
    if loaded is not None and len(loaded.data_shape) not in (1, 3):
        st.error(f"{loaded.label} does not say the shape of its data ({loaded.data_shape}), so it cannot be sampled here.")
        return None
    return loaded


def first_result(loaded: catalog.LoadedModel, page: PageSettings):
    """Settings on the left, the samples on the right (both above the fold on a projector)."""
    controls, result = st.columns([2, 3], gap="medium")
    with controls:
        settings, n, seed = sampler_settings(loaded, page)
        button, share = st.columns([1, 2])  # the popover's label uncut at 1280×720
        pressed = button.button("Sample", type="primary", key="sample_run", icon=":material/play_arrow:")
        with share:
            page.controls()
    with result:
        runs.cancelled_notice("sample_cancel")
        key = sampling_key(loaded, settings, n, seed)
        try:
            sampling.check_settings(settings, loaded.diffusion)
            first_visit = not st.session_state.get("sample_started")
            cache = runs.result_cache()
            known = cache.get(key) is not None or cache.in_flight(key)  # computed, or being computed for another visitor
            if pressed or first_visit or known or st.session_state.get("sample_run_anyway"):
                if not known and not run_allowed(loaded, settings, n):
                    return settings, n, seed, None
                st.session_state["sample_started"] = True
                samples, trajectory, seconds = run_sampling(loaded, settings, n, seed)
            else:
                st.info("Settings changed: press **Sample** to run them.")
                return settings, n, seed, None
        except ValueError as error:
            st.error(str(error))
            return settings, n, seed, None
        st.caption(f"{sampler_label(settings)}, spacing {settings.spacing}, clip $\\hat x_0$ {'on' if settings.clip_x0 else 'off'}, "
                   f"seed {seed} · sampled in {seconds:.1f} s")
        if loaded.is_image_model:
            show_sample_grid(samples, key)
        else:
            show_point_samples(samples, loaded.dataset, key)
    return settings, n, seed, (samples, trajectory)


def main() -> None:
    intro()
    loaded = active_model()
    if loaded is None:
        return
    page = page_settings(loaded)
    page.restore()
    page.notices()
    settings, n, seed, result = first_result(loaded, page)
    if result is not None:
        samples, trajectory = result
        show_exports(loaded, settings, n, seed, samples, trajectory)
        if loaded.is_image_model:
            show_trajectory(trajectory, loaded.diffusion.T, float(loaded.diffusion.schedule.alpha_bars[-1]), page,
                            sampling_key(loaded, settings, n, seed))
        else:
            show_point_trajectory(trajectory, page, sampling_key(loaded, settings, n, seed))
        show_quality_metrics(samples, loaded, sampling_key(loaded, settings, n, seed))
    try:
        compare_step_counts(loaded, settings, seed, page)
        update_and_quality(loaded, settings)
    except ValueError as error:
        st.error(str(error))
    page.sync_url()


main()
