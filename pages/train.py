"""Train: every knob of TrainConfig, a background job in a worker process, and a live panel that survives page
switches, reloads and server restarts. Every setting persists and travels as a link (ui/settings.py); the
dataset picks the recipe the other settings start from (core.training.config.recipe_for)."""

import os
import time

import streamlit as st

from core import runtime
from core.checkpoints.validate import check_model_schedule
from core.data.datasets import TOY_NAMES
from core.diffusion.gaussian_diffusion import PREDICTIONS, VARIANCES
from core.diffusion.schedules import SCHEDULE_KINDS, make_schedule
from core.lab.schedule_lab import schedule_curves, terminal_noise
from core.nets.build import SIZE_NAMES
from core.training.config import (
    LR_SCHEDULES,
    MNIST_CPU_RECIPE,
    MNIST_LIGHT_RECIPE,
    MNIST_STANDARD_RECIPE,
    NOISE_LEVELS,
    PLAYGROUND_RECIPE,
    TrainConfig,
    recipe_for,
)
from core.training.stats import ACTIVE_STATES
from ui import catalog, figures, layout, replay, session, training_panel
from ui.code import show_code
from ui.figures import chart
from ui.labels import (
    DATASET_LABELS,
    NOISE_LEVEL_LABELS,
    PREDICTION_LABELS,
    SCHEDULE_LABELS,
    VARIANCE_LABELS,
    terminal_noise_text,
)
from ui.navigation import require_app_shell
from ui.settings import PageSettings, Preset, Setting, seed_setting, widget

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

BUDGET_LABELS = {"steps": "all the steps", "minutes": "at most N minutes"}
# A budget plans the run to fit (core/training/budget.py): the default, since a lesson has a clock.
DEFAULT_BUDGET, DEFAULT_MINUTES = "minutes", 5
EVICTIONS_SHOWN, EVICTIONS_SHOWN_SECONDS = 3, 7 * 86400  # the run store's latest removals of this session's models
# widget key -> the TrainConfig field it sets (the recipe's value is its default)
RECIPE_KEYS = {
    "train_size": "model_size", "train_prediction": "prediction", "train_variance": "variance",
    "train_steps": "total_steps", "train_batch": "batch_size", "train_schedule": "schedule", "train_T": "T",
    "train_beta_start": "beta_start", "train_beta_end": "beta_end", "train_scale": "scale_with_T",
    "train_lr": "learning_rate", "train_lr_schedule": "lr_schedule", "train_warmup": "warmup_steps",
    "train_ema": "ema_decay", "train_clip": "grad_clip", "train_preview_every": "preview_every",
    "train_noise_levels": "noise_levels", "train_ln_mean": "lognormal_mean", "train_ln_std": "lognormal_std",
}


def _recipe_values(config: TrainConfig, dataset: str) -> dict:
    """The widget values of a recipe (for a preset: every recipe setting explicit, so it is the same on any server)."""
    return {"train_dataset": dataset, **{key: getattr(config, name) for key, name in RECIPE_KEYS.items()}}


PRESETS = [
    Preset("The light CPU recipe (laptops without bf16)", _recipe_values(MNIST_LIGHT_RECIPE, "mnist"),
           "The slim UNet at batch 32, x₀-prediction, log-normal training noise levels, T = 200 with the β range "
           "scaled: the fastest digits on an AVX2 CPU within a few minutes (docs/benchmarks.md, \"Digits within a "
           "lesson\")."),
    Preset("The standard CPU recipe", _recipe_values(MNIST_STANDARD_RECIPE, "mnist"),
           "The same recipe with the tiny UNet at batch 64: better once the budget affords about 1,900 light "
           "steps (a faster CPU, or a longer budget)."),
    Preset("Ho et al.'s schedule (T = 1000, constant lr)", _recipe_values(MNIST_CPU_RECIPE, "mnist"),
           "Ho et al.'s linear β from 10⁻⁴ to 0.02 over T = 1000 with a constant learning rate after warm-up, at a "
           "CPU-sized model and budget: the recipe of the shipped MNIST models (checkpoints/README.md)."),
    Preset("A 2-D toy in seconds", {**_recipe_values(recipe_for("two_moons", False), "two_moons"),
                                    **{key: PLAYGROUND_RECIPE[RECIPE_KEYS[key]] for key in RECIPE_KEYS
                                       if RECIPE_KEYS[key] in PLAYGROUND_RECIPE}},
           "Two moons with the 2-D playground's recipe (tiny MLP, 4,000 steps of batch 256; 10–15 s of CPU time "
           "where it was measured, `bench/playground_recipe.py`), then sample from it on the Sample page."),
]


def datasets() -> list:
    """The datasets offered: the full ones only when the instructor has put the IDX files on the server."""
    return ["mnist", *TOY_NAMES] + (["mnist_full", "fashion_mnist"] if os.environ.get("RDL_DATA_DIR") else [])


def recipe(dataset: str) -> TrainConfig:
    """The recipe the settings start from: core.training.config.recipe_for; the GPU one when the server has a GPU
    (core.runtime.cuda_inventory: learned in a child process, so the web server never initialises CUDA), else the
    CPU's MNIST recipe picked for this machine's measured speed and the default budget (ui.training_panel)."""
    on_gpu = bool(runtime.cuda_inventory())
    if dataset in TOY_NAMES or on_gpu:
        return recipe_for(dataset, on_gpu)
    return training_panel.fast_recipe_for_this_machine(60.0 * DEFAULT_MINUTES)


# ------------------------------------------------------------------------------------------ settings
def setting_list(dataset: str) -> list:
    """Every setting of the page, with the defaults of `dataset`'s recipe (the dataset itself defaults to MNIST)."""
    base = recipe(dataset)
    return [
        Setting("train_dataset", "mnist", "choice", choices=tuple(datasets()), label="Dataset", format_func=DATASET_LABELS.get,
                help="Changing it loads that dataset's recipe into the other settings."),
        Setting("train_size", base.model_size, "choice", choices=SIZE_NAMES, label="Model size",
                help="UNet for images (tiny ≈ CPU-friendly, base for a GPU); residual MLP for 2-D data."),
        Setting("train_prediction", base.prediction, "choice", choices=PREDICTIONS, label="Network predicts",
                format_func=PREDICTION_LABELS.get),
        Setting("train_variance", base.variance, "choice", choices=VARIANCES, label="Reverse-step variance",
                format_func=VARIANCE_LABELS.get),
        Setting("train_steps", base.total_steps, "int", 10, 200_000, label="Training steps", step=100),
        Setting("train_batch", base.batch_size, "int", 1, 4096, label="Batch size"),
        Setting("train_schedule", base.schedule, "choice", choices=SCHEDULE_KINDS, label="β schedule", format_func=SCHEDULE_LABELS.get),
        Setting("train_T", base.T, "int", 2, 4000, label="T (diffusion steps)", step=50),
        Setting("train_beta_start", base.beta_start, "float", 1e-6, 0.5, label="β start", widget="number_input", format="%g",
                help="Ignored by the cosine schedule."),
        Setting("train_beta_end", base.beta_end, "float", 1e-5, 0.999, label="β end", widget="number_input", format="%g"),
        Setting("train_noise_levels", base.noise_levels, "choice", choices=NOISE_LEVELS, label="Training noise levels",
                format_func=NOISE_LEVEL_LABELS.get,
                help="Which t each training example gets: uniformly (Algorithm 1), or so that ln σₜ, σₜ = √((1−ᾱₜ)/ᾱₜ), is "
                     "normal: fewer steps where xₜ is almost pure noise."),
        Setting("train_ln_mean", base.lognormal_mean, "float", -10.0, 10.0, label="ln σ mean", widget="number_input", format="%g"),
        Setting("train_ln_std", base.lognormal_std, "float", 0.05, 10.0, label="ln σ std", widget="number_input", format="%g"),
        Setting("train_scale", base.scale_with_T, "bool", label="Scale β range with T (× 1000/T)"),
        Setting("train_lr", base.learning_rate, "float", 1e-6, 0.1, label="Learning rate", widget="number_input", format="%g"),
        Setting("train_lr_schedule", base.lr_schedule, "choice", choices=LR_SCHEDULES, label="Learning-rate schedule"),
        Setting("train_warmup", base.warmup_steps, "int", 0, 100_000, label="Warm-up steps"),
        Setting("train_ema", base.ema_decay, "float", 0.0, 0.99999, label="EMA decay", widget="number_input", format="%g"),
        Setting("train_clip", base.grad_clip, "float", 0.0, 100.0, label="Gradient clip (0 = off)", widget="number_input"),
        Setting("train_preview_every", base.preview_every, "int", 0, 100_000, label="Preview every (steps)"),
        seed_setting("train_seed"),
        Setting("train_budget", DEFAULT_BUDGET, "choice", choices=tuple(BUDGET_LABELS), label="Train for", widget="radio",
                horizontal=True, format_func=BUDGET_LABELS.get,
                help="A time budget plans the run: the job measures its speed in its first seconds and sets its number of "
                     "steps (at most the step count above) so that the learning rate decays to 0 within the budget, then "
                     "saves. Plan a lesson with it."),
        Setting("train_minutes", DEFAULT_MINUTES, "int", 1, 240, label="Minutes"),
    ]


def defaults_for(values: dict) -> dict:
    """The defaults that apply to `values`: those of the recipe of their dataset (a link that sets only the
    dataset gets that dataset's recipe; a link leaves out exactly what equals it)."""
    dataset = values.get("train_dataset")
    return {s.key: s.default for s in setting_list(dataset if dataset in datasets() else "mnist")}


def page_settings() -> PageSettings:
    return PageSettings("train", setting_list("mnist"), PRESETS, uses_model=False, defaults_for=defaults_for)


def follow_recipe() -> None:
    """On a change of dataset: every recipe setting takes the new dataset's value (seed and budget stay)."""
    new = defaults_for({"train_dataset": st.session_state["train_dataset"]})
    for key in RECIPE_KEYS:
        st.session_state[key] = new[key]


def budget_seconds() -> float | None:
    """The time budget the settings ask for (None: "all the steps")."""
    if st.session_state.get("train_budget", DEFAULT_BUDGET) != "minutes":
        return None
    return 60.0 * int(st.session_state.get("train_minutes", DEFAULT_MINUTES))


def follow_budget() -> None:
    """On a change of the time budget: settings that are still one of the fast CPU recipes become the recipe picked
    for the new budget on this machine (core.training.config.pick_fast_recipe); customised settings stay."""
    if st.session_state.get("train_dataset", "mnist") in TOY_NAMES or runtime.cuda_inventory():
        return
    fast = [_recipe_values(MNIST_LIGHT_RECIPE, "mnist"), _recipe_values(MNIST_STANDARD_RECIPE, "mnist")]
    current = {key: st.session_state.get(key) for key in RECIPE_KEYS}
    if not any(all(current[key] == values[key] for key in RECIPE_KEYS) for values in fast):
        return
    picked = _recipe_values(training_panel.fast_recipe_for_this_machine(budget_seconds()), "mnist")
    for key in RECIPE_KEYS:
        st.session_state[key] = picked[key]


def data_and_model(base: TrainConfig) -> dict:
    dataset_column, size_column, steps_column = st.columns(3)
    dataset = widget("train_dataset", dataset_column, on_change=follow_recipe)
    size = widget("train_size", size_column, default=base.model_size)
    steps = widget("train_steps", steps_column, default=base.total_steps)
    prediction_column, variance_column, batch_column = st.columns(3)
    prediction = widget("train_prediction", prediction_column, default=base.prediction)
    variance = widget("train_variance", variance_column, default=base.variance)
    batch_size = widget("train_batch", batch_column, default=base.batch_size)
    return dict(dataset=dataset, model_size=size, total_steps=int(steps), prediction=prediction, variance=variance,
                batch_size=int(batch_size))


def noise_schedule(base: TrainConfig) -> dict:
    kind_column, T_column, scale_column = st.columns(3)
    kind = widget("train_schedule", kind_column, default=base.schedule)
    T = widget("train_T", T_column, default=base.T)
    scale_with_T = widget("train_scale", scale_column, default=base.scale_with_T)
    start_column, end_column, _ = st.columns(3)
    beta_start = widget("train_beta_start", start_column, default=base.beta_start)
    beta_end = widget("train_beta_end", end_column, default=base.beta_end)
    levels_column, mean_column, std_column = st.columns(3)
    levels = widget("train_noise_levels", levels_column, default=base.noise_levels)
    lognormal = levels == "lognormal"
    mean = widget("train_ln_mean", mean_column, default=base.lognormal_mean, disabled=not lognormal)
    std = widget("train_ln_std", std_column, default=base.lognormal_std, disabled=not lognormal)
    return dict(schedule=kind, T=int(T), beta_start=float(beta_start), beta_end=float(beta_end),
                scale_with_T=bool(scale_with_T), noise_levels=levels, lognormal_mean=float(mean),
                lognormal_std=float(std))


def optimizer(base: TrainConfig) -> dict:
    lr_column, lr_schedule_column, warmup_column = st.columns(3)
    learning_rate = widget("train_lr", lr_column, default=base.learning_rate)
    lr_schedule = widget("train_lr_schedule", lr_schedule_column, default=base.lr_schedule)
    warmup = widget("train_warmup", warmup_column, default=base.warmup_steps)
    ema_column, clip_column, preview_column = st.columns(3)
    ema_decay = widget("train_ema", ema_column, default=base.ema_decay)
    grad_clip = widget("train_clip", clip_column, default=base.grad_clip)
    preview_every = widget("train_preview_every", preview_column, default=base.preview_every)
    return dict(learning_rate=float(learning_rate), lr_schedule=lr_schedule, warmup_steps=int(warmup),
                ema_decay=float(ema_decay), grad_clip=float(grad_clip), preview_every=int(preview_every))


def settings_section() -> dict:
    """The settings widgets in three tabs (plain widgets, not a form: the schedule figure follows every change);
    their defaults are the recipe of the dataset chosen (or given by a link)."""
    dataset = st.session_state.get("train_dataset", "mnist")
    base = recipe(dataset if dataset in datasets() else "mnist")
    data_tab, schedule_tab, optimizer_tab = st.tabs(["Data and model", "β schedule", "Optimizer"])
    with data_tab:
        settings = data_and_model(base)
    with schedule_tab:
        settings.update(noise_schedule(base))
    with optimizer_tab:
        settings.update(optimizer(base))
    if dataset not in TOY_NAMES and not runtime.cuda_inventory():
        st.caption(training_panel.fast_recipe_note(budget_seconds()))
    return settings


def schedule_of(settings: dict):
    """The noise schedule of the settings, or None after a clear error for an impossible one (then no Start)."""
    try:
        return check_model_schedule(make_schedule(settings["schedule"], settings["T"], settings["beta_start"],
                                                  settings["beta_end"], settings["scale_with_T"]))
    except ValueError as error:
        st.error(f"This schedule is not valid: {error}")
        return None


def start_section(settings: dict, schedule) -> None:
    """The time budget, the seed and the Start button (the schedule warning above them)."""
    warning = terminal_noise_text(terminal_noise(schedule)) if schedule is not None else None
    if warning:
        st.warning(warning)
    budget_column, minutes_column, seed_column, start_column = st.columns([2.9, 1, 1.1, 1.5], vertical_alignment="bottom")
    budget = widget("train_budget", budget_column, on_change=follow_budget)
    minutes = widget("train_minutes", minutes_column, on_change=follow_budget, disabled=budget != "minutes")
    seed = widget("train_seed", seed_column)
    if start_column.button("Start training", type="primary", disabled=schedule is None, key="train_start",
                           help="Each session may have one job training and one more waiting for it."):
        try:
            config = TrainConfig(**settings, seed=int(seed))
        except ValueError as error:
            st.error(f"These settings cannot be trained: {error}")
            return
        if training_panel.submit(config, max_seconds=60.0 * int(minutes) if budget == "minutes" else None):
            st.rerun()  # refusals stay on screen as the message submit() showed


def schedule_figure(schedule) -> None:
    """The first result, beside the settings: what x_t is made of under the chosen schedule, at every t."""
    if schedule is None:
        return
    curves = schedule_curves(schedule)
    fig = figures.loss_curves(curves["t"].numpy(), {
        "√ᾱ_t (weight of x₀)": curves["signal"].numpy(), "√(1−ᾱ_t) (weight of ε)": curves["noise"].numpy()},
        log_y=False, title="x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε with this schedule", y_title="weight")
    fig.update_layout(height=300, yaxis_range=[0, 1.02])
    chart(fig, key="train_schedule_figure")
    signal_T = float(curves["signal"][-1])
    st.caption(f"At t = T = {schedule.T:,} the weight of x₀ is {signal_T:.2g}: sampling starts from pure noise, so it "
               "should be close to 0.")
    show_code(schedule_curves)


# ---------------------------------------------------------------------------------------------- page
def intro() -> None:
    st.title("Train a model")
    st.caption("Training runs in the **background**, in a process of its own: switch pages or reload the tab and the "
               "job keeps going, saved on the server as it goes. A finished (or stopped) model joins the sidebar's list.")


def jobs_section() -> None:
    st.subheader("Your jobs")
    registry = session.get_registry()
    jobs = registry.jobs_for(session.session_id())
    for eviction in registry.evictions_for(session.session_id())[-EVICTIONS_SHOWN:]:  # the server's cleanup: say so
        if time.time() - eviction.removed_at < EVICTIONS_SHOWN_SECONDS:
            st.warning(eviction.message())
    if not jobs:
        st.caption("No job yet. Choose settings above and press **Start training**.")
    for index, job in enumerate(reversed(jobs)):
        config = job.config
        title = (f"{config.dataset} · {config.model_size} · {config.prediction}/{config.variance} · "
                 f"{config.schedule} T={config.T} — {training_panel.STATE_LABELS.get(job.snapshot().state)}")
        with st.expander(title, expanded=index == 0):
            training_panel.job_buttons(job)
            training_panel.progress_panel(job)


def has_active_job() -> bool:
    """True while one of this session's jobs is queued or training."""
    jobs = session.get_registry().jobs_for(session.session_id())
    return any(job.snapshot().state in ACTIVE_STATES for job in jobs)


def settings_and_start(page: PageSettings) -> None:
    """The settings form and Start, with the schedule figure beside them."""
    settings_column, figure_column = st.columns([3, 2])
    with settings_column:
        settings = settings_section()
        schedule = schedule_of(settings)
        page.sync_url()  # before Start, whose st.rerun() ends the run
        start_section(settings, schedule)
    with figure_column:
        schedule_figure(schedule)


def main() -> None:
    try:
        training_panel.forced_fast_recipe()
    except ValueError as error:  # $RDL_FAST_RECIPE set wrongly by whoever runs the server: say so
        st.error(f"Server setting: {error}")
        st.stop()
    page = page_settings()
    page.restore()
    layout.title_row(intro, page)
    page.notices()
    if has_active_job():  # the live panel first (above the fold at 1280×720), the long form folded away below it
        jobs_section()
        with st.expander("Settings and Start for another run", expanded=False, icon=":material/tune:"):
            settings_and_start(page)
    else:
        settings_and_start(page)
        jobs_section()
    replay.render_replay(catalog.CHECKPOINT_DIR / "history")  # recorded runs: see how a model learns, instantly


main()
