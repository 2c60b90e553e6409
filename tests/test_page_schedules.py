"""AppTests of the Schedule lab (pages/schedules.py), run as a standalone page."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

SIGNAL = "$\\sqrt{\\bar\\alpha_T}$ (signal left in $x_T$)"  # metric labels are Markdown with LaTeX
PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "schedules.py")


@pytest.fixture
def app():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    return at


def charts(at):
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def metric_values(at):
    return {metric.label: metric.value for metric in at.metric}


def test_default_is_ho_linear_1000_and_pure_noise(app):
    assert not app.error and not app.warning
    assert metric_values(app)[SIGNAL] == "0.00635"
    assert "pure noise" in app.success[0].value
    specs = charts(app)
    assert len(specs) == 6  # five schedule plots and the digit strip
    beta = specs[0]["data"][0]
    assert beta["x"][0] == 1 and beta["x"][-1] == 1000
    assert beta["y"][0] == pytest.approx(1e-4) and beta["y"][-1] == pytest.approx(0.02)


def test_warning_for_short_linear_schedule_and_its_fix(app):
    app.number_input(key="schedules_a_T").set_value(100).run()
    assert not app.exception and len(app.warning) == 1
    message = app.warning[0].value
    assert "$\\sqrt{\\bar\\alpha_T}$ = 0.603" in message and "scale-with-T" in message and "cosine" in message
    app.checkbox(key="schedules_a_scale").set_value(True).run()
    assert not app.exception and not app.warning
    assert metric_values(app)[SIGNAL] == "0.00452"


def test_compare_and_normalised_axis(app):
    app.toggle(key="schedules_compare").set_value(True).run()
    app.number_input(key="schedules_b_T").set_value(50).run()
    assert not app.exception
    assert len(app.metric) == 4 and len(charts(app)) == 7  # two digit strips now
    names = [trace["name"] for trace in charts(app)[1]["data"]]
    assert names == ["ᾱ<sub>t</sub> · A", "ᾱ<sub>t</sub> · B"]
    app.radio(key="schedules_x_axis").set_value("t/T").run()
    alpha_bar = charts(app)[1]["data"]
    assert alpha_bar[0]["x"][-1] == 1.0 and alpha_bar[1]["x"][-1] == 1.0 and len(alpha_bar[1]["x"]) == 50


def test_digit_and_noise_seed_change_the_strip(app):
    before = charts(app)[-1]
    app.number_input(key="schedules_noise_seed").set_value(3).run()
    after_seed = charts(app)[-1]
    app.number_input(key="schedules_digit").set_value(42).run()
    after_digit = charts(app)[-1]
    assert not app.exception
    assert before != after_seed != after_digit
    # t = 0 is the clean digit: the noise seed must not change it
    assert before["data"][0]["source"] == after_seed["data"][0]["source"]


@pytest.mark.parametrize("widget, value, words", [("schedules_a_beta_start", 0.05, "beta_start"), ("schedules_a_T", 10, None)])
def test_bad_settings_show_an_error_not_a_traceback(app, widget, value, words):
    if words is None:  # scale-with-T at T = 10 would push β_end to 2
        app.checkbox(key="schedules_a_scale").set_value(True).run()
        words = "scale_with_T"
    app.number_input(key=widget).set_value(value).run()
    assert not app.exception
    assert len(app.error) == 1 and words in app.error[0].value
