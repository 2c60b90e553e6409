"""Train: every knob of TrainConfig, a background job, and a live panel that survives page switches."""

import os

import streamlit as st
import torch

from core.data.datasets import TOY_NAMES
from core.diffusion.gaussian_diffusion import PREDICTIONS, VARIANCES
from core.diffusion.schedules import SCHEDULE_KINDS, make_schedule
from core.lab.schedule_lab import terminal_noise
from core.nets.build import SIZE_NAMES
from core.training.trainer import ACTIVE_STATES, TrainConfig
from ui import session, training_panel
from ui.labels import DATASET_LABELS, PREDICTION_LABELS, SCHEDULE_LABELS, VARIANCE_LABELS, terminal_noise_text

# full datasets only when the instructor has put the IDX files on the server
DATASETS = ["mnist", *TOY_NAMES] + (["mnist_full", "fashion_mnist"] if os.environ.get("RDL_DATA_DIR") else [])
ON_GPU = torch.cuda.is_available()
DEFAULTS = TrainConfig()  # the CPU recipe lives in core.training.trainer; on a GPU a bigger model and budget pay off
# 2-D toys train in seconds with a bigger batch and a decaying learning rate (the shipped toy models' recipe).
TOY_DEFAULTS = TrainConfig(dataset="two_moons", model_size="small", batch_size=256, learning_rate=2e-3,
                           warmup_steps=100, total_steps=3000, lr_schedule="cosine", ema_decay=0.995)

st.title("Train a model")
st.markdown("Training runs in the **background**: switch pages, come back, or reload the tab; the job keeps "
            "its progress. When it finishes (or you stop it) the model appears in the sidebar's model list.")

job = training_panel.latest_job()
running = job is not None and job.snapshot().state in ACTIVE_STATES

# Plain widgets, not a form: the schedule warning below follows every change live.
st.subheader("Settings")
data_column, model_column, schedule_column = st.columns(3)
with data_column:
    dataset = st.selectbox("Dataset", DATASETS, format_func=DATASET_LABELS.get)
    recipe = TOY_DEFAULTS if dataset in TOY_NAMES else DEFAULTS  # the widgets below reset to it on change
    size = st.selectbox("Model size", SIZE_NAMES, index=SIZE_NAMES.index("small" if ON_GPU and recipe is DEFAULTS else recipe.model_size),
                        help="UNet for images (tiny ≈ CPU-friendly, base for a GPU); residual MLP for 2-D data.")
    prediction = st.radio("Network predicts", PREDICTIONS, format_func=PREDICTION_LABELS.get, horizontal=True)
    variance = st.radio("Reverse-step variance", VARIANCES, index=VARIANCES.index(DEFAULTS.variance),
                        format_func=VARIANCE_LABELS.get)
with schedule_column:
    kind = st.selectbox("β schedule", SCHEDULE_KINDS, index=SCHEDULE_KINDS.index(DEFAULTS.schedule), format_func=SCHEDULE_LABELS.get)
    T = st.number_input("T (diffusion steps)", min_value=2, max_value=4000, value=DEFAULTS.T, step=50)
    beta_start = st.number_input("β start", min_value=1e-6, max_value=0.5, value=DEFAULTS.beta_start, format="%.5f",
                                 disabled=False, help="Ignored by the cosine schedule.")
    beta_end = st.number_input("β end", min_value=1e-5, max_value=0.999, value=DEFAULTS.beta_end, format="%.4f")
    scale_with_T = st.checkbox("Scale β range with T (× 1000/T)", value=DEFAULTS.scale_with_T)
with model_column:
    steps = st.number_input("Training steps", min_value=10, max_value=200_000,
                            value=recipe.total_steps * (4 if ON_GPU and recipe is DEFAULTS else 1), step=100)
    default_batch = recipe.batch_size * (2 if ON_GPU and recipe is DEFAULTS else 1)
    batch_size = st.number_input("Batch size", min_value=1, max_value=4096, value=default_batch)
    learning_rate = st.number_input("Learning rate", min_value=1e-6, max_value=0.1, value=recipe.learning_rate, format="%.5f")
    seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0)
    with st.expander("More"):
        warmup = st.number_input("Warm-up steps", min_value=0, max_value=100_000, value=recipe.warmup_steps)
        ema_decay = st.number_input("EMA decay", min_value=0.0, max_value=0.99999, value=recipe.ema_decay, format="%.4f")
        grad_clip = st.number_input("Gradient clip (0 = off)", min_value=0.0, max_value=100.0, value=DEFAULTS.grad_clip)
        lr_schedule = st.selectbox("Learning-rate schedule", ["constant", "cosine"],
                                   index=["constant", "cosine"].index(recipe.lr_schedule))
        preview_every = st.number_input("Preview every (steps)", min_value=0, max_value=100_000, value=DEFAULTS.preview_every)

try:
    schedule = make_schedule(kind, int(T), float(beta_start), float(beta_end), bool(scale_with_T))
    warning = terminal_noise_text(terminal_noise(schedule))
    if warning:
        st.warning(warning)
except ValueError as error:
    schedule = None
    st.error(f"This schedule is not valid: {error}")

submitted = st.button("Start training", type="primary", disabled=running or schedule is None,
                      help="Only one job per session runs at a time." if running else None)
if submitted and schedule is not None:
    config = TrainConfig(
        dataset=dataset, model_size=size, schedule=kind, T=int(T), beta_start=float(beta_start),
        beta_end=float(beta_end), scale_with_T=bool(scale_with_T), prediction=prediction, variance=variance,
        batch_size=int(batch_size), learning_rate=float(learning_rate), lr_schedule=lr_schedule,
        warmup_steps=int(warmup), total_steps=int(steps), ema_decay=float(ema_decay), grad_clip=float(grad_clip),
        seed=int(seed), preview_every=int(preview_every))
    training_panel.submit(config)
    st.rerun()

st.subheader("Your jobs")
jobs = session.get_registry().jobs_for(session.session_id())
if not jobs:
    st.caption("No job yet. Choose settings above and press **Start training**.")
for index, each in enumerate(reversed(jobs)):
    config = each.trainer.config
    title = (f"{config.dataset} · {config.model_size} · {config.prediction}/{config.variance} · "
             f"{config.schedule} T={config.T} — {training_panel.STATE_LABELS.get(each.snapshot().state)}")
    with st.expander(title, expanded=index == 0):
        training_panel.job_buttons(each)
        training_panel.progress_panel(each)
