"""AppTest of the Train page: the form, the schedule warning, a short background job that progresses and finishes,
and the finished model becoming selectable in the sidebar."""

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _train_page():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    return at


def _by_label(elements, label):
    matches = [element for element in elements if element.label == label]
    assert matches, f"no widget labelled {label!r}"
    return matches[0]


def test_form_and_schedule_warning():
    at = _train_page()
    assert not at.warning  # the default schedule reaches pure noise
    _by_label(at.number_input, "T (diffusion steps)").set_value(100)
    at.run()
    assert any("far from pure noise" in w.value for w in at.warning)
    _by_label(at.checkbox, "Scale β range with T (× 1000/T)").check()
    at.run()
    assert not any("far from pure noise" in w.value for w in at.warning)
    _by_label(at.number_input, "β start").set_value(0.05)
    _by_label(at.number_input, "β end").set_value(0.01)
    at.run()
    assert any("beta_start" in e.value for e in at.error)  # a clear message, no exception
    assert not at.exception


def test_short_job_runs_finishes_and_becomes_selectable():
    at = _train_page()
    _by_label(at.selectbox, "Dataset").set_value("two_moons")
    _by_label(at.number_input, "Training steps").set_value(150)
    _by_label(at.number_input, "Preview every (steps)").set_value(50)
    _by_label(at.button, "Start training").click()
    at.run()
    assert not at.exception, at.exception
    steps_seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        at.run()
        text = " ".join(p.value["text"] if isinstance(p.value, dict) else str(p.proto.text) for p in at.get("progress"))
        steps_seen.add(text)
        if "finished" in text:
            break
        time.sleep(0.5)
    assert any("finished" in text for text in steps_seen), steps_seen
    assert len(steps_seen) >= 2  # progress was visible while it ran
    assert not at.exception
    # The registry is process-wide (st.cache_resource), so the finished job is visible from here too; the
    # sidebar lists it (AppTest does not capture app.py's sidebar after switch_page, so ask ui.catalog directly).
    from ui import session
    jobs = session.get_registry().jobs_for(at.session_state["session_id"])
    assert jobs and jobs[-1].snapshot().state == "finished" and jobs[-1].snapshot().step == 150
    assert jobs[-1].snapshot().preview is not None
