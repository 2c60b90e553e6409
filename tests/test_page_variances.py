"""AppTests of the v, variances and DDIM page (pages/variances.py) through app.py, with tiny checkpoints."""

import pytest
from helpers import check_link_and_reset, open_page, plain_scripts, presets

PAGE = "pages/variances.py"
SIGMA2, JUMP, EPS_WEIGHT = "$\\sigma_t^2$ (fresh noise)", "$\\tilde\\beta$ of this jump", "weight of $\\hat\\varepsilon$"


def metrics(at) -> dict:
    return {m.label: float(m.value) for m in at.metric}


def test_identities_variances_and_ddim(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert not at.error
    identities = at.table[0].value
    for measured, predicted in zip(identities["measured"], identities["from ‖ε − ε̂‖²"]):
        assert float(measured) == pytest.approx(float(predicted), rel=1e-4)
    learned = next(t.value for t in at.table if "nu min" in t.value.columns)  # the tiny mnist_v learns its variance
    assert learned["t"].tolist()[0] == 1 and learned["t"].tolist()[-1] == 40
    assert all(float(lo) <= float(hi) for lo, hi in zip(learned["nu min"], learned["nu max"]))
    assert metrics(at)[SIGMA2] == 0.0  # η = 0
    at.slider(key="variances_eta").set_value(1.0).run()
    assert metrics(at)[SIGMA2] == pytest.approx(metrics(at)[JUMP], abs=1e-4)
    weights = next(t.value for t in at.table if "weight of ε̂" in t.value.columns)
    for sigma, jump in zip(weights["σₜ"], weights["√β̃ of the jump"]):  # η = 1: σ = √β̃ of each jump
        assert float(sigma) == pytest.approx(float(jump), abs=1e-4)
    at.slider(key="variances_ab_prev").set_value(0.2).run()
    assert at.error and "must be larger" in at.error[0].value


def test_quality_button(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    at.select_slider(key="variances_quality_n").set_value(16)
    at.multiselect(key="variances_quality_steps").set_value([5])
    at.multiselect(key="variances_quality_samplers").set_value(["ddim_eta0"]).run()
    at.button(key="variances_quality_run").click().run()
    assert not at.exception and not at.error
    row = at.table[-1].value.iloc[0]
    assert row["sampler"] == "DDIM, η = 0" and int(row["steps"]) == 5 and float(row["FD"]) > 0


def test_link_reset_presets_and_latex(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert plain_scripts(at) == []
    at = check_link_and_reset(at, "variances", {"variances_eta": "1.0", "variances_ab": "0.2", "variances_t": "40"},
                              {"variances_eta": 1.0, "variances_ab": 0.2, "variances_t": 40}, ("variances_t", "41"))
    assert len(presets(at, "variances")) == 2
    at.button(key="variances_preset_0").click().run()  # η = 1: σ² is the β̃ of the jump, by hand
    alpha_bar, alpha_bar_prev = 0.3, 0.6
    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)
    assert metrics(at)[SIGMA2] == pytest.approx(beta_tilde, abs=1e-4)
    at.button(key="variances_preset_1").click().run()  # η = 0: no fresh noise, ε̂ back with √(1 − ᾱ_{t−1})
    assert metrics(at)[SIGMA2] == 0.0 and metrics(at)[EPS_WEIGHT] == pytest.approx((1 - alpha_bar_prev) ** 0.5, abs=1e-4)


def test_the_quality_panel_settings_travel_in_the_pages_link(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    check_link_and_reset(at, "variances",
                         {"variances_quality_n": "32", "variances_quality_samplers": ["ddim_eta1", "ddpm_beta"]},
                         {"variances_quality_n": 32, "variances_quality_samplers": ["ddpm_beta", "ddim_eta1"]},
                         ("variances_quality_steps", "7"))
