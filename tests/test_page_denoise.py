"""AppTests of the Denoise explorer (pages/denoise.py) through the real app.py, with throwaway checkpoints.

The tiny checkpoints come from tests/helpers.py (the `checkpoint_dir` fixture of tests/conftest.py).
"""

import re

import numpy as np
import pytest
from helpers import ROOT, TEST_T, chart, linear_betas, open_page, values


def test_image_model_renders_scrubber_and_comparison(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py")
    assert not at.error and len(at.get("plotly_chart")) == 2  # the scrubber and the Bayes-optimal x̂₀; the comparison waits
    at.toggle(key="denoise_compare_on").set_value(True).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 3  # the scrubber, the Bayes-optimal x̂₀ and the ε / x₀ / v comparison
    scrubber = chart(at, 0)
    assert len(scrubber["frames"]) == TEST_T  # every timestep, since T = 40 < 100 shown
    assert [s["label"] for s in scrubber["layout"]["sliders"][0]["steps"]] == [str(t) for t in range(1, TEST_T + 1)]
    images = [trace for trace in scrubber["data"] if trace["type"] == "image"]
    assert len(images) == 6 and all(trace["source"].startswith("data:image/png;base64,") for trace in images)
    comparison = chart(at, 2)
    titles = {annotation["text"] for annotation in comparison["layout"]["annotations"]}
    assert {"x̂₀ · ε-model", "x̂₀ · x₀-model", "x̂₀ · v-model"} <= titles
    curves = {trace["name"] for trace in comparison["data"] if trace["type"] == "scatter"}
    assert {"ε-MSE · ε-model", "x₀-MSE · v-model", "ε-MSE · x₀-model"} <= curves


def test_widgets_change_what_is_computed(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py")
    first = chart(at)
    at.number_input(key="denoise_index").set_value(7).run()
    assert not at.exception
    by_image = chart(at)
    assert by_image["data"][0]["source"] != first["data"][0]["source"]  # another x_t
    at.number_input(key="denoise_noise_seed").set_value(3).run()
    assert chart(at)["data"][1]["source"] != by_image["data"][1]["source"]  # another ε
    at.slider(key="denoise_n_t").set_value(10).run()
    assert not at.exception
    labels = [s["label"] for s in chart(at)["layout"]["sliders"][0]["steps"]]
    assert labels == [str(1 + round(k * 39 / 9)) for k in range(10)]  # the even grid over t = 1..40


def test_random_image_choice(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py")
    at.radio(key="denoise_mode").set_value("random").run()
    assert not at.exception
    assert any("test image #" in c.value for c in at.caption)


def test_point_model_path(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py", active="shipped:moons_eps")
    assert not at.error
    figure = chart(at)
    assert len(figure["frames"]) == TEST_T
    names = {trace["name"] for trace in figure["data"]}
    assert {"x<sub>t</sub>", "x̂₀", "x₀ (data)", "−√(1−ᾱ)·ε (true)", "−√(1−ᾱ)·ε̂ (predicted)"} <= names
    at.number_input(key="denoise_points_seed").set_value(5).run()
    assert not at.exception and not np.array_equal(values(chart(at)["data"][0]["x"]), values(figure["data"][0]["x"]))
    assert any("only the active ε-prediction model" in info.value for info in at.info)  # no other 2-D model to compare with


def test_no_model_shows_a_clear_message(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path, "pages/denoise.py")
    assert any("No model is available" in info.value for info in at.info)
    assert not at.get("plotly_chart")


@pytest.mark.skipif(not (ROOT / "checkpoints" / "mnist_eps.safetensors").exists(), reason="no shipped checkpoint yet")
def test_shipped_default_model_renders(monkeypatch):
    at = open_page(monkeypatch, ROOT / "checkpoints", "pages/denoise.py")
    assert not at.error and at.get("plotly_chart")


def test_network_and_bayes_optimal_x0_side_by_side(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py")
    bayes = chart(at, 1)
    titles = {annotation["text"] for annotation in bayes["layout"]["annotations"]}
    assert "x̂₀ · network" in titles and any(title.endswith("· Bayes-optimal") for title in titles)
    assert any(trace.get("name") == "x₀-MSE · Bayes-optimal" for trace in bayes["data"])
    mixed = re.compile(r"averages effectively \*\*([0-9.e+]+)\*\* of")
    assert float(mixed.search(" ".join(m.value for m in at.markdown)).group(1)) == pytest.approx(1.0, abs=0.01)  # t = 1: one image
    at.select_slider(key="denoise_bayes_t").set_value(str(TEST_T)).run()
    assert not at.exception
    alpha_bar = 1.0
    for beta in linear_betas(TEST_T):
        alpha_bar *= 1 - beta
    factor = (1 / alpha_bar - 1) ** 0.5  # the ε error's amplification into x̂₀ at t = T
    text = " ".join(m.value for m in at.markdown)
    assert float(mixed.search(text).group(1)) > 1.5  # t = T (ᾱ ≈ 0.67 for T = 40): the posterior mixes several digits
    assert f"**{factor:.3g}**" in text and "of the 4500 training examples" in text
    assert "amplified noise" in text and "blurry average" not in text
