"""AppTests of the Sample page (pages/sample.py) through the real app.py, with throwaway tiny checkpoints."""

import pytest
from helpers import ROOT, TEST_T, chart, open_page, values

PAGE = "pages/sample.py"


def chart_by_title(at, text: str) -> dict:
    """The first chart whose subplot titles mention `text`."""
    for index in range(len(at.get("plotly_chart"))):
        figure = chart(at, index)
        if any(text in annotation.get("text", "") for annotation in figure["layout"].get("annotations", [])):
            return figure
    raise AssertionError(f"no chart titled {text!r}")


def test_first_visit_samples_and_shows_grid_trajectory_and_snapshots(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert not at.error
    grid = chart_by_title(at, "16 samples")
    assert grid["data"][0]["source"].startswith("data:image/png;base64,")
    trajectory = chart_by_title(at, "x̂₀ (the model's guess")
    labels = [step["label"] for step in trajectory["layout"]["sliders"][0]["steps"]]
    # DDIM, 40 = T steps, leading spacing: t = 40, 39, ..., 1 recorded, then the final x₀
    assert labels == [str(t) for t in range(TEST_T, 0, -1)] + ["0 (x₀)"]
    snapshots = chart_by_title(at, "t = 0 (x₀)")
    titles = [a["text"] for a in snapshots["layout"]["annotations"]]
    assert titles == ["t = 40", "t = 30", "t = 21", "t = 11", "t = 0 (x₀)"]  # indices nearest to 39, 29.25, 19.5 (tie: first), 9.75
    assert at.subheader[-1].value == "Quality metrics" or any("Quality metrics" in s.value for s in at.subheader)


def test_step_count_and_variance_change_the_samples(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    before = chart_by_title(at, "16 samples")["data"][0]["source"]
    at.number_input(key="sample_steps").set_value(5)
    at.button(key="sample_run").click().run()
    assert not at.exception and not at.error
    five_steps = chart_by_title(at, "16 samples")["data"][0]["source"]
    assert five_steps != before
    at.radio(key="sample_method").set_value("ddpm").run()
    variance = at.selectbox(key="sample_variance")
    assert variance.options == ["σ² = βₜ (fixed_large)", "σ² = β̃ₜ (fixed_small)"]  # no learned option for this model
    at.button(key="sample_run").click().run()
    large = chart_by_title(at, "16 samples")["data"][0]["source"]
    at.selectbox(key="sample_variance").set_value("fixed_small")
    at.button(key="sample_run").click().run()
    assert not at.exception and chart_by_title(at, "16 samples")["data"][0]["source"] != large
    at.number_input(key="sample_seed").set_value(9).run()
    assert any("press **Sample**" in info.value for info in at.info)  # changed settings are not run until asked


def test_learned_variance_model_offers_learned_sampling(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE, active="shipped:mnist_v")
    at.radio(key="sample_method").set_value("ddpm").run()
    variance = at.selectbox(key="sample_variance")
    assert variance.value == "learned_range" and len(variance.options) == 3
    at.slider(key="sample_n").set_value(4)
    at.number_input(key="sample_steps").set_value(8)
    at.button(key="sample_run").click().run()
    assert not at.exception and not at.error
    assert chart_by_title(at, "4 samples")


def test_compare_step_counts(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert at.multiselect(key="compare_counts").value == [10, TEST_T]
    at.button(key="compare_run").click().run()
    assert not at.exception and not at.error
    for method in ("DDPM", "DDIM"):
        assert any(markdown.value == f"**{method}**" for markdown in at.markdown)
    runs = chart_by_title(at, f"{TEST_T} steps")
    assert [a["text"] for a in runs["layout"]["annotations"]] == ["10 steps", f"{TEST_T} steps"]


def test_core_errors_become_messages(monkeypatch, checkpoint_dir):
    from core import sampling
    from ui import runs

    def refuse(*args, **kwargs):
        raise ValueError("steps must be an integer between 1 and T")

    monkeypatch.setattr(sampling, "run_sampler", refuse)
    runs.result_cache().__init__(runs.CACHE_ENTRIES)  # earlier tests' results would be served from the cache
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert not at.exception
    assert any("steps must be an integer" in error.value for error in at.error)


def test_point_model_path(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE, active="shipped:moons_eps")
    assert not at.exception and not at.error
    samples = chart_by_title(at, "samples vs data")
    assert {trace["name"] for trace in samples["data"]} == {"samples", "data (held out)"}
    assert len(values(samples["data"][1]["x"])) == 1000
    assert "frames" in chart_by_title(at, "x̂₀ at this step")
    assert {metric.label for metric in at.metric} == {"MMD² (RBF) to held-out data", "Sliced Wasserstein-1"}
    at.slider(key="sample_points").set_value(200)
    at.button(key="sample_run").click().run()
    assert len(values(chart_by_title(at, "samples vs data")["data"][1]["x"])) == 200


def test_no_model_shows_a_clear_message(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path, PAGE)
    assert any("No model is available" in info.value for info in at.info)
    assert not at.get("plotly_chart")


@pytest.mark.skipif(not (ROOT / "checkpoints" / "mnist_eps.safetensors").exists(), reason="no shipped checkpoint yet")
def test_shipped_default_model_samples(monkeypatch):
    at = open_page(monkeypatch, ROOT / "checkpoints", PAGE)
    assert not at.error and chart_by_title(at, "16 samples")


@pytest.mark.parametrize("method", ["ddim", "ddpm"])
def test_reproduce_command_gives_the_same_samples(monkeypatch, checkpoint_dir, tmp_path, method):
    """The "Reproduce this" command, run as printed, writes the samples the page shows."""
    import math
    import os
    import shlex
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    from core.data.images import make_grid
    from ui import runs

    runs.result_cache().__init__(runs.CACHE_ENTRIES)
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    at.radio(key="sample_method").set_value(method).run()
    at.number_input(key="sample_steps").set_value(8).run()
    at.button(key="sample_run").click().run()
    command = next(code.value for code in at.code if code.value.startswith("python -m core.sample"))
    words = shlex.split(command)
    assert words[words.index("--sampler") + 1] == method and "--clip" in words
    words[0] = sys.executable
    words[words.index("--out") + 1] = str(tmp_path / "samples.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RDL_TORCH_THREADS": "1"}
    # models outside the repository are named by file name only (no server path shown): run beside them
    subprocess.run(words, cwd=checkpoint_dir, env=env, check=True, capture_output=True, timeout=300)
    written = np.asarray(Image.open(tmp_path / "samples.png"))
    samples = next(value[0][0] for key, value in runs.result_cache()._items.items()
                   if key[0] == "sample" and key[2].steps == 8 and key[2].method == method)
    expected = make_grid(samples.clamp(-1, 1), nrow=math.isqrt(len(samples) - 1) + 1)
    assert written.shape[:2] == expected.shape[:2]
    grey = written.reshape(expected.shape[:2] + (-1,))[..., 0].astype(int)  # the PNG may be stored as RGB
    difference = np.abs(grey - expected.reshape(expected.shape[:2] + (-1,))[..., 0].astype(int))
    assert difference.max() <= 1  # the same samples, up to float round-off in the last grey level
