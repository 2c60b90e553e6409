"""Training objective: Algorithm 1 on a real digit, the ELBO term by term, the weights L_simple drops, the hybrid
loss, and the bits/dim of the shipped models.

Every number comes from core.lab.objective (on top of core.diffusion.gaussian_diffusion); this page lays out
widgets and figures. Steps are shown as the paper's t = 1..T (core's index t is step t+1).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from core.data.datasets import load_dataset
from core.data.images import to_uint8
from core.diffusion.gaussian_diffusion import HYBRID_VB_WEIGHT
from core.diffusion.losses import normal_kl
from core.diffusion.schedules import make_schedule
from core.lab.bayes_x0 import noise_amplification
from core.lab.objective import LN2, algorithm1_step, bound_terms, elbo_eps_weights, hybrid_weight_in_bits
from core.lab.variances import digits_problem
from ui import catalog, layout, runs
from ui.code import show_code
from ui.figures import COLORS, chart, picture_row
from ui.navigation import require_app_shell
from ui.settings import PageSettings, Preset, Setting, seed_setting, widget

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

MAX_BOUND_IMAGES = 16
BOUND_HINT = ("Press the button to evaluate the bound (measured: 1.75 s per digit and model with one torch thread on a "
              "quiet 2-core CPU, 5–10× longer on a busy one).")


@st.cache_resource(show_spinner=False, max_entries=2)
def digits(split: str) -> torch.Tensor:
    return load_dataset("mnist", split=split).data


def picture(x: torch.Tensor, low: float, high: float) -> np.ndarray:
    """One [1, H, W] tensor as a uint8 [H, W] picture, [low, high] mapped to black..white."""
    return to_uint8((2.0 * (x[0].double() - low) / (high - low) - 1.0).numpy())


def image_model() -> catalog.LoadedModel | None:
    loaded = catalog.require_active_model()
    if loaded is not None and loaded.is_image_model and digits_problem(loaded.data_shape):  # no digits of its shape
        st.info(digits_problem(loaded.data_shape))
        return None
    if loaded is not None and not loaded.is_image_model:
        st.info(f"The active model ({loaded.label}) works on 2-D points; choose an MNIST model in the sidebar to "
                "run Algorithm 1 on a digit.")
        return None
    return loaded

# ᾱ_T of the shipped T = 1000 models (Ho et al.'s linear schedule), for the t = T preset's text
SHIPPED_ALPHA_BAR_T = float(make_schedule("linear", 1000).alpha_bars[-1])


# ------------------------------------------------------------------------------------------ settings
def page_settings(T: int, n_digits: int) -> PageSettings:
    """Every widget of the page; t's bounds are the active model's 1..T."""
    presets = [
        Preset("$t = 1$: $x_t$ is almost $x_0$", {"objective_fix_t": True, "objective_t": 1},
               "At the first step $x_t$ is the digit with $\\sqrt{\\beta_1}$ = 0.01 of noise: the implied "
               "$\\hat x_0$ is sharp, but the $\\varepsilon$ to predict is hidden in tiny differences."),
        Preset(f"$t = T = {T}$: the last step", {"objective_fix_t": True, "objective_t": T},
               "The weight of $x_0$ in $x_t$ is $\\sqrt{\\bar\\alpha_T}$ "
               f"({math.sqrt(SHIPPED_ALPHA_BAR_T):.3f} for the shipped $T = 1000$ models): $x_t$ is almost pure noise, and "
               "the implied $\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_T}\\,\\hat\\varepsilon)/\\sqrt{\\bar\\alpha_T}$ "
               f"multiplies the $\\varepsilon$ error by {noise_amplification(SHIPPED_ALPHA_BAR_T):.0f}: amplified "
               "noise, not a blur (only the Bayes-optimal $\\hat x_0$ is a blur; see the Denoise page)."),
    ]
    return PageSettings("objective", [
        Setting("objective_digit", 7, "int", 0, n_digits - 1, label="Digit (held-out index)"),
        seed_setting("objective_seed", "Seed (draws $t$ and $\\varepsilon$)"),
        Setting("objective_fix_t", False, "bool", label="Choose $t$ myself"),
        Setting("objective_t", max(T // 4, 1), "int", 1, T, label="$t$ (paper's step)", widget="slider"),
        Setting("objective_bound_n", 4, "int", 2, MAX_BOUND_IMAGES, label="Digits ($n$)"),
        seed_setting("objective_bound_seed"),
    ], presets)


# ------------------------------------------------------------------------------------------ sections
def algorithm_one(loaded: catalog.LoadedModel) -> None:
    st.subheader("1. Algorithm 1, one step at a time")
    text, formula = st.columns([2, 3], vertical_alignment="center")
    text.markdown("Ho et al. 2020, Algorithm 1 (training), **repeat**: take $x_0$ from the data; "
                  "$t \\sim \\text{Uniform}\\{1,\\dots,T\\}$; $\\varepsilon \\sim \\mathcal N(0, I)$; take a gradient step on")
    with formula:
        st.latex(r"\nabla_\theta\,\big\|\varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + "
                 r"\sqrt{1-\bar\alpha_t}\,\varepsilon,\ t\big)\big\|^2 \qquad\text{(eq. 14, } L_\text{simple})")
    T = loaded.diffusion.T
    columns = st.columns(4)
    index = int(widget("objective_digit", columns[0]))
    seed = int(widget("objective_seed", columns[1]))
    fixed = widget("objective_fix_t", columns[2])
    if st.session_state.get("objective_t", 1) > T:  # another model with a shorter schedule: its last step
        st.session_state["objective_t"] = T
    t_paper = widget("objective_t", columns[3], disabled=not fixed)
    x0 = digits("test")[index:index + 1]
    generator = torch.Generator().manual_seed(seed)
    if not fixed:
        t_paper = int(torch.randint(0, T, (1,), generator=torch.Generator().manual_seed(seed))) + 1
    step = algorithm1_step(loaded.model, loaded.diffusion, x0, generator, t=torch.tensor([t_paper - 1]))
    target_name = {"eps": "ε", "x0": "x₀", "v": "v"}[loaded.diffusion.prediction]
    target_latex = {"eps": "\\varepsilon", "x0": "x_0", "v": "v"}[loaded.diffusion.prediction]
    alpha_bar = float(loaded.diffusion.schedule.alpha_bars[t_paper - 1])
    chart(picture_row({
        "x₀": picture(x0[0], -1, 1), "ε": picture(step.noise[0], -3, 3), "x_t": picture(step.x_t[0], -1, 1),
        f"target {target_name}": picture(step.target[0], -3, 3) if target_name != "x₀" else picture(step.target[0], -1, 1),
        f"prediction {target_name}̂": (picture(step.prediction[0], -3, 3) if target_name != "x₀"
                                       else picture(step.prediction[0], -1, 1)),
        "x̂₀ implied": picture(step.pred_x0[0], -1, 1)}, height=240), key="objective_pictures")
    left, right = st.columns([3, 1])
    left.markdown(f"**$t = {t_paper}$** {'(drawn from the seed)' if not fixed else ''}: $\\bar\\alpha_t$ = {alpha_bar:.4g}, "
                  f"so $x_t$ = {math.sqrt(alpha_bar):.4f}$\\,x_0$ + {math.sqrt(1 - alpha_bar):.4f}$\\,\\varepsilon$. The "
                  f"model predicts **${target_latex}$**; its loss is the mean over the 784 pixels of "
                  "(target − prediction)².")
    right.metric("loss of this digit", f"{float(step.loss[0]):.5f}",
                 help="$\\lVert\\text{target} - \\text{prediction}\\rVert^2 / 784$")
    st.caption("Pictures: $x_0$, $x_t$, $\\hat x_0$ on [−1, 1]; $\\varepsilon$ and $v$ on [−3, 3]. The real training loop "
               "averages this loss over a batch of 64 digits, each with its own $t$ and $\\varepsilon$, then takes one "
               "Adam step.")
    show_code(algorithm1_step)


@st.cache_data(show_spinner=False, max_entries=8)
def weight_curves(schedule_config: tuple) -> dict:
    from core.diffusion.schedules import make_schedule

    schedule = make_schedule(*schedule_config)
    return {name: elbo_eps_weights(schedule, variance).tolist() for name, variance in
            (("σ² = β̃_t", "fixed_small"), ("σ² = β_t", "fixed_large"))}


def elbo_weights(loaded: catalog.LoadedModel) -> None:
    st.subheader("2. $L_\\text{simple}$ versus the true bound: the weights it drops")
    st.markdown("The bound on $-\\log p_\\theta(x_0)$ (Ho et al. eq. 5) is a sum of one term per step:")
    st.latex(r"L = \underbrace{D_{KL}\big(q(x_T|x_0)\,\|\,p(x_T)\big)}_{L_T} + \sum_{t>1}\underbrace{D_{KL}\big("
             r"q(x_{t-1}|x_t,x_0)\,\|\,p_\theta(x_{t-1}|x_t)\big)}_{L_{t-1}}\ \underbrace{-\log p_\theta(x_0|x_1)}_{L_0}")
    st.markdown("Two Gaussians with the same variance $\\sigma_t^2$ differ only in their means, and with the "
                "$\\varepsilon$-form mean (eq. 11) every KL term is a weighted noise error (eq. 12):")
    st.latex(r"L_{t-1} = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}\,\big\|\varepsilon - "
             r"\varepsilon_\theta(x_t, t)\big\|^2 =: w_t\,\big\|\varepsilon-\varepsilon_\theta\big\|^2")
    schedule = loaded.diffusion.schedule
    config = schedule.to_config()
    key = (config["kind"], config["T"], config.get("beta_start") or 1e-4, config.get("beta_end") or 0.02,
           bool(config.get("scale_with_T")))
    if config["kind"] not in ("linear", "quadratic", "sigmoid", "cosine"):
        st.info("This model's schedule is custom; the weights below are shown for it directly.")
    curves = weight_curves(key)
    steps = list(range(1, schedule.T + 1))
    fig = go.Figure()
    for i, (name, values) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=steps[1:], y=values[1:], mode="lines", name=f"ELBO weight w_t, {name}",
                                 line=dict(color=COLORS[i])))
    fig.add_trace(go.Scatter(x=[2, schedule.T], y=[1, 1], mode="lines", name="L_simple: 1 for every t",
                             line=dict(color="black", dash="dash")))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="t (paper's step)",
                      yaxis_title="weight on ‖ε − ε_θ‖² per dimension", yaxis_type="log",
                      legend=dict(orientation="h", y=-0.3))
    left, right = st.columns([3, 2])
    chart(fig, key="objective_weights", where=left)
    small = curves["σ² = β̃_t"]
    with right:
        st.metric("$w_t$ at $t = 2$ ($\\sigma^2 = \\tilde\\beta$)", f"{small[1]:.3f}")
        st.metric(f"$w_t$ at $t = {schedule.T}$ ($\\sigma^2 = \\tilde\\beta$)", f"{small[-1]:.2e}")
        st.markdown(f"The bound weights the noise error at $t = 2$ **{small[1] / small[-1]:,.0f}×** more than at "
                    "$t = T$: **the ELBO weights small $t$ more**. $L_\\text{simple}$ sets every $w_t$ to 1, i.e. "
                    "relative to the bound it **down-weights small $t$** (the easy, almost-clean steps) and spends the network's "
                    "capacity on the harder large-t steps; Ho et al. found this gives better samples (§3.4), at the "
                    "price of a worse bound.")
        show_code(elbo_eps_weights)
    kl, weighted, check_step = _kl_check(loaded)
    st.caption(f"Check ($t$ = {check_step}, $\\sigma^2 = \\tilde\\beta$, $\\hat\\varepsilon = \\varepsilon + 0.1$ in "
               f"every pixel): the KL of the two Gaussians is {kl:.6g} nats/dim and $w_t \\cdot 0.1^2$ = {weighted:.6g}. "
               "This $w_t$ is the bound's weight of one step; $\\lambda$ in the next section is Improved DDPM's weight "
               "on the whole bound, another thing.")


def _kl_check(loaded: catalog.LoadedModel) -> tuple[float, float, int]:
    """(KL(q ‖ p) through normal_kl, w_t·δ², t) at t = 500 (or T if smaller) for a constant ε error δ = 0.1 (they must agree)."""
    schedule = loaded.diffusion.schedule
    i = min(499, schedule.T - 1)
    coef = float(schedule.betas[i] / (schedule.alphas[i].sqrt() * (1 - schedule.alpha_bars[i]).sqrt()))
    log_var = torch.tensor(float(schedule.posterior_variance[i])).log().double()
    kl = float(normal_kl(torch.tensor(0.0).double(), log_var, torch.tensor(coef * 0.1).double(), log_var))
    return kl, float(elbo_eps_weights(schedule)[i]) * 0.1**2, i + 1


def hybrid_loss() -> None:
    st.subheader("3. The hybrid loss of Improved DDPM")
    st.markdown("$L_\\text{simple}$ has no term for $\\sigma_t^2$, so a model that learns its variance (Nichol & Dhariwal 2021, "
                "eq. 15) adds the bound back with a small weight (eq. 16):")
    st.latex(r"L_\text{hybrid} = L_\text{simple} + \lambda\,L_\text{vlb},\qquad \lambda = 0.001,\qquad "
             r"L_\text{vlb} \approx T\cdot L_{t-1}\ \ (t \sim \text{Uniform})")
    st.markdown(
        "with the predicted mean frozen (stop-gradient) inside $L_\\text{vlb}$, so the bound trains only the variance. "
        f"**Units:** this app's core adds $L_\\text{{vlb}}$ in **nats**/dim with λ = {HYBRID_VB_WEIGHT:g} "
        "(`core/diffusion/gaussian_diffusion.py`, and the shipped `mnist_eps_learned` was trained so); Nichol & "
        "Dhariwal's reference code adds it in **bits**/dim with λ = 0.001. Since 1 nat = 1/ln 2 bits, core's weight "
        f"equals λ = {hybrid_weight_in_bits():.6f} on the bound in bits: **{LN2:.2f}× the reference weight**. The "
        "variance gradient is the only one $L_\\text{vlb}$ gives, so this scales how strongly the variance is pulled toward "
        "the bound; it does not change what the mean learns.")
    show_code(hybrid_weight_in_bits)


def bits_per_dim() -> None:
    st.subheader("4. Every term of the bound, and bits/dim of the shipped models")
    st.markdown("$-\\log p_\\theta(x_0) \\le L_T + \\sum L_{t-1} + L_0$, in nats per pixel; ÷ ln 2 gives **bits/dim** (the number "
                "likelihood papers report). This evaluates every term — T network calls per digit — for a few "
                "held-out digits, with one $\\varepsilon$ per (digit, $t$). Pixels are the 8-bit values scaled to [−1, 1], so $L_0$ is "
                "the discretized Gaussian decoder of Ho et al. §3.3.")
    models = {key: label for key, (label, _) in catalog.shipped_models().items()}
    columns = st.columns(3)
    n = int(widget("objective_bound_n", columns[0]))
    seed = int(widget("objective_bound_seed", columns[1]))
    pressed = columns[2].button("Compute for every shipped MNIST model", key="objective_bound_run")
    runs.cancelled_notice("objective_bound_cancel")
    if not (pressed or st.session_state.get("objective_bound_pressed")):  # load the models only once asked
        st.info(BOUND_HINT)
        return
    st.session_state["objective_bound_pressed"] = True
    loaded_models = {key: catalog.load_model(key) for key in models}
    image_keys = [key for key, loaded in loaded_models.items() if loaded.is_image_model]
    x0 = digits("test")[:n]
    jobs = [(("bound", loaded_models[key].token, n, seed), models[key],
             lambda progress, key=key: bound_terms(loaded_models[key].model, loaded_models[key].diffusion, x0,
                                                   torch.Generator().manual_seed(seed), progress=progress))
            for key in image_keys]
    found = runs.cached_runs(jobs, "objective_bound_cancel", "Bound") if pressed else \
        [runs.result_cache().get(job_key) for job_key, _, _ in jobs]
    if not jobs or any(hit is None for hit in found):
        st.info(BOUND_HINT)
        return
    results = {key: hit[0] for key, hit in zip(image_keys, found)}
    table = []
    for key, terms in results.items():
        mean, se = terms.bits_per_dim()
        table.append({"model": models.get(key, key), "bits/dim": f"{mean:.3f} ± {se:.3f}",
                      "$L_T$ [bits/dim]": f"{float(terms.prior.mean()) / LN2:.2e}",
                      "$\\sum L_{t-1}$ [bits/dim]": f"{float(terms.per_t[:, 1:].sum(1).mean()) / LN2:.3f}",
                      "$L_0$ [bits/dim]": f"{float(terms.per_t[:, 0].mean()) / LN2:.3f}", "digits": terms.n})
    st.table(pd.DataFrame(table))
    st.caption(f"$n$ = {n} held-out digits (the first {n} of the test split), seed {seed}; ± is the standard error over "
               "the digits (the spread between digits, not the noise of one digit's estimate).")
    fig = go.Figure()
    for i, (key, terms) in enumerate(results.items()):
        per_t = (terms.per_t.mean(0) / LN2).tolist()
        fig.add_trace(go.Scatter(x=list(range(1, len(per_t) + 1)), y=per_t, mode="lines", name=models.get(key, key),
                                 line=dict(color=COLORS[i % len(COLORS)])))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="t (paper's step; t = 1 is L_0)",
                      yaxis_title="term [bits/dim]", yaxis_type="log", legend=dict(orientation="h", y=-0.3))
    chart(fig, key="objective_terms")
    st.caption("Most of the bound sits at small $t$, where a tiny $\\sigma_t^2$ makes every error in the mean expensive.")
    show_code(bound_terms)


def intro() -> catalog.LoadedModel | None:
    st.title("Training objective")
    st.markdown("What is the network trained on? A regression: predict the noise that was added. Below, the training "
                "step on a real digit, then how that loss relates to the likelihood bound it came from.")
    return image_model()


def ddpm_table_two() -> None:
    st.subheader("5. What DDPM's Table 2 compares")
    st.markdown(
        "Ho et al.'s Table 2 (CIFAR-10, unconditional) is an ablation of **what the network predicts** and **which loss "
        "trains it**. Its rows predict either the posterior mean $\\tilde\\mu$ directly or the noise $\\varepsilon$, each "
        "trained on the true variational bound (fixed or learned diagonal $\\Sigma$) or on an unweighted MSE; "
        "$\\varepsilon$ with the unweighted MSE is $L_\\text{simple}$. The paper reports that predicting $\\varepsilon$ is "
        "about as good as predicting $\\tilde\\mu$ when both are trained on the true bound, and clearly better with "
        "$L_\\text{simple}$; that the unweighted MSE on $\\tilde\\mu$ trains poorly; and that learning $\\Sigma$ on the bound "
        "was unstable. The headline FID of 3.17 is the $\\varepsilon$ + $L_\\text{simple}$ row "
        "([source](https://intuitivepapers.ai/ddpm/)).\n\n"
        "**What it does not compare:** there is no $x_0$-prediction row. \"$\\varepsilon$-prediction beats "
        "$x_0$-prediction in FID\" is not in Table 2; the comparison it makes is $\\varepsilon$ versus $\\tilde\\mu$ "
        "(and the loss weighting). The Denoise explorer compares $\\varepsilon$-, $x_0$- and $v$-models of this app "
        "on the same $x_t$.")


def main() -> None:
    loaded, share = layout.title_row(intro)
    if loaded is None:
        return
    page = page_settings(loaded.diffusion.T, len(digits("test")))
    page.restore()
    with share:
        page.controls()
    page.notices()
    algorithm_one(loaded)
    elbo_weights(loaded)
    hybrid_loss()
    bits_per_dim()
    ddpm_table_two()
    page.sync_url()


main()
