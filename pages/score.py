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
from core.lab.score_forms import score_forms, score_from_v, score_from_x0
from ui import layout
from ui.code import show_code
from ui.figures import COLORS, chart
from ui.navigation import require_app_shell
from ui.settings import PageSettings, Preset, Setting, seed_setting, widget

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

TOY = "gaussian_mixture"
AXIS = (-3.0, 3.0)
T = 1000  # the linear schedule of Ho et al.
EXAMPLE_COUNTS = (100, 200, 400, 800)
PRESETS = [
    Preset("Small t = 10: the targets are mostly noise", {"score_t": 10},
           "Each example's target $-\\varepsilon/\\sigma$ is about 5× the true score in mean square, and most of it is "
           "the zero-mean noise that denoising score matching averages away (the floor)."),
    Preset("Large t = 900: the targets are the score", {"score_t": 900},
           "The data is drowned in noise: each example's target already equals the true score (floor ≈ 0); both point "
           "back toward the origin."),
]


def page_settings() -> PageSettings:
    return PageSettings("score", [
        Setting("score_t", 100, "int", 1, T, label="$t$ (paper's step)", widget="slider"),
        Setting("score_n", 200, "int", choices=EXAMPLE_COUNTS, label="Training examples"),
        seed_setting("score_seed"),
    ], PRESETS, uses_model=False)  # the page does not use the active model: links leave it out


def mixture() -> GaussianMixture:
    return GaussianMixture(*toy_mixture_parameters(TOY))


def diffusion() -> GaussianDiffusion:
    return GaussianDiffusion(make_schedule("linear", T), "eps", "fixed_small")


@st.cache_data(show_spinner=False, max_entries=32)
def compute(t: int, n: int, seed: int) -> dict:
    samples = per_sample_scores(mixture(), diffusion(), t, n, torch.Generator().manual_seed(seed))
    grid = square_grid(2.8, 15)
    check = tweedie_check(mixture(), diffusion(), grid.points.double(), t)
    return {"samples": samples, "grid": grid, "tweedie_max": check.max_difference,
            "tweedie_size": float(check.expected_eps.abs().max())}


def intro() -> None:
    st.title("The score view")
    st.markdown("Tweedie's formula: the best $\\varepsilon$-predictor is the rescaled score of the noised data, "
                "$\\mathbb E[\\varepsilon \\mid x_t] = -\\sqrt{1-\\bar\\alpha_t}\\,\\nabla_{x_t}\\log q_t(x_t)$. "
                "Checked here on the 2-D Gaussian mixture toy, whose $q_t$ is known exactly.")


def field_controls() -> tuple[int, int, int]:
    columns = st.columns(3)
    t_paper = int(widget("score_t", columns[0]))
    n = int(widget("score_n", columns[1]))
    seed = int(widget("score_seed", columns[2]))
    return t_paper, n, seed


def field_section(t_paper: int, n: int, seed: int) -> None:
    """The first result: the per-sample targets beside the true score, and their sizes."""
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
    columns[0].metric("mean $\\lVert-\\varepsilon/\\sigma\\rVert^2/D$", f"{s.mean_squared_one_sample:.3f}",
                      help=f"$1/(1-\\bar\\alpha_t)$ = {1 / sigma**2:.3f} in expectation")
    columns[1].metric("mean $\\lVert\\nabla\\log q_t\\rVert^2/D$", f"{s.mean_squared_true:.3f}")
    columns[2].metric("floor (the gap)", f"{s.mean_squared_gap:.3f}",
                      help="The denoising-score-matching floor: mean $\\lVert-\\varepsilon/\\sigma - \\nabla\\log q_t\\rVert^2/D$.")
    columns[3].metric("Tweedie's formula: max error", f"{result['tweedie_max']:.1e}",
                      help="max $\\lvert\\mathbb E[\\varepsilon|x] + \\sigma\\nabla\\log q_t\\rvert$ on a 15×15 grid; the "
                           f"largest $\\lvert\\mathbb E[\\varepsilon|x]\\rvert$ there is {result['tweedie_size']:.3f}")
    st.caption("Here $\\sigma = \\sqrt{1-\\bar\\alpha_t}$ and $D = 2$; linear schedule, $T = 1000$.")


def explanation() -> None:
    st.subheader("Tweedie's formula, denoising score matching and Langevin")
    st.latex(r"\mathbb E[\varepsilon \mid x_t] = -\sqrt{1-\bar\alpha_t}\;\nabla_{x_t}\log q_t(x_t)")
    st.markdown(
        "The best $\\varepsilon$-predictor (the minimiser of $L_\\text{simple}$) is $\\mathbb E[\\varepsilon \\mid x_t]$; "
        "Tweedie's formula says it is the score of the noised data, rescaled. So an $\\varepsilon$-network is a score "
        "network: $s_\\theta = -\\varepsilon_\\theta/\\sqrt{1-\\bar\\alpha_t}$ (Ho et al. 2020 §3.2 note the link to "
        "denoising score matching; Song et al. 2021 make it the foundation).\n\n"
        "Each training example's target points from its $x_t$ straight back toward **its own** $x_0$ (left): noisy, "
        "crossing arrows. Averaged over all $x_0$ that could have produced the same $x_t$ they give the true score "
        "(right), which points toward the data as a whole. Since the per-sample target is the true score plus "
        "zero-mean noise, regressing on it reaches the true score: that is **denoising score matching** "
        "(Vincent 2011), and mean $\\lVert\\text{target}\\rVert^2$ = mean $\\lVert\\text{true}\\rVert^2$ + the floor, up "
        "to sampling noise. **Langevin dynamics** samples with the score alone: "
        "$x \\leftarrow x + \\tfrac{\\delta}{2}\\nabla\\log q(x) + \\sqrt{\\delta}\\,z$; Song & Ermon (2019) anneal "
        "it through decreasing noise levels, and DDPM's sampling step resembles one such step with the learned score "
        "(Ho et al. §3.2).")
    show_code(per_sample_scores, tweedie_check)


@st.cache_data(show_spinner=False, max_entries=4)
def forms_check() -> list:
    """Rows (t, ᾱ_t, max |difference| to autograd for the ε, x₀ and v forms) on a 15×15 grid, exact predictions."""
    grid = square_grid(2.8, 15).points.double()
    rows = []
    for step in (11, 100, 500, 900):
        forms = score_forms(mixture(), diffusion(), grid, step - 1)
        worst = forms.max_difference()
        rows.append({"t": step, "ᾱₜ": f"{forms.alpha_bar:.4g}", "largest |score|": f"{float(forms.autograd.abs().max()):.3g}",
                     "ε form: max error": f"{worst['from_eps']:.1e}", "x₀ form: max error": f"{worst['from_x0']:.1e}",
                     "v form: max error": f"{worst['from_v']:.1e}"})
    return rows


def score_from_other_predictions() -> None:
    st.subheader("The score from an $x_0$- or a $v$-model")
    st.markdown("Every parameterization gives the score, because each converts to $\\hat\\varepsilon$ "
                "(Tweedie: $\\nabla\\log q_t = -\\hat\\varepsilon/\\sqrt{1-\\bar\\alpha_t}$):")
    st.latex(r"\nabla\log q_t(x_t) \;=\; -\frac{\hat\varepsilon}{\sqrt{1-\bar\alpha_t}}"
             r"\;=\; -\frac{x_t - \sqrt{\bar\alpha_t}\,\hat x_0}{1-\bar\alpha_t}"
             r"\;=\; -\frac{\sqrt{1-\bar\alpha_t}\,x_t + \sqrt{\bar\alpha_t}\,\hat v}{\sqrt{1-\bar\alpha_t}}")
    st.markdown("The $x_0$ form divides by $1-\\bar\\alpha_t$, the $v$ form by $\\sqrt{1-\\bar\\alpha_t}$ (dividing the $v$ "
                "form by $1-\\bar\\alpha_t$ is a mistake in the course notes; see Common mistakes, 7). Check: the exact "
                "$\\varepsilon$, $x_0$ and $v$ of the mixture, converted with these formulas, against the score by "
                "automatic differentiation of its noised density, on a 15 × 15 grid:")
    st.table(forms_check())
    show_code(score_from_x0)
    show_code(score_from_v)


def main() -> None:
    page = page_settings()
    page.restore()
    layout.title_row(intro, page)
    page.notices()
    field_section(*field_controls())
    explanation()
    score_from_other_predictions()
    page.sync_url()


main()
