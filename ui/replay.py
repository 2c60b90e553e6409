"""Replay a recorded training run (core/training/history.py) at any speed: loss curve, loss per t and sample previews.

`render_replay(history_dir)` is one page section: pick a recording, then play/pause (a fragment on a timer
advances the frame) or move the keyed step slider by hand (arrow keys work on it). Everything shown comes from
the validated files; their text is shown as text.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from core.data.images import png_bytes, upscale
from core.training.history import TrainingHistory, list_histories, load_history, replay_advance
from core.training.stats import ProgressRecord
from ui import training_figures
from ui.figures import chart
from ui.training_panel import format_seconds

SPEEDS = {"1 frame/s": 1.0, "2 frames/s": 2.0, "4 frames/s": 4.0, "8 frames/s": 8.0}
MIN_TICK_SECONDS = 0.25


@st.cache_data(show_spinner=False, max_entries=16)
def _load(folder: str, modified: float) -> TrainingHistory:  # `modified` re-reads a folder that changed
    return load_history(folder)


def loss_figure(history: TrainingHistory, step: int) -> go.Figure:
    """The whole run (history.progress) in grey, the loss up to `step` (history.record_at's loss curve) in colour."""
    return training_figures.loss_curve(history.progress, upto_step=step)


def profile_figure(history: TrainingHistory, record: ProgressRecord) -> go.Figure:
    """A frame's loss per t (history.record_at(...)), on one y range for the whole replay."""
    seen = [v for frame in history.frames for v in frame.profile]
    return training_figures.loss_per_t(record, y_values_seen=seen)


def _frame_view(history: TrainingHistory, index: int, key: str) -> None:
    frame, record = history.frames[index], history.record_at(index)  # the record: what the live panel draws too
    numbers = st.columns(4)
    numbers[0].metric("step", f"{record.step:,}")
    numbers[1].metric("training time", format_seconds(record.seconds), help="As recorded; see the description.")
    numbers[2].metric("classifier FD", "–" if frame.fd is None else f"{frame.fd:.0f}")
    numbers[3].metric("digit classes seen", "–" if frame.classes is None else f"{frame.classes} / 10")
    left, middle, right = st.columns(3)
    with left:
        chart(loss_figure(history, record.step), key=f"{key}_loss")
    with middle:
        chart(profile_figure(history, record), key=f"{key}_profile")
    with right:
        st.image(png_bytes(upscale(frame.preview, 3)), caption=f"EMA samples after {frame.step:,} steps (DDIM, fixed seed)")


def _toggle(playing_key: str) -> None:
    st.session_state[playing_key] = not st.session_state.get(playing_key, False)


def _follow(slider_key: str, position_key: str) -> None:
    st.session_state[position_key] = st.session_state[slider_key]


def render_replay(history_dir, key: str = "replay") -> None:
    """The replay section: choose a recorded run from the folders in `history_dir` and play it back."""
    st.subheader("Replay a recorded training run")
    folders = list_histories(history_dir)
    if not folders:
        st.caption(f"No recorded training runs in {Path(history_dir).name}/.")
        return
    names = [folder.name for folder in folders]
    chosen = st.selectbox("Recorded run", names, key=f"{key}_run")
    folder = folders[names.index(chosen)]
    try:
        history = _load(str(folder), (folder / "history.json").stat().st_mtime)
    except ValueError as error:
        st.error(f"This recording cannot be shown: {error}")
        return
    st.text(history.title)
    st.text(history.description)
    with st.expander("Recipe"):
        st.table({"setting": list(history.config), "value": [str(v) for v in history.config.values()]})

    # The frame shown lives in position_key (plain state). The keyed slider is drawn only while paused, so the
    # browser never holds a slider value that the timer has since moved on from (it would send it back).
    position_key, slider_key, playing_key = f"{key}_position_{chosen}", f"{key}_frame_{chosen}", f"{key}_playing"
    steps = [frame.step for frame in history.frames]
    if st.session_state.get(position_key) not in steps:
        st.session_state[position_key] = steps[0]
    playing = bool(st.session_state.get(playing_key, False))
    controls = st.columns([1, 2])
    with controls[0]:
        st.button("Pause" if playing else "Play", icon=":material/pause:" if playing else ":material/play_arrow:",
                  key=f"{key}_play_button", on_click=_toggle, args=(playing_key,),
                  help="Plays the recording from the step shown; pause to move the slider (arrow keys work on it).")
    with controls[1]:
        speed = SPEEDS[st.select_slider("Speed", list(SPEEDS), value="2 frames/s", key=f"{key}_speed")]
    tick = max(MIN_TICK_SECONDS, 1.0 / speed)

    @st.fragment(run_every=tick if playing else None)
    def player():
        if playing:
            index, still = replay_advance(steps.index(st.session_state[position_key]), len(steps), speed, tick)
            st.session_state[position_key] = steps[index]
            if not still:
                st.session_state[playing_key] = False
                st.rerun()  # a full rerun stops the timer, relabels the button and brings the slider back
            st.progress((index + 1) / len(steps), text=f"Training step {steps[index]:,}")
        else:
            st.session_state[slider_key] = st.session_state[position_key]
            st.select_slider("Training step", steps, key=slider_key, format_func=lambda s: f"{s:,}",
                             on_change=_follow, args=(slider_key, position_key))
        _frame_view(history, steps.index(st.session_state[position_key]), key)

    player()
