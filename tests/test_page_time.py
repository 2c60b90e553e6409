"""AppTests of the Time conditioning page (pages/time_conditioning.py), standalone."""

from pathlib import Path

from helpers import chart, values
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
