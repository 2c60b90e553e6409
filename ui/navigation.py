"""The one page registry: app.py builds the navigation from it and the Home page its guide."""

from __future__ import annotations

from dataclasses import dataclass

from core import paths

ROOT = paths.app_root()  # the checkout, or the installed package's app files (core/paths.py)


@dataclass(frozen=True)
class PageEntry:
    file: str  # relative to the repository root
    title: str
    icon: str
    blurb: str  # what a student does there (the Home page's guide)
    stage: str = ""  # the part of the course it belongs to (STAGES)


# The course order: forward → posterior → parameterizations → objective → sampling → variance → DDIM.
STAGES = ("start", "forward process", "posterior", "parameterizations", "objective and training", "sampling",
          "variance and DDIM", "practice and review")

PAGES = (
    PageEntry("pages/home.py", "Home", ":material/home:", "the reverse process in a few formulas, and this guide.", "start"),
    PageEntry("pages/schedules.py", "Schedule lab", ":material/show_chart:",
              "compare β schedules, signal and noise weights, and see the forward process on a real digit.",
              "forward process"),
    PageEntry("pages/reverse_step.py", "One reverse step", ":material/undo:",
              "the true posterior vs the model's Gaussian, the three parameterizations, and why noise is added back.",
              "posterior"),
    PageEntry("pages/posterior.py", "Deriving the posterior", ":material/functions:",
              "the posterior $q(x_{t-1} \\mid x_t, x_0)$ derived in five lines, with your schedule's numbers filled in.",
              "posterior"),
    PageEntry("pages/small_steps.py", "Why small steps", ":material/stairs:",
              "the exact reverse step of a 1-D mixture against the best Gaussian, with 1000, 100 and 10 steps.",
              "posterior"),
    PageEntry("pages/denoise.py", "Denoise explorer", ":material/blur_on:",
              "scrub through $t$ and compare $x_t$, the true noise, the predicted noise and the predicted $x_0$; "
              "$\\varepsilon$ vs $x_0$ vs $v$.",
              "parameterizations"),
    PageEntry("pages/objective.py", "Training objective", ":material/target:",
              "Algorithm 1 on a real digit, the ELBO term by term, the weights $L_{\\text{simple}}$ drops, and bits/dim.",
              "objective and training"),
    PageEntry("pages/time_conditioning.py", "Time conditioning", ":material/schedule:",
              "the sinusoidal embedding of $t$, and what a model trained without it (or at one $t$) samples.",
              "objective and training"),
    PageEntry("pages/score.py", "The score view", ":material/explore:",
              "Tweedie's formula, and the per-sample score a training example supplies vs the true score.",
              "objective and training"),
    PageEntry("pages/train.py", "Train", ":material/model_training:",
              "train a small model in the background and watch the loss, the per-timestep loss and samples improve.",
              "objective and training"),
    PageEntry("pages/sample.py", "Sample", ":material/auto_awesome:",
              "run DDPM or DDIM with any number of steps and watch a sample emerge from noise.", "sampling"),
    PageEntry("pages/variances.py", "v, variances and DDIM", ":material/tune:",
              "$v$ at both ends of $t$, the error identities, the best $\\sigma^2$, $\\beta$ vs $\\tilde\\beta$ with few steps, "
              "DDIM, quality vs steps.",
              "variance and DDIM"),
    PageEntry("pages/playground_2d.py", "2-D playground", ":material/scatter_plot:",
              "train on 2-D toy data and compare against the exact (Bayes-optimal) denoiser.", "practice and review"),
    PageEntry("pages/mistakes.py", "Common mistakes", ":material/report:",
              "six claims from course notes, each computed the wrong way and the right way.", "practice and review"),
)
HOME = PAGES[0].file
APP = ROOT / "app.py"


def available_pages() -> list[PageEntry]:
    """The registered pages whose file exists (a trimmed deployment may leave some out)."""
    return [page for page in PAGES if (ROOT / page.file).exists()]


def require_app_shell() -> None:
    """Every page file calls this first: a page must run inside app.py's shell (navigation, sidebar, heartbeat).

    Streamlit 1.67 starts every server (and every AppTest run) in its old automatic multipage mode when a
    `pages/` folder sits next to app.py, and leaves it only once some run calls st.navigation. Until then (the
    first requests after a start, e.g. every open tab reconnecting after a restart) a deep link such as /train
    runs pages/train.py alone. Here that mode is switched off, as st.navigation itself does, and app.py runs in
    this same script run (so widget events of the run are kept): it draws the shell and, through st.navigation,
    this page. Then this outer run of the page stops.
    """
    import types

    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if not PagesManager.uses_pages_directory or ctx is None:
        return
    PagesManager.uses_pages_directory = False
    shell = types.ModuleType("__main__")
    shell.__dict__["__file__"] = str(APP)
    with ctx.run_with_active_hash(ctx.pages_manager.main_script_hash):
        exec(ctx.pages_manager.get_page_script_byte_code(str(APP)), shell.__dict__)  # noqa: S102
    st.stop()
