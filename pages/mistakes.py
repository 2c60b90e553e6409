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
    short_linear_schedule,
    target_of_training,
)
from core.lab.small_steps import default_mixture
from ui.code import show_code
from ui.figures import COLORS, Layer, PointPanel, chart, point_panels
from ui.navigation import require_app_shell

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)


def wrong_right(wrong: str, right: str) -> None:
    """The claim and the computed truth side by side (plain boxes: an error box would read as a failure of the page)."""
    left, right_column = st.columns(2)
    left.container(border=True).markdown(f":red[**✗ Wrong.**] {wrong}")
    right_column.container(border=True).markdown(f":green[**✓ Right.**] {right}")


def eps_from_v_section() -> None:
    st.subheader("1. ε recovered from v with the wrong formula")
    x0 = load_dataset("mnist", split="test").data[:1].double()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    early, late = eps_from_v(x0, noise, 301), eps_from_v(x0, noise, 901)
    wrong_right(f"ε = √ᾱ·v + √(1−ᾱ)·x_t/√ᾱ: RMS error {early.wrong:.2f} at t = 301 and {late.wrong:.1f} at t = 901.",
                f"ε = √(1−ᾱ)·x_t + √ᾱ·v: RMS error {early.right:.0e} at t = 301 and {late.right:.0e} at t = 901.")
    st.caption(f"The wrong formula is off by √(1−ᾱ)(1/√ᾱ − 1)·x_t: {eps_from_v_factor(301):.3f}·x_t at t = 301 and "
               f"{eps_from_v_factor(901):.1f}·x_t at t = 901 (linear schedule, T = 1000); the RMS errors are for "
               "one held-out digit, seed 0, with the exact v.")
    show_code(eps_from_v)


def cosine_section() -> None:
    st.subheader("2. The cosine schedule without the square")
    result = cosine_without_square(500)
    wrong_right(f"f(t) = cos(((t/T + s)/(1 + s))·π/2): ᾱ_500 = {result.wrong:.3f} (T = 1000).",
                f"f(t) = cos²(…) (Nichol & Dhariwal eq. 17): ᾱ_500 = {result.right:.3f}.")
    show_code(cosine_without_square)


def short_schedule_section() -> None:
    st.subheader("3. \"T = 150 gives ᾱ_T ≈ 0.001\"")
    result = short_linear_schedule(150)
    wrong_right("The linear schedule β 1e-4…0.02 with T = 150 ends with almost pure noise.",
                f"It ends at ᾱ_T = {result['linear']:.3f}: √ᾱ_T = {result['linear'] ** 0.5:.2f} of x₀ is left. "
                f"Scaling β by 1000/T (Nichol & Dhariwal) gives ᾱ_T = {result['scaled']:.1e}.")
    show_code(short_linear_schedule)


def elbo_section() -> None:
    st.subheader("4. \"The ELBO weights small t less\"")
    ends = elbo_weight_ends()
    wrong_right("The ELBO puts little weight on small t; L_simple corrects that.",
                f"The other way round: the ELBO's weight on ‖ε − ε_θ‖² is {ends['small_t']:.3f} at t = 2 and "
                f"{ends['large_t']:.1e} at t = 1000 (σ² = β̃). L_simple's uniform weight down-weights small t "
                "relative to the ELBO (Ho et al. §3.4).")
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
                f"DDIM with η = 0 from 500 different x_T (exact denoiser of the eight-Gaussians toy, 50 steps): total "
                f"variance {result['total_variance']:.3f} vs the data's {result['data_variance']:.3f}. Only the "
                f"same x_T gives the same sample (variance {result['same_start_variance']:.1e} over 500 repeats).")
    reach = 1.15 * float(abs(result["data"]).max())
    panels = [PointPanel("data", [Layer("data", result["data"][:, 0], result["data"][:, 1], color="grey", size=3)], (-reach, reach)),
              PointPanel("DDIM, η = 0", [Layer("DDIM", result["samples"][:, 0], result["samples"][:, 1], color=COLORS[0],
                                               size=3)], (-reach, reach))]
    chart(point_panels(panels, height=320), key="mistakes_ddim")
    st.caption("What collapses is DDPM's update with the noise z simply dropped (see One reverse step): it throws away "
               "ε̂, which DDIM keeps.")
    show_code(deterministic_diversity)


def target_section() -> None:
    st.subheader("6. \"Training makes p_θ match q(x_{t−1}|x_t, x₀)\"")
    result = target_of_training(default_mixture(), 299, 0.3, 2000, torch.Generator().manual_seed(0))
    spread = float(result.posterior_means.std())
    wrong_right("The network learns the posterior q(x_{t−1}|x_t, x₀) of the example it was trained on.",
                f"The network never sees x₀. At x_t = {result.x_t} (t = 300, the 1-D mixture of \"Why small steps\") "
                f"the x₀ that could have produced it (E[x₀|x_t] = {result.expected_x0:.3f}, std "
                f"{float(result.x0_draws.std()):.3f}) each give a different posterior: their means spread with std "
                f"{spread:.4f}. The loss is minimised by x̂₀ = E[x₀|x_t], i.e. the mean μ̃_t(x_t, E[x₀|x_t]) = "
                f"{result.best_mean:.4f}, the average of those means ({float(result.posterior_means.mean()):.4f} over "
                "2,000 draws): p_θ targets q(x_{t−1}|x_t), the average of the posteriors, not any one of them, and even "
                f"the ideal model keeps an expected KL of {result.residual_kl:.2e} nats to q(x_{{t−1}}|x_t, x₀) here.")
    show_code(target_of_training)


def main() -> None:
    st.title("Common mistakes")
    st.markdown("Claims that appear in course material and notes, each computed the wrong way and the right way.")
    eps_from_v_section()
    cosine_section()
    short_schedule_section()
    elbo_section()
    deterministic_section()
    target_section()


main()
