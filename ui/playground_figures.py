"""Figures of the 2-D playground (pages/playground_2d.py): reverse trajectories of particles, ε̂/score fields
next to the oracle's, and samples against fresh data. Layout only: every number comes from core.lab.playground.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ui import figures

TRAJECTORY_VIEW = 2.5  # half-width of the trajectory panels (x_T starts wider than the data)


def square_axes(fig: go.Figure, column: int, half_width: float) -> None:
    """Equal x/y scale on [−half_width, half_width]² in subplot (1, column); the plot area shrinks to fit
    instead of the y range growing."""
    fig.update_xaxes(range=[-half_width, half_width], constrain="domain", row=1, col=column)
    fig.update_yaxes(range=[-half_width, half_width], constrain="domain", row=1, col=column,
                     scaleanchor="x" if column == 1 else f"x{column}")


def step_labels(timesteps) -> list[str]:
    """Core's timestep indices as the paper's steps (t+1); −1 marks the final x₀."""
    return ["0 (x₀)" if t < 0 else str(t + 1) for t in timesteps]


def trajectory_figure(runs: dict, data_points: np.ndarray, T: int, show_paths: bool, active: int = 0) -> go.Figure:
    """Particles from x_T to x_0, one panel per run, coloured by the timestep they are at; `active` is the
    frame shown first (the keyboard slider's choice)."""
    names = list(runs)
    timesteps = runs[names[0]]["t"]
    colors = [0 if t < 0 else t + 1 for t in timesteps]  # colour value = paper's step t+1 (0 for the final x_0)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[f"{n}: reverse trajectories" for n in names],
                        horizontal_spacing=0.05)
    marker = dict(size=5, colorscale="Viridis", cmin=0, cmax=T, line=dict(width=0))
    animated = []
    for column, name in enumerate(names, start=1):
        frames = runs[name]["frames"]
        fig.add_trace(go.Scattergl(x=data_points[:, 0], y=data_points[:, 1], mode="markers", name="data",
                                   marker=dict(size=3, color=figures.NEUTRAL), showlegend=column == 1, hoverinfo="skip"),
                      row=1, col=column)
        if show_paths:
            every = np.repeat(np.array(colors, dtype=float), frames.shape[1])
            fig.add_trace(go.Scattergl(x=frames[:, :, 0].ravel(), y=frames[:, :, 1].ravel(), mode="markers",
                                       name="all steps", showlegend=column == 1, hoverinfo="skip", opacity=0.25,
                                       marker=dict(size=2, color=every, colorscale="Viridis", cmin=0, cmax=T)),
                          row=1, col=column)
        fig.add_trace(go.Scatter(x=frames[active, :, 0], y=frames[active, :, 1], mode="markers", name="particles",
                                 showlegend=column == 1, hoverinfo="skip",
                                 marker={**marker, "color": [colors[active]] * frames.shape[1],
                                         "colorbar": dict(title="t", len=0.8) if column == len(names) else None,
                                         "showscale": column == len(names)}),
                      row=1, col=column)
        animated.append(len(fig.data) - 1)
        square_axes(fig, column, TRAJECTORY_VIEW)
    fig.frames = [go.Frame(name=str(k), traces=animated,
                           data=[go.Scatter(x=runs[n]["frames"][k, :, 0], y=runs[n]["frames"][k, :, 1],
                                            marker={"color": [colors[k]] * runs[n]["frames"].shape[1]}) for n in names])
                  for k in range(len(timesteps))]
    slider, buttons = figures.animation_controls(step_labels(timesteps), active, "t = ",
                                                 figures.frames_need_redraw(fig))
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=60, b=10), sliders=[slider], updatemenus=[buttons],
                      legend=dict(orientation="h", x=0.0, y=1.12, yanchor="bottom"))
    return figures.honest_axes(fig)


def field_figure(fields: dict, data_points: np.ndarray, kind: str) -> go.Figure:
    """The model's and the oracle's ε̂ (or score) arrows over the density contours of x_t, and their difference."""
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
                                       marker=dict(size=3, color=figures.NEUTRAL), showlegend=column == 1,
                                       hoverinfo="skip"), row=1, col=column)
            x, y = fields["arrows"][name]
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, hoverinfo="skip", showlegend=False,
                                     line=dict(width=1.2, color=figures.OKABE_ITO[column - 1])), row=1, col=column)
        fig.add_trace(go.Contour(x=axis, y=axis, z=fields["log_density"], showscale=False, ncontours=8,
                                 contours=dict(coloring="lines"), line=dict(width=1), colorscale="Greys",
                                 name="log q_t", hoverinfo="skip"), row=1, col=column)
        square_axes(fig, column, float(axis[-1]))
    fig.update_layout(height=430, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return figures.honest_axes(fig)


def samples_figure(runs: dict, reference: np.ndarray, half_width: float) -> go.Figure:
    """Each run's final samples over fresh data of the toy."""
    panels = [figures.PointPanel(f"{name} samples", [
        figures.Layer("fresh data", reference[:, 0], reference[:, 1], color=figures.NEUTRAL, size=3, opacity=0.8),
        figures.Layer(f"{name}", run["x0"][:, 0], run["x0"][:, 1], color=figures.OKABE_ITO[i], size=4)],
        axis_range=(-half_width, half_width)) for i, (name, run) in enumerate(runs.items())]
    return figures.point_panels(panels)
