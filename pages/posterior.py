"""The posterior q(x_{t-1}|x_t, x_0), derived in five steps with the current schedule's numbers filled in.

Every number comes from core.lab.posterior_derivation; this page lays out widgets and formulas.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.diffusion.schedules import SCHEDULE_KINDS, make_schedule
from core.lab.posterior_derivation import derive_posterior, normalised_product
from ui import layout
from ui.code import show_code
from ui.figures import chart
from ui.labels import SCHEDULE_LABELS
from ui.navigation import require_app_shell
from ui.settings import PageSettings, Preset, Setting, widget

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

T_RANGE = (2, 1000)
X0_RANGE, XT_RANGE = (-1.0, 1.0), (-3.0, 3.0)
PRESETS = [
    Preset("Ten cosine steps: β̃ is a fraction of β", {"posterior_kind": "cosine", "posterior_T": 10, "posterior_step": 2},
           "With few, large steps the posterior variance $\\tilde\\beta_t$ is about a quarter of $\\beta_t$: whether a "
           "sampler uses $\\beta$ or $\\tilde\\beta$ matters."),
    Preset("T = 1000, t = 2: the last steps differ too", {"posterior_step": 2},
           "Even a long chain has $\\tilde\\beta_t$ well below $\\beta_t$ at its last steps ($\\tilde\\beta_1 = 0$); "
           "at $t = 300$ they agree to 1 %."),
]


def page_settings() -> PageSettings:
    return PageSettings("posterior", [
        Setting("posterior_kind", SCHEDULE_KINDS[0], "choice", choices=SCHEDULE_KINDS, label="Schedule",
                format_func=SCHEDULE_LABELS.get),
        Setting("posterior_T", 1000, "int", *T_RANGE, label="$T$", step=10),
        Setting("posterior_step", 300, "int", *T_RANGE, label="$t$ (paper's step)", widget="slider"),
        Setting("posterior_x0", 0.6, "float", *X0_RANGE, label="$x_0$", step=0.01),
        Setting("posterior_xt", 0.2, "float", *XT_RANGE, label="$x_t$", step=0.01),
    ], PRESETS, uses_model=False)  # the page does not use the active model: links leave it out


def choose() -> tuple:
    """(schedule, t, x₀, x_t) from the widgets, stacked in one narrow column."""
    kind_column, T_column = st.columns(2)
    kind = widget("posterior_kind", kind_column)
    T = int(widget("posterior_T", T_column))
    if st.session_state.get("posterior_step", 300) > T:  # a shorter schedule was chosen: stay on its last step
        st.session_state["posterior_step"] = T
    step = int(widget("posterior_step", high=T, default=min(T, 300)))
    x0 = widget("posterior_x0")
    x_t = widget("posterior_xt")
    return make_schedule(kind, T), step, x0, x_t


def scientific(value: float, digits: int) -> str:
    """LaTeX a·10^b (Python's 6.0561e-03 would read as "6.0561e minus 3" in a formula)."""
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    return rf"{mantissa}\times 10^{{{int(exponent)}}}"


def derivation_section(d) -> None:
    t = d.step
    st.subheader("1. The one-step kernel (eq. 2)")
    st.latex(rf"q(x_t\mid x_{{t-1}}) = \mathcal N\big(\sqrt{{\alpha_t}}\,x_{{t-1}},\ \beta_t\big) = "
             rf"\mathcal N\big({math.sqrt(d.alpha):.6f}\,x_{{t-1}},\ {scientific(d.beta, 4)}\big)")
    st.subheader("2. The jump from $x_0$ to step $t-1$ (eq. 4)")
    st.latex(rf"q(x_{{t-1}}\mid x_0) = \mathcal N\big(\sqrt{{\bar\alpha_{{t-1}}}}\,x_0,\ 1-\bar\alpha_{{t-1}}\big) = "
             rf"\mathcal N\big({math.sqrt(d.alpha_bar_prev):.6f}\cdot{d.x0:g},\ {1 - d.alpha_bar_prev:.6f}\big)")
    st.subheader("3. Bayes' rule, then the Markov property")
    st.latex(r"q(x_{t-1}\mid x_t, x_0) = \frac{q(x_t\mid x_{t-1}, x_0)\,q(x_{t-1}\mid x_0)}{q(x_t\mid x_0)}"
             r"\ \propto\ q(x_t\mid x_{t-1})\,q(x_{t-1}\mid x_0)")
    st.markdown("The forward chain is Markov: given $x_{t-1}$, $x_t$ does not depend on $x_0$, so the first factor is "
                "the one-step kernel. The denominator does not involve $x_{t-1}$: it only normalises.")
    st.subheader("4. Complete the square in $x = x_{t-1}$")
    st.latex(r"\log(\dots) = -\frac{(x_t-\sqrt{\alpha_t}x)^2}{2\beta_t} - \frac{(x-\sqrt{\bar\alpha_{t-1}}x_0)^2}"
             r"{2(1-\bar\alpha_{t-1})} + C = -\tfrac12\big(A x^2 - 2Bx\big) + C'")
    st.latex(rf"A = \frac{{\alpha_t}}{{\beta_t}} + \frac{{1}}{{1-\bar\alpha_{{t-1}}}} = {d.alpha / d.beta:.6g} + "
             rf"{1 / (1 - d.alpha_bar_prev):.6g} = {d.precision:.6g}")
    st.latex(rf"B = \frac{{\sqrt{{\alpha_t}}\,x_t}}{{\beta_t}} + \frac{{\sqrt{{\bar\alpha_{{t-1}}}}\,x_0}}"
             rf"{{1-\bar\alpha_{{t-1}}}} = {math.sqrt(d.alpha) * d.x_t / d.beta:.6g} + "
             rf"{math.sqrt(d.alpha_bar_prev) * d.x0 / (1 - d.alpha_bar_prev):.6g} = {d.linear:.6g}")
    st.markdown("$-\\tfrac12(Ax^2 - 2Bx) = -\\tfrac12 A(x - B/A)^2 + \\text{const}$: a Gaussian with variance $1/A$ "
                "and mean $B/A$.")
    st.subheader("5. Simplify with $\\bar\\alpha_t = \\alpha_t\\,\\bar\\alpha_{t-1}$ (eq. 7)")
    st.latex(rf"\tilde\beta_t = \frac1A = \frac{{1-\bar\alpha_{{t-1}}}}{{1-\bar\alpha_t}}\,\beta_t = "
             rf"\frac{{{1 - d.alpha_bar_prev:.6f}}}{{{1 - d.alpha_bar:.6f}}}\cdot{scientific(d.beta, 4)} = "
             rf"{scientific(d.closed_form_variance, 6)}")
    st.latex(rf"\tilde\mu_t = \frac BA = \frac{{\sqrt{{\bar\alpha_{{t-1}}}}\beta_t}}{{1-\bar\alpha_t}}x_0 + "
             rf"\frac{{\sqrt{{\alpha_t}}(1-\bar\alpha_{{t-1}})}}{{1-\bar\alpha_t}}x_t = {d.coef_x0:.6f}\cdot{d.x0:g} + "
             rf"{d.coef_xt:.6f}\cdot{d.x_t:g} = {d.closed_form_mean:.6f}")
    columns = st.columns(4)
    columns[0].metric("$1/A$", f"{d.variance:.8e}")
    columns[1].metric("$\\tilde\\beta_t$ (closed form)", f"{d.closed_form_variance:.8e}")
    columns[2].metric("$B/A$", f"{d.mean:.8f}")
    columns[3].metric("$\\tilde\\mu_t$ (closed form)", f"{d.closed_form_mean:.8f}")
    st.caption(f"At $t = {t}$: the two routes agree to float64 round-off; `GaussianDiffusion.q_posterior` uses the "
               "closed forms (the test suite checks all three agree).")
    show_code(derive_posterior)


def density_figure(d) -> go.Figure:
    grid, product = normalised_product(d)
    grid = np.asarray(grid)
    gaussian = np.exp(-(grid - d.closed_form_mean) ** 2 / (2 * d.closed_form_variance)) / math.sqrt(2 * math.pi * d.closed_form_variance)
    fig = go.Figure([go.Scatter(x=grid, y=product, name="q(x_t|x_{t−1})·q(x_{t−1}|x₀), normalised", line=dict(width=5, color="lightgrey")),
                     go.Scatter(x=grid, y=gaussian, name="N(μ̃_t, β̃_t)", line=dict(color="black", dash="dash"))])
    fig.update_layout(title="The product, normalised on a grid, is that Gaussian", height=320,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title="x_{t−1}", yaxis_title="density",
                      legend=dict(orientation="h", y=-0.3))
    return fig


def first_result(d, where) -> None:
    """The density of step 5 beside the controls, with β̃_t against β_t (the first result)."""
    chart(density_figure(d), key="posterior_density", where=where)
    with where:
        columns = st.columns(3)
        columns[0].metric("$\\beta_t$", f"{d.beta:.3g}")
        columns[1].metric("$\\tilde\\beta_t$", f"{d.closed_form_variance:.3g}")
        columns[2].metric("$\\tilde\\beta_t/\\beta_t$", f"{d.closed_form_variance / d.beta:.3f}",
                          help="$(1-\\bar\\alpha_{t-1})/(1-\\bar\\alpha_t)$: close to 1 for small steps far from $t = 1$.")
        show_code(normalised_product)


def intro() -> None:
    st.title("Deriving the posterior")
    st.markdown("Given the clean $x_0$, one step back is Gaussian with a closed form (Ho et al. 2020, eqs. 6–7), "
                "derived below in five lines with your schedule's numbers (1-D: each number is one pixel's).")


def main() -> None:
    page = page_settings()
    page.restore()
    layout.title_row(intro, page)
    page.notices()
    controls, figure = st.columns([2, 3], gap="medium")
    with controls:
        schedule, step, x0, x_t = choose()
    d = derive_posterior(schedule, step, x0, x_t)
    first_result(d, figure)
    derivation_section(d)
    page.sync_url()


main()
