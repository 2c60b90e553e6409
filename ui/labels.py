"""The words the pages use for core's options and numbers: one table per option, keyed by core's names.

Every page and ui module names predictions, variances, schedules, toys and fields from here (as
`format_func=VARIANCE_LABELS.get` and the like), so a choice reads the same everywhere. No Streamlit here.
"""

from __future__ import annotations

from core.data.toys import TOY_NAMES
from core.lab.schedule_lab import TerminalNoise
from core.sampling import SamplerSettings

PREDICTION_LABELS = {"eps": "ε (noise)", "x0": "x₀ (clean data)", "v": "v = √ᾱ·ε − √(1−ᾱ)·x₀"}
PREDICTION_SYMBOLS = {"eps": "ε", "x0": "x₀", "v": "v"}
# Option labels appear where Streamlit renders no LaTeX (select boxes, radio options, table cells) as well as in
# charts, so they are plain Unicode: "βₜ" with a real subscript t, never "β_t".
VARIANCE_LABELS = {  # σ_t² of the reverse step (Nichol & Dhariwal eq. 15 for the learned one)
    "fixed_large": "σ² = βₜ (fixed_large)",
    "fixed_small": "σ² = β̃ₜ (fixed_small)",
    "learned_range": "σ² learned (nu: −1 → β̃ₜ, +1 → βₜ, unclipped; learned_range)",
}
NOISE_LEVEL_LABELS = {  # how training draws t (core.training.config NOISE_LEVELS)
    "uniform": "t uniform (Ho et al. 2020)",
    "lognormal": "log-normal σₜ (Karras et al. 2022)",
}
SCHEDULE_LABELS = {
    "linear": "linear (Ho et al. 2020)",
    "quadratic": "quadratic",
    "sigmoid": "sigmoid",
    "cosine": "cosine (Nichol & Dhariwal 2021)",
}
TOY_LABELS = {"swiss_roll": "Swiss roll", "two_moons": "Two moons", "eight_gaussians": "Eight Gaussians",
              "checkerboard": "Checkerboard", "gaussian_mixture": "Gaussian mixture (4, anisotropic)"}
DATASET_LABELS = {
    "mnist": "MNIST subset (4,500 real digits, shipped)",
    "mnist_full": "MNIST (full, from RDL_DATA_DIR)",
    "fashion_mnist": "Fashion-MNIST (from RDL_DATA_DIR)",
    **{name: f"2-D: {TOY_LABELS[name]}" for name in TOY_NAMES},
}
FIELD_LABELS = {"eps": "ε̂ (predicted noise)", "score": "score ∇log qₜ = −ε̂/√(1−ᾱₜ)"}


def sampler_label(settings: SamplerSettings) -> str:
    """One line naming a sampler run: "DDIM η=0, 50 steps" or "DDPM fixed_small, 1000 steps"."""
    if settings.method == "ddim":
        return f"DDIM η={settings.eta:g}, {settings.steps} steps"
    return f"DDPM {settings.variance}, {settings.steps} steps"


def terminal_noise_text(report: TerminalNoise) -> str | None:
    """A warning (Markdown) when x_T still carries more than the threshold of x_0's amplitude, else None:
    the numbers of core.lab.schedule_lab.terminal_noise and the fixes that apply, each with the √ᾱ_T it reaches."""
    if report.is_pure_noise:
        return None
    lines = [
        f"**$x_T$ is far from pure noise:** $\\sqrt{{\\bar\\alpha_T}}$ = {report.signal:.3g}, so {100 * report.signal:.1f} % of "
        f"the digit's amplitude is still in $x_T$ (terminal SNR $\\bar\\alpha_T/(1-\\bar\\alpha_T)$ = {report.snr:.3g}; pure "
        f"noise would need $\\sqrt{{\\bar\\alpha_T}}$ ≤ {report.threshold:g}). Sampling starts from pure noise "
        "$\\mathcal N(0, I)$, which the model never saw during training at $t = T$.",
        "",
        "Fixes:",
    ]
    root = "$\\sqrt{\\bar\\alpha_T}$"
    if report.scaled_signal is not None:
        lines.append(f"- turn on **scale-with-T** (β range × 1000/T): {root} = {report.scaled_signal:.3g}")
    elif report.scaling_impossible:
        lines.append(f"- scale-with-T is impossible here: $\\beta_{{\\text{{end}}}}$ × 1000/T would reach 1 (T = {report.T} "
                     "is too small)")
    if report.reference_T_signal is not None:
        lines.append(f"- use a **larger T**: with T = 1000, {root} = {report.reference_T_signal:.3g}")
    if report.beta_end is not None:
        lines.append(f"- raise **β end** (now {report.beta_end:g}): the total noise added grows with $\\sum_t \\beta_t$")
    if report.cosine_signal is not None:
        lines.append(f"- use the **cosine** schedule (Nichol & Dhariwal eq. 17): {root} = {report.cosine_signal:.3g} "
                     f"with T = {report.T}")
    else:  # cosine always ends at ≈ 0; only a hand-made or respaced schedule could get here
        lines.append("- rebuild the schedule so that $\\bar\\alpha_T \\approx 0$")
    return "\n".join(lines)
