"""AppTests of the score view page (pages/score.py), standalone."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "score.py")


def test_tweedie_and_the_two_fields():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and not at.error
    values = {m.label: float(m.value) for m in at.metric}
    assert values["Tweedie: max |E[ε|x] + σ∇log q_t|"] < 1e-9
    assert values["mean ‖−ε/σ‖²/D"] > values["mean ‖∇log q_t‖²/D"]
    at.slider(key="score_t").set_value(900).run()
    assert not at.exception
    later = {m.label: float(m.value) for m in at.metric}
    assert later["mean ‖−ε/σ‖²/D"] < values["mean ‖−ε/σ‖²/D"]  # 1/(1−ᾱ_t) shrinks toward 1
    assert len(at.expander) == 1
