"""Schedule lab: how the choice of β_1..β_T shapes the forward process, and when x_T is not pure noise.

Every number comes from core.diffusion.schedules / core.lab.schedule_lab / core.lab.signal; this page lays out widgets
and figures and caches. Steps are shown as the paper's t = 1..T (core's index t is step t+1).
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
import torch

from core.data.datasets import load_dataset
from core.data.images import to_uint8
from core.diffusion.schedules import SCHEDULE_KINDS, make_schedule
from core.lab.forward_closed_form import composed_moments, run_chain
from core.lab.schedule_lab import forward_snapshots, schedule_curves, terminal_noise
from core.lab.signal import SIGNAL_GONE, noise_only_fraction, signal_gone_step
from core.rng import seeded_noise
from ui import exports, layout
from ui.figures import COLORS, chart, honest_axes, picture_row, side_by_side
from ui.labels import SCHEDULE_LABELS, terminal_noise_text
from ui.navigation import require_app_shell
from ui.settings import PageSettings, Preset, Setting, seed_setting, widget

require_app_shell()  # a deep link on a fresh server must still get the sidebar (ui/navigation.py)

T_RANGE = (10, 1000)
BETA_START_RANGE, BETA_END_RANGE = (1e-6, 0.5), (1e-6, 0.999)
DASHES = {"A": "solid", "B": "dash"}
DEFAULT_KINDS = {"A": "linear", "B": "cosine"}
SIGNAL_LABEL = "$\\sqrt{\\bar\\alpha_T}$ (signal left in $x_T$)"
SNR_LABEL = "terminal SNR $\\bar\\alpha_T/(1-\\bar\\alpha_T)$"
EARLY_LOSS = 0.5  # warn when the signal is gone before this fraction of the T steps
PRESETS = [
    Preset("T=100 without scaling: why $x_T$ is not noise", {"schedules_a_T": 100},
           "Ho's β range with only 100 steps: 60 % of the digit is still in $x_T$."),
    Preset("T=100 with scaling", {"schedules_a_T": 100, "schedules_a_scale": True},
           "Nichol & Dhariwal's fix: β × 1000/T keeps $x_T$ pure noise."),
    Preset("β up to 0.999: the signal is gone after a few steps", {"schedules_a_beta_end": 0.999},
           "$x_T$ is pure noise, but most of the steps denoise nothing but noise."),
    Preset("Linear vs cosine", {"schedules_compare": True}, "Where each schedule spends its steps."),
]


# ---------------------------------------------------------------------------------------- caching
@st.cache_data(show_spinner=False, max_entries=64)
def curves_and_warning(settings: tuple) -> tuple[dict, float, float, str | None, int | None, float]:
    """(curves as lists, √ᾱ_T, terminal SNR, warning or None, step where the signal is gone, fraction of steps
    after it) for (kind, T, β_start, β_end, scale_with_T)."""
    schedule = make_schedule(*settings)
    curves = {name: values.tolist() for name, values in schedule_curves(schedule).items()}
    return (curves, schedule.terminal_signal, schedule.terminal_snr, terminal_noise_text(terminal_noise(schedule)),
            signal_gone_step(schedule), noise_only_fraction(schedule))


@st.cache_resource(show_spinner=False)
def held_out_digits():
    """The 500 held-out MNIST test digits (loaded once per server)."""
    return load_dataset("mnist", split="test")


@st.cache_data(show_spinner=False, max_entries=64)
def snapshot_pictures(settings: tuple, digit: int, noise_seed: int) -> dict:
    """{"t = k": uint8 picture} of x_t at t = 0, T/4, T/2, 3T/4, T for one digit and one noise draw."""
    x0 = held_out_digits().data[digit]
    steps, frames = forward_snapshots(make_schedule(*settings), x0, seeded_noise(x0.shape, noise_seed))
    return {f"t = {step}": to_uint8(frame[0]).numpy() for step, frame in zip(steps, frames)}


# ---------------------------------------------------------------------------------------- settings
def page_settings() -> PageSettings:
    per_schedule = []
    for name in ("a", "b"):
        per_schedule += [
            Setting(f"schedules_{name}_kind", DEFAULT_KINDS[name.upper()], "choice", choices=SCHEDULE_KINDS, label="Kind",
                    format_func=SCHEDULE_LABELS.get),
            Setting(f"schedules_{name}_T", 1000, "int", *T_RANGE, label="T (number of steps)", step=10),
            Setting(f"schedules_{name}_beta_start", 1e-4, "float", *BETA_START_RANGE, label="$\\beta_{\\text{start}}$",
                    widget="number_input", step=1e-4, format="%.2e"),
            Setting(f"schedules_{name}_beta_end", 0.02, "float", *BETA_END_RANGE, label="$\\beta_{\\text{end}}$",
                    widget="number_input", step=1e-3, format="%.3e"),
            Setting(f"schedules_{name}_scale", False, "bool", label="Scale β with T",
                    help="Multiplies β by 1000/T (Nichol & Dhariwal's rule): keeps the total noise $\\sum_t \\beta_t$ roughly fixed "
                         "when T ≠ 1000."),
        ]
    last = len(held_out_digits().data) - 1
    return PageSettings("schedules", [
        Setting("schedules_compare", False, "bool", label="Compare with a second schedule", widget="toggle"), *per_schedule,
        Setting("schedules_x_axis", "t", "choice", choices=("t", "t/T"), label="x axis", widget="radio", horizontal=True,
                help="t/T puts schedules with different T on the same scale."),
        Setting("schedules_log_beta", True, "bool", label="log scale for $\\beta_t$ and $\\tilde\\beta_t$"),
        Setting("schedules_digit", 0, "int", 0, last, label=f"Held-out MNIST digit (0…{last})"),
        seed_setting("schedules_noise_seed", "Noise seed"),
    ], PRESETS)


def schedule_controls(name: str) -> tuple:
    """Widgets for one schedule; returns (kind, T, β_start, β_end, scale_with_T)."""
    key = f"schedules_{name.lower()}"
    kind = widget(f"{key}_kind")
    cosine = kind == "cosine"
    left, right = st.columns(2)
    T = widget(f"{key}_T", left)
    scale = widget(f"{key}_scale", right, disabled=cosine)
    beta_start = widget(f"{key}_beta_start", left, disabled=cosine)
    beta_end = widget(f"{key}_beta_end", right, disabled=cosine)
    if cosine:
        st.caption("The cosine schedule defines $\\bar\\alpha_t$ directly (Nichol & Dhariwal eq. 17); β range and "
                   "scaling do not apply.")
    return kind, int(T), float(beta_start), float(beta_end), bool(scale)


def describe(settings: tuple) -> str:
    kind, T, beta_start, beta_end, scale = settings
    if kind == "cosine":
        return f"cosine, T={T}"
    return f"{kind} {beta_start:g}…{beta_end:g}{' ×1000/T' if scale else ''}, T={T}"


def line_figure(title: str, lines: list, x_title: str, y_title: str, log_y: bool = False) -> go.Figure:
    """lines: (name, x, y, color, dash). Hover shows the exact values."""
    fig = go.Figure()
    for name, x, y, color, dash in lines:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=color, dash=dash),
                                 hovertemplate="%{x:.4g}: %{y:.5g}"))
    fig.update_layout(title=title, height=330, margin=dict(l=10, r=10, t=50, b=10), xaxis_title=x_title,
                      yaxis_title=y_title, yaxis_type="log" if log_y else "linear", hovermode="x unified",
                      legend=dict(orientation="h", y=-0.3))
    return honest_axes(fig)


# ---------------------------------------------------------------------------------------- sections
def intro() -> None:
    st.title("Schedule lab")
    st.markdown(
        "The forward process mixes a clean $x_0$ with noise: $x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + "
        "\\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$, $\\bar\\alpha_t = \\prod_{s \\le t}(1-\\beta_s)$ (Ho et al. 2020, eq. 4). "
        "The schedule decides how fast the signal fades, and whether any is left at $t = T$.")


def choose_schedules(compare: bool) -> dict:
    chosen = {}
    for name in ("A", "B") if compare else ("A",):
        with st.container(border=compare):
            if compare:
                st.markdown(f"**Schedule {name}**")
            chosen[name] = schedule_controls(name)
    return chosen


def compute(chosen: dict, compare: bool) -> dict:
    results = {}
    for name, settings in chosen.items():
        try:
            results[name] = (settings, *curves_and_warning(settings))
        except ValueError as error:
            st.error(f"Schedule {name}: {error}" if compare else str(error))
    return results


def pure_noise_verdict(results: dict, compare: bool) -> None:
    st.subheader("Is $x_T$ pure noise?")
    for column, (name, (settings, _curves, signal, snr, warning, gone, wasted)) in zip(st.columns(len(results)), results.items()):
        with column:
            if compare:
                st.markdown(f"**{name}: {describe(settings)}**")
            left, right = st.columns(2)
            left.metric(SIGNAL_LABEL, f"{signal:.3g}")
            right.metric(SNR_LABEL, f"{snr:.3g}")
            if warning is not None:
                st.warning(warning)
            elif gone is not None and wasted > EARLY_LOSS:
                st.warning(f"**$x_T$ is pure noise, but the signal is gone after {gone} of {settings[1]} steps:** from "
                           f"t = {gone} on, $\\sqrt{{\\bar\\alpha_t}} \\le {SIGNAL_GONE:g}$, so {100 * wasted:.0f} % of the "
                           "steps turn pure noise into pure noise and teach the model nothing about the data. "
                           "This is what the cosine schedule fixes (Nichol & Dhariwal 2021, §3.2): lower $\\beta_{{\\text{{end}}}}$, or "
                           "use **cosine**.")
            else:
                st.success(f"$x_T$ is essentially pure noise: only {100 * signal:.2g} % of $x_0$'s amplitude is left.")


def curve_figures(results: dict, compare: bool, axis: str, log_beta: bool) -> list:
    x_key, x_title = ("t", "t (paper's step)") if axis == "t" else ("t_over_T", "t/T")

    def lines_of(*series):
        """Lines (label, curve name, color index) for every chosen schedule (A solid, B dashed)."""
        out = []
        for name, (_settings, curves, *_rest) in results.items():
            suffix = f" · {name}" if compare else ""
            for label, key, color in series:
                out.append((label + suffix, curves[x_key], curves[key], COLORS[color], DASHES[name]))
        return out

    return [
        line_figure("Noise per step: β_t and β̃_t",
                    lines_of(("β_t", "beta", 0), ("β̃_t", "posterior_variance", 1)), x_title, "variance", log_beta),
        line_figure("Signal kept: ᾱ_t", lines_of(("ᾱ_t", "alpha_bar", 2)), x_title, "ᾱ_t"),
        line_figure("Signal and noise weights in x_t",
                    lines_of(("√ᾱ_t", "signal", 0), ("√(1−ᾱ_t)", "noise", 1)), x_title, "weight"),
        line_figure("log-SNR: log(ᾱ_t/(1−ᾱ_t))", lines_of(("log-SNR", "log_snr", 3)), x_title, "log-SNR"),
        line_figure("Posterior mean μ̃_t = c₀·x₀ + c_t·x_t",
                    lines_of(("c₀ (coef of x₀)", "coef_x0", 4), ("c_t (coef of x_t)", "coef_xt", 5)), x_title, "coefficient"),
    ]


def curve_axes() -> tuple[str, bool]:
    left, right = st.columns(2)
    axis = widget("schedules_x_axis", left)
    log_beta = widget("schedules_log_beta", right)
    return axis, log_beta


def more_curves(figures: list) -> None:
    st.subheader("The schedule, step by step")
    for i in range(0, len(figures), 2):
        for j, (column, figure) in enumerate(zip(st.columns(2), figures[i:i + 2])):
            chart(figure, key=f"schedules_schedule_curve_{i + j + 1}", where=column)  # curve 0 sits beside the controls
    st.caption("$\\tilde\\beta_1 = 0$: given $x_1$ and $x_0$ there is nothing left to sample, so the $\\tilde\\beta$ curve "
               "starts at 0 (hidden on a log scale). $c_0 \\to 1$ and $c_t \\to 0$ at $t = 1$; at large $t$, "
               "$c_t \\approx \\sqrt{\\alpha_t} \\approx 1$ and $c_0$ is tiny: one step only slightly shrinks $x_t$.")


def curve_exports(results: dict) -> None:
    columns = {}
    for name, (_settings, curves, *_rest) in results.items():
        prefix = f"{name}_" if len(results) > 1 else ""
        columns.update({f"{prefix}{key}": values for key, values in curves.items()})
    lengths = {len(values) for values in columns.values()}
    left, right = st.columns(2)
    with left:
        if len(lengths) == 1:
            exports.csv_button("CSV of the curves", columns, "schedule_curves.csv", key="schedules_csv")
        else:  # schedules of different T: one file each would be clearer than a ragged table
            name, (_s, curves, *_r) = next(iter(results.items()))
            exports.csv_button(f"CSV of schedule {name}'s curves", curves, "schedule_curves.csv", key="schedules_csv")
    with right:
        lines = [f"make_schedule{settings!r}" for settings, *_rest in results.values()]
        exports.reproduce_box(None, "from core.diffusion.schedules import make_schedule\n"
                              "from core.lab.schedule_lab import schedule_curves\n\n" +
                              "\n".join(f"curves_{name} = schedule_curves({line})" for name, line in zip(results, lines)) +
                              "\n# arguments: (kind, T, beta_start, beta_end, scale_with_T)",
                              "Every curve above, as float64 tensors indexed by t = 1..T.")


def forward_on_a_digit(results: dict, compare: bool) -> None:
    st.subheader("The forward process on a real digit")
    digits = held_out_digits()
    left, right = st.columns(2)
    digit = widget("schedules_digit", left)
    noise_seed = widget("schedules_noise_seed", right)
    st.caption(f"Digit #{digit} (a {int(digits.labels[digit])}); the same noise draw $\\varepsilon$ is used at every $t$, "
               "so you watch one digit sink into one noise image. Pixels are clipped to [−1, 1] for display.")
    for name, (settings, *_rest) in results.items():
        pictures = snapshot_pictures(settings, int(digit), int(noise_seed))
        st.markdown(f"**{name}: {describe(settings)}**" if compare else f"**{describe(settings)}**")
        chart(picture_row(pictures, height=230), key=f"schedules_snapshots_{name}")
        exports.png_button("PNG of this strip", lambda pictures=pictures: side_by_side(list(pictures.values())),
                           f"forward_{name}_digit{digit}_seed{noise_seed}.png", key=f"schedules_png_{name}")


CLOSED_FORM_X0, CLOSED_FORM_CHAINS = 0.8, 20_000


@st.cache_data(show_spinner="Running 20,000 forward chains…", max_entries=16)
def closed_form_check(settings: tuple) -> list:
    """Rows (t, √ᾱ_t, m_t, chain mean / x₀, 1 − ᾱ_t, v_t, chain variance) at t = T/4, T/2, T for schedule `settings`."""
    schedule = make_schedule(*settings)
    T = schedule.T
    steps = sorted({max(1, T // 4), max(1, T // 2), T})
    means, variances = composed_moments(schedule)
    chain = run_chain(schedule, CLOSED_FORM_X0, steps, CLOSED_FORM_CHAINS, torch.Generator().manual_seed(0))
    rows = []
    for step, mean, variance in zip(chain.steps, chain.mean, chain.variance):
        ab = float(schedule.alpha_bars[step - 1])
        rows.append({"t": step, "√ᾱₜ (eq. 4)": f"{ab ** 0.5:.4f}", "mₜ (recursion)": f"{float(means[step - 1]):.4f}",
                     "chain mean / x₀": f"{mean / CLOSED_FORM_X0:.4f}", "1 − ᾱₜ (eq. 4)": f"{1 - ab:.4f}",
                     "vₜ (recursion)": f"{float(variances[step - 1]):.4f}", "chain variance": f"{variance:.4f}"})
    return rows


def closed_form(results: dict) -> None:
    st.subheader("Why $q(x_t \\mid x_0)$ has a closed form")
    settings = results["A"][0] if "A" in results else next(iter(results.values()))[0]
    st.markdown(
        "One step is $x_t = \\sqrt{\\alpha_t}\\,x_{t-1} + \\sqrt{\\beta_t}\\,\\varepsilon_t$ with $\\alpha_t = 1 - \\beta_t$ "
        "(Ho et al. eq. 2). Suppose $x_{t-1} \\mid x_0 \\sim \\mathcal N(m_{t-1} x_0,\\ v_{t-1} I)$. A scaled Gaussian plus an "
        "independent Gaussian is Gaussian, with the means and the variances adding:")
    st.latex(r"m_t = \sqrt{\alpha_t}\,m_{t-1},\qquad v_t = \alpha_t\,v_{t-1} + \beta_t,\qquad m_0 = 1,\ v_0 = 0.")
    st.markdown(
        "So $m_t = \\prod_{s \\le t}\\sqrt{\\alpha_s} = \\sqrt{\\bar\\alpha_t}$, and if $v_{t-1} = 1 - \\bar\\alpha_{t-1}$ then "
        "$v_t = \\alpha_t - \\bar\\alpha_t + 1 - \\alpha_t = 1 - \\bar\\alpha_t$: by induction")
    st.latex(r"q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\,I\big)"
             r"\quad\Longleftrightarrow\quad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon.")
    st.markdown(f"Checked for schedule {describe(settings)}: the recursion, and {CLOSED_FORM_CHAINS:,} chains run one step "
                f"at a time from $x_0 = {CLOSED_FORM_X0}$ (seed 0), against eq. 4. Training can therefore jump to any $t$ "
                "in one draw instead of running $t$ steps.")
    st.table(closed_form_check(settings))


# --------------------------------------------------------------------------------------------- page
def main() -> None:
    page = page_settings()
    page.restore()
    layout.title_row(intro, page)  # the Share popover beside the title, as on every page, not squeezed beside the toggle
    page.notices()
    controls, verdict = st.columns([2, 3], gap="medium")
    with controls:
        compare = widget("schedules_compare")
        chosen = choose_schedules(compare)
    results = compute(chosen, compare)
    if not results:
        page.sync_url()
        return
    with verdict:
        pure_noise_verdict(results, compare)
        axis, log_beta = curve_axes()
        figures = curve_figures(results, compare, axis, log_beta)
        chart(figures[0], key="schedules_schedule_curve_0", where=verdict)
    more_curves(figures[1:])
    curve_exports(results)
    forward_on_a_digit(results, compare)
    closed_form(results)
    page.sync_url()


main()
