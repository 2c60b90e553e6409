"""AppTests of the posterior derivation page (pages/posterior.py), standalone."""

from pathlib import Path

import pytest
import torch
from helpers import check_link_and_reset, linear_betas, plain_scripts, presets
from streamlit.testing.v1 import AppTest

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "posterior.py")


def metrics(at) -> dict:
    return {m.label: float(m.value) for m in at.metric}


def test_numbers_follow_the_schedule_and_match_the_diffusion():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and not at.error
    beta = linear_betas(1000)[299]  # t = 300, by hand: 6.0561e-03 is typeset as 6.0561·10⁻³
    assert any(f"{beta * 1e3:.4f}\\times 10^{{-3}}" in e.value for e in at.latex), [e.value for e in at.latex][:2]
    at.selectbox(key="posterior_kind").set_value("cosine").run()
    at.slider(key="posterior_step").set_value(700).run()
    values = metrics(at)
    diffusion = GaussianDiffusion(make_schedule("cosine", 1000), "eps", "fixed_small")
    x0, x_t = torch.tensor([[0.6]], dtype=torch.float64), torch.tensor([[0.2]], dtype=torch.float64)
    mean, variance, _ = diffusion.q_posterior(x0, x_t, torch.tensor([699]))
    assert values["$1/A$"] == pytest.approx(float(variance), rel=1e-7)
    assert values["$B/A$"] == pytest.approx(float(mean), rel=1e-7)
    assert values["$\\tilde\\beta_t$ (closed form)"] == pytest.approx(float(variance), rel=1e-7)
    assert any("cos" not in e.value and r"\tilde\beta_t" in e.value for e in at.latex)
    assert len(at.get("plotly_chart")) == 1 and len(at.expander) == 2


def ratio_by_hand(kind: str, T: int, t: int) -> float:
    """β̃_t/β_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t), with ᾱ from Nichol & Dhariwal's cosine formula in plain floats."""
    import math

    def f(step):
        return math.cos((step / T + 0.008) / 1.008 * math.pi / 2) ** 2
    assert kind == "cosine"
    return (1 - f(t - 1) / f(0)) / (1 - f(t) / f(0))


def test_link_reset_presets_and_latex():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert plain_scripts(at) == []
    at = check_link_and_reset(at, "posterior", {"posterior_kind": "cosine", "posterior_T": "10", "posterior_step": "7"},
                              {"posterior_kind": "cosine", "posterior_T": 10, "posterior_step": 7}, ("posterior_x0", "2.5"))
    assert len(presets(at, "posterior")) == 2
    at.button(key="posterior_preset_0").click().run()  # ten cosine steps: β̃_2 about a quarter of β_2
    ratio = metrics(at)["$\\tilde\\beta_t/\\beta_t$"]
    assert ratio == pytest.approx(ratio_by_hand("cosine", 10, 2), abs=1e-3) and 0.2 < ratio < 0.3
    at.button(key="posterior_preset_1").click().run()  # T = 1000: β̃ well below β at t = 2, within 1 % at t = 300
    assert at.number_input(key="posterior_T").value == 1000 and metrics(at)["$\\tilde\\beta_t/\\beta_t$"] < 0.5
    at.slider(key="posterior_step").set_value(300).run()
    assert metrics(at)["$\\tilde\\beta_t/\\beta_t$"] > 0.99
