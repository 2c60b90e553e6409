"""Common mistakes about the reverse process: each one computed wrong and right, side by side.

Every number comes from core.lab.mistakes; this page lays out the numbers.
"""

from __future__ import annotations

import streamlit as st
import torch

from core.data.datasets import load_dataset
from core.data.toys import toy_mixture_parameters
from core.diffusion.oracle import GaussianMixture
from core.lab.mistakes import (
    cosine_without_square,
    deterministic_diversity,
    elbo_weight_ends,
    eps_from_v,
    eps_from_v_factor,
    score_from_v_factor,
    score_from_v_notes,
    short_linear_schedule,
    target_of_training,
)
from core.lab.score_forms import score_from_v
from core.lab.small_steps import default_mixture
from ui import layout
from ui.code import show_code
from ui.figures import COLORS, Layer, PointPanel, chart, point_panels
from ui.navigation import require_app_shell
from ui.settings import PageSettings, Preset, Setting, widget

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)


def wrong_right(wrong: str, right: str) -> None:
    """The claim and the computed truth side by side (plain boxes: an error box would read as a failure of the page)."""
    left, right_column = st.columns(2)
    left.container(border=True).markdown(f":red[**✗ Wrong.**] {wrong}")
    right_column.container(border=True).markdown(f":green[**✓ Right.**] {right}")


def eps_from_v_section() -> None:
    st.subheader("1. $\\varepsilon$ recovered from $v$ with the wrong formula")
    x0 = load_dataset("mnist", split="test").data[:1].double()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    early, late = eps_from_v(x0, noise, 301), eps_from_v(x0, noise, 901)
    wrong_right("$\\varepsilon = \\sqrt{\\bar\\alpha}\\,v + \\sqrt{1-\\bar\\alpha}\\,x_t/\\sqrt{\\bar\\alpha}$: RMS error "
                f"{early.wrong:.2f} at $t = 301$ and {late.wrong:.1f} at $t = 901$.",
                "$\\varepsilon = \\sqrt{1-\\bar\\alpha}\\,x_t + \\sqrt{\\bar\\alpha}\\,v$: RMS error "
                f"{early.right:.0e} at $t = 301$ and {late.right:.0e} at $t = 901$.")
    st.caption("The wrong formula is off by $\\sqrt{1-\\bar\\alpha}\\,(1/\\sqrt{\\bar\\alpha} - 1)\\,x_t$: "
               f"{eps_from_v_factor(301):.3f}$\\,x_t$ at $t = 301$ and {eps_from_v_factor(901):.1f}$\\,x_t$ at $t = 901$ "
               "(linear schedule, $T = 1000$); the RMS errors are for one held-out digit, seed 0, with the exact $v$.")
    show_code(eps_from_v)


def cosine_section() -> None:
    st.subheader("2. The cosine schedule without the square")
    result = cosine_without_square(500)
    wrong_right("$f(t) = \\cos\\big(\\frac{t/T + s}{1 + s}\\cdot\\frac{\\pi}{2}\\big)$: "
                f"$\\bar\\alpha_{{500}}$ = {result.wrong:.3f} ($T = 1000$).",
                f"$f(t) = \\cos^2(\\dots)$ (Nichol & Dhariwal eq. 17): $\\bar\\alpha_{{500}}$ = {result.right:.3f}.")
    show_code(cosine_without_square)


def short_schedule_section() -> None:
    st.subheader("3. \"$T = 150$ gives $\\bar\\alpha_T \\approx 0.001$\"")
    result = short_linear_schedule(150)
    wrong_right("The linear schedule $\\beta$ = 1e-4…0.02 with $T = 150$ ends with almost pure noise.",
                f"It ends at $\\bar\\alpha_T$ = {result['linear']:.3f}: $\\sqrt{{\\bar\\alpha_T}}$ = "
                f"{result['linear'] ** 0.5:.2f} of $x_0$ is left. Scaling $\\beta$ by $1000/T$ (Nichol & Dhariwal) gives "
                f"$\\bar\\alpha_T$ = {result['scaled']:.1e}.")
    show_code(short_linear_schedule)


def elbo_section() -> None:
    st.subheader("4. \"The ELBO weights small $t$ less\"")
    ends = elbo_weight_ends()
    wrong_right("The ELBO puts little weight on small $t$; $L_\\text{simple}$ corrects that.",
                "The other way round: the ELBO's weight on $\\lVert\\varepsilon - \\varepsilon_\\theta\\rVert^2$ is "
                f"{ends['small_t']:.3f} at $t = 2$ and {ends['large_t']:.1e} at $t = 1000$ ($\\sigma^2 = \\tilde\\beta$). "
                "$L_\\text{simple}$'s uniform weight down-weights small $t$ relative to the ELBO (Ho et al. §3.4).")
    show_code(elbo_weight_ends)


@st.cache_data(show_spinner="Sampling with DDIM, η = 0…", max_entries=4)
def diversity(n: int, steps: int, seed: int) -> dict:
    mixture = GaussianMixture(*toy_mixture_parameters("eight_gaussians"))
    result = deterministic_diversity(mixture, n, steps, torch.Generator().manual_seed(seed))
    result["data"] = mixture.sample(n, torch.Generator().manual_seed(seed + 1)).numpy()
    result["samples"] = result["samples"].numpy()
    return result


def deterministic_section() -> None:
    st.subheader("5. \"Deterministic sampling collapses\"")
    result = diversity(500, 50, 0)
    wrong_right("Without noise every sample ends in the same place.",
                f"DDIM with $\\eta = 0$ from 500 different $x_T$ (exact denoiser of the eight-Gaussians toy, 50 steps): "
                f"total variance {result['total_variance']:.3f} vs the data's {result['data_variance']:.3f}. Only the "
                f"same $x_T$ gives the same sample (variance {result['same_start_variance']:.1e} over 500 repeats).")
    reach = 1.15 * float(abs(result["data"]).max())
    panels = [PointPanel("data", [Layer("data", result["data"][:, 0], result["data"][:, 1], color="grey", size=3)], (-reach, reach)),
              PointPanel("DDIM, η = 0", [Layer("DDIM", result["samples"][:, 0], result["samples"][:, 1], color=COLORS[0],
                                               size=3)], (-reach, reach))]
    chart(point_panels(panels, height=320), key="mistakes_ddim")
    st.caption("What collapses is DDPM's update with the noise $z$ simply dropped (see One reverse step): it throws "
               "away $\\hat\\varepsilon$, which DDIM keeps.")
    show_code(deterministic_diversity)


def target_section() -> None:
    st.subheader("6. \"Training makes $p_\\theta$ match $q(x_{t-1} \\mid x_t, x_0)$\"")
    result = target_of_training(default_mixture(), 299, 0.3, 2000, torch.Generator().manual_seed(0))
    spread = float(result.posterior_means.std())
    wrong_right("The network learns the posterior $q(x_{t-1} \\mid x_t, x_0)$ of the example it was trained on.",
                f"The network never sees $x_0$. At $x_t$ = {result.x_t} ($t = 300$, the 1-D mixture of \"Why small "
                f"steps\") the $x_0$ that could have produced it ($\\mathbb E[x_0 \\mid x_t]$ = {result.expected_x0:.3f}, "
                f"std {float(result.x0_draws.std()):.3f}) each give a different posterior: their means spread with std "
                f"{spread:.4f}. The loss is minimised by $\\hat x_0 = \\mathbb E[x_0 \\mid x_t]$, i.e. the mean "
                f"$\\tilde\\mu_t(x_t, \\mathbb E[x_0 \\mid x_t])$ = {result.best_mean:.4f}, the average of those means "
                f"({float(result.posterior_means.mean()):.4f} over 2,000 draws): $p_\\theta$ targets "
                "$q(x_{t-1} \\mid x_t)$, the average of the posteriors, not any one of them, and even the ideal model "
                f"keeps an expected KL of {result.residual_kl:.2e} nats to $q(x_{{t-1}} \\mid x_t, x_0)$ here.")
    show_code(target_of_training)


def score_from_v_section() -> None:
    st.subheader("7. The score from $v$ with the wrong denominator")
    step = 11
    factor = score_from_v_factor(step)
    wrong_right("$\\nabla \\log q_t(x_t) = -\\big(\\sqrt{1-\\bar\\alpha_t}\\,x_t + \\sqrt{\\bar\\alpha_t}\\,\\hat v\\big)"
                "/(1-\\bar\\alpha_t)$ (the course notes).",
                "$\\hat\\varepsilon = \\sqrt{1-\\bar\\alpha_t}\\,x_t + \\sqrt{\\bar\\alpha_t}\\,\\hat v$ and "
                "$\\nabla \\log q_t = -\\hat\\varepsilon/\\sqrt{1-\\bar\\alpha_t}$, so the denominator is "
                "$\\sqrt{1-\\bar\\alpha_t}$. The notes' version is too large by $1/\\sqrt{1-\\bar\\alpha_t}$: "
                f"**{factor:.1f}×** at $t = {step}$ (linear schedule, $T = 1000$), {score_from_v_factor(500):.2f}× at "
                f"$t = 500$. A Langevin or predictor–corrector step with it would overshoot {factor:.0f}-fold at small $t$.")
    st.caption("Both formulas are in core.lab (the wrong one only for this page); the Score view page checks the right "
               "one against automatic differentiation of an exact density.")
    show_code(score_from_v_notes)
    show_code(score_from_v)


SECTIONS = {  # the "Show" choice -> (its title in the picker, the section)
    "eps_from_v": ("1. ε from v", eps_from_v_section),
    "cosine": ("2. cosine without the square", cosine_section),
    "short_schedule": ("3. T = 150 is not enough", short_schedule_section),
    "elbo": ("4. what the ELBO weights", elbo_section),
    "deterministic": ("5. deterministic sampling", deterministic_section),
    "target": ("6. what training matches", target_section),
    "score_from_v": ("7. the score from v", score_from_v_section),
}
SHOW = ("all", *SECTIONS)
PRESETS = [
    Preset("The ELBO weights small t more", {"mistakes_show": "elbo"},
           "The bound's weight at $t = 2$ is about 60× its weight at $t = 1000$: $L_\\text{simple}$ "
           "down-weights small $t$."),
    Preset("Deterministic sampling keeps the spread", {"mistakes_show": "deterministic"},
           "DDIM with $\\eta = 0$ from different $x_T$ keeps about the data's variance; only the same $x_T$ repeats a "
           "sample."),
    Preset("What training really matches", {"mistakes_show": "target"},
           "The network never sees $x_0$: it matches the average of the posteriors, $q(x_{t-1} \\mid x_t)$."),
]


def page_settings() -> PageSettings:
    return PageSettings("mistakes", [Setting("mistakes_show", "all", "choice", choices=SHOW, label="Show",
                                             format_func=lambda key: "all six" if key == "all" else SECTIONS[key][0],
                                             help="One mistake at a time for a lesson, or all six.")], PRESETS,
                        uses_model=False)  # the page does not use the active model: links leave it out


def intro() -> None:
    st.title("Common mistakes")
    st.markdown("Claims that appear in course material and notes, each computed the wrong way and the right way.")


def main() -> None:
    page = page_settings()
    page.restore()
    layout.title_row(intro, page)
    page.notices()
    shown = widget("mistakes_show")
    for key, (_title, section) in SECTIONS.items():
        if shown in ("all", key):
            section()
    page.sync_url()


main()
