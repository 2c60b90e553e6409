"""The live training panel (progress, speed, loss curve, per-timestep loss, previews) and the job buttons.

Shared by the Train page and the 2-D playground. Jobs train in worker processes (core.training.registry); the
panel only reads the small progress files they publish, in a fragment that reruns on a timer, so an open
panel costs the training nothing measurable (bench/panel_overhead.py) and the rest of the page stays put.
The files are read, and the figures and preview built, once per refresh interval per job for the whole server
(`PanelViews`), however many browsers watch the job: each open panel only draws that shared view.
Jobs live in the process-wide registry (ui.session.get_registry) and on disk, so switching pages, reloading
the tab or restarting the server never loses them.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.data.images import png_bytes, upscale
from core.training import probe, run_store
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
from core.training.stats import ACTIVE_STATES, JobState, ProgressRecord
from ui import session, training_figures
from ui.figures import chart, prepared

REFRESH_SECONDS = 1.0
QUEUED_REFRESH_SECONDS = 5.0  # a waiting job changes only when the queue moves: its panel refreshes less often
VIEW_ENTRIES = 256  # jobs whose shared panel view the server keeps (a view is a few hundred kB at most)
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


def loss_figure(record: ProgressRecord) -> go.Figure:
    """A live run's loss curve: the record's (Snapshot.progress), ui/training_figures.py, shared with the replay."""
    return training_figures.loss_curve(record)


def profile_figure(record: ProgressRecord, floor=None) -> go.Figure:
    """Average loss per bin of t at the paper's step t = index + 1; `floor` (optional list per bin) draws the exact
    minimum for comparison (ui/training_figures.py, shared with the replay)."""
    return training_figures.loss_per_t(record, floor)


def preview_picture(preview):
    """What the panel shows of a preview: PNG bytes of an image grid, a figure of 2-D points, or None."""
    if preview is None:
        return None
    if preview.kind == "image" and preview.grid is not None:
        return png_bytes(upscale(np.asarray(preview.grid), 2))
    points = preview.samples.numpy()
    fig = go.Figure(go.Scattergl(x=points[:, 0], y=points[:, 1], mode="markers", marker=dict(size=3)))
    fig.update_layout(title=f"EMA samples after {preview.step} steps", height=320,
                      margin=dict(l=10, r=10, t=40, b=10), yaxis_scaleanchor="x",
                      xaxis_range=[-1.6, 1.6], yaxis_range=[-1.6, 1.6])  # the toys live in [-1, 1]²
    return prepared(fig)  # shared by every panel of the job: typeset before anyone draws it


def preview_view(preview, picture=None):
    """Draw a preview; `picture` is its preview_picture, built here when not given (the shared view builds it once)."""
    if preview is None:
        st.caption("Preview samples appear here after the first preview step.")
        return
    picture = preview_picture(preview) if picture is None else picture
    if isinstance(picture, bytes):
        st.image(picture, caption=f"EMA samples after {preview.step} steps (DDIM, fixed seed)")
    else:
        chart(picture, key="preview_points")


@dataclass(frozen=True)
class PanelView:
    """What every open panel of one job draws: the job's snapshot, its figures and preview, built once."""

    snapshot: object
    loss: go.Figure
    profile: go.Figure
    preview: object  # preview_picture of snapshot.preview


@dataclass
class _ViewEntry:
    read_at: float
    stamp: tuple
    view: PanelView


class PanelViews:
    """The live panels' views, shared by every session of the server (issue 21 item 2).

    `get(job, floor_fn)` returns the view read at most `interval` seconds ago; otherwise one caller reads the
    job's snapshot again while the others asking for the same job wait for it (a lock per job), and the figures
    and preview are rebuilt only when the worker's files changed (the stamp: the progress and preview files'
    modification times and sizes, with the job's state, step and queue place). So a refresh costs the files'
    reading and the figures' building once per interval per job, whatever the number of watchers. The LRU keeps
    at most `entries` jobs. `reads` and `builds` count the snapshots read and the views built (tests, benchmarks).
    """

    def __init__(self, interval: float = REFRESH_SECONDS, entries: int = VIEW_ENTRIES, clock=time.monotonic):
        self.interval, self.entries, self.clock = interval, entries, clock
        self._views: OrderedDict = OrderedDict()
        self._key_locks: dict = {}
        self._lock = threading.Lock()
        self.reads = self.builds = 0

    def _fresh(self, key):
        entry = self._views.get(key)
        if entry is not None and self.clock() - entry.read_at < self.interval:
            self._views.move_to_end(key)
            return entry
        return None

    @staticmethod
    def _stamp(job, snapshot) -> tuple:
        files = []
        for name in (run_store.PROGRESS, run_store.PREVIEW):
            try:
                stat = (job.folder / name).stat()
                files.append((stat.st_mtime_ns, stat.st_size))
            except OSError:
                files.append(None)
        return (*files, str(snapshot.state), snapshot.step, snapshot.queue_position, snapshot.starts_in_seconds,
                snapshot.checkpoint, snapshot.saved_step)

    def forget_unless(self, job, state, floor_fn=None) -> None:
        """Drop the job's view if it shows another state than `state` (what a full page run just read: after a
        click on Stop or Resume the panel shows the new state at once, not up to an interval later)."""
        with self._lock:
            entry = self._views.get((job.job_id, getattr(floor_fn, "__qualname__", None)))
            if entry is not None and entry.view.snapshot.state != state:
                entry.read_at = -math.inf

    def get(self, job, floor_fn=None) -> PanelView:
        key = (job.job_id, getattr(floor_fn, "__qualname__", None))
        with self._lock:
            entry = self._fresh(key)
            if entry is not None:
                return entry.view
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                entry = self._fresh(key)  # built by another session while this one waited
                if entry is not None:
                    return entry.view
                old = self._views.get(key)
            read_at = self.clock()
            snapshot = job.snapshot()
            stamp = self._stamp(job, snapshot)
            if old is not None and old.stamp == stamp:  # nothing new from the worker: keep the figures
                view = PanelView(snapshot, old.view.loss, old.view.profile, old.view.preview)
            else:
                floor = floor_fn(snapshot) if floor_fn is not None else None
                # typeset once here (prepared): every session's chart() then only serialises them
                view = PanelView(snapshot, prepared(loss_figure(snapshot.progress)),
                                 prepared(profile_figure(snapshot.progress, floor)),
                                 preview_picture(snapshot.preview))
            with self._lock:
                self.reads += 1
                self.builds += view.loss is not (old.view.loss if old is not None else None)
                self._views[key] = _ViewEntry(read_at, stamp, view)
                self._views.move_to_end(key)
                while len(self._views) > self.entries:
                    evicted, _ = self._views.popitem(last=False)
                    self._key_locks.pop(evicted, None)
            return view


@st.cache_resource(show_spinner=False)
def panel_views() -> PanelViews:
    return PanelViews()


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
    """Progress bar, numbers, curves and previews of one job; reruns itself every second while it trains (every
    QUEUED_REFRESH_SECONDS while it waits), drawing the server's shared view of the job (PanelViews)."""

    state = job.snapshot().state
    refresh = None if state not in ACTIVE_STATES else QUEUED_REFRESH_SECONDS if state == JobState.QUEUED else REFRESH_SECONDS
    panel_views().forget_unless(job, state, floor_fn)

    @st.fragment(run_every=refresh)
    def live():
        session.get_registry().heartbeat(session.session_id())
        view = panel_views().get(job, floor_fn)  # read once per interval for every panel of the server
        snapshot = view.snapshot
        last = st.session_state.get(f"last_state_{job.job_id}")
        st.session_state[f"last_state_{job.job_id}"] = snapshot.state
        if last in ACTIVE_STATES and snapshot.state not in ACTIVE_STATES:
            st.rerun()  # a full rerun so the sidebar offers the finished model everywhere
        if last == JobState.QUEUED and snapshot.state != JobState.QUEUED:
            st.rerun()  # a full rerun: the panel of a started job refreshes every second, not every five
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
        numbers[2].metric("elapsed", format_seconds(snapshot.progress.seconds))
        numbers[3].metric("learning rate", f"{snapshot.learning_rate:.2e}")
        numbers[4].metric("parameters", f"{snapshot.parameters:,}")
        st.caption(f"Device: {snapshot.device}")
        left, middle, right = st.columns(3)
        with left:
            chart(view.loss, key=f"loss_{job.job_id}")
        with middle:
            chart(view.profile, key=f"profile_{job.job_id}")
        with right:
            preview_view(snapshot.preview, view.preview)

    live()
