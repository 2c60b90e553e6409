"""The one pair of training figures, drawn from the one record of progress (core.training.stats.ProgressRecord) the
same way for a live run (ui/training_panel.py: Snapshot.progress) and a recorded one (ui/replay.py:
TrainingHistory.record_at): the loss curve against the optimisation step, and the loss per timestep bin against the
paper's step t = index + 1 (core keeps 0-based indices, every page shows the paper's t). Same axes, titles and
colours."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from core.training.stats import ProgressRecord
from ui.figures import NEUTRAL, OKABE_ITO

LOSS_COLOUR, FLOOR_COLOUR = OKABE_ITO[0], OKABE_ITO[1]
MARGIN = dict(l=10, r=10, t=40, b=10)


def loss_curve(record: ProgressRecord, upto_step: int | None = None) -> go.Figure:
    """The record's training loss against the step. upto_step (a replay's position; `record` the whole run): the
    whole run in grey, the part up to that step in colour; None (a live run): the run so far in colour."""
    loss_steps, losses = record.loss_steps, record.losses
    fig = go.Figure()
    if upto_step is None:
        fig.add_trace(go.Scatter(x=list(loss_steps), y=list(losses), mode="lines", name="loss", line=dict(color=LOSS_COLOUR)))
    else:
        shown = [(s, v) for s, v in zip(loss_steps, losses) if s <= upto_step]
        fig.add_trace(go.Scatter(x=list(loss_steps), y=list(losses), mode="lines", name="whole run", line=dict(color=NEUTRAL)))
        fig.add_trace(go.Scatter(x=[s for s, _ in shown], y=[v for _, v in shown], mode="lines", name="so far",
                                 line=dict(color=LOSS_COLOUR)))
    fig.update_layout(title="Training loss", xaxis_title="step", yaxis_title="loss", yaxis_type="log", height=300,
                      margin=MARGIN, showlegend=False)
    return fig


def loss_per_t(record: ProgressRecord, floor=None, y_values_seen=None) -> go.Figure:
    """The record's mean loss per bin [a, b) of core's 0-based indices, drawn at the paper's steps: bar centre
    (a + b − 1)/2 + 1. floor (one value per bin): the exact minimum as a line. y_values_seen: every value the figure
    will show over a replay, so the axis stays put and the bars visibly shrink."""
    edges, profile = record.profile_edges, record.profile
    centers = [(a + b - 1) / 2 + 1 for a, b in zip(edges[:-1], edges[1:])]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    values = [None if (v is None or not math.isfinite(v)) else v for v in profile]
    fig = go.Figure(go.Bar(x=centers, y=values, name="model", width=widths, marker_color=LOSS_COLOUR))
    if floor is not None:
        fig.add_trace(go.Scatter(x=centers, y=floor, mode="lines+markers", name="exact floor", line=dict(color=FLOOR_COLOUR)))
    fig.update_layout(title="Loss per timestep t", xaxis_title="t (paper's step)", yaxis_title="mean loss", yaxis_type="log",
                      height=300, margin=MARGIN, bargap=0.05)
    known = [v for v in (y_values_seen or []) if v is not None and v > 0]
    if known:
        fig.update_yaxes(range=[math.log10(min(known)) - 0.1, math.log10(max(known)) + 0.1])
    return fig
