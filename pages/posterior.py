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
from ui.code import show_code
from ui.figures import chart
from ui.navigation import require_app_shell

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)


def choose() -> tuple:
    columns = st.columns(3)
    kind = columns[0].selectbox("Schedule", SCHEDULE_KINDS, key="posterior_kind")
    T = int(columns[1].number_input("T", 2, 1000, 1000, step=10, key="posterior_T"))
    step = int(columns[2].slider("t (paper's step)", 2, T, min(T, 300), key="posterior_step"))
    columns = st.columns(2)
    x0 = columns[0].slider("x₀", -1.0, 1.0, 0.6, 0.01, key="posterior_x0")
    x_t = columns[1].slider("x_t", -3.0, 3.0, 0.2, 0.01, key="posterior_xt")
    return make_schedule(kind, T), step, x0, x_t


def derivation_section(d) -> None:
    t = d.step
    st.subheader("1. The one-step kernel (eq. 2)")
    st.latex(rf"q(x_t\mid x_{{t-1}}) = \mathcal N\big(\sqrt{{\alpha_t}}\,x_{{t-1}},\ \beta_t\big) = "
             rf"\mathcal N\big({math.sqrt(d.alpha):.6f}\,x_{{t-1}},\ {d.beta:.4e}\big)")
    st.subheader("2. The jump from x₀ to step t−1 (eq. 4)")
    st.latex(rf"q(x_{{t-1}}\mid x_0) = \mathcal N\big(\sqrt{{\bar\alpha_{{t-1}}}}\,x_0,\ 1-\bar\alpha_{{t-1}}\big) = "
             rf"\mathcal N\big({math.sqrt(d.alpha_bar_prev):.6f}\cdot{d.x0:g},\ {1 - d.alpha_bar_prev:.6f}\big)")
    st.subheader("3. Bayes' rule, then the Markov property")
    st.latex(r"q(x_{t-1}\mid x_t, x_0) = \frac{q(x_t\mid x_{t-1}, x_0)\,q(x_{t-1}\mid x_0)}{q(x_t\mid x_0)}"
             r"\ \propto\ q(x_t\mid x_{t-1})\,q(x_{t-1}\mid x_0)")
    st.markdown("The forward chain is Markov: given x_{t−1}, x_t does not depend on x₀, so the first factor is the "
                "one-step kernel. The denominator does not involve x_{t−1}: it only normalises.")
    st.subheader("4. Complete the square in x = x_{t−1}")
    st.latex(r"\log(\dots) = -\frac{(x_t-\sqrt{\alpha_t}x)^2}{2\beta_t} - \frac{(x-\sqrt{\bar\alpha_{t-1}}x_0)^2}"
             r"{2(1-\bar\alpha_{t-1})} + C = -\tfrac12\big(A x^2 - 2Bx\big) + C'")
    st.latex(rf"A = \frac{{\alpha_t}}{{\beta_t}} + \frac{{1}}{{1-\bar\alpha_{{t-1}}}} = {d.alpha / d.beta:.6g} + "
             rf"{1 / (1 - d.alpha_bar_prev):.6g} = {d.precision:.6g}")
    st.latex(rf"B = \frac{{\sqrt{{\alpha_t}}\,x_t}}{{\beta_t}} + \frac{{\sqrt{{\bar\alpha_{{t-1}}}}\,x_0}}"
             rf"{{1-\bar\alpha_{{t-1}}}} = {math.sqrt(d.alpha) * d.x_t / d.beta:.6g} + "
             rf"{math.sqrt(d.alpha_bar_prev) * d.x0 / (1 - d.alpha_bar_prev):.6g} = {d.linear:.6g}")
    st.markdown("−½(Ax² − 2Bx) = −½A(x − B/A)² + const: a Gaussian with variance 1/A and mean B/A.")
    st.subheader("5. Simplify with ᾱ_t = α_t·ᾱ_{t−1} (eq. 7)")
    st.latex(rf"\tilde\beta_t = \frac1A = \frac{{1-\bar\alpha_{{t-1}}}}{{1-\bar\alpha_t}}\,\beta_t = "
             rf"\frac{{{1 - d.alpha_bar_prev:.6f}}}{{{1 - d.alpha_bar:.6f}}}\cdot{d.beta:.4e} = {d.closed_form_variance:.6e}")
    st.latex(rf"\tilde\mu_t = \frac BA = \frac{{\sqrt{{\bar\alpha_{{t-1}}}}\beta_t}}{{1-\bar\alpha_t}}x_0 + "
             rf"\frac{{\sqrt{{\alpha_t}}(1-\bar\alpha_{{t-1}})}}{{1-\bar\alpha_t}}x_t = {d.coef_x0:.6f}\cdot{d.x0:g} + "
             rf"{d.coef_xt:.6f}\cdot{d.x_t:g} = {d.closed_form_mean:.6f}")
    columns = st.columns(4)
    columns[0].metric("1/A", f"{d.variance:.8e}")
    columns[1].metric("β̃_t (closed form)", f"{d.closed_form_variance:.8e}")
    columns[2].metric("B/A", f"{d.mean:.8f}")
    columns[3].metric("μ̃_t (closed form)", f"{d.closed_form_mean:.8f}")
    st.caption(f"At t = {t}: the two routes agree to float64 round-off; `GaussianDiffusion.q_posterior` uses the "
               "closed forms (the test suite checks all three agree).")
    show_code(derive_posterior)


def density_section(d) -> None:
    st.subheader("The product, normalised on a grid, is that Gaussian")
    grid, product = normalised_product(d)
    grid = np.asarray(grid)
    gaussian = np.exp(-(grid - d.closed_form_mean) ** 2 / (2 * d.closed_form_variance)) / math.sqrt(2 * math.pi * d.closed_form_variance)
    fig = go.Figure([go.Scatter(x=grid, y=product, name="q(x_t|x_{t−1})·q(x_{t−1}|x₀), normalised", line=dict(width=5, color="lightgrey")),
                     go.Scatter(x=grid, y=gaussian, name="N(μ̃_t, β̃_t)", line=dict(color="black", dash="dash"))])
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="x_{t−1}", yaxis_title="density",
                      legend=dict(orientation="h", y=-0.3))
    chart(fig, key="posterior_density")
    show_code(normalised_product)


def main() -> None:
    st.title("Deriving the posterior")
    st.markdown("Given the clean x₀, one step back is Gaussian with a closed form (Ho et al. 2020, eqs. 6–7). The "
                "derivation is five lines; here every line carries the numbers of the schedule you choose (1-D, so "
                "each number is one pixel's).")
    schedule, step, x0, x_t = choose()
    d = derive_posterior(schedule, step, x0, x_t)
    derivation_section(d)
    density_section(d)


main()
