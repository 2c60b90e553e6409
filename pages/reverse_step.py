"""Anatomy of one reverse step: the true posterior vs the model's Gaussian, the ε/x₀/v views of one prediction,
and why DDPM adds noise back at every step but the last.

Every number comes from core.lab.reverse_step (on top of core.diffusion.gaussian_diffusion and
core.diffusion.oracle); this page lays out widgets and
figures and caches. Steps are shown as the paper's t = 1..T (core's index t is step t+1).
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
import torch

from core.data.datasets import toy_mixture_parameters
from core.diffusion.gaussian_diffusion import VARIANCES, GaussianDiffusion
from core.diffusion.oracle import GaussianMixture
from core.diffusion.schedules import SCHEDULE_KINDS, make_schedule
from core.lab.reverse_step import (
    gaussian_pdf,
    kl_curves,
    noise_ablation,
    parameterization_views,
    plot_range,
    reverse_step_1d,
)
from core.rng import seeded_noise
from ui.figures import COLORS, Layer, PointPanel, point_panels
from ui.labels import SCHEDULE_LABELS, VARIANCE_LABELS

CHOICE_COLORS = dict(zip(VARIANCES, COLORS[:3]))
ABLATION_STEPS = (50, 100, 250, 500, 1000)
POINT_RANGE = (-1.3, 1.3)


# ---------------------------------------------------------------------------------------- caching
@st.cache_data(show_spinner=False, max_entries=256)
def one_step(settings: tuple, x0: float, t: int, noise_seed: int, x0_error: float, variance_interp: float):
    """(ReverseStep1D, ParameterizationViews) at 0-based index t; ε drawn from noise_seed."""
    schedule = make_schedule(*settings)
    noise = float(seeded_noise((1,), noise_seed)[0])
    step = reverse_step_1d(schedule, x0, t, noise, x0_error, variance_interp)
    return step, parameterization_views(schedule, step.x_t, t, noise), float(schedule.alpha_bars[t])


@st.cache_data(show_spinner=False, max_entries=64)
def kl_lines(settings: tuple, x0_error: float, variance_interp: float):
    steps, kls = kl_curves(make_schedule(*settings), x0_error, variance_interp)
    # a KL of exactly 0 has no place on a log axis: leave a gap instead
    return steps.tolist(), {v: [k if k > 0 else None for k in values.tolist()] for v, values in kls.items()}


@st.cache_data(show_spinner="Sampling with and without noise…", max_entries=32)
def ablation(T: int, variance: str, n: int, seed: int):
    mixture = GaussianMixture(*toy_mixture_parameters("gaussian_mixture"))
    diffusion = GaussianDiffusion(make_schedule("linear", T, scale_with_T=True), "eps", variance)
    return noise_ablation(mixture, diffusion, n, torch.Generator().manual_seed(seed))


def density_figure(title: str, x_title: str, curves: list, markers: list) -> go.Figure:
    """curves: (name, grid, density, color, width); markers: (label, x, color) drawn as vertical lines."""
    fig = go.Figure()
    for name, grid, density, color, width in curves:
        fig.add_trace(go.Scatter(x=grid.tolist(), y=density.tolist(), mode="lines", name=name,
                                 line=dict(color=color, width=width), hovertemplate="x = %{x:.5g}<br>density %{y:.4g}"))
    for label, x, color in markers:
        fig.add_vline(x=x, line_dash="dot", line_color=color, annotation_text=label, annotation_position="top")
    fig.update_layout(title=title, height=360, margin=dict(l=10, r=10, t=60, b=10), xaxis_title=x_title,
                      yaxis_title="density", legend=dict(orientation="h", y=-0.25))
    return fig


# ------------------------------------------------------------------------------------------- page
st.title("Anatomy of one reverse step")
st.markdown(
    "Sampling runs the chain backwards: xₜ₋₁ ~ p(xₜ₋₁|x_t) = N(μ_θ(x_t, t), σ_t²). Training makes p match the "
    "**true posterior** q(xₜ₋₁|x_t, x₀) = N(μ̃_t, β̃_t) (Ho et al. 2020, eqs. 6–7), which we can compute "
    "exactly when x₀ is known. Everything here is 1-D so you can see the densities.")

with st.expander("Noise schedule", expanded=False):
    left, middle, right = st.columns(3)
    kind = left.selectbox("Kind", SCHEDULE_KINDS, key="reverse_kind", format_func=SCHEDULE_LABELS.get)
    T = int(middle.number_input("T", 10, 1000, 1000, step=10, key="reverse_T"))
    scale = right.checkbox("Scale β with T", key="reverse_scale", disabled=kind == "cosine")
settings = (kind, T, 1e-4, 0.02, bool(scale))
try:
    make_schedule(*settings)
except ValueError as error:
    st.error(str(error))
    st.stop()

# ------------------------------------------------------------------------------ 1. one step in 1-D
st.header("1. The true posterior and the model's step")
columns = st.columns(3)
x0 = columns[0].slider("x₀ (the clean value)", -1.0, 1.0, 0.5, 0.01, key="reverse_x0")
t = columns[1].slider("t (paper's step)", 2, T, 3, key="reverse_t",
                      help="At t = 1 the posterior is a point mass at x₀ (β̃₁ = 0): the last step is deterministic.")
noise_seed = columns[2].number_input("Noise seed (draws ε)", 0, 2**31 - 1, 0, key="reverse_noise_seed")
columns = st.columns(2)
x0_error = columns[0].slider("Error of the model's x̂₀", -0.5, 0.5, 0.0, 0.01, key="reverse_x0_error")
variance_interp = columns[1].slider("v for the learned variance (−1 → β̃_t, +1 → β_t)", -1.0, 1.0, 0.0, 0.05,
                                    key="reverse_variance_interp", help="Nichol & Dhariwal 2021 eq. 15: "
                                    "σ² = exp(f·log β_t + (1−f)·log β̃_t), f = (v+1)/2.")
st.info(f"**Assumption:** the model is ideal up to the error you set: it predicts x̂₀ = x₀ + {x0_error:g}. "
        "Its mean is the posterior mean at x̂₀, μ_θ = μ̃_t(x_t, x̂₀); the three models differ only in σ_t². "
        "A real network's x̂₀ is a guess, and its error is largest at large t.")

try:
    step, views, alpha_bar = one_step(settings, x0, t - 1, int(noise_seed), x0_error, variance_interp)
    kl_steps, kl_values = kl_lines(settings, x0_error, variance_interp)
except ValueError as error:
    st.error(str(error))
    st.stop()

st.markdown(f"ᾱ_t = {alpha_bar:.5g}, ε = {step.noise:.4f}, so **x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε = {step.x_t:.5f}**.")
left, right = st.columns(2)
grid = plot_range([step.forward_mean], [step.forward_variance])
left.plotly_chart(density_figure(
    f"Forward: q(x_t | x₀) = N({step.forward_mean:.4g}, {step.forward_variance:.4g})", "x_t",
    [("q(x_t | x₀)", grid, gaussian_pdf(grid, step.forward_mean, step.forward_variance), "grey", 2)],
    [(f"drawn x_t = {step.x_t:.4g}", step.x_t, "black")]), key="reverse_forward_density")
variances = [step.posterior_variance, *step.model_variances.values()]
grid = plot_range([step.posterior_mean, step.model_mean, step.model_mean, step.model_mean], variances)
curves = [("true posterior q(xₜ₋₁|x_t, x₀)", grid, gaussian_pdf(grid, step.posterior_mean, step.posterior_variance),
           "black", 4)]
for choice, variance in step.model_variances.items():
    curves.append((f"p, {VARIANCE_LABELS[choice]}", grid, gaussian_pdf(grid, step.model_mean, variance),
                   CHOICE_COLORS[choice], 2))
markers = [("μ̃", step.posterior_mean, "black")] + ([("μ_θ", step.model_mean, "red")] if x0_error else [])
right.plotly_chart(density_figure(f"Reverse at t = {t}: true posterior vs model", "xₜ₋₁", curves, markers),
                   key="reverse_reverse_density")

st.table([{"σ_t² choice": VARIANCE_LABELS[choice] + (f" (v = {variance_interp:g})" if choice == "learned_range" else ""),
           "σ_t²": f"{variance:.4e}", "σ_t²/β̃_t": f"{variance / step.posterior_variance:.4f}",
           "KL(q ‖ p) [nats]": f"{step.kls[choice]:.3e}"} for choice, variance in step.model_variances.items()])
st.caption(f"True posterior: μ̃_t = {step.posterior_mean:.6f}, β̃_t = {step.posterior_variance:.4e}. "
           "KL = ½·(log(σ²/β̃) + β̃/σ² + (μ_θ − μ̃)²/σ² − 1).")

fig = go.Figure()
for choice, values in kl_values.items():
    fig.add_trace(go.Scatter(x=kl_steps, y=values, mode="lines", name=VARIANCE_LABELS[choice],
                             line=dict(color=CHOICE_COLORS[choice]), hovertemplate="t = %{x}: KL %{y:.3e}"))
fig.add_vline(x=t, line_dash="dot", line_color="grey")
fig.update_layout(title="KL(true posterior ‖ model) at every t", height=340, margin=dict(l=10, r=10, t=50, b=10),
                  xaxis_title="t (paper's step)", yaxis_title="KL [nats]", yaxis_type="log",
                  legend=dict(orientation="h", y=-0.3))
st.plotly_chart(fig, key="reverse_kl_vs_t")
st.caption("The variance choice matters most at small t, where β_t and β̃_t differ by a large factor; at large t "
           "β̃_t → β_t and the curves meet. With an exact x̂₀ and σ² = β̃_t the KL is exactly 0 (no line on a log "
           "axis). An x̂₀ error adds (c₀·error)²/(2σ²), c₀ = √ᾱ_{t−1}β_t/(1−ᾱ_t).")

# ------------------------------------------------------------------------- 2. three parameterizations
st.header("2. One prediction, three parameterizations")
st.markdown(f"At this (x_t = {views.x_t:.5f}, t = {t}) an ideal network predicting ε outputs the true "
            f"ε = {views.eps:.5f}. The same prediction as x₀ or v (Salimans & Ho 2022), converted with "
            f"√ᾱ_t = {alpha_bar ** 0.5:.5f} and √(1−ᾱ_t) = {(1 - alpha_bar) ** 0.5:.5f}:")
columns = st.columns(3)
with columns[0]:
    st.subheader("x₀ view")
    st.latex(r"\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon}{\sqrt{\bar\alpha_t}}")
    st.metric("x̂₀ from ε̂", f"{views.x0_from_eps:.6f}", help=f"the true x₀ is {x0:g}")
with columns[1]:
    st.subheader("v view")
    st.latex(r"\hat v = \sqrt{\bar\alpha_t}\,\hat\varepsilon - \sqrt{1-\bar\alpha_t}\,\hat x_0")
    st.metric("v̂ from ε̂ and x̂₀", f"{views.v_from_x0_eps:.6f}")
with columns[2]:
    st.subheader("and back")
    st.latex(r"\hat x_0 = \sqrt{\bar\alpha_t}\,x_t - \sqrt{1-\bar\alpha_t}\,\hat v")
    st.latex(r"\hat\varepsilon = \sqrt{1-\bar\alpha_t}\,x_t + \sqrt{\bar\alpha_t}\,\hat v")
    st.markdown(f"x̂₀ from v̂ = **{views.x0_from_v:.6f}**, ε̂ from v̂ = **{views.eps_from_v:.6f}**, "
                f"ε̂ from x̂₀ = **{views.eps_from_x0:.6f}**")

st.subheader("The ε-form mean is the posterior mean")
left, right = st.columns(2)
with left:
    st.latex(r"\mu_\theta = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\hat\varepsilon\Big)")
    st.caption("Ho et al. eq. 11 (what an ε-network's sampler computes)")
with right:
    st.latex(r"\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,\hat x_0"
             r" + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t")
    st.caption("Ho et al. eq. 7 at x̂₀ (the posterior mean)")
columns = st.columns(3)
columns[0].markdown(f"ε-form mean  \n`{views.mean_eps_form:.17g}`")
columns[1].markdown(f"x₀-form mean  \n`{views.mean_x0_form:.17g}`")
columns[2].metric("difference", f"{views.mean_difference:.1e}")
st.caption("Substituting x̂₀ = (x_t − √(1−ᾱ_t)ε̂)/√ᾱ_t into eq. 7 and using ᾱ_t = α_t·ᾱ_{t−1}, 1 − α_t = β_t "
           "gives eq. 11; "
           "the two numbers differ only by float64 round-off (well below 1e-12; largest at small t, where 1 − ᾱ_t is "
           "computed from ᾱ_t ≈ 1 and loses digits).")

# -------------------------------------------------------------------------- 3. why noise is added back
st.header("3. Why noise is added back at every step — and not at the last")
st.markdown(
    "DDPM's step is xₜ₋₁ = μ_θ(x_t, t) + σ_t·z with fresh z ~ N(0, I) (Ho et al. Algorithm 2), except at "
    "t = 1 where it returns μ_θ. Below, the **exact** denoiser of a known 2-D Gaussian mixture (no network, so "
    "nothing is learned wrongly) runs the same trajectories from the same x_T twice: with z, and with z = 0.")
columns = st.columns(4)
ablation_T = columns[0].select_slider("T (linear, β scaled with T)", ABLATION_STEPS, 100, key="reverse_ablation_T")
variance = columns[1].radio("σ_t²", ("fixed_large", "fixed_small"), format_func=VARIANCE_LABELS.get,
                            key="reverse_ablation_variance")
n_points = columns[2].select_slider("Points", (200, 500, 1000, 2000), 500, key="reverse_ablation_n")
ablation_seed = columns[3].number_input("Seed", 0, 2**31 - 1, 0, key="reverse_ablation_seed")
try:
    result = ablation(int(ablation_T), variance, int(n_points), int(ablation_seed))
except ValueError as error:
    st.error(str(error))
    st.stop()

columns = st.columns(3)
columns[0].metric("spread of the data", f"{result.data_variance:.4f}", help="trace of the covariance (exact)")
columns[1].metric("spread with noise (DDPM)", f"{result.with_noise_variance:.4f}",
                  help=f"{result.with_noise_variance / result.data_variance:.0%} of the data's spread")
columns[2].metric("spread without noise", f"{result.without_noise_variance:.2e}",
                  help=f"{result.without_noise_variance / result.data_variance:.1e} × the data's spread")
st.caption("Spread = trace of the covariance = mean squared distance of the points from their mean. "
           f"With noise: {result.with_noise_variance / result.data_variance:.0%} of the data's; "
           f"without: {result.without_noise_variance / result.data_variance:.1e} × the data's.")
data, with_noise, without_noise = (result.data.numpy(), result.with_noise.numpy(), result.without_noise.numpy())
panels = [PointPanel(title, [Layer(name, points[:, 0], points[:, 1], color=color, size=size)], POINT_RANGE)
          for title, name, points, color, size in (
              ("data", "data", data, "lightgrey", 3),
              ("DDPM: xₜ₋₁ = μ_θ + σ_t z", "with noise", with_noise, COLORS[0], 3),
              ("no noise: xₜ₋₁ = μ_θ", "without noise", without_noise, COLORS[1], 5))]
st.plotly_chart(point_panels(panels, height=400), key="reverse_ablation_scatter")
st.markdown(
    "**Why the collapse?** μ_θ(x_t, t) is an *average* over every x₀ that could have produced x_t. Early on that "
    "average is near the middle of the data, and without fresh noise nothing ever spreads the samples out again: "
    "all trajectories are pulled to (almost) the same point: in μ̃_t = c₀·x̂₀ + c_t·x_t the weight c_t of x_t is "
    "below 1 at every step, so the differences between trajectories shrink step after step. The noise σ_t·z "
    "re-injects the uncertainty the posterior q(xₜ₋₁|x_t, x₀) has, so the samples keep the data's spread. "
    "(DDIM with η = 0 is deterministic too but does not collapse: it keeps the predicted noise √(1−ᾱₜ₋₁)·ε̂ "
    "instead of dropping it.)\n\n"
    f"**Why not at the last step?** At t = 1 the posterior is a point mass (β̃₁ = 0): x₀ is fully determined. "
    f"Adding σ₁·z there would only blur the final sample, with noise of std √β₁ = {result.last_step_std:.3g} "
    "that no later step could remove.")
