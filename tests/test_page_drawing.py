"""AppTests of "Draw your own data" in the 2-D playground (ui/drawing_panel.py): brushes add bounded points that
survive a change of the toy, Clear empties the drawing, a hostile stored value is bounded again, and training on a
drawing shows the network's and the exact denoiser's samples. (Canvas clicks and lassos are in the browser test.)"""

import json
from pathlib import Path

import torch
from helpers import values
from streamlit.testing.v1 import AppTest

from core.lab import drawing

ROOT = Path(__file__).resolve().parent.parent


def open_playground(monkeypatch, folder) -> AppTest:
    import ui.catalog

    monkeypatch.setattr(ui.catalog, "CHECKPOINT_DIR", Path(folder))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/playground_2d.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def canvas(at) -> dict:
    element = next(e for e in at.get("plotly_chart") if "pg_draw_canvas" in e.proto.id)
    return json.loads(element.proto.spec)


def drawn_count(at) -> int:
    return len(values(canvas(at)["data"][1]["x"]))


def test_brushes_clear_and_bounds(monkeypatch, tmp_path):
    at = open_playground(monkeypatch, tmp_path)
    assert drawn_count(at) == 0 and at.button(key="pg_draw_train").disabled
    at.selectbox(key="pg_draw_shape").set_value("circle").run()
    at.number_input(key="pg_draw_count").set_value(120).run()
    at.button(key="pg_draw_add").click().run()
    assert not at.exception and drawn_count(at) == 120
    expected = drawing.brush("circle", 120, 0, (0.0, 0.0), 0.5)
    shown = canvas(at)["data"][1]
    assert torch.allclose(torch.tensor([values(shown["x"]), values(shown["y"])]).T.float(), expected, atol=1e-6)
    at.selectbox(key="pg_toy").set_value("swiss_roll").run()  # another setting: the drawing stays
    assert drawn_count(at) == 120
    assert any("120 of at most 2,000 points" in c.value for c in at.caption)
    at.session_state["pg_drawn_points"] = torch.full((5000, 2), 7.0)  # too many, out of range
    at.run()
    assert not at.exception and drawn_count(at) == drawing.MAX_POINTS
    assert max(values(canvas(at)["data"][1]["x"])) == drawing.LIMIT
    at.button(key="pg_draw_clear").click().run()
    assert drawn_count(at) == 0


def test_training_on_a_drawing_shows_both_samplers(monkeypatch, tmp_path):
    at = open_playground(monkeypatch, tmp_path)
    at.selectbox(key="pg_draw_shape").set_value("line").run()
    at.button(key="pg_draw_add").click().run()
    at.select_slider(key="pg_draw_steps").set_value(100).run()
    at.button(key="pg_draw_train").click().run()
    assert not at.exception and not at.error
    samples = next(json.loads(e.proto.spec) for e in at.get("plotly_chart") if "pg_draw_samples" in e.proto.id)
    names = {trace.get("name") for trace in samples["data"]}
    assert {"network samples", "exact samples", "your data"} <= names
    metrics = {m.label: float(m.value) for m in at.metric if m.label.startswith("SW₁")}
    assert metrics["SW₁ exact ↔ your data"] < metrics["SW₁ network ↔ your data"]
