"""Settings that persist and travel (ui/settings.py): the URL boundary, links, presets, reset, page switches."""

from pathlib import Path

import pytest
from helpers import open_page
from streamlit.testing.v1 import AppTest

from ui.settings import PageSettings, Preset, Setting

ROOT = Path(__file__).resolve().parent.parent
SCHEDULES = str(ROOT / "pages" / "schedules.py")


# ------------------------------------------------------------------------------------ the URL boundary
@pytest.mark.parametrize("setting, raw, value", [
    (Setting("n", 5, "int", 1, 64), ["64"], 64),
    (Setting("eta", 0.0, "float", 0.0, 1.0), ["0.25"], 0.25),
    (Setting("beta", 1e-4, "float", 1e-6, 0.5), ["1e-06"], 1e-6),
    (Setting("clip", True, "bool"), ["false"], False),
    (Setting("clip", False, "bool"), ["1"], True),
    (Setting("kind", "linear", "choice", choices=("linear", "cosine")), ["cosine"], "cosine"),
    (Setting("counts", [10], "ints", choices=(5, 10, 40)), ["40", "5", "40"], [5, 40]),
    (Setting("T", 100, "int", choices=(50, 100, 1000)), ["1000"], 1000),
])
def test_valid_link_values_are_parsed(setting, raw, value):
    assert setting.parse(raw) == value
    assert setting.parse(setting.encode(value)) == value  # what a link carries reads back the same


@pytest.mark.parametrize("setting, raw, words", [
    (Setting("n", 5, "int", 1, 64), ["65"], "n=65 is not allowed; expected an integer in 1..64"),
    (Setting("n", 5, "int", 1, 64), ["five"], "expected an integer"),
    (Setting("n", 5, "int", 1, 64), ["1", "2"], "given 2 times"),
    (Setting("eta", 0.0, "float", 0.0, 1.0), ["nan"], "finite number"),
    (Setting("eta", 0.0, "float", 0.0, 1.0), ["1e9"], "in [0.0, 1.0]"),
    (Setting("clip", True, "bool"), ["yes"], "expected one of"),
    (Setting("kind", "linear", "choice", choices=("linear", "cosine")), ["<script>"], "expected one of linear, cosine"),
    (Setting("counts", [10], "ints", choices=(5, 10)), ["5", "7"], "counts=7"),
    (Setting("T", 100, "int", choices=(50, 100)), ["75"], "T=75"),
])
def test_bad_link_values_raise_one_line(setting, raw, words):
    with pytest.raises(ValueError, match=None) as error:
        setting.parse(raw)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_changed_settings_and_link_leave_defaults_out():
    page = PageSettings("p", [Setting("a", 1, "int", 0, 9), Setting("b", "x", "choice", choices=("x", "y")),
                              Setting("c", [1], "ints", choices=(1, 2))])
    assert page.changed({"a": 1, "b": "y", "c": [2, 1]}) == {"b": ["y"], "c": ["2", "1"]}
    assert page.link({"a": 3, "b": "x", "c": [1]}) == "?a=3"


def test_a_preset_may_only_set_known_settings():
    with pytest.raises(ValueError, match="unknown setting 'z'"):
        PageSettings("p", [Setting("a", 1, "int", 0, 9)], [Preset("bad", {"z": 1})])


# --------------------------------------------------------------------------------------------- pages
def schedules_with(query: dict) -> AppTest:
    at = AppTest.from_file(SCHEDULES, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_a_link_reproduces_the_page():
    at = schedules_with({"schedules_a_T": "100", "schedules_a_beta_end": "0.999", "schedules_compare": "true"})
    assert not at.exception and not at.error
    assert at.number_input(key="schedules_a_T").value == 100
    assert at.number_input(key="schedules_a_beta_end").value == pytest.approx(0.999)
    assert at.toggle(key="schedules_compare").value is True
    assert at.number_input(key="schedules_b_T").value == 1000  # left out of the link: the default
    link = at.code[0].value
    assert "schedules_a_T=100" in link and "schedules_compare=true" in link and "session" not in link


def test_a_bad_link_shows_one_line_and_falls_back_to_the_default():
    at = schedules_with({"schedules_a_T": "5000", "schedules_a_kind": "zigzag", "schedules_digit": "3"})
    assert not at.exception and not at.error
    notices = [w.value for w in at.warning if "Link setting ignored" in w.value]
    assert len(notices) == 2 and any("schedules_a_T=5000" in n for n in notices)
    assert at.number_input(key="schedules_a_T").value == 1000
    assert at.selectbox(key="schedules_a_kind").value == "linear"
    assert at.number_input(key="schedules_digit").value == 3  # the good values of the link still apply


def test_reset_and_presets():
    at = schedules_with({})
    at.number_input(key="schedules_a_T").set_value(300).run()
    at.button(key="schedules_reset").click().run()
    assert at.number_input(key="schedules_a_T").value == 1000
    next(button for button in at.button if button.label.startswith("β up to 0.999")).click().run()
    assert not at.exception
    assert at.number_input(key="schedules_a_beta_end").value == pytest.approx(0.999)
    warning = " ".join(w.value for w in at.warning)
    assert "signal is gone after" in warning and "cosine" in warning  # the numbers come from core.lab.signal


def test_settings_survive_a_page_switch(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/sample.py")
    at.number_input(key="sample_steps").set_value(20).run()
    at.switch_page("pages/schedules.py").run()
    assert not at.exception
    at.switch_page("pages/sample.py").run()
    assert not at.exception and at.number_input(key="sample_steps").value == 20


@pytest.mark.parametrize("page, prefix", [("pages/sample.py", "sample"), ("pages/denoise.py", "denoise"),
                                          ("pages/schedules.py", "schedules"), ("pages/reverse_step.py", "reverse"),
                                          ("pages/playground_2d.py", "playground")])
def test_every_preset_opens_cleanly(monkeypatch, checkpoint_dir, page, prefix):
    at = open_page(monkeypatch, checkpoint_dir, page)
    presets = [button for button in at.button if button.key and button.key.startswith(f"{prefix}_preset_")]
    assert len(presets) >= 2, [b.key for b in at.button]
    for index in range(len(presets)):
        at.button(key=f"{prefix}_preset_{index}").click().run()
        assert not at.exception, (page, index, [e.value for e in at.exception])
        assert not at.error, (page, index, [e.value for e in at.error])
        assert not [w for w in at.warning if "Link setting ignored" in w.value]
        link = next(code.value for code in at.code if code.value.startswith("?") or "://" in code.value)
        assert "session" not in link
