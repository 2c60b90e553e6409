"""AppTests of the v, variances and DDIM page (pages/variances.py) through app.py, with tiny checkpoints."""

import pytest
from helpers import open_page

PAGE = "pages/variances.py"


def test_identities_variances_and_ddim(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert not at.error
    identities = at.table[0].value
    for measured, predicted in zip(identities["measured"], identities["from ‖ε − ε̂‖²"]):
        assert float(measured) == pytest.approx(float(predicted), rel=1e-4)
    learned = next(t.value for t in at.table if "ν min" in t.value.columns)  # the tiny mnist_v learns its variance
    assert learned["t"].tolist()[0] == 1 and learned["t"].tolist()[-1] == 40
    assert all(float(lo) <= float(hi) for lo, hi in zip(learned["ν min"], learned["ν max"]))
    metrics = {m.label: float(m.value) for m in at.metric}
    assert metrics["σ_t² (fresh noise)"] == 0.0  # η = 0
    at.slider(key="variances_eta").set_value(1.0).run()
    metrics = {m.label: float(m.value) for m in at.metric}
    assert metrics["σ_t² (fresh noise)"] == pytest.approx(metrics["β̃ of this jump"], abs=1e-4)
    weights = next(t.value for t in at.table if "weight of ε̂" in t.value.columns)
    for sigma, jump in zip(weights["σ_t"], weights["√β̃ of the jump"]):  # η = 1: σ = √β̃ of each jump
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
