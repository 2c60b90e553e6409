"""AppTests of the 2-D playground (pages/playground_2d.py) through the real app.py.

The app looks for shipped checkpoints in a temporary folder (none, or one tiny toy checkpoint), so the tests
do not depend on what is in checkpoints/. One test trains a real (short) job in the background.
"""

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from helpers import TINY_MLP, save_tiny, values
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGE = "pages/playground_2d.py"


def open_playground(monkeypatch, folder: Path) -> AppTest:
    import ui.catalog

    monkeypatch.setattr(ui.catalog, "CHECKPOINT_DIR", Path(folder))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def show(at: AppTest, section: str) -> AppTest:
    at.radio(key="pg_section").set_value(section).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def chart(at: AppTest, key: str) -> dict:
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(key) or key in element.proto.id:
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart with key {key!r}")


def trace_names(figure: dict) -> list:
    return [trace.get("name") for trace in figure["data"]]


def test_oracle_only_page_renders_every_section(monkeypatch, tmp_path):
    at = open_playground(monkeypatch, tmp_path)
    assert at.selectbox(key="pg_model").options == ["no model (oracle only, with the training settings below)"]
    assert any("train one below" in info.value for info in at.info)
    assert any("memorising" in markdown.value for markdown in at.markdown)  # swiss roll: the empirical oracle

    trajectory = chart(at, "pg_trajectory_chart")
    labels = [step["label"] for step in trajectory["layout"]["sliders"][0]["steps"]]
    assert labels[0] == "1000" and labels[-1] == "0 (x₀)" and len(trajectory["frames"]) == len(labels)
    assert trace_names(trajectory) == ["data", "particles"]  # the oracle's panel only
    assert len(values(trajectory["frames"][0]["data"][0]["x"])) == 250

    show(at, "ε̂ / score field")
    field = chart(at, "pg_field_chart")
    assert [a["text"] for a in field["layout"]["annotations"]] == ["oracle E[ε | x<sub>t</sub>]"]
    show(at, "Loss per timestep")
    loss = chart(at, "pg_loss_chart")
    assert trace_names(loss) == ["exact floor of the training set (memorising oracle)", "memorising oracle on fresh data"]
    show(at, "Samples & quality")
    assert [m.label for m in at.metric] == ["oracle: sliced W₁", "oracle: MMD² (RBF)"]
    mmd = at.metric[1].value  # the oracle's unbiased MMD² is within its noise of 0: never shown as a bare negative number
    assert mmd.startswith("≈ 0") or float(mmd) > 0

    at.selectbox(key="pg_toy").set_value("eight_gaussians").run()
    assert any("true* Gaussian mixture" in markdown.value for markdown in at.markdown)
    show(at, "Loss per timestep")
    assert trace_names(chart(at, "pg_loss_chart")) == ["exact floor (oracle)"]  # no memorising curve for a mixture


def test_widgets_change_the_results(monkeypatch, tmp_path):
    at = open_playground(monkeypatch, tmp_path)
    at.number_input(key="pg_T").set_value(200).run()
    first = chart(at, "pg_trajectory_chart")
    assert first["layout"]["sliders"][0]["steps"][0]["label"] == "200"
    at.number_input(key="pg_seed").set_value(3).run()
    assert values(chart(at, "pg_trajectory_chart")["data"][1]["x"]).tolist() != values(first["data"][1]["x"]).tolist()

    show(at, "ε̂ / score field")
    slider = at.slider(key="pg_field_t")
    assert (slider.min, slider.max, slider.value) == (1, 200, 20)
    eps_arrows = values(chart(at, "pg_field_chart")["data"][1]["x"])
    slider.set_value(150).run()
    later = values(chart(at, "pg_field_chart")["data"][1]["x"])
    assert eps_arrows.shape == later.shape and not np.allclose(eps_arrows, later, equal_nan=True)
    at.radio(key="pg_field_kind").set_value("score").run()
    assert not np.allclose(values(chart(at, "pg_field_chart")["data"][1]["x"]), later, equal_nan=True)


def test_core_errors_become_messages(monkeypatch, tmp_path):
    from core.lab import playground

    def refuse(*args, **kwargs):
        raise ValueError("t must be an integer in 0..199")

    st.cache_data.clear()
    monkeypatch.setattr(playground, "compare_fields", refuse)
    at = open_playground(monkeypatch, tmp_path)
    at.radio(key="pg_section").set_value("ε̂ / score field").run()
    assert not at.exception
    assert any("t must be an integer" in error.value for error in at.error)
    at.selectbox(key="pg_schedule").set_value("linear")
    at.number_input(key="pg_T").set_value(10)
    at.checkbox(key="pg_scale").uncheck().run()  # T = 10 without scaling is allowed but short of noise: no crash
    assert not at.exception


def test_shipped_toy_checkpoint_is_explored_next_to_the_oracle(monkeypatch, tmp_path):
    save_tiny(tmp_path / "toy_two_moons.safetensors", TINY_MLP, "v", "learned_range", "two_moons", [2], seed=0)
    at = open_playground(monkeypatch, tmp_path)
    model = at.selectbox(key="pg_model")
    assert model.value == "none" and "shipped: toy_two_moons" in model.options  # not the swiss roll chosen above
    at.selectbox(key="pg_toy").set_value("two_moons").run()
    assert at.selectbox(key="pg_model").value == "shipped:toy_two_moons"  # the checkpoint of the chosen toy
    assert any("Exploring" in c.value and "T = 40" in c.value for c in at.caption)
    assert at.session_state["active_model_key"] == "shipped:toy_two_moons"  # one active model: the sidebar's too
    assert trace_names(chart(at, "pg_trajectory_chart")) == ["data", "particles", "data", "particles"]
    show(at, "ε̂ / score field")
    titles = [a["text"] for a in chart(at, "pg_field_chart")["layout"]["annotations"]]
    assert titles == ["model ε̂", "oracle E[ε | x<sub>t</sub>]", "‖model − oracle‖"]
    show(at, "Loss per timestep")
    assert trace_names(chart(at, "pg_loss_chart")) == ["model on fresh data", "exact floor of the training set (memorising oracle)",
                                                       "memorising oracle on fresh data"]
    assert chart(at, "pg_gap_chart")
    show(at, "Samples & quality")
    at.button(key="pg_quality_run").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["sampler"]) == ["DDPM", "DDPM", "DDIM", "DDIM"] and list(table["steps"]) == [10, 40, 10, 40]
    assert {"model MMD²", "model SW₁", "oracle MMD²", "oracle SW₁"} <= set(table.columns)


def test_trains_in_the_background_and_shows_the_floor(monkeypatch, tmp_path):
    at = open_playground(monkeypatch, tmp_path)
    at.selectbox(key="pg_toy").set_value("eight_gaussians")
    at.number_input(key="pg_T").set_value(200)
    at.number_input(key="pg_steps").set_value(300).run()
    at.button(key="pg_train").click().run()
    assert not at.exception and not at.error
    deadline = time.monotonic() + 90
    text = ""
    while time.monotonic() < deadline and "finished" not in text:
        time.sleep(0.5)
        at.run()
        text = " ".join(p.proto.text for p in at.get("progress"))
    assert "finished" in text, text
    at.run()
    profile = chart(at, "profile_")
    floor = next(trace for trace in profile["data"] if trace["name"] == "exact floor")
    floor = values(floor["y"]).astype(float)
    assert len(floor) == 20 and np.all(np.isfinite(floor)) and np.all(floor > 0)
    assert floor[0] > floor[-1]  # ε is hardest to tell from x_t at small t
    assert at.selectbox(key="pg_model").value.startswith("trained:")  # the new model is shown at once
    assert trace_names(chart(at, "pg_trajectory_chart")) == ["data", "particles", "data", "particles"]
    show(at, "Loss per timestep")
    names = trace_names(chart(at, "pg_loss_chart"))
    assert names == ["model on fresh data", "exact floor (oracle)"]
    curves = chart(at, "pg_loss_chart")["data"]
    model_loss, floor_loss = values(curves[0]["y"]).astype(float), values(curves[1]["y"]).astype(float)
    assert np.mean(model_loss >= floor_loss) > 0.8 and math.isfinite(model_loss.sum())
    # the model trained here is the active model everywhere: the Sample page offers its checkpoint and a command
    at.switch_page("pages/sample.py").run()
    assert not at.exception and not at.error
    command = next(code.value for code in at.code if code.value.startswith("python -m core.sample"))
    assert "--checkpoint eight_gaussians-trained-step300.safetensors" in command
    assert "Checkpoint" in [button.proto.label for button in at.get("download_button")]


@pytest.mark.skipif(not (ROOT / "checkpoints" / "toy_eight_gaussians.safetensors").exists(), reason="no shipped toy checkpoint")
def test_shipped_eight_gaussians_model_is_close_to_the_exact_optimum(monkeypatch):
    at = open_playground(monkeypatch, ROOT / "checkpoints")
    at.selectbox(key="pg_toy").set_value("eight_gaussians").run()
    assert at.selectbox(key="pg_model").value == "shipped:toy_eight_gaussians"
    show(at, "Loss per timestep")
    model_loss, floor = (values(trace["y"]).astype(float) for trace in chart(at, "pg_loss_chart")["data"])
    excess = model_loss - floor  # = E|prediction - E[eps | x_t]|^2 / 2 >= 0 in expectation (exact floor of a mixture)
    assert excess.mean() > -0.01 and np.median(excess / floor) < 0.2  # near, not below, the floor
    show(at, "Samples & quality")
    metrics = {m.label: float(m.value) for m in at.metric if "W₁" in m.label}
    assert metrics["model: sliced W₁"] < 3 * metrics["oracle: sliced W₁"] + 0.02
