"""Why many small steps: the exact reverse transition q(x_{t-1}|x_t) of a 1-D mixture against the best Gaussian,
with 1000, 100 and 10 steps.

Every number comes from core.lab.small_steps; this page lays out widgets and figures.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core.lab.small_steps import (
    MIXTURE_1D,
    STEP_COUNTS,
    chain_gap,
    chain_schedule,
    default_mixture,
    nearest_step,
    reverse_transition,
)
from ui import layout
from ui.code import show_code
from ui.figures import COLORS, chart
from ui.navigation import require_app_shell
from ui.settings import PageSettings, Preset, Setting, widget

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

ALPHA_BAR_RANGE, XT_RANGE = (0.02, 0.98), (-2.0, 2.0)
PRESETS = [
    Preset("Mostly noise (ᾱ = 0.1): every step is Gaussian", {"small_alpha_bar": 0.1, "small_xt": 0.0},
           "Where $x_t$ is mostly noise, $q_{t-1}$ is itself nearly Gaussian: even 10 big steps are close to the best "
           "Gaussian (total variation about 0.01)."),
    Preset("Almost clean (ᾱ = 0.98), between the modes: big steps are not", {"small_alpha_bar": 0.98, "small_xt": 0.0},
           "Near the data, halfway between its two modes, the exact step is bimodal for 10 and 100 steps (total variation "
           "0.65 and 0.31) and Gaussian only for 1000."),
]


def page_settings() -> PageSettings:
    return PageSettings("small", [
        Setting("small_alpha_bar", 0.5, "float", *ALPHA_BAR_RANGE, label="Noise level $\\bar\\alpha_t$ of $x_t$", step=0.01),
        Setting("small_xt", 0.3, "float", *XT_RANGE, label="$x_t$", step=0.05),
    ], PRESETS, uses_model=False)  # the page does not use the active model: links leave it out


@st.cache_data(show_spinner="Computing the exact reverse transitions…", max_entries=4)
def gaps() -> dict:
    mixture = default_mixture()
    # 1000 small steps: a posterior as wide as its kernel window, so 41 grid points suffice (tested against 101)
    return {steps: chain_gap(mixture, steps, grid_points=41 if steps == 1000 else 101) for steps in STEP_COUNTS}


@st.cache_data(show_spinner=False, max_entries=64)
def transitions(alpha_bar: float, x_t: float) -> dict:
    mixture = default_mixture()
    result = {}
    for steps in STEP_COUNTS:
        schedule = chain_schedule(steps)
        i = nearest_step(schedule, alpha_bar)
        transition = reverse_transition(mixture, schedule, i, [x_t])
        result[steps] = {"i": i, "alpha_bar": float(schedule.alpha_bars[i]), "beta": float(schedule.betas[i]),
                         "grid": transition.grid[0].numpy(), "exact": transition.density[0].numpy(),
                         "gaussian": transition.gaussian()[0].numpy(), "kl": float(transition.kl()[0]),
                         "tv": float(transition.total_variation()[0])}
    return result


def one_transition_section() -> None:
    st.subheader("1. One step back, exactly")
    columns = st.columns(2)
    alpha_bar = widget("small_alpha_bar", columns[0])
    x_t = widget("small_xt", columns[1])
    result = transitions(float(alpha_bar), float(x_t))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[f"T = {s}: β = {r['beta']:.3g}" for s, r in result.items()])
    for c, r in enumerate(result.values(), start=1):
        fig.add_trace(go.Scatter(x=r["grid"], y=r["exact"], name="exact q(x_{t−1}|x_t)", line=dict(color="black", width=3),
                                 showlegend=c == 1), row=1, col=c)
        fig.add_trace(go.Scatter(x=r["grid"], y=r["gaussian"], name="best Gaussian (same mean, variance)",
                                 line=dict(color=COLORS[1], dash="dash"), showlegend=c == 1), row=1, col=c)
        fig.update_xaxes(title_text="x_{t−1}", row=1, col=c)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    chart(fig, key="small_transitions")
    st.table([{"steps": steps, "step used": f"{r['i'] + 1} of {steps}", "$\\bar\\alpha_t$": f"{r['alpha_bar']:.3f}",
               "$\\beta_t$ of the step": f"{r['beta']:.3g}", "KL(q ‖ Gaussian) [nats]": f"{r['kl']:.2e}",
               "total variation": f"{r['tv']:.3f}"} for steps, r in result.items()])
    st.caption("Each chain visits the step whose $\\bar\\alpha$ is closest to the slider's. Exact density: Bayes' rule on "
               "an 801-point grid (trapezoid rule; the chain below uses 101 grid points, 41 for $T = 1000$, and 41 values "
               "of $x_t$ per step: within 0.1 % of finer grids), "
               "checked in the tests against the closed-form mixture and a Monte Carlo estimate.")
    show_code(reverse_transition)


def chain_section() -> None:
    st.subheader("2. The gap along the whole chain")
    results = gaps()
    fig = go.Figure()
    for i, (steps, gap) in enumerate(results.items()):
        fig.add_trace(go.Scatter(x=gap.alpha_bars.tolist(), y=gap.expected_kl.clamp_min(1e-12).tolist(),
                                 mode="lines+markers" if steps < 1000 else "lines", name=f"T = {steps}",
                                 line=dict(color=COLORS[i])))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="ᾱ_t (1 = clean, 0 = noise)",
                      yaxis_title="E over x_t of KL(q ‖ best Gaussian) [nats]", yaxis_type="log",
                      legend=dict(orientation="h", y=-0.3))
    left, right = st.columns([3, 2])
    chart(fig, key="small_chain", where=left)
    with right:
        for steps, gap in results.items():
            st.metric(f"$T = {steps}$: Σ over the chain", f"{gap.total_kl:.2e} nats")
    st.markdown("By the chain rule of KL, the sum over the chain of the expected per-step gap is exactly the KL "
                "between the true reverse chain and the chain of best Gaussians (from the same $x_T$); it bounds the "
                "KL between the data and what that chain samples. Ten big steps cost orders of magnitude more "
                "than a thousand small ones: this is why DDPM uses many small steps, and why few-step samplers "
                "need something else (DDIM's deterministic jumps, or a better variance).")
    show_code(chain_gap)


def intro() -> None:
    st.title("Why many small steps")
    st.markdown("Ho et al. model each reverse step as a Gaussian. Is the true one, $q(x_{t-1} \\mid x_t)$ with $x_0$ "
                "unknown, Gaussian? Only when the step is small.")


def details() -> None:
    with st.expander("Why, and the data used here"):
        st.markdown(
            "The true reverse step is Bayes' rule: $q(x_{t-1} \\mid x_t) \\propto q(x_t \\mid x_{t-1})\\,q_{t-1}(x_{t-1})$. "
            "For small $\\beta_t$ the first factor is so narrow that the second is almost linear across it, and the "
            "product is almost Gaussian; for big steps it is not. The data here: the 1-D mixture "
            f"${MIXTURE_1D['weights'][0]}\\,\\mathcal N(-1, 0.15^2) + {MIXTURE_1D['weights'][1]}\\,\\mathcal N(1, 0.15^2)$, "
            "whose noised densities are known exactly. The chains share the linear schedule of $T = 1000$ and visit "
            "1000, 100 or 10 of its steps (respaced: the same $\\bar\\alpha$ at every visited step, larger $\\beta$).")


def main() -> None:
    page = page_settings()
    page.restore()
    layout.title_row(intro, page)
    page.notices()
    one_transition_section()
    details()
    chain_section()
    page.sync_url()


main()
