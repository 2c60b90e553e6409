"""AppTests of the score view page (pages/score.py), standalone."""

from pathlib import Path

from helpers import alpha_bars_by_hand, check_link_and_reset, linear_betas, plain_scripts, presets
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "score.py")
TARGET, TRUE, GAP = ("mean $\\lVert-\\varepsilon/\\sigma\\rVert^2/D$", "mean $\\lVert\\nabla\\log q_t\\rVert^2/D$",
                     "floor (the gap)")


def metrics(at) -> dict:
    return {m.label: float(m.value) for m in at.metric}


def test_tweedie_and_the_two_fields():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and not at.error
    values = metrics(at)
    assert next(v for k, v in values.items() if k.startswith("Tweedie")) < 1e-9
    assert values[TARGET] > values[TRUE]
    at.slider(key="score_t").set_value(900).run()
    assert not at.exception
    later = metrics(at)
    assert later[TARGET] < values[TARGET]  # 1/(1−ᾱ_t) shrinks toward 1
    assert len(at.expander) == 3  # Tweedie, and the x₀ and v forms of the score


def test_link_reset_presets_and_latex():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert plain_scripts(at) == []
    at = check_link_and_reset(at, "score", {"score_t": "900", "score_n": "400"}, {"score_t": 900, "score_n": 400},
                              ("score_seed", "-1"))
    assert len(presets(at, "score")) == 2
    at.button(key="score_preset_0").click().run()  # t = 10: targets about 5× the score, mostly the floor
    small = metrics(at)
    expected = 1 / (1 - alpha_bars_by_hand(linear_betas(1000))[9])  # E‖ε‖²/D/σ² by hand
    assert 0.8 * expected < small[TARGET] < 1.2 * expected
    assert small[TARGET] > 4 * small[TRUE] and small[GAP] > 0.7 * small[TARGET], small
    at.button(key="score_preset_1").click().run()  # t = 900: the targets are the score
    large = metrics(at)
    assert large[GAP] < 0.01 * large[TRUE], large
