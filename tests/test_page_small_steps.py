"""AppTests of the Why small steps page (pages/small_steps.py), standalone."""

from pathlib import Path

from helpers import chart, check_link_and_reset, plain_scripts, presets
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "small_steps.py")


def test_gap_grows_with_the_step_size():
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception and not at.error
    rows = at.table[0].value
    kls = [float(x) for x in rows["KL(q ‖ Gaussian) [nats]"]]
    assert rows["steps"].tolist() == [1000, 100, 10] and kls[0] < kls[1] < kls[2]
    totals = [float(m.value.split()[0]) for m in at.metric]
    assert totals[0] < totals[1] < totals[2]
    at.slider(key="small_alpha_bar").set_value(0.9).run()
    assert not at.exception
    assert len(chart(at, 0)["data"]) == 6  # exact and Gaussian for each of the three chains


def total_variations(at) -> dict:
    rows = at.table[0].value
    return dict(zip(rows["steps"].tolist(), (float(x) for x in rows["total variation"])))


def test_link_reset_presets_and_latex():
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert plain_scripts(at) == []
    at = check_link_and_reset(at, "small", {"small_alpha_bar": "0.7"}, {"small_alpha_bar": 0.7}, ("small_xt", "9"))
    assert len(presets(at, "small")) == 2
    at.button(key="small_preset_0").click().run()  # mostly noise: even 10 steps are Gaussian
    assert not at.exception and all(tv < 0.02 for tv in total_variations(at).values()), total_variations(at)
    at.button(key="small_preset_1").click().run()  # almost clean, between the modes: 10 and 100 steps are not
    tv = total_variations(at)
    assert tv[10] > 0.5 and tv[100] > 0.25 and tv[1000] < 0.05, tv
