"""The score view: Tweedie's formula, and the per-sample "score" a training example supplies versus the true one.

Every number comes from core.lab.score (on top of core.diffusion.oracle); this page lays out widgets and figures.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from core.data.toys import toy_mixture_parameters
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import GaussianMixture
from core.diffusion.schedules import make_schedule
from core.lab.playground import arrow_scale, arrow_segments, square_grid
from core.lab.score import per_sample_scores, tweedie_check
from ui.code import show_code
from ui.figures import COLORS, chart
from ui.navigation import require_app_shell

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

TOY = "gaussian_mixture"
AXIS = (-3.0, 3.0)


def mixture() -> GaussianMixture:
    return GaussianMixture(*toy_mixture_parameters(TOY))


def diffusion() -> GaussianDiffusion:
    return GaussianDiffusion(make_schedule("linear", 1000), "eps", "fixed_small")


@st.cache_data(show_spinner=False, max_entries=32)
def compute(t: int, n: int, seed: int) -> dict:
    samples = per_sample_scores(mixture(), diffusion(), t, n, torch.Generator().manual_seed(seed))
    grid = square_grid(2.8, 15)
    check = tweedie_check(mixture(), diffusion(), grid.points.double(), t)
    return {"samples": samples, "grid": grid, "tweedie_max": check.max_difference,
            "tweedie_size": float(check.expected_eps.abs().max())}


def tweedie_section() -> None:
    st.header("1. Tweedie's formula")
    st.latex(r"\mathbb E[\varepsilon \mid x_t] = -\sqrt{1-\bar\alpha_t}\;\nabla_{x_t}\log q_t(x_t)")
    st.markdown("The best ε-predictor (the minimiser of L_simple) is E[ε|x_t]; Tweedie's formula says it is the "
                "score of the noised data, rescaled. So an ε-network is a score network: s_θ = −ε_θ/√(1−ᾱ_t) "
                "(Ho et al. 2020 §3.2 note the link to denoising score matching; Song et al. 2021 make it the "
                "foundation).")


def field_section() -> None:
    st.header("2. Per-sample \"score\" versus the true score")
    columns = st.columns(3)
    t_paper = int(columns[0].slider("t (paper's step)", 1, 1000, 100, key="score_t"))
    n = int(columns[1].select_slider("Training examples", (100, 200, 400, 800), 200, key="score_n"))
    seed = int(columns[2].number_input("Seed", 0, 2**31 - 1, 0, key="score_seed"))
    result = compute(t_paper - 1, n, seed)
    s = result["samples"]
    sigma = math.sqrt(1 - float(diffusion().schedule.alpha_bars[t_paper - 1]))
    scale = arrow_scale([s.one_sample, s.true], 0.35)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["per-sample: −ε/√(1−ᾱ_t) at each x_t",
                                                        "true: ∇log q_t(x_t) at the same x_t"], horizontal_spacing=0.05)
    for c, (vectors, color) in enumerate(((s.one_sample, COLORS[1]), (s.true, COLORS[0])), start=1):
        fig.add_trace(go.Scatter(x=s.x_t[:, 0].numpy(), y=s.x_t[:, 1].numpy(), mode="markers", marker=dict(size=3, color="grey"),
                                 name="x_t", showlegend=c == 1), row=1, col=c)
        x, y = arrow_segments(s.x_t, vectors, scale, max_length=0.8)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=color, width=1), showlegend=False), row=1, col=c)
        fig.update_xaxes(range=AXIS, row=1, col=c)
        fig.update_yaxes(range=AXIS, scaleanchor="x" if c == 1 else "x2", row=1, col=c)
    fig.update_layout(height=430, margin=dict(l=10, r=10, t=40, b=10))
    chart(fig, key="score_fields")
    columns = st.columns(4)
    columns[0].metric("mean ‖−ε/σ‖²/D", f"{s.mean_squared_one_sample:.3f}", help=f"1/(1−ᾱ_t) = {1 / sigma**2:.3f} in expectation")
    columns[1].metric("mean ‖∇log q_t‖²/D", f"{s.mean_squared_true:.3f}")
    columns[2].metric("mean ‖−ε/σ − ∇log q_t‖²/D", f"{s.mean_squared_gap:.3f}", help="the denoising-score-matching floor")
    columns[3].metric("Tweedie: max |E[ε|x] + σ∇log q_t|", f"{result['tweedie_max']:.1e}",
                      help=f"on a 15×15 grid; the largest |E[ε|x]| there is {result['tweedie_size']:.3f}")
    st.markdown(
        "Each training example's target points from its x_t straight back toward **its own** x₀ (left): noisy, "
        "crossing arrows. Averaged over all x₀ that could have produced the same x_t they give the true score "
        "(right), which points toward the data as a whole. Since the per-sample target is the true score plus "
        "zero-mean noise, regressing on it reaches the true score: that is **denoising score matching** "
        "(Vincent 2011), and mean ‖target‖² = mean ‖true‖² + the floor, up to sampling noise. "
        "**Langevin dynamics** samples with the score alone: x ← x + (δ/2)·∇log q(x) + √δ·z; Song & Ermon (2019) anneal "
        "it through decreasing noise levels, and DDPM's sampling step resembles one such step with the learned score "
        "(Ho et al. §3.2).")
    show_code(per_sample_scores, tweedie_check)


def main() -> None:
    st.title("The score view")
    st.markdown("The data here is the 2-D Gaussian mixture toy, whose noised density q_t is known exactly, so the "
                "true score is computed by automatic differentiation of log q_t and compared with what training sees.")
    tweedie_section()
    field_section()


main()
