"""Two panels shared by the Sample page and the "v, variances and DDIM" page: the DDIM update with the numbers of
a run, and quality versus steps measured on demand. Every number comes from core.lab.variances."""

from __future__ import annotations

import streamlit as st

from core.lab.variances import MAX_QUALITY_SAMPLES, SAMPLER_LABELS, SAMPLERS, ddim_step_table, quality_run
from ui import runs
from ui.code import show_code
from ui.settings import Setting, widget

DDIM_LATEX = (r"x_{t_\text{prev}} = \sqrt{\bar\alpha_{t_\text{prev}}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t_\text{prev}}-\sigma_t^2}"
              r"\,\hat\varepsilon + \sigma_t z,\qquad \sigma_t = \eta\sqrt{\frac{1-\bar\alpha_{t_\text{prev}}}{1-\bar\alpha_t}}"
              r"\sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_{t_\text{prev}}}}")


def ddim_update_panel(schedule, steps: int, eta: float, spacing: str = "leading", rows: int = 4,
                      formula: bool = True) -> None:
    """Song et al. eq. 12 (with σ of eq. 16) and the weights of the first and last `rows` steps of this run."""
    if formula:
        st.latex(DDIM_LATEX)
    st.caption("Song, Meng & Ermon 2021, eqs. 12 and 16. η = 0: deterministic (no fresh noise, ε̂ kept); η = 1: σ² is "
               "the β̃ of each jump, i.e. DDPM with σ² = β̃ on the visited steps.")
    import pandas as pd  # imported when first needed (ui/warm.py imports it in the background): ~3 s on a busy server

    table = ddim_step_table(schedule, steps, eta, spacing)
    shown = table if len(table) <= 2 * rows else table[:rows] + table[-rows:]
    st.table(pd.DataFrame([{"t → tₚᵣₑᵥ": f"{r['t']} → {r['t_prev']}", "ᾱₜ": f"{r['alpha_bar']:.4f}",
                            "weight of x̂₀": f"{r['x0_weight']:.4f}", "weight of ε̂": f"{r['eps_weight']:.4f}",
                            "σₜ": f"{r['sigma']:.4f}", "√β̃ of the jump": f"{r['jump_beta_tilde'] ** 0.5:.4f}"}
                           for r in shown]))
    if len(table) > 2 * rows:
        st.caption(f"The first and last {rows} of {len(table)} steps ($t_{{\\text{{prev}}}} = 0$ is the step to $x_0$).")
    show_code(ddim_step_table)


QUALITY_SIZES = (16, 32, 64, 128, MAX_QUALITY_SAMPLES)
QUALITY_STEPS = (5, 10, 20, 50, 100)
QUALITY_DEFAULTS = {"n": 64, "steps": [10, 50], "samplers": ["ddpm_beta", "ddpm_beta_tilde", "ddim_eta0"]}


def quality_settings(prefix: str) -> list[Setting]:
    """The quality panel's widgets as settings of the page that shows it (they persist and travel in its links)."""
    return [Setting(f"{prefix}_quality_n", QUALITY_DEFAULTS["n"], "int", choices=QUALITY_SIZES, label="Samples per run"),
            Setting(f"{prefix}_quality_steps", QUALITY_DEFAULTS["steps"], "ints", choices=QUALITY_STEPS, label="Step counts"),
            Setting(f"{prefix}_quality_samplers", QUALITY_DEFAULTS["samplers"], "choices", choices=tuple(SAMPLERS),
                    label="Samplers", format_func=SAMPLER_LABELS.get)]


def quality_vs_steps_panel(loaded, prefix: str) -> None:
    """Sample and measure FD, IS and seconds for chosen samplers and step counts: on a button, one run after the
    other under a progress box with Cancel (ui/runs.py), each run kept in the server-wide result cache."""
    columns = st.columns(3)
    n = int(widget(f"{prefix}_quality_n", columns[0]))
    steps = widget(f"{prefix}_quality_steps", columns[1])
    samplers = widget(f"{prefix}_quality_samplers", columns[2])
    pressed = st.button("Sample and measure", key=f"{prefix}_quality_run", disabled=not (steps and samplers))
    cancel_key = f"{prefix}_quality_cancel"
    runs.cancelled_notice(cancel_key)
    jobs = [(("quality", loaded.token, sampler, count, n), f"{SAMPLER_LABELS[sampler]}, {count} steps",
             lambda progress, sampler=sampler, count=count: quality_run(
                 loaded.model, loaded.diffusion, sampler, count, loaded.data_shape, n, 0, progress=progress,
                 quality=_mnist_quality)) for sampler in samplers for count in sorted(steps)]
    found = runs.cached_runs(jobs, cancel_key, "Quality vs steps") if pressed else \
        [runs.result_cache().get(key) for key, _, _ in jobs]
    if not jobs or any(hit is None for hit in found):
        st.info("Press the button: every run samples from the same seed (x̂₀ clipped), and FD and IS are computed with "
                "the shipped MNIST classifier against the 500 held-out digits.")
        return
    import pandas as pd

    st.table(pd.DataFrame([{"sampler": r["sampler"], "steps": r["steps"], "FD": f"{r['fd']:.1f}",
                            "IS": f"{r['inception_score']:.2f}", "seconds": f"{r['seconds']:.2f}", "n": r["n"]}
                           for r, _ in found]))
    st.caption(f"{loaded.label}; n = {n} samples per run, seed 0; seconds: sampling only, measured when the run was "
               "computed. FD is biased upward at small n: compare rows with the same n only (docs/benchmarks.md has n = 256).")
    show_code(quality_run)


def _mnist_quality(samples) -> dict:
    from core.metrics.mnist import mnist_quality

    return mnist_quality(samples)
