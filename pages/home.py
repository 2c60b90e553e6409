"""Home: what the reverse process is, the key formulas, and a guide through the pages in the course's order."""

import streamlit as st

from ui.navigation import HOME, STAGES, available_pages, require_app_shell

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)


def introduction() -> None:
    st.title("Reverse Diffusion Lab")
    st.markdown(
        "A diffusion model learns to **undo noise**. The *forward process* slowly destroys an image by adding "
        "Gaussian noise over $T$ steps until only noise is left. The *reverse process* starts from pure noise "
        "and removes a little of it at every step, using a network that looks at the noisy image $x_t$ and the "
        "step $t$. Every page of this lab shows one part of that reverse process with real numbers you can change.")


def formulas() -> None:
    # Formulas are full width: in half-width columns the longer ones are cut off on a laptop screen.
    st.header("The reverse process in formulas")
    st.subheader("Forward process")
    st.markdown("Noise is added with a schedule $\\beta_1, \\dots, \\beta_T$; with "
                "$\\alpha_t = 1-\\beta_t$ and $\\bar\\alpha_t = \\prod_{s\\le t}\\alpha_s$ any step can be reached in one jump:")
    st.latex(r"q(x_t \mid x_0) = \mathcal{N}\!\left(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\,I\right),\qquad "
             r"x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon")
    st.markdown("Given $x_0$, one step back is Gaussian too (the *posterior*):")
    st.latex(r"q(x_{t-1}\mid x_t, x_0) = \mathcal{N}\!\left(\tilde\mu_t,\ \tilde\beta_t I\right),\quad "
             r"\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}x_0 + "
             r"\frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t,\quad "
             r"\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t")
    st.subheader("Reverse process")
    st.markdown("The network does not know $x_0$, so it predicts it (or the noise $\\epsilon$, or $v$) and "
                "plugs the prediction into the posterior:")
    st.latex(r"p_\theta(x_{t-1}\mid x_t) = \mathcal{N}\!\left(\mu_\theta(x_t,t),\ \sigma_t^2 I\right),\qquad "
             r"\mu_\theta = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t,t)\Big)")
    st.markdown("The variance is a choice: $\\sigma_t^2=\\beta_t$ or $\\sigma_t^2=\\tilde\\beta_t$, the upper and lower "
                "bounds on the reverse-process entropy for data with unit variance per coordinate (Ho et al. §3.2: "
                "optimal for $x_0 \\sim \\mathcal N(0, I)$ and for a single data point), or learned (Improved DDPM, "
                "eq. 15) through an extra network output $\\nu$. Eq. 15 mixes with a weight the paper calls $v$; "
                "that weight is $(\\nu+1)/2$, not $\\nu$ (the reference code's raw output is $\\nu$), and neither "
                "is the $v$ of $v$-prediction. "
                "$\\nu \\in [-1, 1]$ interpolates between the two; the output is not clipped, so $\\nu > 1$ gives more "
                "than $\\beta_t$ and $\\nu < -1$ less than $\\tilde\\beta_t$:")
    st.latex(r"\log\sigma_t^2 = \tfrac{\nu+1}{2}\log\beta_t + \big(1-\tfrac{\nu+1}{2}\big)\log\tilde\beta_t")
    st.markdown("**Sampling** starts at $x_T\\sim\\mathcal N(0,I)$ and repeats "
                "$x_{t-1} = \\mu_\\theta(x_t,t) + \\sigma_t z$, $z\\sim\\mathcal N(0,I)$ (no noise at the last step). "
                "DDIM takes bigger, optionally deterministic, jumps with the same network.")


def guide() -> None:
    st.header("The course, page by page")
    st.markdown("In the order of the course: forward process → posterior → parameterizations → objective and training → "
                "sampling → variance and DDIM, then practice and review.")
    pages = [page for page in available_pages() if page.file != HOME]
    for stage in STAGES:
        in_stage = [page for page in pages if page.stage == stage]
        if not in_stage:
            continue
        st.markdown(f"**{stage[0].upper() + stage[1:]}**")
        for page in in_stage:
            column_link, column_text = st.columns([1, 4])
            with column_link:
                try:
                    st.page_link(page.file, label=page.title)
                except Exception:  # st.page_link needs the navigation of app.py; standalone runs show plain text
                    st.markdown(f"**{page.title}**")
            column_text.markdown(page.blurb)
    st.caption("References: Ho, Jain & Abbeel (2020) *Denoising Diffusion Probabilistic Models*; "
               "Nichol & Dhariwal (2021) *Improved DDPM*; Song, Meng & Ermon (2021) *DDIM*.")


def where_this_leads() -> None:
    st.header("Where this leads")
    st.markdown(
        "- **The SDE view** (Song et al. 2021): as $T \\to \\infty$ the forward chain becomes a stochastic differential "
        "equation, DDPM its reverse-time SDE, and DDIM with $\\eta = 0$ the probability-flow ODE.\n"
        "- **Predictor–corrector**: after each reverse step (predictor), a few Langevin steps with the score "
        "$-\\hat\\varepsilon/\\sqrt{1-\\bar\\alpha_t}$ (corrector) pull $x_t$ back onto the right marginal.\n"
        "- **Distillation** (Salimans & Ho 2022): train a student to do two teacher DDIM steps in one, repeatedly, "
        "down to a handful of steps.")


def main() -> None:
    introduction()
    guide()  # before the formulas: its first links are above the fold on a 1280×720 projector
    formulas()
    where_this_leads()


main()
