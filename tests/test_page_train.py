"""AppTest of the Train page: the form, the schedule warning, a short background job (in a worker process) that
progresses and finishes, the time budget, and the finished model saved on disk and offered in the catalogue."""

import os
import signal
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(autouse=True)
def run_store(tmp_path, monkeypatch):
    """A fresh registry on a run store in tmp_path (the registry is process-wide: st.cache_resource)."""
    from ui import session

    monkeypatch.setenv("RDL_RUNS_DIR", str(tmp_path / "runs"))
    session.get_registry.clear()
    yield tmp_path / "runs"
    session.get_registry().close(stop_jobs_within=60)
    session.get_registry.clear()


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
    # the page starts from the fast CPU recipe (core.training.config.MNIST_FAST_RECIPE): T = 200, β range scaled
    assert _by_label(at.number_input, "T (diffusion steps)").value == 200
    assert _by_label(at.checkbox, "Scale β range with T (× 1000/T)").value is True
    _by_label(at.checkbox, "Scale β range with T (× 1000/T)").uncheck()
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
    at.run()  # the recipe widgets follow the dataset
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
    snapshot = jobs[-1].snapshot()
    assert jobs and snapshot.state == "finished" and snapshot.step == snapshot.saved_step == 150
    assert snapshot.preview is not None and Path(snapshot.checkpoint).is_file()
    assert jobs[-1].record.max_seconds is None
    assert any("Saved on the server at step 150" in c.value and "kept until" in c.value for c in at.caption)


def test_time_budget_and_a_second_job_waits_for_the_first(run_store):
    at = _train_page()
    _by_label(at.selectbox, "Dataset").set_value("two_moons")
    at.run()
    _by_label(at.number_input, "Training steps").set_value(200_000)
    _by_label(at.radio, "Train for").set_value("minutes")
    at.run()
    _by_label(at.number_input, "Minutes").set_value(2)
    _by_label(at.button, "Start training").click()
    at.run()
    _by_label(at.button, "Start training").click()  # one more may wait in the queue ...
    at.run()
    _by_label(at.button, "Start training").click()  # ... but not a third
    at.run()
    assert not at.exception, at.exception
    assert any("1 job(s) training and 1 waiting" in w.value for w in at.warning)
    from ui import session
    jobs = session.get_registry().jobs_for(at.session_state["session_id"])
    assert [job.record.max_seconds for job in jobs] == [120.0, 120.0]
    assert [job.state for job in jobs] == ["running", "queued"]
    assert any("position 1 in the queue" in str(p.proto.text) for p in at.get("progress"))
    stop = [b for b in at.button if b.label == "Stop"]
    for button in stop:
        button.click()
        at.run()
    assert not at.exception, at.exception


def test_a_crashed_job_is_shown_as_crashed_and_can_be_resumed(run_store, monkeypatch):
    monkeypatch.setenv("RDL_CHECKPOINT_SECONDS", "0.2")
    at = _train_page()
    _by_label(at.selectbox, "Dataset").set_value("two_moons")
    at.run()
    _by_label(at.number_input, "Training steps").set_value(200_000)
    _by_label(at.button, "Start training").click()
    at.run()
    from ui import session
    (job,) = session.get_registry().jobs_for(at.session_state["session_id"])
    deadline = time.monotonic() + 120
    while not (job.snapshot().saved_step or 0) > 0:
        assert time.monotonic() < deadline, "the job never saved a checkpoint"
        time.sleep(0.2)
    os.kill(job.handle.pid, signal.SIGKILL)
    while job.state == "running":
        assert time.monotonic() < deadline, "the killed worker was not noticed"
        time.sleep(0.2)
    at.run()
    assert not at.exception, at.exception
    assert any("Training crashed" in e.value and "SIGKILL" in e.value for e in at.error)
    _by_label(at.button, "Resume").click()
    at.run()
    assert not at.exception, at.exception
    assert job.state in ("running", "queued")


def test_a_batch_that_cannot_fit_is_refused_before_anything_starts(run_store, monkeypatch):
    """Issue 13: the page used to start a job whose first step then failed in the worker. The free memory is
    injected (2 GiB) so that batch 4096 of the tiny MNIST UNet (about 16 GiB per step) cannot fit anywhere."""
    from core.training import fits

    monkeypatch.setattr(fits, "available_memory_bytes", lambda device: 2 * 2**30)
    at = _train_page()
    _by_label(at.number_input, "Batch size").set_value(4096)
    _by_label(at.button, "Start training").click()
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("batch size 4096 would need about" in e and "2.0 GiB is available" in e for e in errors), errors
    assert not at.get("progress")  # no job panel: nothing started or queued
    assert not any(run_store.glob("*/*")), list(run_store.glob("*/*"))  # and no job folder was written
