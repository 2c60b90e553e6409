"""Schedule lab: how the choice of β_1..β_T shapes the forward process, and when x_T is not pure noise.

Every number comes from core.diffusion.schedules / core.lab.schedule_lab; this page lays out widgets and figures and caches.
Steps are shown as the paper's t = 1..T (core's index t is step t+1).
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from core.data.datasets import load_dataset
from core.data.images import to_uint8
from core.diffusion.schedules import SCHEDULE_KINDS, make_schedule
from core.lab.schedule_lab import forward_snapshots, schedule_curves, terminal_noise
from core.rng import seeded_noise
from ui.figures import COLORS, picture_row
from ui.labels import SCHEDULE_LABELS, terminal_noise_text

T_RANGE = (10, 1000)
DASHES = {"A": "solid", "B": "dash"}


# ---------------------------------------------------------------------------------------- caching
@st.cache_data(show_spinner=False, max_entries=64)
def curves_and_warning(settings: tuple) -> tuple[dict, float, float, str | None]:
    """(curves as lists, √ᾱ_T, terminal SNR, warning or None) for (kind, T, β_start, β_end, scale_with_T)."""
    schedule = make_schedule(*settings)
    curves = {name: values.tolist() for name, values in schedule_curves(schedule).items()}
    return curves, schedule.terminal_signal, schedule.terminal_snr, terminal_noise_text(terminal_noise(schedule))


@st.cache_resource(show_spinner=False)
def held_out_digits():
    """The 500 held-out MNIST test digits (loaded once per server)."""
    return load_dataset("mnist", split="test")


@st.cache_data(show_spinner=False, max_entries=64)
def snapshot_pictures(settings: tuple, digit: int, noise_seed: int) -> dict:
    """{"t = k": uint8 picture} of x_t at t = 0, T/4, T/2, 3T/4, T for one digit and one noise draw."""
    x0 = held_out_digits().data[digit]
    steps, frames = forward_snapshots(make_schedule(*settings), x0, seeded_noise(x0.shape, noise_seed))
    return {f"t = {step}": to_uint8(frame[0]).numpy() for step, frame in zip(steps, frames)}


# ---------------------------------------------------------------------------------------- widgets
def schedule_controls(name: str, default_kind: str) -> tuple:
    """Widgets for one schedule; returns (kind, T, β_start, β_end, scale_with_T)."""
    key = f"schedules_{name.lower()}"
    kind = st.selectbox("Kind", SCHEDULE_KINDS, index=SCHEDULE_KINDS.index(default_kind), key=f"{key}_kind",
                        format_func=SCHEDULE_LABELS.get)
    T = st.number_input("T (number of steps)", *T_RANGE, value=1000, step=10, key=f"{key}_T")
    cosine = kind == "cosine"
    left, right = st.columns(2)
    beta_start = left.number_input("β_start", min_value=1e-6, max_value=0.5, value=1e-4, step=1e-4, format="%.5f",
                                   key=f"{key}_beta_start", disabled=cosine)
    beta_end = right.number_input("β_end", min_value=1e-6, max_value=0.999, value=0.02, step=1e-3, format="%.4f",
                                  key=f"{key}_beta_end", disabled=cosine)
    scale = st.checkbox("Scale β with T (× 1000/T)", key=f"{key}_scale", disabled=cosine,
                        help="Nichol & Dhariwal's rule: keeps the total noise Σβ_t roughly fixed when T ≠ 1000.")
    if cosine:
        st.caption("The cosine schedule defines ᾱ_t directly (Nichol & Dhariwal eq. 17); β range and scaling do not apply.")
    return kind, int(T), float(beta_start), float(beta_end), bool(scale)


def describe(settings: tuple) -> str:
    kind, T, beta_start, beta_end, scale = settings
    if kind == "cosine":
        return f"cosine, T={T}"
    return f"{kind} {beta_start:g}…{beta_end:g}{' ×1000/T' if scale else ''}, T={T}"


def line_figure(title: str, lines: list, x_title: str, y_title: str, log_y: bool = False) -> go.Figure:
    """lines: (name, x, y, color, dash). Hover shows the exact values."""
    fig = go.Figure()
    for name, x, y, color, dash in lines:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=color, dash=dash),
                                 hovertemplate="%{x:.4g}: %{y:.5g}"))
    fig.update_layout(title=title, height=330, margin=dict(l=10, r=10, t=50, b=10), xaxis_title=x_title,
                      yaxis_title=y_title, yaxis_type="log" if log_y else "linear", hovermode="x unified",
                      legend=dict(orientation="h", y=-0.3))
    return fig


# ------------------------------------------------------------------------------------------- page
st.title("Schedule lab")
st.markdown(
    "The forward process mixes a clean x₀ with noise: **x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε**, ᾱ_t = Π(1−β_s) "
    "(Ho et al. 2020, eq. 4). The schedule β_1..β_T decides how fast the signal fades — and whether anything "
    "is left of it at t = T, where sampling will start from pure noise.")

compare = st.toggle("Compare with a second schedule", key="schedules_compare")
columns = st.columns(2) if compare else [st.container()]
chosen = {}
for column, (name, default_kind) in zip(columns, (("A", "linear"), ("B", "cosine"))):
    with column:
        st.subheader(f"Schedule {name}" if compare else "Schedule")
        chosen[name] = schedule_controls(name, default_kind)

results = {}
for name, settings in chosen.items():
    try:
        results[name] = (settings, *curves_and_warning(settings))
    except ValueError as error:
        st.error(f"Schedule {name}: {error}" if compare else str(error))
if not results:
    st.stop()

# ------------------------------------------------------------------------- is x_T pure noise?
st.header("Is x_T pure noise?")
for column, (name, (settings, _curves, signal, snr, warning)) in zip(st.columns(len(results)), results.items()):
    with column:
        if compare:
            st.markdown(f"**{name}: {describe(settings)}**")
        left, right = st.columns(2)
        left.metric("√ᾱ_T (signal left in x_T)", f"{signal:.3g}")
        right.metric("terminal SNR ᾱ_T/(1−ᾱ_T)", f"{snr:.3g}")
        if warning is None:
            st.success(f"x_T is essentially pure noise: only {100 * signal:.2g} % of x₀'s amplitude is left.")
        else:
            st.warning(warning)

# ---------------------------------------------------------------------------------------- curves
st.header("The schedule, step by step")
axis = st.radio("x axis", ["t", "t/T"], horizontal=True, key="schedules_x_axis",
                help="t/T puts schedules with different T on the same scale.")
log_beta = st.checkbox("log scale for β_t and β̃_t", value=True, key="schedules_log_beta")
x_key, x_title = ("t", "t (paper's step)") if axis == "t" else ("t_over_T", "t/T")


def lines_of(*series):
    """Lines (label, curve name, color index) for every chosen schedule (A solid, B dashed)."""
    out = []
    for name, (_settings, curves, *_rest) in results.items():
        suffix = f" · {name}" if compare else ""
        for label, key, color in series:
            out.append((label + suffix, curves[x_key], curves[key], COLORS[color], DASHES[name]))
    return out


figures = [
    line_figure("Noise per step: β_t and β̃_t",
                lines_of(("β_t", "beta", 0), ("β̃_t", "posterior_variance", 1)), x_title, "variance", log_beta),
    line_figure("Signal kept: ᾱ_t", lines_of(("ᾱ_t", "alpha_bar", 2)), x_title, "ᾱ_t"),
    line_figure("Signal and noise weights in x_t",
                lines_of(("√ᾱ_t", "signal", 0), ("√(1−ᾱ_t)", "noise", 1)), x_title, "weight"),
    line_figure("log-SNR: log(ᾱ_t/(1−ᾱ_t))", lines_of(("log-SNR", "log_snr", 3)), x_title, "log-SNR"),
    line_figure("Posterior mean μ̃_t = c₀·x₀ + c_t·x_t",
                lines_of(("c₀ (coef of x₀)", "coef_x0", 4), ("c_t (coef of x_t)", "coef_xt", 5)), x_title, "coefficient"),
]
for i in range(0, len(figures), 2):
    for j, (column, figure) in enumerate(zip(st.columns(2), figures[i:i + 2])):
        column.plotly_chart(figure, key=f"schedules_schedule_curve_{i + j}")
st.caption("β̃_1 = 0: given x₁ and x₀ there is nothing left to sample, so the β̃ curve starts at 0 (hidden on a log "
           "scale). c₀ → 1 and c_t → 0 at t = 1; at large t, c_t ≈ √α_t ≈ 1 and c₀ is tiny: "
           "one step only slightly shrinks x_t.")

# --------------------------------------------------------------------------- a digit, forward
st.header("The forward process on a real digit")
digits = held_out_digits()
left, right = st.columns(2)
last = len(digits.data) - 1
digit = left.number_input(f"Held-out MNIST digit (0…{last})", 0, last, 0, key="schedules_digit")
noise_seed = right.number_input("Noise seed", 0, 2**31 - 1, 0, key="schedules_noise_seed")
st.caption(f"Digit #{digit} (a {int(digits.labels[digit])}); the same noise draw ε is used at every t, so you watch "
           "one digit sink into one noise image. Pixels are clipped to [-1, 1] for display.")
for name, (settings, *_rest) in results.items():
    pictures = snapshot_pictures(settings, int(digit), int(noise_seed))
    st.markdown(f"**{name}: {describe(settings)}**" if compare else f"**{describe(settings)}**")
    st.plotly_chart(picture_row(pictures, height=230), key=f"schedules_snapshots_{name}")
