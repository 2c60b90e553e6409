"""2-D playground: train a small MLP on a toy distribution in seconds and compare it with the exact oracle.

Everything numeric comes from core (core.lab.playground, core.diffusion.oracle, core.lab.sampling); this page lays out widgets
and figures and caches the heavy results per (model, settings).
"""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from core.data.datasets import TOY_NAMES, sample_toy
from core.diffusion.gaussian_diffusion import PREDICTIONS, VARIANCES
from core.diffusion.oracle import OracleDenoiser, loss_floor_curve
from core.diffusion.schedules import SCHEDULE_KINDS
from core.lab import playground
from core.lab.denoise import timestep_grid
from core.lab.sampling import SamplerSettings
from core.nets.build import SIZE_NAMES, build_model, count_parameters, model_config_for
from core.training.trainer import ACTIVE_STATES, TrainConfig, build_diffusion
from ui import catalog, figures, session, training_panel
from ui.labels import FIELD_LABELS, PREDICTION_LABELS, SCHEDULE_LABELS, TOY_LABELS, VARIANCE_LABELS

SECTIONS = ("Reverse trajectories", "ε̂ / score field", "Loss per timestep", "Samples & quality")
NO_MODEL = "none"
VIEW = 1.6  # half-width of the plotted square
SAMPLE_POINTS = 600  # points per sampler run (metrics and the final scatter)
PARTICLES = 250  # of which the animation follows this many
REFERENCE_POINTS = 2000  # fresh data the metrics compare against
NOISE_REPEATS = 8  # sets of fresh data scored to show the metrics' noise level
LOSS_TIMESTEPS, LOSS_DRAWS = 50, 400  # loss curve: timesteps evaluated, fresh examples per timestep
FLOOR_EXAMPLES = 8000  # Monte Carlo examples for the training panel's floor (spread over the timesteps)
QUALITY_STEPS = (10, 50, 200)
SPACING = "trailing"  # fewer steps than T still start exactly at t = T, from pure noise
ARROW_GRID, HEAT_GRID = 21, 61


# ------------------------------------------------------------------------------------ cached results
@st.cache_resource(show_spinner=False, max_entries=16)
def oracle_distribution(name: str, seed: int, toy_points: int):
    return playground.oracle_distribution(name, seed, toy_points)


@st.cache_data(show_spinner=False, max_entries=16)
def held_out(name: str, seed: int, toy_points: int) -> dict:
    """Fresh points never trained on (the reference the metrics compare with), and the scores of perfect
    samples: NOISE_REPEATS sets of SAMPLE_POINTS other fresh points (mean, std): the metrics' own noise."""
    reference = playground.fresh_data(name, REFERENCE_POINTS, seed, toy_points)
    noise = playground.metric_noise(lambda n, generator: sample_toy(name, n, generator), reference, SAMPLE_POINTS,
                                    NOISE_REPEATS, torch.Generator().manual_seed(seed + 1))
    return {"reference": reference, "baseline": noise}


def reference_data(name: str, seed: int, toy_points: int) -> torch.Tensor:
    return held_out(name, seed, toy_points)["reference"]


@st.cache_data(show_spinner="Computing the exact loss floor…", max_entries=32)
def profile_floor(setup_json: str, edges: tuple) -> list:
    """Exact floor per loss-profile bin of the training panel, for a job's data and diffusion settings."""
    setup = json.loads(setup_json)
    diffusion = build_diffusion(TrainConfig(**setup))
    distribution = oracle_distribution(setup["dataset"], setup["seed"], setup["toy_points"])
    ts = timestep_grid(diffusion.T, 1000)
    means, errors = loss_floor_curve(distribution, diffusion, ts, max(2, FLOOR_EXAMPLES // len(ts)),
                                     torch.Generator().manual_seed(0))
    return playground.bin_average(ts, means, errors, edges)[0]


def floor_for_snapshot(snapshot) -> list | None:
    keys = ("dataset", "seed", "toy_points", "schedule", "T", "beta_start", "beta_end", "scale_with_T", "prediction", "variance")
    setup = {key: snapshot.config[key] for key in keys}
    return profile_floor(json.dumps(setup, sort_keys=True), tuple(snapshot.profile_edges))


@st.cache_data(show_spinner="Sampling with the model and the oracle…", max_entries=16)
def sampler_runs(_model, model_key: str, _diffusion, diffusion_key: str, data: tuple, method: str, steps: int,
                 eta: float, seed: int) -> dict:
    oracle = OracleDenoiser(oracle_distribution(*data), _diffusion)
    models = {"oracle": oracle} if _model is None else {"model": _model, "oracle": oracle}
    settings = SamplerSettings(method=method, steps=steps, variance=_diffusion.variance, eta=eta, spacing=SPACING,
                               clip_x0=False)
    runs = playground.run_pair(models, _diffusion, settings, SAMPLE_POINTS, seed)
    reference = reference_data(*data)
    bandwidths = playground.reference_bandwidths(reference)
    return {name: {"x0": x0.numpy(), "t": t, "frames": frames[:, :PARTICLES],
                   "quality": playground.sample_quality(x0, reference, bandwidths)}
            for name, (x0, t, frames) in runs.items()}


@st.cache_data(show_spinner="Computing the fields…", max_entries=32)
def field_images(_model, model_key: str, _diffusion, diffusion_key: str, data: tuple, t: int, kind: str,
                 half_width: float) -> dict:
    oracle = OracleDenoiser(oracle_distribution(*data), _diffusion)
    arrows = playground.compare_fields(_model, oracle, t, playground.square_grid(half_width, ARROW_GRID), kind)
    heat = playground.compare_fields(_model, oracle, t, playground.square_grid(half_width, HEAT_GRID), kind)
    scale = playground.arrow_scale([arrows.model, arrows.oracle], arrows.grid.spacing)
    result = {"axis": heat.grid.xs.numpy(), "log_density": heat.grid.image(heat.log_density),
              "arrows": {}, "difference": None}
    for name, vectors in (("model", arrows.model), ("oracle", arrows.oracle)):
        if vectors is not None:
            result["arrows"][name] = playground.arrow_segments(arrows.grid.points, vectors, scale,
                                                                max_length=1.5 * arrows.grid.spacing)
    if heat.difference is not None:
        result["difference"] = heat.grid.image(heat.difference)
        weights = torch.softmax(heat.log_density, 0)  # q_t on the grid, normalised: where x_t actually lands
        result["weighted_rms"] = float((weights * heat.difference**2).sum().sqrt())
    return result


@st.cache_data(show_spinner="Evaluating the loss per timestep…", max_entries=16)
def loss_curves(_model, model_key: str, _diffusion, diffusion_key: str, data: tuple) -> dict:
    name = data[0]
    distribution = oracle_distribution(*data)
    oracle = OracleDenoiser(distribution, _diffusion)
    ts = timestep_grid(_diffusion.T, LOSS_TIMESTEPS)

    def fresh(n, generator):  # new points of the true toy distribution
        return sample_toy(name, n, generator)

    curves = {"t": ts.numpy()}
    curves["floor"] = loss_floor_curve(distribution, _diffusion, ts, LOSS_DRAWS, torch.Generator().manual_seed(1))
    if not playground.has_exact_density(name):
        curves["oracle_fresh"] = playground.timestep_loss(oracle, _diffusion, fresh, ts, LOSS_DRAWS,
                                                          torch.Generator().manual_seed(2))
    if _model is not None:
        curves["model"] = playground.timestep_loss(_model, _diffusion, fresh, ts, LOSS_DRAWS,
                                                   torch.Generator().manual_seed(2))
    return {key: (tuple(v.numpy() for v in value) if isinstance(value, tuple) else value) for key, value in curves.items()}


@st.cache_data(show_spinner=False, max_entries=16)
def quality_rows(_model, model_key: str, _diffusion, diffusion_key: str, data: tuple, seed: int, _progress=None) -> list:
    oracle = OracleDenoiser(oracle_distribution(*data), _diffusion)
    models = {"oracle": oracle} if _model is None else {"model": _model, "oracle": oracle}
    counts = [s for s in QUALITY_STEPS if s < _diffusion.T] + ([_diffusion.T] if _diffusion.T <= QUALITY_STEPS[-1] else [])
    return playground.quality_table(models, _diffusion, counts, SAMPLE_POINTS, seed, reference_data(*data),
                                    spacing=SPACING, progress=_progress)


@st.cache_data(show_spinner=False)
def mlp_parameters(size: str) -> int:
    return count_parameters(build_model(model_config_for("points", (2,), size, 2)))


def noise_text(noise: dict) -> str:
    (mmd, mmd_std), (sw, sw_std) = noise["mmd2"], noise["sw1"]
    return (f"perfect samples ({SAMPLE_POINTS} fresh points, {NOISE_REPEATS} draws) score MMD² = {mmd:.1e} ± "
            f"{mmd_std:.1e} and sliced W₁ = {sw:.3f} ± {sw_std:.3f}")


# ------------------------------------------------------------------------------------------- figures
def _animation_controls(labels: list) -> dict:
    """Slider + play/pause that step through frames named "0", "1", ... in the browser."""
    jump = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    play = {"mode": "immediate", "fromcurrent": True, "frame": {"duration": 100, "redraw": True}, "transition": {"duration": 0}}
    slider = {"active": 0, "currentvalue": {"prefix": "t = ", "xanchor": "right"}, "pad": {"t": 40}, "len": 0.9, "x": 0.1,
              "steps": [{"label": label, "method": "animate", "args": [[str(k)], jump]} for k, label in enumerate(labels)]}
    buttons = {"type": "buttons", "direction": "left", "x": 0.0, "y": 0.0, "xanchor": "left", "yanchor": "top",
               "pad": {"t": 45}, "showactive": False,
               "buttons": [{"label": "▶", "method": "animate", "args": [None, play]},
                           {"label": "❚❚", "method": "animate", "args": [[None], {"mode": "immediate", "frame": {"duration": 0}}]}]}
    return {"sliders": [slider], "updatemenus": [buttons]}


def square_axes(fig: go.Figure, column: int, half_width: float) -> None:
    """Equal x/y scale on [−half_width, half_width]² in subplot (1, column); the plot area shrinks to fit
    instead of the y range growing."""
    fig.update_xaxes(range=[-half_width, half_width], constrain="domain", row=1, col=column)
    fig.update_yaxes(range=[-half_width, half_width], constrain="domain", row=1, col=column,
                     scaleanchor="x" if column == 1 else f"x{column}")


def trajectory_figure(runs: dict, data_points: np.ndarray, T: int, show_paths: bool) -> go.Figure:
    """Particles from x_T to x_0, one panel per run, coloured by the timestep they are at."""
    names = list(runs)
    timesteps = runs[names[0]]["t"]
    colors = [0 if t < 0 else t + 1 for t in timesteps]  # colour value = paper's step t+1 (0 for the final x_0)
    labels = ["0 (x₀)" if t < 0 else str(t + 1) for t in timesteps]
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[f"{n}: reverse trajectories" for n in names],
                        horizontal_spacing=0.05)
    marker = dict(size=5, colorscale="Viridis", cmin=0, cmax=T, line=dict(width=0))
    animated = []
    for column, name in enumerate(names, start=1):
        frames = runs[name]["frames"]
        fig.add_trace(go.Scattergl(x=data_points[:, 0], y=data_points[:, 1], mode="markers", name="data",
                                   marker=dict(size=3, color="lightgrey"), showlegend=column == 1, hoverinfo="skip"),
                      row=1, col=column)
        if show_paths:
            every = np.repeat(np.array(colors, dtype=float), frames.shape[1])
            fig.add_trace(go.Scattergl(x=frames[:, :, 0].ravel(), y=frames[:, :, 1].ravel(), mode="markers",
                                       name="all steps", showlegend=column == 1, hoverinfo="skip", opacity=0.25,
                                       marker=dict(size=2, color=every, colorscale="Viridis", cmin=0, cmax=T)),
                          row=1, col=column)
        fig.add_trace(go.Scatter(x=frames[0, :, 0], y=frames[0, :, 1], mode="markers", name="particles",
                                 showlegend=column == 1, hoverinfo="skip",
                                 marker={**marker, "color": [colors[0]] * frames.shape[1],
                                         "colorbar": dict(title="t", len=0.8) if column == len(names) else None,
                                         "showscale": column == len(names)}),
                      row=1, col=column)
        animated.append(len(fig.data) - 1)
        square_axes(fig, column, 2.5)
    fig.frames = [go.Frame(name=str(k), traces=animated,
                           data=[go.Scatter(x=runs[n]["frames"][k, :, 0], y=runs[n]["frames"][k, :, 1],
                                            marker={"color": [colors[k]] * runs[n]["frames"].shape[1]}) for n in names])
                  for k in range(len(timesteps))]
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", x=0.0, y=1.12, yanchor="bottom"), **_animation_controls(labels))
    return fig


def field_figure(fields: dict, data_points: np.ndarray, kind: str, t: int) -> go.Figure:
    titles = {"model": f"model {'ε̂' if kind == 'eps' else 'score'}",
              "oracle": f"oracle {'E[ε | x_t]' if kind == 'eps' else '∇ log q_t (exact)'}"}
    names = list(fields["arrows"])
    columns = names + (["difference"] if fields["difference"] is not None else [])
    subtitles = [titles[n] for n in names] + (["‖model − oracle‖"] if fields["difference"] is not None else [])
    fig = make_subplots(rows=1, cols=len(columns), subplot_titles=subtitles, horizontal_spacing=0.06)
    axis = fields["axis"]
    for column, name in enumerate(columns, start=1):
        if name == "difference":
            # "Reds", not Magma/Inferno: Streamlit's Plotly theme replaces colours like "#000004" (Magma's first
            # stop) by theme colours, which scrambles the low end of such colour scales.
            fig.add_trace(go.Heatmap(x=axis, y=axis, z=fields["difference"], colorscale="Reds", name="difference",
                                     colorbar=dict(title="‖Δ‖", len=0.8)), row=1, col=column)
        else:
            fig.add_trace(go.Scattergl(x=data_points[:, 0], y=data_points[:, 1], mode="markers", name="data",
                                       marker=dict(size=3, color="lightgrey"), showlegend=column == 1,
                                       hoverinfo="skip"), row=1, col=column)
            x, y = fields["arrows"][name]
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(width=1.2, color=figures.COLORS[column - 1]),
                                     hoverinfo="skip", showlegend=False), row=1, col=column)
        fig.add_trace(go.Contour(x=axis, y=axis, z=fields["log_density"], showscale=False, ncontours=8,
                                 contours=dict(coloring="lines"), line=dict(width=1), colorscale="Greys",
                                 name="log q_t", hoverinfo="skip"), row=1, col=column)
        square_axes(fig, column, float(axis[-1]))
    fig.update_layout(height=430, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return fig


def samples_figure(runs: dict, reference: np.ndarray) -> go.Figure:
    panels = [figures.PointPanel(f"{name} samples", [
        figures.Layer("fresh data", reference[:, 0], reference[:, 1], color="lightgrey", size=3, opacity=0.8),
        figures.Layer(f"{name}", run["x0"][:, 0], run["x0"][:, 1], color=figures.COLORS[i], size=4)],
        axis_range=(-VIEW, VIEW)) for i, (name, run) in enumerate(runs.items())]
    return figures.point_panels(panels)


# --------------------------------------------------------------------------------------------- page
st.title("2-D playground")
st.markdown("A diffusion model on points in the plane trains in **seconds**, and for these toys we know the "
            "**exact** optimal denoiser (the *oracle*), so every imperfection of the network can be seen: its "
            "reverse trajectories, its predicted noise field, its loss at every timestep, and its samples.")

# ---- training settings
job = training_panel.latest_job(kind="points")
busy = job is not None and job.snapshot().state in ACTIVE_STATES
recipe = playground.PLAYGROUND_RECIPE
with st.container(border=True):
    st.subheader("Train")
    data_column, process_column, model_column = st.columns(3)
    with data_column:
        toy = st.selectbox("Toy distribution", TOY_NAMES, format_func=TOY_LABELS.get, key="pg_toy")
        steps = st.number_input("Training steps", 50, 50_000, recipe["total_steps"], 250, key="pg_steps",
                                help=f"Batch {recipe['batch_size']}, Adam {recipe['learning_rate']:g} with cosine decay.")
        size = st.selectbox("Model size", SIZE_NAMES, index=SIZE_NAMES.index(recipe["model_size"]), key="pg_size",
                            help="Residual MLP: " + ", ".join(f"{s} {mlp_parameters(s):,}" for s in SIZE_NAMES)
                            + " parameters.")
    with process_column:
        kind = st.selectbox("β schedule", SCHEDULE_KINDS, key="pg_schedule", format_func=SCHEDULE_LABELS.get)
        T = st.number_input("T (diffusion steps)", 10, 4000, 1000, 50, key="pg_T")
        scale = st.checkbox("Scale β range with T (× 1000/T)", value=True, key="pg_scale",
                            help="Keeps x_T close to pure noise when T ≠ 1000 (no effect at T = 1000).")
    with model_column:
        prediction = st.radio("Network predicts", PREDICTIONS, format_func=PREDICTION_LABELS.get, key="pg_prediction")
        variance = st.radio("Reverse variance", VARIANCES, index=VARIANCES.index("fixed_small"),
                            format_func=VARIANCE_LABELS.get, key="pg_variance")
    try:
        config = playground.playground_config(toy, kind, int(T), prediction, variance, size, int(steps), bool(scale))
    except ValueError as error:
        config = None
        st.error(f"These settings cannot be trained: {error}")
    if st.button("Train", type="primary", key="pg_train", disabled=busy or config is None,
                 help="One job per session at a time; stop the running one first." if busy else
                 "Trains in the background on the CPU (about 10-30 s with the defaults)."):
        training_panel.submit(config)  # refusals become messages
        if training_panel.latest_job(kind="points") is not job:
            st.rerun()

if job is not None:
    job_config = job.trainer.config
    with st.expander(f"Training job: {TOY_LABELS[job_config.dataset]} · {job_config.model_size} · "
                     f"{job_config.prediction}/{job_config.variance} · {job_config.schedule} T={job_config.T} — "
                     f"{training_panel.STATE_LABELS.get(job.snapshot().state)}", expanded=True):
        st.caption("The middle plot compares the training loss per timestep with the **exact floor**, the loss of "
                   "the oracle (see below): no network can go below it on the oracle's data.")
        training_panel.job_buttons(job)
        training_panel.progress_panel(job, floor_fn=floor_for_snapshot)

# ---- which model
st.subheader("Explore")
choices = {}
finished = [j for j in session.get_registry().jobs_for(session.session_id())
            if j.trainer.data_kind == "points" and j.snapshot().state in ("stopped", "finished") and j.snapshot().step > 0]
if finished:
    newest = finished[-1]
    choices[f"trained:{newest.job_id}"] = (f"trained here: {TOY_LABELS[newest.trainer.config.dataset]}, "
                                           f"step {newest.snapshot().step}")
for key in catalog.shipped_models():
    if key.startswith("shipped:toy_"):
        choices[key] = f"shipped: {key.split(':', 1)[1]}"
choices[NO_MODEL] = "no model (oracle only, with the settings above)"
# Shown by default: the newest model trained here, else the shipped checkpoint of the toy chosen above.
preferred = next((key for key in choices if key.startswith("trained:")), None)
preferred = preferred or (f"shipped:toy_{toy}" if f"shipped:toy_{toy}" in choices else NO_MODEL)
if st.session_state.get("pg_preferred_model") != preferred or st.session_state.get("pg_model") not in choices:
    st.session_state["pg_preferred_model"] = preferred  # a model just finished, or another toy was chosen
    st.session_state["pg_model"] = preferred
model_key = st.selectbox("Model to explore", list(choices), format_func=choices.get, key="pg_model")

try:
    if model_key == NO_MODEL:
        if config is None:
            st.stop()
        loaded, diffusion, data = None, build_diffusion(config), (toy, config.seed, config.toy_points)
        st.info("No model chosen: train one above (about 10-30 s). Meanwhile the oracle parts below work on their own.")
    else:
        loaded = catalog.load_model(model_key)
        data = playground.toy_data_settings(loaded.metadata)
        diffusion = loaded.diffusion
except (ValueError, KeyError) as error:
    st.error(f"This model cannot be explored here: {error}")
    st.stop()

name = data[0]
model = loaded.model if loaded is not None else None
model_token = loaded.token if loaded is not None else NO_MODEL
diffusion_key = json.dumps(diffusion.to_config(), sort_keys=True)
schedule = diffusion.schedule
st.caption(f"Exploring **{TOY_LABELS[name]}** · {schedule.kind} schedule, T = {diffusion.T} "
           f"(√ᾱ_T = {float(schedule.alpha_bars[-1]) ** 0.5:.3g}) · predicts {PREDICTION_LABELS[diffusion.prediction]} · "
           f"reverse variance {VARIANCE_LABELS[diffusion.variance]}")
if playground.has_exact_density(name):
    st.markdown("**The oracle** is the exact Bayes-optimal denoiser E[ε | x_t] of the *true* Gaussian mixture: "
                "the best any network could possibly do.")
else:
    st.markdown(f"**The oracle** is the exact optimal denoiser of a fixed set of {playground.ORACLE_POINTS:,} of the "
                "model's training points (all of them for models trained on this page). It is the *memorising* denoiser: "
                "at small t it pulls every point onto its nearest training point, so its samples copy the training "
                "set. It minimises the training loss; a network that generalises stays above it at small t.")
reference = reference_data(*data).numpy()

section = st.radio("Show", SECTIONS, horizontal=True, key="pg_section", label_visibility="collapsed")
try:
    if section in ("Reverse trajectories", "Samples & quality"):
        left, middle, right = st.columns(3)
        method = left.radio("Sampler", ["ddpm", "ddim"], format_func=str.upper, horizontal=True, key="pg_method")
        sample_steps = middle.number_input("Sampling steps", 1, diffusion.T, min(100, diffusion.T),
                                           key=f"pg_sample_steps_{diffusion.T}")
        seed = right.number_input("Seed", 0, 2**31 - 1, 0, key="pg_seed", help="Same seed: same x_T and noise for both.")
        runs = sampler_runs(model, model_token, diffusion, diffusion_key, data, method, int(sample_steps), 0.0, int(seed))
        if section == "Reverse trajectories":
            show_paths = st.checkbox("Show every recorded step (colored by t)", value=False, key="pg_paths")
            st.plotly_chart(trajectory_figure(runs, reference, diffusion.T, show_paths), key="pg_trajectory_chart")
            st.caption(f"{PARTICLES} particles start from the same x_T ~ N(0, I) for "
                       f"{'both' if len(runs) > 1 else 'the oracle'}; press ▶ or drag the slider (in the browser, no "
                       "recomputation). The colour is the timestep; grey is fresh data from the toy.")
        else:
            st.plotly_chart(samples_figure(runs, reference[:1000]), key="pg_samples_chart")
            columns = st.columns(2 * len(runs))
            for i, (run_name, run) in enumerate(runs.items()):
                columns[2 * i].metric(f"{run_name}: MMD² (RBF)", f"{run['quality']['mmd2']:.2e}")
                columns[2 * i + 1].metric(f"{run_name}: sliced W₁", f"{run['quality']['sw1']:.4f}")
            st.caption(f"{SAMPLE_POINTS} samples each against {REFERENCE_POINTS:,} fresh points of the toy (held out "
                       f"from training). Lower is better; {noise_text(held_out(*data)['baseline'])}.")
            st.markdown("**DDPM and DDIM at several step counts** (same seed for model and oracle)")
            quality_key = (model_token, diffusion_key, data, int(seed))
            requested = st.session_state.setdefault("pg_quality_requested", [])
            if st.button("Compute the table", key="pg_quality_run", help="A few seconds: 2 × 3 sampler runs per model."):
                requested.append(quality_key)
            if quality_key in requested:
                bar = st.progress(0.0, text="Sampling…")
                rows = quality_rows(model, model_token, diffusion, diffusion_key, data, int(seed),
                                    _progress=lambda i, n: bar.progress(i / n, text=f"Sampler run {i}/{n}"))
                bar.empty()
                number_formats = {column: st.column_config.NumberColumn(format="%.2e" if "MMD" in column else "%.4f")
                                  for column in rows[0] if column not in ("sampler", "steps")}
                st.dataframe(rows, hide_index=True, column_config=number_formats, key="pg_quality_table")
                st.caption(f"For scale: {noise_text(held_out(*data)['baseline'])}. Scores in that range are as "
                           "good as these metrics can tell with this many samples.")
    elif section == "ε̂ / score field":
        left, middle, right = st.columns(3)
        t_step = left.slider("t (paper's step)", 1, diffusion.T, max(1, diffusion.T // 10), key=f"pg_field_t_{diffusion.T}")
        field_kind = middle.radio("Field", playground.FIELD_KINDS, format_func=FIELD_LABELS.get, key="pg_field_kind")
        half_width = right.select_slider("View half-width", [1.0, 1.25, 1.6, 2.0, 3.0], value=VIEW, key="pg_field_view")
        fields = field_images(model, model_token, diffusion, diffusion_key, data, int(t_step) - 1, field_kind, half_width)
        st.plotly_chart(field_figure(fields, reference[:1000], field_kind, int(t_step)), key="pg_field_chart")
        caption = ("Arrows share one length scale (the longest are clipped); contour lines are log q_t, the density "
                   "of x_t, so differences far outside the contours hardly matter.")
        if fields["difference"] is not None:
            caption += f" Difference weighted by q_t on the grid: RMS ≈ {fields['weighted_rms']:.3g}."
        st.caption(caption)
    else:
        curves = loss_curves(model, model_token, diffusion, diffusion_key, data)
        exact = playground.has_exact_density(name)
        x = curves["t"] + 1
        floor_name = "exact floor (oracle)" if exact else "exact floor of the training set (memorising oracle)"
        lines = {floor_name: curves["floor"][0]}
        if "model" in curves:
            lines = {"model on fresh data": curves["model"][0], **lines}
        if "oracle_fresh" in curves:
            lines["memorising oracle on fresh data"] = curves["oracle_fresh"][0]
        target = {"eps": "ε", "x0": "x₀", "v": "v"}[diffusion.prediction]
        st.plotly_chart(figures.loss_curves(x, lines, title=f"{target}-prediction loss per timestep",
                                            y_title=f"mean ‖{target} − prediction‖² / 2"), key="pg_loss_chart")
        if exact:
            st.caption(f"Each point: {LOSS_DRAWS} fresh examples at that t. No network can go below the floor.")
        else:
            st.caption(f"Each point: {LOSS_DRAWS} examples at that t. The floor is the smallest possible loss on the "
                       "*training set*; the memorising oracle reaches it by copying training points, and pays for "
                       "that on fresh data at small t. The true distribution's floor has no closed form: it lies "
                       "below both curves measured on fresh data.")
        if "model" in curves:
            gap = curves["model"][0] - curves["floor"][0]
            band = 2 * np.sqrt(curves["model"][1] ** 2 + curves["floor"][1] ** 2)
            fig = figures.loss_curves(x, {"model − floor": gap, "+2 s.e.": band, "−2 s.e.": -band}, log_y=False,
                                      title="How far above the floor the model is", y_title="excess loss")
            fig.update_traces(line=dict(color="grey", dash="dot"), selector=lambda trace: "s.e." in trace.name)
            st.plotly_chart(fig, key="pg_gap_chart")
            if exact:
                st.caption(f"The excess equals E‖prediction − E[{target} | x_t]‖²/2, the model's squared distance to "
                           "the optimal prediction: zero only for the oracle. Inside the ±2 s.e. band the model is "
                           "optimal as far as this many examples can tell.")
            else:
                st.caption("Fresh data against the training-set floor: at small t the excess is mostly the price of "
                           "generalising (not copying the training points), not a flaw of the network.")
        else:
            st.caption("Train a model to compare its loss with this floor.")
except ValueError as error:
    st.error(str(error))
