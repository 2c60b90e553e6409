"""The live training panel (progress, speed, loss curve, per-timestep loss, previews) and the job buttons.

Shared by the Train page and the 2-D playground. Jobs train in worker processes (core.training.registry); the
panel only reads the small progress files they publish, in a fragment that reruns on a timer, so an open
panel costs the training nothing measurable (bench/panel_overhead.py) and the rest of the page stays put.
Jobs live in the process-wide registry (ui.session.get_registry) and on disk, so switching pages, reloading
the tab or restarting the server never loses them.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.data.images import png_bytes, upscale
from core.training import probe
from core.training.budget import format_budget
from core.training.config import (
    LIGHT_TO_STANDARD_STEPS,
    MNIST_LIGHT_RECIPE,
    MNIST_STANDARD_RECIPE,
    TrainConfig,
    pick_fast_recipe,
)
from core.training.limits import JobLimits
from core.training.registry import JobRefused
from core.training.stats import ACTIVE_STATES, JobState
from ui import session, training_figures
from ui.figures import chart

REFRESH_SECONDS = 1.0
STATE_LABELS = {
    JobState.IDLE: "not started", JobState.QUEUED: "queued: waiting for a free slot", JobState.RUNNING: "running",
    JobState.STOPPING: "stopping…", JobState.STOPPED: "stopped", JobState.FINISHED: "finished",
    JobState.FAILED: "failed", JobState.CRASHED: "crashed",
}


FAST_RECIPE_ENV = "RDL_FAST_RECIPE"  # "light" or "standard" fixes the Train page's CPU recipe (no measurement)


@st.cache_resource(show_spinner="Measuring this machine's training speed, once (a few seconds)…")
def light_recipe_speed() -> float | None:
    """Steps/s of the light fast recipe on this server, measured once per server process in a fresh process (the web
    server never trains: core.training.probe) with a training worker's threads; None when unknown."""
    return probe.probe_in_subprocess(MNIST_LIGHT_RECIPE, threads=JobLimits.from_env().threads_per_job)


def forced_fast_recipe() -> TrainConfig | None:
    """The recipe $RDL_FAST_RECIPE names ("light" or "standard"), None when unset; a ValueError in one line otherwise."""
    forced = os.environ.get(FAST_RECIPE_ENV, "").strip()
    recipes = {"light": MNIST_LIGHT_RECIPE, "standard": MNIST_STANDARD_RECIPE}
    if forced and forced not in recipes:
        raise ValueError(f"{FAST_RECIPE_ENV}={forced!r} is not allowed; expected light, standard or unset")
    return recipes.get(forced)


def fast_recipe_for_this_machine(budget_seconds: float | None) -> TrainConfig:
    """The Train page's CPU recipe for MNIST: core.training.config.pick_fast_recipe on this server's measured speed,
    unless $RDL_FAST_RECIPE names one (then nothing is measured)."""
    return forced_fast_recipe() or pick_fast_recipe(light_recipe_speed(), budget_seconds)


def fast_recipe_note(budget_seconds: float | None) -> str:
    """One line for the Train page: which fast recipe fits this server and budget, and why."""
    recipe = fast_recipe_for_this_machine(budget_seconds)
    name = "light (slim UNet, batch 32)" if recipe is MNIST_LIGHT_RECIPE else "standard (tiny UNet, batch 64)"
    if forced_fast_recipe() is not None:
        return f"CPU recipe: {name}, set by the server (`{FAST_RECIPE_ENV}`)."
    if budget_seconds is None:
        return f"CPU recipe for a run of all its steps: {name}."
    speed = light_recipe_speed()
    measured = "speed unknown" if speed is None else f"this server runs {speed:.1f} light steps/s"
    return (f"CPU recipe for this machine: {name}; {measured}, and the standard recipe pays off from "
            f"{LIGHT_TO_STANDARD_STEPS:,} light steps in the {format_budget(budget_seconds)} budget.")


def format_seconds(seconds) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def latest_job(kind: str | None = None):
    """This session's newest job (optionally only jobs on 'image' or 'points' data), or None."""
    jobs = session.get_registry().jobs_for(session.session_id())
    if kind is not None:
        jobs = [job for job in jobs if job.data_kind == kind]
    return jobs[-1] if jobs else None


def submit(config: TrainConfig, max_seconds: float | None = None) -> bool:
    """Start (or queue) a job for this session; True when it was accepted. Errors become messages, never
    tracebacks."""
    try:
        config.validate()
        session.get_registry().submit(session.session_id(), config, max_seconds=max_seconds)
        return True
    except JobRefused as error:
        st.warning(str(error))
    except ValueError as error:
        st.error(f"These settings cannot be trained: {error}")
    except OSError as error:  # the run store's disk: full, read-only, ...
        st.error(f"The server could not create the job's folder ({error.strerror or error}); tell whoever runs it.")
    return False


def loss_figure(snapshot) -> go.Figure:
    return training_figures.loss_curve(snapshot.loss_steps, snapshot.loss_history)


def profile_figure(snapshot, floor=None) -> go.Figure:
    """Average loss per bin of t at the paper's step t = index + 1; `floor` (optional list per bin) draws the exact
    minimum for comparison (ui/training_figures.py, shared with the replay)."""
    return training_figures.loss_per_t(snapshot.profile_edges, snapshot.profile, floor)


def preview_view(preview):
    if preview is None:
        st.caption("Preview samples appear here after the first preview step.")
        return
    if preview.kind == "image" and preview.grid is not None:
        grid = np.asarray(preview.grid)
        st.image(png_bytes(upscale(grid, 2)), caption=f"EMA samples after {preview.step} steps (DDIM, fixed seed)")
    else:
        points = preview.samples.numpy()
        fig = go.Figure(go.Scattergl(x=points[:, 0], y=points[:, 1], mode="markers", marker=dict(size=3)))
        fig.update_layout(title=f"EMA samples after {preview.step} steps", height=320,
                          margin=dict(l=10, r=10, t=40, b=10), yaxis_scaleanchor="x",
                          xaxis_range=[-1.6, 1.6], yaxis_range=[-1.6, 1.6])  # the toys live in [-1, 1]²
        chart(fig, key="preview_points")


def job_buttons(job) -> None:
    """Stop / Resume / Save now / Download / Discard for one job."""
    snapshot = job.snapshot()
    registry = session.get_registry()
    columns = st.columns(4)
    if snapshot.state in ACTIVE_STATES:
        if columns[0].button("Stop", key=f"stop_{job.job_id}", disabled=snapshot.state == JobState.STOPPING,
                             help="Stops after the current step and saves; nothing is lost."):
            registry.stop(job.job_id)
            st.rerun()
    elif snapshot.state.resumable:
        start = snapshot.saved_step or 0
        suggested = snapshot.total_steps * 2 if snapshot.state == JobState.FINISHED else max(snapshot.total_steps, start + 1)
        more = columns[0].number_input("Total steps", min_value=start + 1, value=suggested, step=100,
                                       key=f"more_{job.job_id}", help="Resume continues to this step count.")
        if columns[1].button("Resume", key=f"resume_{job.job_id}",
                             help=f"Continues from the saved checkpoint (step {start:,})."):
            try:
                registry.resume(job.job_id, total_steps=int(more))
            except ValueError as error:
                st.session_state[f"refused_{job.job_id}"] = str(error)
            st.rerun()
    refused = st.session_state.pop(f"refused_{job.job_id}", None)
    if refused:
        st.warning(refused)
    if snapshot.state == JobState.RUNNING and columns[2].button("Save now", key=f"save_{job.job_id}",
                                                         help="Writes the checkpoint now (it is also saved every "
                                                              "minute, on stop and at the end)."):
        registry.request_save(job.job_id)
    if snapshot.checkpoint and Path(snapshot.checkpoint).exists():
        columns[2].download_button(
            "Download checkpoint", data=Path(snapshot.checkpoint).read_bytes(),
            file_name=f"{job.config.dataset}-{job.config.model_size}-step{snapshot.saved_step or 0}.safetensors",
            mime="application/octet-stream", key=f"download_{job.job_id}",
            help="The last saved checkpoint: upload it again later, or sample from it with `python -m core.sample`.")
    if snapshot.state not in (JobState.RUNNING, JobState.STOPPING):
        if columns[3].button("Discard", key=f"discard_{job.job_id}", help="Deletes this job and its checkpoint."):
            registry.discard(job.job_id)
            st.rerun()


def where_saved(snapshot) -> str | None:
    """That the job's model is kept on the server, from which step and until when (None before its first save).
    The checkpoint's path is never shown: students see no server internals (folders, the run store's layout)."""
    if not snapshot.checkpoint:
        return None
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(snapshot.kept_until)) if snapshot.kept_until else "?"
    return (f"Saved on the server at step {snapshot.saved_step or 0:,}, kept until {until} "
            f"(or earlier if the server runs out of room for runs); download it to keep it longer.")


def status_line(snapshot) -> str:
    text = f"{STATE_LABELS.get(snapshot.state, snapshot.state)} · step {snapshot.step:,} / {snapshot.total_steps:,}"
    if snapshot.state == JobState.QUEUED:
        wait = ("unknown until a job of this size has run" if snapshot.starts_in_seconds is None
                else f"≈ {format_seconds(snapshot.starts_in_seconds)}")
        return f"{text} · position {snapshot.queue_position} in the queue · starts in {wait}"
    if snapshot.budget_seconds is not None and snapshot.state in (JobState.RUNNING, JobState.STOPPING):
        return f"{text} · {format_seconds(snapshot.eta_seconds)} left of the {format_budget(snapshot.budget_seconds)} budget"
    return f"{text} · ETA {format_seconds(snapshot.eta_seconds)}"


def progress_panel(job, floor_fn=None) -> None:
    """Progress bar, numbers, curves and previews of one job; reruns itself every second while it trains."""

    active = job.snapshot().state in ACTIVE_STATES

    @st.fragment(run_every=REFRESH_SECONDS if active else None)
    def live():
        session.get_registry().heartbeat(session.session_id())
        snapshot = job.snapshot()
        if st.session_state.get(f"last_state_{job.job_id}") in ACTIVE_STATES and snapshot.state not in ACTIVE_STATES:
            st.session_state[f"last_state_{job.job_id}"] = snapshot.state
            st.rerun()  # a full rerun so the sidebar offers the finished model everywhere
        st.session_state[f"last_state_{job.job_id}"] = snapshot.state
        fraction = min(1.0, snapshot.step / max(1, snapshot.total_steps))
        st.progress(fraction, text=status_line(snapshot))
        if snapshot.state in (JobState.FAILED, JobState.CRASHED):
            st.error(f"Training {snapshot.state}: {snapshot.error}")
        elif snapshot.state == JobState.QUEUED:
            st.info("Every slot for training is taken; this job starts by itself when one frees up.")
        elif snapshot.message:
            st.info(snapshot.message)
        if snapshot.budget_plan:
            st.caption(f"Time budget: {snapshot.budget_plan}.")
        saved = where_saved(snapshot)
        if saved:
            st.caption(saved)
        numbers = st.columns(5)
        numbers[0].metric("images/s", f"{snapshot.images_per_second:,.0f}")
        numbers[1].metric("last loss", "–" if snapshot.last_loss is None else f"{snapshot.last_loss:.4f}")
        numbers[2].metric("elapsed", format_seconds(snapshot.elapsed_seconds))
        numbers[3].metric("learning rate", f"{snapshot.learning_rate:.2e}")
        numbers[4].metric("parameters", f"{snapshot.parameters:,}")
        st.caption(f"Device: {snapshot.device}")
        left, middle, right = st.columns(3)
        with left:
            chart(loss_figure(snapshot), key=f"loss_{job.job_id}")
        with middle:
            floor = floor_fn(snapshot) if floor_fn is not None else None
            chart(profile_figure(snapshot, floor), key=f"profile_{job.job_id}")
        with right:
            preview_view(snapshot.preview)

    live()
