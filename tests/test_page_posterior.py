"""AppTests of the posterior derivation page (pages/posterior.py), standalone."""

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "posterior.py")


def metrics(at) -> dict:
    return {m.label: float(m.value) for m in at.metric}


def test_numbers_follow_the_schedule_and_match_the_diffusion():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and not at.error
    at.selectbox(key="posterior_kind").set_value("cosine").run()
    at.slider(key="posterior_step").set_value(700).run()
    values = metrics(at)
    diffusion = GaussianDiffusion(make_schedule("cosine", 1000), "eps", "fixed_small")
    x0, x_t = torch.tensor([[0.6]], dtype=torch.float64), torch.tensor([[0.2]], dtype=torch.float64)
    mean, variance, _ = diffusion.q_posterior(x0, x_t, torch.tensor([699]))
    assert values["1/A"] == pytest.approx(float(variance), rel=1e-7)
    assert values["B/A"] == pytest.approx(float(mean), rel=1e-7)
    assert values["β̃_t (closed form)"] == pytest.approx(float(variance), rel=1e-7)
    assert any("cos" not in e.value and r"\tilde\beta_t" in e.value for e in at.latex)
    assert len(at.get("plotly_chart")) == 1 and len(at.expander) == 2
