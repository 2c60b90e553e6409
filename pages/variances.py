"""v, variances and DDIM, precisely: which end of t makes v look like ε or −x₀, the error identities between the
parameterizations, the best σ², why β vs β̃ matters with few steps, the DDIM update, and quality vs steps.

Every number comes from core.lab.variances; this page lays out widgets and figures.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from core.data.datasets import load_dataset
from core.lab.variances import (
    beta_ratio,
    beta_ratio_reach,
    ddim_sigma_squared,
    digits_problem,
    learned_variance_outputs,
    optimal_variance,
    prediction_errors,
    v_similarity,
    x0_error_curve,
)
from ui import catalog, layout
from ui.code import show_code
from ui.figures import COLORS, chart
from ui.navigation import require_app_shell
from ui.sampling_numbers import DDIM_LATEX, ddim_update_panel, quality_settings, quality_vs_steps_panel
from ui.settings import PageSettings, Preset, Setting, widget

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

ERROR_STEPS = (10, 50, 100, 200, 300, 500, 700, 900, 1000)
AB_RANGE, AB_PREV_RANGE, ETA_RANGE = (0.01, 0.98), (0.02, 0.99), (0.0, 1.0)
PRESETS = [
    Preset("η = 1: DDPM's variance", {"variances_eta": 1.0},
           "The fresh noise $\\sigma_t^2$ of the DDIM jump equals its $\\tilde\\beta$: DDIM with $\\eta = 1$ is DDPM "
           "with $\\sigma^2 = \\tilde\\beta$ on the respaced chain."),
    Preset("η = 0: no fresh noise", {"variances_eta": 0.0},
           "$\\sigma_t^2 = 0$ and $\\hat\\varepsilon$ is put back with weight $\\sqrt{1-\\bar\\alpha_{t-1}}$: "
           "the map $x_T \\to x_0$ is deterministic."),
]


def page_settings(T: int) -> PageSettings:
    return PageSettings("variances", [
        Setting("variances_t", min(T, 600), "int", 1, T, label="$t$ (paper's step)", widget="slider"),
        Setting("variances_ab", 0.3, "float", *AB_RANGE, label="$\\bar\\alpha_t$", step=0.01),
        Setting("variances_ab_prev", 0.6, "float", *AB_PREV_RANGE, label="$\\bar\\alpha_{t-1}$ (the step to jump to)", step=0.01),
        Setting("variances_eta", 0.0, "float", *ETA_RANGE, label="$\\eta$", step=0.1),
        *quality_settings("variances"),
    ], PRESETS)


@st.cache_resource(show_spinner=False, max_entries=2)
def digits() -> torch.Tensor:
    return load_dataset("mnist", split="test").data


def v_section(loaded: catalog.LoadedModel) -> None:
    st.subheader("1. $v$ at both ends of $t$")
    st.latex(r"v_t = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1-\bar\alpha_t}\,x_0\quad\text{(Salimans \& Ho 2022)}")
    schedule = loaded.diffusion.schedule
    x0 = digits()[:1]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    similarity = v_similarity(schedule, x0, noise)
    steps = list(range(1, schedule.T + 1))
    fig = go.Figure([go.Scatter(x=steps, y=similarity["eps"].tolist(), name="cos(v, ε)", line=dict(color=COLORS[0])),
                     go.Scatter(x=steps, y=similarity["minus_x0"].tolist(), name="cos(v, −x₀)", line=dict(color=COLORS[1]))])
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="t (paper's step)",
                      yaxis_title="cosine similarity", legend=dict(orientation="h", y=-0.3))
    chart(fig, key="variances_v_ends")
    st.markdown(f"**Small $t$** ($\\bar\\alpha_t \\to 1$): $v \\to \\varepsilon$ ($\\cos(v, \\varepsilon)$ = "
                f"{float(similarity['eps'][0]):.3f} at $t = 1$). **Large $t$** ($\\bar\\alpha_t \\to 0$): $v \\to -x_0$ "
                f"($\\cos(v, -x_0)$ = {float(similarity['minus_x0'][-1]):.3f} at $t = {schedule.T}$). One held-out digit "
                "and one $\\varepsilon$ (seed 0), this model's schedule.")
    show_code(v_similarity)


def identity_section(loaded: catalog.LoadedModel) -> None:
    st.subheader("2. One error, three sizes")
    st.markdown("The truth and a prediction both satisfy $x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}"
                "\\,\\varepsilon$. Subtracting and using $v = \\varepsilon/\\sqrt{\\bar\\alpha_t} - "
                "\\sqrt{(1-\\bar\\alpha_t)/\\bar\\alpha_t}\\,x_t$:")
    st.latex(r"\|v-\hat v\|^2 = \frac{\|\varepsilon-\hat\varepsilon\|^2}{\bar\alpha_t},\qquad "
             r"\|x_0-\hat x_0\|^2 = \frac{1-\bar\alpha_t}{\bar\alpha_t}\,\|\varepsilon-\hat\varepsilon\|^2,\qquad "
             r"\|v-\hat v\|^2 = \frac{\|x_0-\hat x_0\|^2}{1-\bar\alpha_t}")
    t_paper = int(widget("variances_t"))
    x0 = digits()[:4]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    e = prediction_errors(loaded.model, loaded.diffusion, x0, t_paper - 1, noise)
    st.table(pd.DataFrame([
        {"quantity": "‖ε − ε̂‖²/D", "measured": f"{e.eps:.6g}", "from ‖ε − ε̂‖²": f"{e.eps:.6g}"},
        {"quantity": "‖x₀ − x̂₀‖²/D", "measured": f"{e.x0:.6g}", "from ‖ε − ε̂‖²": f"{e.eps * (1 - e.alpha_bar) / e.alpha_bar:.6g}"},
        {"quantity": "‖v − v̂‖²/D", "measured": f"{e.v:.6g}", "from ‖ε − ε̂‖²": f"{e.eps / e.alpha_bar:.6g}"}]))
    st.caption(f"`{loaded.label}` on 4 held-out digits at $t = {t_paper}$ ($\\bar\\alpha_t$ = {e.alpha_bar:.4g}): each "
               "error measured from its own definition, then predicted from the $\\varepsilon$ error by the identities. "
               "So the same network trained on $\\varepsilon$, $x_0$ or $v$ minimises the same error with weights 1, "
               "$(1-\\bar\\alpha)/\\bar\\alpha$ and $1/\\bar\\alpha$ per $t$.")
    show_code(prediction_errors)


@st.cache_data(show_spinner="Measuring the model's x̂₀ error…", max_entries=8)
def optimal_curve(_loaded: catalog.LoadedModel, token: str) -> dict:
    schedule = _loaded.diffusion.schedule
    ts = torch.tensor([s - 1 for s in ERROR_STEPS if s <= schedule.T], dtype=torch.long)
    mean, se = x0_error_curve(_loaded.model, _loaded.diffusion, digits()[:8], ts, torch.Generator().manual_seed(2))
    full = torch.zeros(schedule.T, dtype=torch.float64)
    full[ts] = mean
    best = optimal_variance(schedule, full)[ts]
    return {"steps": (ts + 1).tolist(), "x0_error": mean.tolist(), "se": se.tolist(), "best": best.tolist(),
            "beta": schedule.betas[ts].tolist(), "beta_tilde": schedule.posterior_variance[ts].tolist()}


def variance_section(loaded: catalog.LoadedModel) -> None:
    st.subheader("3. The best $\\sigma^2$, and why $\\beta$ vs $\\tilde\\beta$ matters with few steps")
    st.markdown("For a mean $\\tilde\\mu_t(x_t, \\hat x_0)$, the $\\sigma^2$ that minimises the expected KL to the true posterior is "
                "(Bao et al. 2022, Analytic-DPM, in its per-x̂₀ form):")
    st.latex(r"\sigma_t^{*2} = \tilde\beta_t + \Big(\frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\Big)^2"
             r"\,\frac{\mathbb E\|x_0-\hat x_0\|^2}{D}")
    curve = optimal_curve(loaded, loaded.token)
    st.table(pd.DataFrame({"t": curve["steps"], "E‖x₀ − x̂₀‖²/D": [f"{v:.4f} ± {s:.4f}" for v, s in zip(curve["x0_error"], curve["se"])],
                           "$\\tilde\\beta_t$": [f"{v:.3e}" for v in curve["beta_tilde"]],
                           "$\\sigma^{*2}$": [f"{v:.3e}" for v in curve["best"]], "$\\beta_t$": [f"{v:.3e}" for v in curve["beta"]]}))
    st.caption(f"`{loaded.label}`; $\\hat x_0$ error on 8 held-out digits, one $\\varepsilon$ each (seed 2), ± the "
               "standard error. A perfect $\\hat x_0$ makes $\\tilde\\beta$ best; an imperfect one pushes the best "
               "$\\sigma^2$ up, toward $\\beta$.")
    st.markdown("$\\beta_t/\\tilde\\beta_t = (1-\\bar\\alpha_t)/(1-\\bar\\alpha_{t-1})$ at every step of the linear "
                "schedule visited with fewer steps:")
    fig = go.Figure()
    for i, steps in enumerate((1000, 100, 10)):
        ratio = beta_ratio(steps)
        fig.add_trace(go.Scatter(x=list(range(2, steps + 1)), y=ratio.tolist(), name=f"{steps} steps",
                                 mode="lines+markers" if steps <= 100 else "lines", line=dict(color=COLORS[i])))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="step of the respaced chain",
                      yaxis_title="β_t / β̃_t", yaxis_type="log", xaxis_type="log", legend=dict(orientation="h", y=-0.3))
    chart(fig, key="variances_ratio")
    many, few = beta_ratio_reach(1000), beta_ratio_reach(10)
    st.markdown(f"$\\beta$ and $\\tilde\\beta$ differ by more than 10 % at {many['count']} of {many['of']} steps with "
                f"1000 steps (only where $\\bar\\alpha_t$ > {many['lowest_alpha_bar']:.3f}, the last, almost clean steps), "
                f"but at {few['count']} of {few['of']} steps with 10 steps (down to $\\bar\\alpha_t$ = "
                f"{few['lowest_alpha_bar']:.2f}). So the choice hardly "
                "matters at T = 1000 and matters for a large part of a few-step chain (docs/benchmarks.md: DDPM at "
                "10 steps, FD 362 with β vs 153 with β̃).")
    show_code(optimal_variance, beta_ratio, beta_ratio_reach)


def learned_model() -> catalog.LoadedModel | None:
    """The active model if it learns its variance, else the first available image model that does."""
    active = catalog.active_model()
    if active is not None and active.diffusion.variance == "learned_range":
        return active
    for key in catalog.available_models():
        loaded = catalog.load_model(key)
        if loaded.is_image_model and loaded.diffusion.variance == "learned_range":
            return loaded
    return None


@st.cache_data(show_spinner="Running the learned-variance model…", max_entries=8)
def learned_rows(_loaded: catalog.LoadedModel, token: str) -> list[dict]:
    T = _loaded.diffusion.T
    ts = sorted({0, 1, min(9, T - 1), min(99, T - 1), T // 2, T - 1})
    r = learned_variance_outputs(_loaded.model, _loaded.diffusion, digits()[:8], ts, torch.Generator().manual_seed(3))
    return [{"t": t, "nu min": f"{lo:+.2f}", "nu max": f"{hi:+.2f}", "share of |nu| > 1": f"{share:.1%}",
             "smallest $\\sigma^2/\\tilde\\beta_t$": f"{math.exp(rmin):.3f}",
             "largest $\\sigma^2/\\beta_t$": f"{math.exp(rmax):.3f}"}
            for t, lo, hi, share, rmin, rmax in zip(r.steps, r.nu_min, r.nu_max, r.outside, r.log_ratio_min, r.log_ratio_max)]


def learned_section() -> None:
    st.subheader("4. The learned variance leaves its range")
    st.markdown("Improved DDPM's network outputs $\\nu$ per pixel, and $\\log\\sigma^2 = f\\log\\beta_t + "
                "(1-f)\\log\\tilde\\beta_t$ with $f = (\\nu+1)/2$ (eq. 15; the paper's $v$ is this $f$, not $\\nu$; both unrelated to "
                "$v$-prediction). Nothing clips $\\nu$ to [−1, 1]: $\\nu > 1$ extrapolates above $\\beta_t$, "
                "$\\nu < -1$ below $\\tilde\\beta_t$.")
    loaded = learned_model()
    if loaded is None:
        st.info("No model with a learned variance is available.")
        return
    st.table(pd.DataFrame(learned_rows(loaded, loaded.token)))
    st.caption(f"`{loaded.label}` on 8 held-out digits, one $\\varepsilon$ per step (seed 3). "
               "$\\sigma^2/\\tilde\\beta < 1$ and $\\sigma^2/\\beta > 1$ are the pixels outside the interpolation range.")
    show_code(learned_variance_outputs)


def ddim_section(loaded: catalog.LoadedModel) -> None:
    st.subheader("5. The DDIM update")
    st.latex(DDIM_LATEX)
    st.caption("Song, Meng & Ermon 2021, eqs. 12 and 16.")
    columns = st.columns(3)
    alpha_bar = widget("variances_ab", columns[0])
    alpha_bar_prev = widget("variances_ab_prev", columns[1])
    eta = widget("variances_eta", columns[2])
    if alpha_bar_prev <= alpha_bar:
        st.error(f"$\\bar\\alpha_{{t-1}}$ = {alpha_bar_prev} must be larger than $\\bar\\alpha_t$ = {alpha_bar}: the "
                 "jump goes toward less noise.")
        return
    sigma2 = ddim_sigma_squared(alpha_bar, alpha_bar_prev, eta)
    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)
    columns = st.columns(4)
    columns[0].metric("weight of $\\hat x_0$", f"{alpha_bar_prev ** 0.5:.4f}")
    columns[1].metric("weight of $\\hat\\varepsilon$", f"{max(1 - alpha_bar_prev - sigma2, 0) ** 0.5:.4f}")
    columns[2].metric("$\\sigma_t^2$ (fresh noise)", f"{sigma2:.4f}")
    columns[3].metric("$\\tilde\\beta$ of this jump", f"{beta_tilde:.4f}")
    st.markdown("$\\eta = 0$: no fresh noise; the predicted noise $\\hat\\varepsilon$ is put back with weight "
                "$\\sqrt{1-\\bar\\alpha_{t-1}}$, so the sample keeps the randomness of its $x_T$ and the map "
                "$x_T \\to x_0$ is deterministic. $\\eta = 1$: $\\sigma^2$ equals the $\\tilde\\beta$ of the jump, which "
                "is DDPM's step with $\\sigma^2 = \\tilde\\beta$ on the respaced chain.")
    show_code(ddim_sigma_squared)
    st.markdown(f"The weights of a 10-step DDIM run with $\\eta = {eta:g}$ on this model's schedule:")
    ddim_update_panel(loaded.diffusion.schedule, min(10, loaded.diffusion.T), float(eta), formula=False)


def quality_section(loaded: catalog.LoadedModel) -> None:
    st.subheader("6. Quality versus steps, measured")
    quality_vs_steps_panel(loaded, "variances")


def variance_choices_table() -> None:
    st.subheader("Fixed $\\beta$, fixed $\\tilde\\beta$ or learned: pros and cons")
    st.table([
        {"σₜ²": "βₜ (fixed_large)",
         "for": "Ho et al.'s choice; optimal for x₀ ~ N(0, I); nothing to learn",
         "against": "more noise than the posterior has when x₀ is nearly known (small t); a worse bound"},
        {"σₜ²": "β̃ₜ (fixed_small)",
         "for": "the true posterior variance given x₀; optimal for a single data point; DDIM with η = 1",
         "against": "less noise than p(x_{t−1} | x_t) needs when x₀ is uncertain (large t)"},
        {"σₜ²": "learned (Improved DDPM, eq. 15)",
         "for": "best log-likelihood; good samples with 10× fewer steps (Nichol & Dhariwal)",
         "against": "an extra output and L_hybrid to train; the interpolation weight is unclipped and can leave [β̃ₜ, βₜ]"},
    ])
    st.caption("Ho et al. §3.2 found βₜ and β̃ₜ give similar samples at T = 1000; the difference matters with few steps "
               "(section 3).")


def intro() -> catalog.LoadedModel | None:
    st.title("v, variances and DDIM, precisely")
    return catalog.require_active_model()


def main() -> None:
    loaded, share = layout.title_row(intro)
    if loaded is None:
        return
    if not loaded.is_image_model:
        st.info(f"The active model (`{loaded.label}`) works on 2-D points; choose an MNIST model in the sidebar.")
        return
    if digits_problem(loaded.data_shape):  # another image shape: no digits to run it on
        st.info(digits_problem(loaded.data_shape))
        return
    page = page_settings(loaded.diffusion.T)
    page.restore()
    with share:
        page.controls()
    page.notices()
    v_section(loaded)
    identity_section(loaded)
    variance_section(loaded)
    learned_section()
    variance_choices_table()
    ddim_section(loaded)
    quality_section(loaded)
    page.sync_url()


main()
