"""AppTests of the Time conditioning page (pages/time_conditioning.py), standalone."""

from pathlib import Path

from helpers import chart, check_link_and_reset, plain_scripts, presets, values
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "time_conditioning.py")


def test_embedding_maps_and_the_experiment():
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception and not at.error
    heat = chart(at, 0)
    assert heat["data"][0]["type"] == "heatmap"
    at.select_slider(key="time_T").set_value(50).run()
    z = chart(at, 1)["data"][0]["z"]
    assert z["shape"] == "50, 50"
    similarity = values(z).reshape(50, 50)
    assert abs(similarity[7, 7] - 1) < 1e-6 and abs(similarity[3, 9] - similarity[20, 26]) < 1e-5
    assert not at.metric  # nothing trained before the button
    at.select_slider(key="time_steps").set_value(200).run()
    at.button(key="time_run").click().run()
    assert not at.exception and not at.error
    distances = {m.label.split(": ")[1]: float(m.value) for m in at.metric}
    assert set(distances) == {"normal", "single t", "no time", "fresh data"}
    assert distances["fresh data"] < distances["normal"] < distances["single t"]
    assert plain_scripts(at) == []  # with the experiment's results shown too


def lowest_similarity(at) -> float:
    return float(values(chart(at, 1)["data"][0]["z"]).min())


def test_link_reset_presets_and_latex():
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert plain_scripts(at) == []
    assert lowest_similarity(at) < 0.1  # T = 1000, d = 64: distant steps nearly orthogonal
    at = check_link_and_reset(at, "time", {"time_T": "50", "time_dim": "16", "time_dataset": "two_moons"},
                              {"time_T": 50, "time_dim": 16, "time_dataset": "two_moons"}, ("time_single_t", "0"))
    assert len(presets(at, "time")) == 2
    at.button(key="time_preset_0").click().run()  # T = 50: every pair above 0.47
    assert lowest_similarity(at) > 0.47
    at.button(key="time_preset_1").click().run()  # d = 16: some distant steps point the opposite way
    assert lowest_similarity(at) < -0.2
