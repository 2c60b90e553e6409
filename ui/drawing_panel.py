"""Streamlit glue for "draw your own data" (the 2-D playground): a canvas to click or lasso points onto, brush shapes,
and a model trained on the drawing next to the exact denoiser of the same points. Every number: core.lab.drawing.

The drawing lives in st.session_state[POINTS_KEY] as a float32 [N, 2] tensor, independent of every other setting
(changing the toy or the schedule keeps it) and bounded by core.lab.drawing (≤ MAX_POINTS, finite, clipped).
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
import torch

from core.lab import drawing
from ui.figures import NEUTRAL, OKABE_ITO, Layer, PointPanel, chart, honest_axes, point_panels, typeset_figure
from ui.settings import Setting, seed_setting, widget

POINTS_KEY = "pg_drawn_points"
LAST_SELECTION_KEY = "pg_draw_last_selection"
RESULT_KEY = "pg_draw_result"
CANVAS_RESOLUTION = 41
TRAIN_STEPS = (100, 300, 1000)
SAMPLES = 500


def current_points() -> torch.Tensor:
    """The drawing of this session, re-validated (a value put there by anything else is bounded again)."""
    stored = st.session_state.get(POINTS_KEY)
    try:
        points, _ = drawing.add_points(None, stored if stored is not None else torch.zeros(0, 2))
    except (ValueError, TypeError, RuntimeError):
        points = torch.zeros(0, 2)
    return points


def _store(points: torch.Tensor) -> None:
    st.session_state[POINTS_KEY] = points
    st.session_state.pop(RESULT_KEY, None)  # a result belongs to the drawing it was trained on


def _add(new: torch.Tensor) -> None:
    points, left_out = drawing.add_points(current_points(), new)
    _store(points)
    if left_out:
        st.warning(f"{left_out} points were left out: a drawing holds at most {drawing.MAX_POINTS:,} points.")


def canvas_figure(points: torch.Tensor) -> go.Figure:
    grid = drawing.canvas(CANVAS_RESOLUTION).numpy()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=grid[:, 0], y=grid[:, 1], mode="markers", name="canvas: click or lasso to add",
                             marker=dict(size=5, color=NEUTRAL, opacity=0.18)))
    drawn = points.numpy()
    fig.add_trace(go.Scatter(x=drawn[:, 0], y=drawn[:, 1], mode="markers", name=f"your data ({len(drawn)} points)",
                             marker=dict(size=5, color=OKABE_ITO[0])))
    limit = drawing.LIMIT
    fig.update_xaxes(range=(-limit - 0.05, limit + 0.05))
    fig.update_yaxes(range=(-limit - 0.05, limit + 0.05), scaleanchor="x")
    fig.update_layout(height=430, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"))
    return typeset_figure(honest_axes(fig))


def canvas(points: torch.Tensor) -> None:
    event = chart(canvas_figure(points), "pg_draw_canvas", on_select="rerun", selection_mode=("points", "box", "lasso"))
    new = drawing.selected_points(event, curve=0)
    signature = tuple(map(tuple, new.tolist()))
    if len(new) and st.session_state.get(LAST_SELECTION_KEY) != signature:  # a selection is reported on every rerun
        st.session_state[LAST_SELECTION_KEY] = signature
        _add(new)
        st.rerun()


def settings() -> list[Setting]:
    """The panel's widgets as rows of the playground page's settings (links carry the brush and the training run;
    the drawn points themselves stay in the session)."""
    return [
        Setting("pg_draw_shape", drawing.SHAPES[0], "choice", choices=drawing.SHAPES, label="Brush"),
        Setting("pg_draw_count", 150, "int", 1, drawing.MAX_BRUSH, label="Points"),
        seed_setting("pg_draw_seed"),
        Setting("pg_draw_x", 0.0, "float", -1.2, 1.2, label="Centre x", step=0.05, widget="slider"),
        Setting("pg_draw_y", 0.0, "float", -1.2, 1.2, label="Centre y", step=0.05, widget="slider"),
        Setting("pg_draw_size", 0.5, "float", 0.05, 1.2, label="Size", step=0.05, widget="slider",
                help="Half the length of a line, the radius of a circle, twice the std of a blob."),
        Setting("pg_draw_angle", 0, "int", -90, 90, label="Angle (°)", step=5, widget="slider"),
        Setting("pg_draw_steps", 300, "int", choices=TRAIN_STEPS, label="Training steps"),
        seed_setting("pg_draw_train_seed", "Training seed"),
    ]


def brushes() -> None:
    shape = widget("pg_draw_shape")
    left, right = st.columns(2)
    count = widget("pg_draw_count", left)
    seed = widget("pg_draw_seed", right)
    x = widget("pg_draw_x", left)
    y = widget("pg_draw_y", right)
    size = widget("pg_draw_size", left)
    angle = widget("pg_draw_angle", right, disabled=shape != "line")
    add, clear = st.columns(2)
    if add.button("Add shape", key="pg_draw_add", icon=":material/add:"):
        _add(drawing.brush(shape, int(count), int(seed), (float(x), float(y)), float(size), float(angle)))
        st.rerun()
    if clear.button("Clear", key="pg_draw_clear", icon=":material/delete:"):
        _store(torch.zeros(0, 2))
        st.session_state.pop(LAST_SELECTION_KEY, None)
        st.rerun()


def train_and_compare(points: torch.Tensor) -> None:
    left, middle, right = st.columns([2, 2, 3])
    steps = widget("pg_draw_steps", left)
    seed = widget("pg_draw_train_seed", middle)
    pressed = right.button("Train on my drawing", type="primary", key="pg_draw_train", disabled=len(points) < 2,
                           help="The playground's tiny MLP and recipe, T = 100; runs here, while you wait.")
    if pressed:
        try:
            with st.spinner(f"Training {steps} steps on {len(points)} points…"):
                trained = drawing.train_on_points(points, int(steps), int(seed))
                result = drawing.compare_with_exact(trained, points, SAMPLES, int(seed))
        except ValueError as error:
            st.error(str(error))
            return
        st.session_state[RESULT_KEY] = (int(steps), int(seed), len(points), trained.losses, result)
    stored = st.session_state.get(RESULT_KEY)
    if stored is None:
        return
    steps, seed, n_points, losses, result = stored
    data = points.numpy()
    L = Layer
    truth = L("your data", data[:, 0], data[:, 1], color=NEUTRAL, size=3, opacity=0.6)
    panels = [PointPanel(f"network after {steps} steps", [truth, L("network samples", result.network[:, 0].numpy(),
                                                                   result.network[:, 1].numpy(), color=OKABE_ITO[0], size=3)],
                         (-drawing.LIMIT, drawing.LIMIT)),
              PointPanel("exact denoiser of your points", [truth, L("exact samples", result.exact[:, 0].numpy(),
                                                                    result.exact[:, 1].numpy(), color=OKABE_ITO[1], size=3)],
                         (-drawing.LIMIT, drawing.LIMIT))]
    chart(point_panels(panels, height=380), key="pg_draw_samples")
    columns = st.columns(3)
    columns[0].metric("SW₁ network ↔ your data", f"{result.distance_network:.3f}")
    columns[1].metric("SW₁ exact ↔ your data", f"{result.distance_exact:.3f}")
    columns[2].metric("loss, last 10% of steps", f"{sum(losses[-max(len(losses) // 10, 1):]) / max(len(losses) // 10, 1):.3f}")
    st.caption(f"{SAMPLES} DDPM samples each, from the same $x_T$ (seed {seed}). The exact denoiser of {n_points} points "
               "is the *memorising* one: $E[x_0 \\mid x_t]$ is a softmax-weighted average of your points, so its samples "
               "land on them. The network cannot memorise so precisely and fills in between, which is generalisation, "
               "or blur when it is undertrained. SW₁: sliced Wasserstein distance (smaller is closer).")


def drawing_panel() -> None:
    """The whole section: canvas and brushes side by side, then training and the comparison."""
    st.subheader("Draw your own data")
    st.markdown("Click a point of the faint canvas to add it, or pick the lasso or box tool in the figure's toolbar and "
                "circle a region to fill it; or add brush shapes. Then train the playground's network on your points and compare it with "
                "the exact denoiser of the same points.")
    points = current_points()
    left, right = st.columns([3, 2])
    with left:
        canvas(points)
    with right:
        brushes()
        st.caption(f"{len(points):,} of at most {drawing.MAX_POINTS:,} points; the drawing stays when you change the "
                   "settings above.")
    train_and_compare(points)
