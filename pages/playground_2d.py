"""2-D playground: train a small MLP on a toy distribution in seconds and compare it with the exact oracle.

Everything numeric comes from core (core.lab.playground, core.diffusion.oracle, core.sampling); the figures are
ui/playground_figures.py. This page lays out widgets, caches the heavy results per (model, settings), and
dispatches the four exploration sections from one table (SECTIONS).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from core.data.toys import TOY_NAMES, sample_toy
from core.diffusion.gaussian_diffusion import PREDICTIONS, VARIANCES, GaussianDiffusion
from core.diffusion.oracle import OracleDenoiser, loss_floor_curve
from core.diffusion.schedules import SCHEDULE_KINDS
from core.lab import playground
from core.lab.denoise import timestep_grid
from core.nets.build import SIZE_NAMES, build_model, count_parameters, model_config_for
from core.sampling import SamplerSettings
from core.training.config import TrainConfig, build_diffusion
from core.training.stats import ACTIVE_STATES
from ui import catalog, exports, figures, layout, runs, session, training_panel
from ui.cached import shared_value
from ui.drawing_panel import drawing_panel
from ui.drawing_panel import settings as drawing_panel_settings
from ui.figures import chart
from ui.labels import FIELD_LABELS, PREDICTION_LABELS, SCHEDULE_LABELS, TOY_LABELS, VARIANCE_LABELS
from ui.navigation import require_app_shell
from ui.playground_figures import field_figure, samples_figure, trajectory_figure
from ui.settings import PageSettings, Preset, Setting, scrubber, seed_setting, widget

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

NO_MODEL = "none"
VIEW = 1.6  # half-width of the plotted square
VIEWS = (1.0, 1.25, 1.6, 2.0, 3.0)
SAMPLE_POINTS = 600  # points per sampler run (metrics and the final scatter)
PARTICLES = 250  # of which the animation follows this many
REFERENCE_POINTS = 2000  # fresh data the metrics compare against
NOISE_REPEATS = 8  # sets of fresh data scored to show the metrics' noise level
LOSS_TIMESTEPS, LOSS_DRAWS = 50, 400  # loss curve: timesteps evaluated, fresh examples per timestep
FLOOR_EXAMPLES = 8000  # Monte Carlo examples for the training panel's floor (spread over the timesteps)
QUALITY_STEPS = (10, 50, 200)
SPACING = "trailing"  # fewer steps than T still start exactly at t = T, from pure noise
ARROW_GRID, HEAT_GRID = 21, 61
METHODS = ("ddpm", "ddim")
PRESETS = [
    Preset("Eight Gaussians: a model against the exact optimum", {"pg_toy": "eight_gaussians", "pg_section": "Loss per timestep"},
           "A Gaussian mixture has an exact Bayes-optimal denoiser: the floor no network can beat."),
    Preset("Swiss roll: the memorising oracle", {"pg_toy": "swiss_roll", "pg_section": "Samples & quality"},
           "The optimal denoiser of a finite training set copies training points."),
    Preset("x₀-prediction with the cosine schedule", {"pg_prediction": "x0", "pg_schedule": "cosine"},
           "Train it and compare its ε̂ field with the oracle's at small t."),
    Preset("DDIM in 10 steps", {"pg_section": "Reverse trajectories", "pg_method": "ddim", "pg_sample_steps": 10},
           "Deterministic trajectories: particles move along smooth paths."),
]


@dataclass(frozen=True)
class Exploration:
    """What the sections explore: the chosen model (None: the oracle only), its diffusion and toy data."""

    model: torch.nn.Module | None
    token: str
    diffusion: GaussianDiffusion
    diffusion_key: str
    data: tuple  # (toy name, data seed, toy points): what the oracle and the fresh data are built from
    reference: np.ndarray  # fresh points of the toy (never trained on)

    @property
    def name(self) -> str:
        return self.data[0]


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
    return profile_floor(json.dumps(setup, sort_keys=True), snapshot.progress.profile_edges)


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



def mmd_text(value: float, noise_std: float) -> str:
    """The unbiased MMD² estimate can dip below 0 by chance; within 2 noise s.d. of 0 it reads "≈ 0"."""
    return f"≈ 0 (|{value:.1e}| within noise)" if value < 2 * noise_std else f"{value:.1e}"


# ------------------------------------------------------------------------------------------ settings
def page_settings() -> PageSettings:
    recipe = playground.PLAYGROUND_RECIPE
    return PageSettings("playground", [
        Setting("pg_toy", TOY_NAMES[0], "choice", choices=TOY_NAMES, label="Toy distribution", format_func=TOY_LABELS.get),
        Setting("pg_steps", recipe["total_steps"], "int", 50, 50_000, label="Training steps", step=250,
                help=f"Batch {recipe['batch_size']}, Adam {recipe['learning_rate']:g} with cosine decay."),
        Setting("pg_size", recipe["model_size"], "choice", choices=SIZE_NAMES, label="Model size",
                help="Residual MLP: " + ", ".join(f"{s} {mlp_parameters(s):,}" for s in SIZE_NAMES) + " parameters."),
        Setting("pg_schedule", SCHEDULE_KINDS[0], "choice", choices=SCHEDULE_KINDS, label="β schedule", format_func=SCHEDULE_LABELS.get),
        Setting("pg_T", 1000, "int", 10, 4000, label="T (diffusion steps)", step=50),
        Setting("pg_scale", True, "bool", label="Scale β range with T (× 1000/T)",
                help="Keeps $x_T$ close to pure noise when T ≠ 1000 (no effect at T = 1000)."),
        Setting("pg_prediction", PREDICTIONS[0], "choice", choices=PREDICTIONS, label="Network predicts", widget="radio",
                format_func=PREDICTION_LABELS.get),
        Setting("pg_variance", "fixed_small", "choice", choices=VARIANCES, label="Reverse variance", widget="radio",
                format_func=VARIANCE_LABELS.get),
        Setting("pg_section", tuple(SECTIONS)[0], "choice", choices=tuple(SECTIONS), label="Show", widget="radio", horizontal=True),
        Setting("pg_method", METHODS[0], "choice", choices=METHODS, label="Sampler", widget="radio", horizontal=True,
                format_func=str.upper),
        Setting("pg_sample_steps", 100, "int", 1, 4000, label="Sampling steps"),
        seed_setting("pg_seed", help="Same seed: same $x_T$ and noise for both."),
        Setting("pg_paths", False, "bool", label="Show every recorded step (colored by t)"),
        Setting("pg_trajectory_t", None, "int", 0, 4000, label="Trajectory step (t)", widget="scrubber",
                format_func=lambda step: "0 (x₀)" if step <= 0 else str(step)),
        Setting("pg_field_t", 100, "int", 1, 4000, label="t (paper's step)", widget="slider"),
        Setting("pg_field_kind", playground.FIELD_KINDS[0], "choice", choices=playground.FIELD_KINDS, label="Field", widget="radio",
                format_func=FIELD_LABELS.get),
        Setting("pg_field_view", VIEW, "float", choices=VIEWS, label="View half-width", widget="select_slider"),
        *drawing_panel_settings(),
    ], PRESETS)


def clamp_to_T(key: str, T: int, default: int) -> None:
    """A step setting kept from a longer schedule falls back to this schedule's default."""
    if not 1 <= st.session_state.get(key, default) <= T:
        st.session_state[key] = default


# ------------------------------------------------------------------------------------------ sections
def intro() -> None:
    st.title("2-D playground")
    st.markdown("A diffusion model on points in the plane trains in **seconds**, and for these toys we know the "
                "**exact** optimal denoiser (the *oracle*), so every imperfection of the network can be seen.")


def train_settings() -> tuple:
    """The training form; returns (toy, TrainConfig or None when the settings cannot be trained)."""
    job = training_panel.latest_job(kind="points")
    busy = job is not None and job.snapshot().state in ACTIVE_STATES
    with st.container(border=True):
        data_column, process_column, model_column = st.columns(3)
        with data_column:
            toy = widget("pg_toy")
            steps = widget("pg_steps")
            size = widget("pg_size")
        with process_column:
            kind = widget("pg_schedule")
            T = widget("pg_T")
            scale = widget("pg_scale")
        with model_column:
            prediction = widget("pg_prediction")
            variance = widget("pg_variance")
        try:
            config = playground.playground_config(toy, kind, int(T), prediction, variance, size, int(steps), bool(scale))
        except ValueError as error:
            config = None
            st.error(f"These settings cannot be trained: {error}")
        if st.button("Train", type="primary", key="pg_train", disabled=busy or config is None, icon=":material/play_arrow:",
                     help="One job per session at a time; stop the running one first." if busy else
                     "Trains in the background on this server's CPU; the panel below shows the measured time."):
            training_panel.submit(config)  # refusals become messages
            if training_panel.latest_job(kind="points") is not job:
                st.rerun()
    if config is not None:
        exports.reproduce_box(exports.train_command(config, f"toy_{toy}.safetensors"), (
            "from core import TrainConfig, Trainer\n\n"
            f"config = {config!r}\n"
            "# or run the command above; then open the checkpoint here with the sidebar's upload"),
            "The same training from the command line (progress on stderr; Ctrl-C stops and still saves).")
    return toy, config


def training_job() -> None:
    job = training_panel.latest_job(kind="points")
    if job is None:
        return
    config, snapshot = job.config, job.snapshot()
    with st.expander(f"Training job: {TOY_LABELS[config.dataset]} · {config.model_size} · {config.prediction}/"
                     f"{config.variance} · {config.schedule} T={config.T} — {training_panel.STATE_LABELS.get(snapshot.state)} "
                     f"· {snapshot.progress.seconds:.0f} s measured", expanded=True):
        st.caption("The middle plot compares the training loss per timestep with the **exact floor**, the loss of "
                   "the oracle (see below): no network can go below it on the oracle's data.")
        training_panel.job_buttons(job)
        training_panel.progress_panel(job, floor_fn=floor_for_snapshot)


def model_choices() -> dict:
    """key -> label of every 2-D model: the newest trained here, the shipped toys, uploads of 2-D models."""
    choices = {}
    finished = [j for j in session.get_registry().jobs_for(session.session_id())
                if j.data_kind == "points" and j.snapshot().state in ("stopped", "finished") and j.snapshot().saved_step]
    if finished:
        newest = finished[-1]
        choices[f"trained:{newest.job_id}"] = (f"trained here: {TOY_LABELS[newest.config.dataset]}, "
                                               f"step {newest.snapshot().step}")
    for key in catalog.shipped_models():
        if key.startswith("shipped:toy_"):
            choices[key] = f"shipped: {key.split(':', 1)[1]}"
    for key, label in catalog.available_models().items():
        if key.startswith("uploaded:") and catalog.load_model(key).data_shape == (2,):
            choices[key] = label
    choices[NO_MODEL] = "no model (oracle only, with the training settings below)"
    return choices


def choose_model(toy: str) -> str:
    """The model to explore, which is also the sidebar's active model (one notion of "the model" everywhere):
    by default the newest model trained here, else the shipped checkpoint of the chosen toy; a 2-D model
    picked in the sidebar is followed here, and a model picked here becomes the active model."""
    choices = model_choices()
    preferred = next((key for key in choices if key.startswith("trained:")), None)
    preferred = preferred or (f"shipped:toy_{toy}" if f"shipped:toy_{toy}" in choices else NO_MODEL)
    active = catalog.active_model_key()
    if st.session_state.get("pg_preferred_model") != preferred:  # a model just finished, or another toy was chosen
        st.session_state["pg_preferred_model"] = preferred
        st.session_state["pg_model"] = preferred
    elif active in choices and active != st.session_state.get("pg_last_active"):  # picked in the sidebar
        st.session_state["pg_model"] = active
    if st.session_state.get("pg_model") not in choices:
        st.session_state["pg_model"] = preferred
    key = st.selectbox("Model to explore (the active model)", list(choices), format_func=choices.get, key="pg_model")
    if key != NO_MODEL and key != active:
        st.session_state["active_model_key"] = key
        st.session_state["pg_last_active"] = key
        st.rerun()  # the sidebar shows the new active model
    st.session_state["pg_last_active"] = active
    return key


def exploration(model_key: str, toy: str, config) -> Exploration | None:
    try:
        if model_key == NO_MODEL:
            if config is None:
                return None
            loaded, diffusion, data = None, build_diffusion(config), (toy, config.seed, config.toy_points)
            st.info("No model chosen: train one below (the panel shows how long it takes). Meanwhile the oracle parts "
                    "below work on their own.")
        else:
            loaded = catalog.load_model(model_key)
            data = playground.toy_data_settings(loaded.metadata)
            diffusion = loaded.diffusion
    except (ValueError, KeyError) as error:
        st.error(f"This model cannot be explored here: {error}")
        return None
    return Exploration(model=loaded.model if loaded is not None else None,
                       token=loaded.token if loaded is not None else NO_MODEL, diffusion=diffusion,
                       diffusion_key=json.dumps(diffusion.to_config(), sort_keys=True), data=data,
                       reference=reference_data(*data).numpy())


def describe(ex: Exploration) -> None:
    schedule = ex.diffusion.schedule
    st.caption(f"Exploring **{TOY_LABELS[ex.name]}** · {schedule.kind} schedule, T = {ex.diffusion.T} "
               f"($\\sqrt{{\\bar\\alpha_T}}$ = {float(schedule.alpha_bars[-1]) ** 0.5:.3g}) · predicts "
               f"{PREDICTION_LABELS[ex.diffusion.prediction]} · reverse variance {VARIANCE_LABELS[ex.diffusion.variance]}")
    if playground.has_exact_density(ex.name):
        st.markdown("**The oracle** is the exact Bayes-optimal denoiser $E[\\varepsilon \\mid x_t]$ of the *true* "
                    "Gaussian mixture: the best any network could possibly do.")
    else:
        st.markdown(f"**The oracle** is the exact optimal denoiser of a fixed set of {playground.ORACLE_POINTS:,} of the "
                    "model's training points (all of them for models trained on this page). It is the *memorising* "
                    "denoiser: at small $t$ it pulls every point onto its nearest training point, so its samples copy the "
                    "training set. It minimises the training loss; a network that generalises stays above it at small $t$.")


def sampler_controls(ex: Exploration) -> tuple[str, int, int]:
    T = ex.diffusion.T
    clamp_to_T("pg_sample_steps", T, min(100, T))
    left, middle, right = st.columns(3)
    method = widget("pg_method", left)
    steps = widget("pg_sample_steps", middle, high=T, default=min(100, T))
    seed = widget("pg_seed", right)
    return method, int(steps), int(seed)


def trajectories_section(ex: Exploration) -> None:
    figure_area = st.container()  # the figure first (above the fold), its sampler settings under it
    method, steps, seed = sampler_controls(ex)
    runs = sampler_runs(ex.model, ex.token, ex.diffusion, ex.diffusion_key, ex.data, method, steps, 0.0, seed)
    show_paths = widget("pg_paths")
    spec = trajectory_spec(runs, ex, show_paths, (ex.token, ex.diffusion_key, ex.data, method, steps, seed, show_paths))
    with figure_area:
        st.fragment(trajectory_view)(spec, runs)
    st.caption(f"{PARTICLES} particles start from the same $x_T \\sim \\mathcal N(0, I)$ for "
               f"{'both' if len(runs) > 1 else 'the oracle'}; press ▶ or drag the slider under the figure (in the browser, "
               "no recomputation), or use the keyboard slider above it. The colour is the timestep; grey is fresh data.")
    exports.npz_button("Trajectories (.npz)", lambda: {f"{name}_{field}": np.asarray(run[field]) for name, run in runs.items()
                                                       for field in ("x0", "t", "frames")}, "trajectories.npz", key="pg_npz")


def trajectory_spec(runs: dict, ex: Exploration, show_paths: bool, key: tuple) -> dict:
    """The spec of trajectory_figure(...) (figures.spec_of), built once per `key` (model, diffusion, data, sampler, seed,
    paths shown) for the whole server (ui/cached.py). A scrub step only picks its frame (figures.at_frame), so it
    never builds a figure."""
    return shared_value(("pg_trajectory_spec", key),
                        lambda: figures.spec_of(trajectory_figure(runs, ex.reference, ex.diffusion.T, show_paths)))


def trajectory_view(spec: dict, runs: dict) -> None:
    """The trajectory scrubber and figure (a fragment: a scrub step reruns only this; the t travels in links)."""
    shown = scrubber("pg_trajectory_t", [max(int(t) + 1, 0) for t in next(iter(runs.values()))["t"]])
    figures.scrubbed_chart(spec, shown, "pg_trajectory_chart")


def samples_section(ex: Exploration) -> None:
    method, steps, seed = sampler_controls(ex)
    runs = sampler_runs(ex.model, ex.token, ex.diffusion, ex.diffusion_key, ex.data, method, steps, 0.0, seed)
    chart(samples_figure(runs, ex.reference[:1000], VIEW), key="pg_samples_chart")
    noise = held_out(*ex.data)["baseline"]
    columns = st.columns(2 * len(runs))
    for i, (run_name, run) in enumerate(runs.items()):
        columns[2 * i].metric(f"{run_name}: sliced W₁", f"{run['quality']['sw1']:.4f}")
        columns[2 * i + 1].metric(f"{run_name}: MMD² (RBF)", mmd_text(run["quality"]["mmd2"], noise["mmd2"][1]),
                                  help="Unbiased estimate of the squared MMD: 0 for a perfect model up to sampling noise, "
                                       "so by chance it can be slightly negative.")
    st.caption(f"{SAMPLE_POINTS} samples each against {REFERENCE_POINTS:,} fresh points of the toy (held out "
               f"from training). Lower is better; {noise_text(noise)}.")
    exports.npz_button("Samples (.npz)", lambda: {f"{name}_samples": run["x0"] for name, run in runs.items()},
                       f"samples_{method}_{steps}_seed{seed}.npz", key="pg_samples_npz")
    quality_table(ex, seed, noise)


def quality_table(ex: Exploration, seed: int, noise: dict) -> None:
    st.markdown("**DDPM and DDIM at several step counts** (same seed for model and oracle)")
    quality_key = (ex.token, ex.diffusion_key, ex.data, seed)
    requested = st.session_state.setdefault("pg_quality_requested", [])
    if st.button("Compute the table", key="pg_quality_run", help="2 × 3 sampler runs per model."):
        requested.append(quality_key)
    if runs.cancelled_notice("pg_quality_cancel") and quality_key in requested:
        requested.remove(quality_key)  # asked again only by another click
    if quality_key not in requested:
        return
    box = runs.ProgressBox("Quality table", "pg_quality_cancel")
    rows = quality_rows(ex.model, ex.token, ex.diffusion, ex.diffusion_key, ex.data, seed,
                        _progress=box.callback("Sampler runs"))
    box.close()
    number_formats = {column: st.column_config.NumberColumn(format="%.2e" if "MMD" in column else "%.4f")
                      for column in rows[0] if column not in ("sampler", "steps")}
    st.dataframe(rows, hide_index=True, column_config=number_formats, key="pg_quality_table")
    st.caption(f"For scale: {noise_text(noise)}. Scores in that range are as good as these metrics can tell with "
               "this many samples; an MMD² below 0 is such a score.")
    exports.csv_button("CSV of the table", {column: [row[column] for row in rows] for column in rows[0]},
                       "quality_table.csv", key="pg_quality_csv")


def field_section(ex: Exploration) -> None:
    T = ex.diffusion.T
    clamp_to_T("pg_field_t", T, max(1, T // 10))
    left, middle, right = st.columns(3)
    t_step = widget("pg_field_t", left, high=T, default=max(1, T // 10))
    field_kind = widget("pg_field_kind", middle)
    half_width = widget("pg_field_view", right)
    fields = field_images(ex.model, ex.token, ex.diffusion, ex.diffusion_key, ex.data, int(t_step) - 1, field_kind, half_width)
    chart(field_figure(fields, ex.reference[:1000], field_kind), key="pg_field_chart")
    caption = ("Arrows share one length scale (the longest are clipped); contour lines are $\\log q_t$, the density "
               "of $x_t$, so differences far outside the contours hardly matter.")
    if fields["difference"] is not None:
        caption += f" Difference weighted by $q_t$ on the grid: RMS ≈ {fields['weighted_rms']:.3g}."
    st.caption(caption)


def loss_section(ex: Exploration) -> None:
    curves = loss_curves(ex.model, ex.token, ex.diffusion, ex.diffusion_key, ex.data)
    exact = playground.has_exact_density(ex.name)
    x = curves["t"] + 1
    floor_name = "exact floor (oracle)" if exact else "exact floor of the training set (memorising oracle)"
    lines = {floor_name: curves["floor"][0]}
    if "model" in curves:
        lines = {"model on fresh data": curves["model"][0], **lines}
    if "oracle_fresh" in curves:
        lines["memorising oracle on fresh data"] = curves["oracle_fresh"][0]
    target = {"eps": "ε", "x0": "x₀", "v": "v"}[ex.diffusion.prediction]
    chart(figures.loss_curves(x, lines, title=f"{target}-prediction loss per timestep",
                                        y_title=f"mean ‖{target} − prediction‖² / 2"), key="pg_loss_chart")
    exports.csv_button("CSV of the curves", {"t": x.tolist(), **{name: np.asarray(y).tolist() for name, y in lines.items()}},
                       "loss_per_timestep.csv", key="pg_loss_csv")
    if exact:
        st.caption(f"Each point: {LOSS_DRAWS} fresh examples at that $t$. No network can go below the floor.")
    else:
        st.caption(f"Each point: {LOSS_DRAWS} examples at that $t$. The floor is the smallest possible loss on the "
                   "*training set*; the memorising oracle reaches it by copying training points, and pays for "
                   "that on fresh data at small $t$. The true distribution's floor has no closed form: it lies "
                   "below both curves measured on fresh data.")
    if "model" not in curves:
        st.caption("Train a model to compare its loss with this floor.")
        return
    gap = curves["model"][0] - curves["floor"][0]
    band = 2 * np.sqrt(curves["model"][1] ** 2 + curves["floor"][1] ** 2)
    fig = figures.loss_curves(x, {"model − floor": gap, "+2 s.e.": band, "−2 s.e.": -band}, log_y=False,
                              title="How far above the floor the model is", y_title="excess loss")
    fig.update_traces(line=dict(color=figures.NEUTRAL, dash="dot"), selector=lambda trace: "s.e." in trace.name)
    chart(fig, key="pg_gap_chart")
    if exact:
        st.caption(f"The excess equals $E\\lVert \\text{{prediction}} - E[{target} \\mid x_t]\\rVert^2/2$, the model's "
                   "squared distance to the optimal prediction: zero only for the oracle. Inside the ±2 s.e. band the "
                   "model is optimal as far as this many examples can tell.")
    else:
        st.caption("Fresh data against the training-set floor: at small $t$ the excess is mostly the price of "
                   "generalising (not copying the training points), not a flaw of the network.")


SECTIONS = {  # the radio's label -> the section that draws it
    "Reverse trajectories": trajectories_section,
    "ε̂ / score field": field_section,
    "Loss per timestep": loss_section,
    "Samples & quality": samples_section,
}


# --------------------------------------------------------------------------------------------- page
def main() -> None:
    page = page_settings()
    page.restore()
    layout.title_row(intro, page)
    page.notices()
    first_result = st.container()  # the exploration (and a running job's panel) right under the title: above the fold
    st.subheader("Train a model")
    toy, config = train_settings()  # drawn below, read first: the exploration follows its toy
    with first_result:
        training_job()
        model_key = choose_model(toy)  # its label "Model to explore" heads the section (no subheader: 45 px for the figure)
        ex = exploration(model_key, toy, config)
        if ex is None:
            drawing_panel()
            page.sync_url()
            return
        section = widget("pg_section", label_visibility="collapsed")
        try:
            SECTIONS[section](ex)
        except ValueError as error:
            st.error(str(error))
        describe(ex)
    drawing_panel()
    page.sync_url()


main()
