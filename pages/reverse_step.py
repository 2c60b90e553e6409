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

from core.data.toys import toy_mixture_parameters
from core.diffusion.gaussian_diffusion import VARIANCES, GaussianDiffusion
from core.diffusion.oracle import GaussianMixture
from core.diffusion.schedules import SCHEDULE_KINDS, make_schedule
from core.lab.error_correction import error_correction
from core.lab.reverse_step import (
    gaussian_pdf,
    kl_curves,
    noise_ablation,
    parameterization_views,
    plot_range,
    reverse_step_1d,
)
from core.rng import seeded_noise
from ui import exports, layout
from ui.figures import COLORS, NEUTRAL, STRONG, Layer, PointPanel, chart, honest_axes, point_panels
from ui.labels import SCHEDULE_LABELS, VARIANCE_LABELS
from ui.navigation import require_app_shell
from ui.settings import PageSettings, Preset, Setting, seed_setting, widget

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

CHOICE_COLORS = dict(zip(VARIANCES, COLORS[:3]))
ABLATION_STEPS = (50, 100, 250, 500, 1000)
POINT_RANGE = (-1.3, 1.3)
ABLATION_POINTS = (200, 500, 1000, 2000)
CORRECTION_T = 100  # the error-correction chains: linear β scaled with T (β 0.001..0.2)
CORRECTION_CHAINS = 200
PRESETS = [
    Preset("β vs β̃ at t = 2", {"reverse_t": 2}, "The variance choice matters most at small t: β₂/β̃₂ is about 2."),
    Preset("A wrong x̂₀ at large t", {"reverse_t": 900, "reverse_x0_error": 0.3},
           "At large t a wrong x̂₀ hardly moves the mean: c₀ is tiny."),
    Preset("Collapse without noise, T = 1000", {"reverse_ablation_T": 1000, "reverse_ablation_variance": "fixed_small"},
           "Dropping $\\sigma_t z$ collapses the samples even with 1000 steps."),
    Preset("Short schedule, T = 50", {"reverse_T": 50, "reverse_scale": True, "reverse_t": 10},
           "With few steps $\\beta_t$ and $\\tilde\\beta_t$ differ at every $t$."),
]


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


@st.cache_data(show_spinner="Running the perturbed and unperturbed chains…", max_entries=32)
def correction(perturb_step: int, size: float, seed: int):
    mixture = GaussianMixture(*toy_mixture_parameters("gaussian_mixture"))
    diffusion = GaussianDiffusion(make_schedule("linear", CORRECTION_T, scale_with_T=True), "eps")
    return error_correction(mixture, diffusion, CORRECTION_CHAINS, perturb_step, size, torch.Generator().manual_seed(seed))


VARIANCE_HELP = ("Nichol & Dhariwal 2021 eq. 15: $\\sigma^2 = \\exp(f \\log\\beta_t + (1-f)\\log\\tilde\\beta_t)$, $f = (\\nu+1)/2$ "
                 "(the paper's $v$ is this $f$, not $\\nu$; neither is the $v$ of $v$-prediction). "
                 "The network's $\\nu$ is not clipped: $\\nu > 1$ "
                 "gives more than $\\beta_t$, $\\nu < -1$ less than $\\tilde\\beta_t$ (the shipped learned model outputs $\\nu$ "
                 "from about −1.9 to +1.7, mostly at small $t$; see the v, variances and DDIM page).")


def density_figure(title: str, x_title: str, curves: list, markers: list) -> go.Figure:
    """curves: (name, grid, density, color, width); markers: (label, x, color) drawn as vertical lines."""
    fig = go.Figure()
    for name, grid, density, color, width in curves:
        fig.add_trace(go.Scatter(x=grid.tolist(), y=density.tolist(), mode="lines", name=name,
                                 line=dict(color=color, width=width), hovertemplate="x = %{x:.5g}<br>density %{y:.4g}"))
    for (label, x, color), position in zip(markers, ("top left", "top right")):
        # two markers can sit a hair apart (μ̃ and μ_θ at large t): their labels go to opposite sides
        fig.add_vline(x=x, line_dash="dot", line_color=color, annotation_text=label, annotation_position=position)
    fig.update_layout(title=title, height=330, margin=dict(l=10, r=10, t=60, b=10), xaxis_title=x_title,
                      yaxis_title="density", legend=dict(orientation="h", y=-0.25))
    return honest_axes(fig)


# ---------------------------------------------------------------------------------------- settings
def page_settings() -> PageSettings:
    return PageSettings("reverse", [
        Setting("reverse_kind", SCHEDULE_KINDS[0], "choice", choices=SCHEDULE_KINDS, label="Kind", format_func=SCHEDULE_LABELS.get),
        Setting("reverse_T", 1000, "int", 10, 1000, label="T", step=10),
        Setting("reverse_scale", False, "bool", label="Scale β with T"),
        Setting("reverse_x0", 0.5, "float", -1.0, 1.0, label="$x_0$ (the clean value)", step=0.01),
        Setting("reverse_t", 3, "int", 2, 1000, label="t (paper's step)", widget="slider",
                help="At t = 1 the posterior is a point mass at x₀ (β̃₁ = 0): the last step is deterministic."),
        seed_setting("reverse_noise_seed", "Noise seed (draws $\\varepsilon$)"),
        Setting("reverse_x0_error", 0.0, "float", -0.5, 0.5, label="Error of the model's $\\hat x_0$", step=0.01),
        Setting("reverse_variance_interp", 0.0, "float", -1.0, 1.0, step=0.05, help=VARIANCE_HELP,
                label="$\\nu$ of the learned variance (−1 → $\\tilde\\beta_t$, +1 → $\\beta_t$)"),
        Setting("reverse_ablation_T", 100, "int", choices=ABLATION_STEPS, label="T (linear, β scaled with T)"),
        Setting("reverse_ablation_variance", "fixed_large", "choice", choices=("fixed_large", "fixed_small"), label="$\\sigma_t^2$",
                widget="radio", format_func=VARIANCE_LABELS.get),
        Setting("reverse_ablation_n", 500, "int", choices=ABLATION_POINTS, label="Points"),
        seed_setting("reverse_ablation_seed"),
        Setting("reverse_fix_step", CORRECTION_T // 2, "int", 1, CORRECTION_T - 1, label="Perturb at step t", widget="slider"),
        Setting("reverse_fix_size", 0.5, "float", 0.05, 2.0, label="Size of the push ‖δ‖", step=0.05, widget="slider"),
        seed_setting("reverse_fix_seed"),
    ], PRESETS)


def schedule_settings() -> tuple | None:
    """(kind, T, β_start, β_end, scale_with_T) from the collapsed schedule box, or None after an error."""
    with st.expander("Noise schedule (linear, T = 1000 by default)", expanded=False):
        left, middle, right = st.columns(3)
        kind = widget("reverse_kind", left)
        T = int(widget("reverse_T", middle))
        scale = widget("reverse_scale", right, disabled=kind == "cosine")
    settings = (kind, T, 1e-4, 0.02, bool(scale))
    try:
        make_schedule(*settings)
    except ValueError as error:
        st.error(str(error))
        return None
    return settings


def step_controls(T: int) -> tuple:
    """(x₀, t, noise seed, x̂₀ error, v) in one row."""
    if st.session_state.get("reverse_t", 3) > T:  # a shorter schedule was chosen: stay on its last step
        st.session_state["reverse_t"] = T
    columns = st.columns(5)
    x0 = widget("reverse_x0", columns[0])
    t = widget("reverse_t", columns[1], high=T)
    noise_seed = widget("reverse_noise_seed", columns[2])
    x0_error = widget("reverse_x0_error", columns[3])
    variance_interp = widget("reverse_variance_interp", columns[4])
    return x0, t, int(noise_seed), x0_error, variance_interp


# ---------------------------------------------------------------------------------------- sections
def intro() -> None:
    st.title("Anatomy of one reverse step")
    st.markdown(
        "Sampling runs the chain backwards: $x_{t-1} \\sim p_\\theta(x_{t-1} \\mid x_t) = \\mathcal N(\\mu_\\theta(x_t, t), \\sigma_t^2)$. "
        "Each ELBO term compares $p_\\theta$ with the **true posterior** $q(x_{t-1} \\mid x_t, x_0) = \\mathcal N(\\tilde\\mu_t, "
        "\\tilde\\beta_t)$ (Ho et al. 2020, eqs. 6–7). Here $x_0$ is known, so the posterior is exact; all in 1-D.")


def what_training_matches() -> None:
    """Beside the first figure: the model is fitted without x_0, so q(x_{t-1}|x_t, x_0) is not its target."""
    with st.expander("What can training match? (the network never sees $x_0$)", expanded=True):
        st.markdown(
            "The network never sees $x_0$, so training can only bring $\\mu_\\theta$ to the average of the posterior means "
            "over every $x_0$ that could have produced $x_t$ (the best $\\hat x_0$ is $\\mathbb E[x_0 \\mid x_t]$): at best "
            "$\\mu_\\theta$ is the mean of $q(x_{t-1} \\mid x_t)$, not of $q(x_{t-1} \\mid x_t, x_0)$ (see Common mistakes).")


def densities(step, t: int, alpha_bar: float) -> None:
    """Section 1's first result: the forward density and the reverse step, side by side."""
    st.markdown(f"$\\bar\\alpha_t$ = {alpha_bar:.5g}, $\\varepsilon$ = {step.noise:.4f}, so "
                f"$x_t = \\sqrt{{\\bar\\alpha_t}}\\,x_0 + \\sqrt{{1-\\bar\\alpha_t}}\\,\\varepsilon$ = **{step.x_t:.5f}**.")
    left, right = st.columns(2)
    grid = plot_range([step.forward_mean], [step.forward_variance])
    chart(density_figure(
        f"Forward: q(x_t | x₀) = N({step.forward_mean:.4g}, {step.forward_variance:.4g})", "x_t",
        [("q(x_t | x₀)", grid, gaussian_pdf(grid, step.forward_mean, step.forward_variance), NEUTRAL, 2)],
        [(f"drawn x_t = {step.x_t:.4g}", step.x_t, STRONG)]), key="reverse_forward_density", where=left)
    variances = [step.posterior_variance, *step.model_variances.values()]
    grid = plot_range([step.posterior_mean, step.model_mean, step.model_mean, step.model_mean], variances)
    curves = [("true posterior q(xₜ₋₁|x_t, x₀)", grid, gaussian_pdf(grid, step.posterior_mean, step.posterior_variance),
               STRONG, 4)]
    for choice, variance in step.model_variances.items():
        curves.append((f"p, {VARIANCE_LABELS[choice]}", grid, gaussian_pdf(grid, step.model_mean, variance),
                       CHOICE_COLORS[choice], 2))
    markers = [("μ̃", step.posterior_mean, STRONG)]
    if step.model_mean != step.posterior_mean:  # an x̂₀ error moves the model's mean
        markers.append(("μ_θ", step.model_mean, COLORS[1]))
    chart(density_figure(f"Reverse at t = {t}: true posterior vs model", "xₜ₋₁", curves, markers),
                       key="reverse_reverse_density", where=right)


def kl_section(step, t: int, x0_error: float, variance_interp: float, kl_steps: list, kl_values: dict) -> None:
    st.info(f"**Assumption:** the model is ideal up to the error you set: it predicts $\\hat x_0 = x_0 + {x0_error:g}$. "
            "Its mean is the posterior mean at $\\hat x_0$, $\\mu_\\theta = \\tilde\\mu_t(x_t, \\hat x_0)$; the three models "
            "differ only in $\\sigma_t^2$. A real network's $\\hat x_0$ is a guess, and its error is largest at large $t$.")
    st.table([{"σₜ² choice": VARIANCE_LABELS[choice] + (f" (nu = {variance_interp:g})" if choice == "learned_range" else ""),
               "σₜ²": f"{variance:.4e}", "σₜ²/β̃ₜ": f"{variance / step.posterior_variance:.4f}",
               "KL(q ‖ p) [nats]": f"{step.kls[choice]:.3e}"} for choice, variance in step.model_variances.items()])
    st.caption(f"True posterior: $\\tilde\\mu_t$ = {step.posterior_mean:.6f}, $\\tilde\\beta_t$ = {step.posterior_variance:.4e}. "
               "$\\mathrm{KL} = \\tfrac12\\big(\\log(\\sigma^2/\\tilde\\beta) + \\tilde\\beta/\\sigma^2 + "
               "(\\mu_\\theta - \\tilde\\mu)^2/\\sigma^2 - 1\\big)$.")
    fig = go.Figure()
    for choice, values in kl_values.items():
        fig.add_trace(go.Scatter(x=kl_steps, y=values, mode="lines", name=VARIANCE_LABELS[choice],
                                 line=dict(color=CHOICE_COLORS[choice]), hovertemplate="t = %{x}: KL %{y:.3e}"))
    fig.add_vline(x=t, line_dash="dot", line_color=NEUTRAL)
    fig.update_layout(title="KL(true posterior ‖ model) at every t", height=340, margin=dict(l=10, r=10, t=50, b=10),
                      xaxis_title="t (paper's step)", yaxis_title="KL [nats]", yaxis_type="log",
                      legend=dict(orientation="h", y=-0.3))
    chart(honest_axes(fig), key="reverse_kl_vs_t")
    st.caption("The variance choice matters most at small $t$, where $\\beta_t$ and $\\tilde\\beta_t$ differ by a large "
               "factor; at large $t$ $\\tilde\\beta_t \\to \\beta_t$ and the curves meet. With an exact $\\hat x_0$ and "
               "$\\sigma^2 = \\tilde\\beta_t$ the KL is exactly 0 (no line on a log axis). An $\\hat x_0$ error adds "
               "$(c_0 \\cdot \\text{error})^2/(2\\sigma^2)$, $c_0 = \\sqrt{\\bar\\alpha_{t-1}}\\,\\beta_t/(1-\\bar\\alpha_t)$.")
    left, right = st.columns(2)
    with left:
        exports.csv_button("CSV of the KL curves", {"t": kl_steps, **{f"kl_{v}": values for v, values in kl_values.items()}},
                           "kl_per_step.csv", key="reverse_kl_csv")


def parameterizations(views, t: int, x0: float, alpha_bar: float) -> None:
    st.header("2. One prediction, three parameterizations")
    st.markdown(f"At this ($x_t$ = {views.x_t:.5f}, $t$ = {t}) an ideal network predicting $\\varepsilon$ outputs the true "
                f"$\\varepsilon$ = {views.eps:.5f}. The same prediction as $x_0$ or $v$ (Salimans & Ho 2022), converted with "
                f"$\\sqrt{{\\bar\\alpha_t}}$ = {alpha_bar ** 0.5:.5f} and $\\sqrt{{1-\\bar\\alpha_t}}$ = {(1 - alpha_bar) ** 0.5:.5f}:")
    columns = st.columns(3)
    with columns[0]:
        st.subheader("$x_0$ view")
        st.latex(r"\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon}{\sqrt{\bar\alpha_t}}")
        st.metric("x̂₀ from ε̂", f"{views.x0_from_eps:.6f}", help=f"the true x₀ is {x0:g}")
    with columns[1]:
        st.subheader("$v$ view")
        st.latex(r"\hat v = \sqrt{\bar\alpha_t}\,\hat\varepsilon - \sqrt{1-\bar\alpha_t}\,\hat x_0")
        st.metric("v̂ from ε̂ and x̂₀", f"{views.v_from_x0_eps:.6f}")
    with columns[2]:
        st.subheader("and back")
        st.latex(r"\hat x_0 = \sqrt{\bar\alpha_t}\,x_t - \sqrt{1-\bar\alpha_t}\,\hat v")
        st.latex(r"\hat\varepsilon = \sqrt{1-\bar\alpha_t}\,x_t + \sqrt{\bar\alpha_t}\,\hat v")
        st.markdown(f"$\\hat x_0$ from $\\hat v$ = **{views.x0_from_v:.6f}**, $\\hat\\varepsilon$ from $\\hat v$ = "
                    f"**{views.eps_from_v:.6f}**, $\\hat\\varepsilon$ from $\\hat x_0$ = **{views.eps_from_x0:.6f}**")
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
    st.caption("Substituting $\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\hat\\varepsilon)/\\sqrt{\\bar\\alpha_t}$ into eq. 7 "
               "and using $\\bar\\alpha_t = \\alpha_t\\bar\\alpha_{t-1}$, $1 - \\alpha_t = \\beta_t$ gives eq. 11; the two "
               "numbers differ only by float64 round-off (well below $10^{-12}$; largest at small $t$, where $1 - \\bar\\alpha_t$ "
               "is computed from $\\bar\\alpha_t \\approx 1$ and loses digits).")


def ablation_controls() -> tuple:
    columns = st.columns(4)
    T = widget("reverse_ablation_T", columns[0])
    variance = widget("reverse_ablation_variance", columns[1])
    n_points = widget("reverse_ablation_n", columns[2])
    seed = widget("reverse_ablation_seed", columns[3])
    return int(T), variance, int(n_points), int(seed)


def noise_added_back() -> None:
    st.header("3. Why noise is added back at every step — and not at the last")
    st.markdown(
        "DDPM's step is $x_{t-1} = \\mu_\\theta(x_t, t) + \\sigma_t z$ with fresh $z \\sim \\mathcal N(0, I)$ (Ho et al. "
        "Algorithm 2), except at $t = 1$ where it returns $\\mu_\\theta$. Below, the **exact** denoiser of a known 2-D "
        "Gaussian mixture (no network, so nothing is learned wrongly) runs the same trajectories from the same $x_T$ "
        "twice: with $z$, and with $z = 0$.")
    T, variance, n_points, seed = ablation_controls()
    try:
        result = ablation(T, variance, n_points, seed)
    except ValueError as error:
        st.error(str(error))
        return
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
                  ("data", "data", data, NEUTRAL, 3),
                  ("DDPM: xₜ₋₁ = μ_θ + σ_t z", "with noise", with_noise, COLORS[0], 3),
                  ("no noise: xₜ₋₁ = μ_θ", "without noise", without_noise, COLORS[1], 5))]
    chart(point_panels(panels, height=400), key="reverse_ablation_scatter")
    exports.npz_button("Points (.npz)", {"data": data, "with_noise": with_noise, "without_noise": without_noise,
                                         "T": T, "variance": variance, "seed": seed},
                       f"noise_ablation_T{T}_seed{seed}.npz", key="reverse_ablation_npz")
    schedule = make_schedule("linear", T, scale_with_T=True)
    variances = schedule.betas if variance == "fixed_large" else schedule.posterior_variance
    missing = float(variances[1:].sum())  # σ_t² of steps t = 2..T (index 0 is the last step, which adds none)
    st.markdown(
        "**Why the collapse?** $\\mu_\\theta(x_t, t)$ is an *average* over every $x_0$ that could have produced $x_t$. "
        "Early on that average is near the middle of the data, and without fresh noise nothing ever spreads the samples "
        "out again: in $\\tilde\\mu_t = c_0 \\hat x_0 + c_t x_t$ the weight $c_t$ of $x_t$ is below 1 at every step, so the "
        "differences between trajectories shrink step after step. The noise $\\sigma_t z$ re-injects the uncertainty "
        "the posterior $q(x_{t-1} \\mid x_t, x_0)$ has, so the samples keep the data's spread. (DDIM with $\\eta = 0$ "
        "is deterministic too but does not collapse: it keeps the predicted noise "
        "$\\sqrt{1-\\bar\\alpha_{t-1}}\\,\\hat\\varepsilon$ instead of dropping it.)\n\n"
        "**How much spread goes missing.** The law of total variance splits the spread $x_{t-1}$ must have: "
        "$\\operatorname{Var}[x_{t-1}] = \\operatorname{Var}\\big[E[x_{t-1} \\mid x_t]\\big] + "
        "E\\big[\\operatorname{Var}[x_{t-1} \\mid x_t]\\big]$. The step without noise keeps only the first term; the "
        "second, about $\\sigma_t^2$ per coordinate, is what $\\sigma_t z$ puts back. Without it every step loses "
        "that much, and the losses accumulate: the next mean step acts on a cloud that is already too narrow and "
        f"shrinks it again. Summed over this run's steps $t = 2..T$, the variance never put back is "
        f"$\\sum_t \\sigma_t^2$ = **{missing:.3g}** per coordinate, against the data's {result.data_variance / 2:.3g} "
        "per coordinate: far more than the data has, so the noise-free chain ends with almost no spread at all "
        "(the metric above), while DDPM ends with the data's.\n\n"
        "**Why not at the last step?** At $t = 1$ the posterior is a point mass ($\\tilde\\beta_1 = 0$): $x_0$ is fully "
        f"determined. Adding $\\sigma_1 z$ there would only blur the final sample, with noise of std "
        f"$\\sqrt{{\\beta_1}}$ = {result.last_step_std:.3g} that no later step could remove.")


def later_steps_correct() -> None:
    st.header("4. Do later steps correct earlier errors?")
    st.markdown(
        f"{CORRECTION_CHAINS} chains run with the exact denoiser of the 2-D mixture ($T = {CORRECTION_T}$, linear β "
        "scaled with $T$) down to the chosen step. There each $x_t$ is pushed a fixed distance in a random direction "
        "and both copies finish the chain: DDPM with the **same** noise $z$ at every step for both copies, and DDIM "
        "with $\\eta = 0$. The curves are the mean distance between the copies.")
    columns = st.columns(3)
    perturb_step = widget("reverse_fix_step", columns[0])
    size = widget("reverse_fix_size", columns[1])
    seed = widget("reverse_fix_seed", columns[2])
    try:
        result = correction(int(perturb_step), float(size), int(seed))
    except ValueError as error:
        st.error(str(error))
        return
    fig = go.Figure()
    for i, (sampler, name) in enumerate((("ddpm", "DDPM (same z for both)"), ("ddim", "DDIM, η = 0"))):
        fig.add_trace(go.Scatter(x=result.steps, y=result.distance[sampler].tolist(), mode="lines", name=name,
                                 line=dict(color=COLORS[i])))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="t (paper's step; 0 = the final x₀)",
                      yaxis_title="mean ‖x′ − x‖", xaxis_autorange="reversed", legend=dict(orientation="h", y=-0.3))
    left, right = st.columns([3, 2])
    chart(fig, key="reverse_correction", where=left)
    ddpm, ddim = result.remaining("ddpm"), result.remaining("ddim")
    right.metric("left at x₀ · DDPM", f"{ddpm:.0%}", help="distance at the end / size of the push")
    right.metric("left at x₀ · DDIM η = 0", f"{ddim:.0%}", help="distance at the end / size of the push")
    right.markdown(
        f"DDPM keeps **{ddpm:.0%}** of the push, DDIM **{ddim:.0%}**. A DDPM step is $\\mu_\\theta(x_t, t) + \\sigma_t z$: "
        "the mean pulls $x_t$ towards the data, with slope below 1, and $z$ does not depend on $x_t$, so the two "
        "copies are drawn together step after step. DDIM with $\\eta = 0$ is a deterministic transport of the whole "
        "distribution; it treats the pushed $x_t$ as a legitimate starting point and carries it to a different $x_0$ "
        "(for data $\\mathcal N(\\mu, I)$ its slope $\\sqrt{\\bar\\alpha_{t-1}\\bar\\alpha_t} + "
        "\\sqrt{(1-\\bar\\alpha_{t-1})(1-\\bar\\alpha_t)}$ is almost exactly 1). That is why a learned model's "
        "small errors at one step do not pile up in DDPM, and why DDIM needs an accurate model more.")


def reproduce(settings: tuple, x0: float, t: int, noise_seed: int, x0_error: float, variance_interp: float) -> None:
    exports.reproduce_box(None, (
        "from core.diffusion.schedules import make_schedule\n"
        "from core.lab.reverse_step import kl_curves, reverse_step_1d\nfrom core.rng import seeded_noise\n\n"
        f"schedule = make_schedule{settings!r}\n"
        f"noise = float(seeded_noise((1,), {noise_seed})[0])\n"
        f"step = reverse_step_1d(schedule, {x0!r}, {t - 1}, noise, {x0_error!r}, {variance_interp!r})  # index t-1 = step {t}\n"
        "print(step.posterior_mean, step.posterior_variance, step.model_variances, step.kls)\n"
        f"steps, kls = kl_curves(schedule, {x0_error!r}, {variance_interp!r})"),
        "The numbers of section 1, from the repository root.")


# ------------------------------------------------------------------------------------------- page
def main() -> None:
    page = page_settings()
    page.restore()
    layout.title_row(intro, page)
    page.notices()
    settings = schedule_settings()
    if settings is None:
        page.sync_url()
        return
    st.header("1. The true posterior and the model's step")
    x0, t, noise_seed, x0_error, variance_interp = step_controls(settings[1])
    try:
        step, views, alpha_bar = one_step(settings, x0, t - 1, noise_seed, x0_error, variance_interp)
        kl_steps, kl_values = kl_lines(settings, x0_error, variance_interp)
    except ValueError as error:
        st.error(str(error))
        page.sync_url()
        return
    densities(step, t, alpha_bar)
    what_training_matches()
    kl_section(step, t, x0_error, variance_interp, kl_steps, kl_values)
    reproduce(settings, x0, t, noise_seed, x0_error, variance_interp)
    parameterizations(views, t, x0, alpha_bar)
    noise_added_back()
    later_steps_correct()
    page.sync_url()


main()
