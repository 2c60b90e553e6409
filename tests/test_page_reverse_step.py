"""AppTests of the reverse-step anatomy page (pages/reverse_step.py), run as a standalone page."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "reverse_step.py")


@pytest.fixture
def app():
    at = AppTest.from_file(PAGE, default_timeout=90).run()
    assert not at.exception and not at.error
    return at


def kl_table(at) -> dict:
    """{σ² choice label: (σ², KL)} from the table under the densities."""
    frame = at.table[0].value
    return {row["σₜ² choice"]: (float(row["σₜ²"]), float(row["KL(q ‖ p) [nats]"])) for _, row in frame.iterrows()}


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_default_page(app):
    table = kl_table(app)
    assert table["σ² = β̃ₜ (fixed_small)"][1] == 0.0  # exact x̂₀ and the true variance: no KL at all
    assert table["σ² = βₜ (fixed_large)"][1] > table["σ² learned (nu: −1 → β̃ₜ, +1 → βₜ, unclipped; learned_range) (nu = 0)"][1] > 0
    # the ε-form and x₀-form means agree to round-off
    assert abs(float(metric(app, "difference"))) < 1e-12
    assert float(metric(app, "x̂₀ from ε̂")) == pytest.approx(0.5)  # the slider's x₀
    # without noise the 2-D samples collapse, with noise they keep the data's spread
    data = float(metric(app, "spread of the data"))
    assert float(metric(app, "spread with noise (DDPM)")) == pytest.approx(data, rel=0.15)
    assert float(metric(app, "spread without noise")) < 0.01 * data
    assert len(app.get("plotly_chart")) == 5  # with section 4 (later steps correct earlier errors)


def test_kl_shrinks_at_large_t_and_model_error_shows(app):
    small_t = kl_table(app)["σ² = βₜ (fixed_large)"][1]
    app.slider(key="reverse_t").set_value(800).run()
    assert not app.exception
    assert kl_table(app)["σ² = βₜ (fixed_large)"][1] < 1e-6 * small_t
    kl_figure = json.loads(app.get("plotly_chart")[2].proto.spec)
    assert kl_figure["layout"]["shapes"][0]["x0"] == 800  # the marker follows t
    app.slider(key="reverse_x0_error").set_value(0.2).run()
    assert not app.exception and kl_table(app)["σ² = β̃ₜ (fixed_small)"][1] > 0
    assert abs(float(metric(app, "difference"))) < 1e-12


def test_learned_variance_slider_moves_between_beta_tilde_and_beta(app):
    app.slider(key="reverse_variance_interp").set_value(1.0).run()
    table = kl_table(app)
    assert table["σ² learned (nu: −1 → β̃ₜ, +1 → βₜ, unclipped; learned_range) (nu = 1)"] == table["σ² = βₜ (fixed_large)"]
    app.slider(key="reverse_variance_interp").set_value(-1.0).run()
    table = kl_table(app)
    assert table["σ² learned (nu: −1 → β̃ₜ, +1 → βₜ, unclipped; learned_range) (nu = -1)"] == table["σ² = β̃ₜ (fixed_small)"]


def test_other_schedules_and_noise_variance(app):
    app.selectbox(key="reverse_kind").set_value("cosine").run()
    app.number_input(key="reverse_T").set_value(50).run()
    assert not app.exception and not app.error
    assert app.slider(key="reverse_t").max == 50
    app.radio(key="reverse_ablation_variance").set_value("fixed_small").run()
    assert not app.exception
    data = float(metric(app, "spread of the data"))
    assert float(metric(app, "spread without noise")) < 0.01 * data


def test_impossible_schedule_is_an_error_not_a_traceback(app):
    app.checkbox(key="reverse_scale").set_value(True).run()
    app.number_input(key="reverse_T").set_value(10).run()
    assert not app.exception
    assert len(app.error) == 1 and "scale_with_T" in app.error[0].value
