"""AppTests of the Why small steps page (pages/small_steps.py), standalone."""

from pathlib import Path

from helpers import chart
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
