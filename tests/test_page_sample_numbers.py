"""AppTest of the Sample page's "The update in numbers" section (DDIM weights of the run, quality vs steps)."""

import pytest
from helpers import open_page

PAGE = "pages/sample.py"


def weights_table(at):
    return next(t.value for t in at.table if "weight of ε̂" in t.value.columns)


def test_update_weights_follow_the_run_and_quality_is_measured(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert not at.error
    table = weights_table(at)  # default run: DDIM, η = 0: no fresh noise, x̂₀ and ε̂ weights of unit total variance
    assert all(float(sigma) == 0.0 for sigma in table["σₜ"])
    for eps_weight, x0_weight in zip(table["weight of ε̂"], table["weight of x̂₀"]):
        assert float(eps_weight) ** 2 + float(x0_weight) ** 2 == pytest.approx(1.0, abs=2e-4)
    assert table["t → tₚᵣₑᵥ"].iloc[-1].endswith("→ 0")
    at.select_slider(key="sample_quality_n").set_value(16)
    at.multiselect(key="sample_quality_steps").set_value([5])
    at.multiselect(key="sample_quality_samplers").set_value(["ddpm_beta_tilde"]).run()
    at.button(key="sample_quality_run").click().run()
    assert not at.exception and not at.error
    row = at.table[-1].value.iloc[0]
    assert row["sampler"] == "DDPM, σ² = β̃" and int(row["steps"]) == 5 and float(row["FD"]) > 0
