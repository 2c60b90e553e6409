"""Train: every knob of TrainConfig, a background job in a worker process, and a live panel that survives page
switches, reloads and server restarts."""

import os

import streamlit as st
import torch

from core.data.datasets import TOY_NAMES
from core.diffusion.gaussian_diffusion import PREDICTIONS, VARIANCES
from core.diffusion.schedules import SCHEDULE_KINDS, make_schedule
from core.lab.schedule_lab import terminal_noise
from core.nets.build import SIZE_NAMES
from core.training.config import LR_SCHEDULES, TrainConfig, recipe_for
from ui import catalog, replay, session, training_panel
from ui.labels import DATASET_LABELS, PREDICTION_LABELS, SCHEDULE_LABELS, VARIANCE_LABELS, terminal_noise_text
from ui.navigation import require_app_shell

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

BUDGET_LABELS = {"steps": "all the steps", "minutes": "at most N minutes"}


def datasets() -> list:
    """The datasets offered: the full ones only when the instructor has put the IDX files on the server."""
    return ["mnist", *TOY_NAMES] + (["mnist_full", "fashion_mnist"] if os.environ.get("RDL_DATA_DIR") else [])


def intro() -> None:
    st.title("Train a model")
    st.markdown("Training runs in the **background**, in a process of its own: switch pages, come back, or reload "
                "the tab; the job keeps its progress, and it is saved on the server as it goes. When it finishes "
                "(or you stop it) the model appears in the sidebar's model list.")


def settings_section() -> dict:
    """The settings widgets (plain widgets, not a form: the schedule warning follows every change live)."""
    st.subheader("Settings")
    data_column, model_column, schedule_column = st.columns(3)
    with data_column:
        dataset = st.selectbox("Dataset", datasets(), format_func=DATASET_LABELS.get, key="train_dataset")
        recipe = recipe_for(dataset, torch.cuda.is_available())  # the widgets below reset to it on change
        size = st.selectbox("Model size", SIZE_NAMES, index=SIZE_NAMES.index(recipe.model_size), key=f"train_size_{dataset}",
                            help="UNet for images (tiny ≈ CPU-friendly, base for a GPU); residual MLP for 2-D data.")
        prediction = st.radio("Network predicts", PREDICTIONS, format_func=PREDICTION_LABELS.get, horizontal=True,
                              key="train_prediction")
        variance = st.radio("Reverse-step variance", VARIANCES, index=VARIANCES.index(recipe.variance),
                            format_func=VARIANCE_LABELS.get, key="train_variance")
    with schedule_column:
        kind = st.selectbox("β schedule", SCHEDULE_KINDS, index=SCHEDULE_KINDS.index(recipe.schedule),
                            format_func=SCHEDULE_LABELS.get, key="train_schedule")
        T = st.number_input("T (diffusion steps)", min_value=2, max_value=4000, value=recipe.T, step=50, key="train_T")
        beta_start = st.number_input("β start", min_value=1e-6, max_value=0.5, value=recipe.beta_start, format="%.5f",
                                     help="Ignored by the cosine schedule.", key="train_beta_start")
        beta_end = st.number_input("β end", min_value=1e-5, max_value=0.999, value=recipe.beta_end, format="%.4f",
                                   key="train_beta_end")
        scale_with_T = st.checkbox("Scale β range with T (× 1000/T)", value=recipe.scale_with_T, key="train_scale")
    with model_column:
        steps = st.number_input("Training steps", min_value=10, max_value=200_000, value=recipe.total_steps, step=100,
                                key=f"train_steps_{dataset}")
        batch_size = st.number_input("Batch size", min_value=1, max_value=4096, value=recipe.batch_size,
                                     key=f"train_batch_{dataset}")
        learning_rate = st.number_input("Learning rate", min_value=1e-6, max_value=0.1, value=recipe.learning_rate,
                                        format="%.5f", key=f"train_lr_{dataset}")
        seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="train_seed")
        with st.expander("More"):
            warmup = st.number_input("Warm-up steps", min_value=0, max_value=100_000, value=recipe.warmup_steps,
                                     key=f"train_warmup_{dataset}")
            ema_decay = st.number_input("EMA decay", min_value=0.0, max_value=0.99999, value=recipe.ema_decay,
                                        format="%.4f", key=f"train_ema_{dataset}")
            grad_clip = st.number_input("Gradient clip (0 = off)", min_value=0.0, max_value=100.0, value=recipe.grad_clip,
                                        key="train_clip")
            lr_schedule = st.selectbox("Learning-rate schedule", LR_SCHEDULES, index=LR_SCHEDULES.index(recipe.lr_schedule),
                                       key=f"train_lr_schedule_{dataset}")
            preview_every = st.number_input("Preview every (steps)", min_value=0, max_value=100_000,
                                            value=recipe.preview_every, key="train_preview_every")
    return dict(dataset=dataset, model_size=size, schedule=kind, T=int(T), beta_start=float(beta_start),
                beta_end=float(beta_end), scale_with_T=bool(scale_with_T), prediction=prediction, variance=variance,
                batch_size=int(batch_size), learning_rate=float(learning_rate), lr_schedule=lr_schedule,
                warmup_steps=int(warmup), total_steps=int(steps), ema_decay=float(ema_decay), grad_clip=float(grad_clip),
                seed=int(seed), preview_every=int(preview_every))


def schedule_check(settings: dict) -> bool:
    """Warn when x_T is far from pure noise; a clear error (and no Start button) for an impossible schedule."""
    try:
        schedule = make_schedule(settings["schedule"], settings["T"], settings["beta_start"], settings["beta_end"],
                                 settings["scale_with_T"])
    except ValueError as error:
        st.error(f"This schedule is not valid: {error}")
        return False
    warning = terminal_noise_text(terminal_noise(schedule))
    if warning:
        st.warning(warning)
    return True


def start_section(settings: dict, valid: bool) -> None:
    """The time budget and the Start button."""
    budget_column, minutes_column = st.columns(2)
    budget = budget_column.radio("Train for", list(BUDGET_LABELS), format_func=BUDGET_LABELS.get, horizontal=True,
                                 key="train_budget", help="A time budget stops the job (and saves it) when the time is "
                                                          "spent, even before its last step: plan a lesson with it.")
    minutes = minutes_column.number_input("Minutes", min_value=1, max_value=240, value=5, key="train_minutes",
                                          disabled=budget != "minutes")
    if st.button("Start training", type="primary", disabled=not valid, key="train_start",
                 help="Each session may have one job training and one more waiting for it."):
        try:
            config = TrainConfig(**settings)
        except ValueError as error:
            st.error(f"These settings cannot be trained: {error}")
            return
        if training_panel.submit(config, max_seconds=60.0 * int(minutes) if budget == "minutes" else None):
            st.rerun()  # refusals stay on screen as the message submit() showed


def jobs_section() -> None:
    st.subheader("Your jobs")
    jobs = session.get_registry().jobs_for(session.session_id())
    if not jobs:
        st.caption("No job yet. Choose settings above and press **Start training**.")
    for index, job in enumerate(reversed(jobs)):
        config = job.config
        title = (f"{config.dataset} · {config.model_size} · {config.prediction}/{config.variance} · "
                 f"{config.schedule} T={config.T} — {training_panel.STATE_LABELS.get(job.snapshot().state)}")
        with st.expander(title, expanded=index == 0):
            training_panel.job_buttons(job)
            training_panel.progress_panel(job)


def main() -> None:
    intro()
    settings = settings_section()
    valid = schedule_check(settings)
    start_section(settings, valid)
    jobs_section()
    replay.render_replay(catalog.CHECKPOINT_DIR / "history")  # recorded runs: see how a model learns, instantly


main()
