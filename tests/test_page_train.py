"""AppTest of the Train page: the form, the schedule warning, a short background job (in a worker process) that
progresses and finishes, the time budget, and the finished model saved on disk and offered in the catalogue."""

import os
import signal
import time
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from streamlit.testing.v1 import AppTest

from ui.text import escape_markdown

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


def _train_link(query: dict) -> AppTest:
    """The Train page opened from a link (app.py's shell with the query string, as a browser opens it)."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("pages/train.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _values(at) -> dict:
    """Every train_* widget's value (the page's settings)."""
    widgets = [*at.number_input, *at.selectbox, *at.checkbox, *at.radio]
    return {w.key: w.value for w in widgets if w.key and w.key.startswith("train_")}


def _link(at) -> str:
    return next(code.value for code in at.code if code.value.startswith("?") or "://" in code.value)


def _query(link: str) -> dict:
    """key -> value of a link's query string (each Train setting appears once)."""
    return dict(parse_qsl(link.split("?", 1)[1]))


def _notices(at) -> list:
    return [w.value for w in at.warning if "Link setting ignored" in w.value]


def _by_label(elements, label):
    matches = [element for element in elements if element.label == label]
    assert matches, f"no widget labelled {label!r}"
    return matches[0]


def test_form_and_schedule_warning():
    at = _train_page()
    assert not at.warning  # the default schedule reaches pure noise
    # the page starts from the fast CPU recipe ($RDL_FAST_RECIPE=light in tests/conftest.py): T = 200, β range scaled
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
    assert jobs[-1].record.max_seconds == 300.0  # the default: "at most 5 minutes", planned to fit (150 steps do)
    assert any("Saved on the server at step 150" in c.value and "kept until" in c.value for c in at.caption)
    shown = " ".join(element.value for kind in ("caption", "markdown", "info", "success") for element in getattr(at, kind))
    assert str(Path(snapshot.checkpoint).parent) not in shown  # never the server's folders (issue #21)


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


# ------------------------------------------------------------------------------ settings that travel (issue 11)
RECIPE_FIELDS = {"train_size": "model_size", "train_prediction": "prediction", "train_variance": "variance",
                 "train_steps": "total_steps", "train_batch": "batch_size", "train_schedule": "schedule", "train_T": "T",
                 "train_beta_start": "beta_start", "train_beta_end": "beta_end", "train_scale": "scale_with_T",
                 "train_lr": "learning_rate", "train_lr_schedule": "lr_schedule", "train_warmup": "warmup_steps",
                 "train_ema": "ema_decay", "train_clip": "grad_clip", "train_preview_every": "preview_every",
                 "train_noise_levels": "noise_levels", "train_ln_mean": "lognormal_mean", "train_ln_std": "lognormal_std"}


def _recipe(config) -> dict:
    return {key: getattr(config, name) for key, name in RECIPE_FIELDS.items()}


def test_a_link_that_sets_only_the_dataset_gets_that_datasets_recipe():
    from core.training.config import MNIST_LIGHT_RECIPE, TOY_RECIPE

    at = _train_link({"train_dataset": "two_moons"})
    values = _values(at)
    assert values["train_dataset"] == "two_moons" and not _notices(at)
    assert {key: values[key] for key in RECIPE_FIELDS} == _recipe(TOY_RECIPE)  # written out in core/training/config.py
    assert _recipe(TOY_RECIPE) != _recipe(MNIST_LIGHT_RECIPE)  # so the check above could fail
    assert _link(at) == "?train_dataset=two_moons"  # everything else equals that recipe: left out


def test_a_link_reproduces_every_setting():
    at = _train_page()
    at.selectbox(key="train_dataset").set_value("checkerboard").run()  # the recipe follows the dataset ...
    changes = {"train_T": 300, "train_lr": 5e-4, "train_schedule": "cosine", "train_ema": 0.999, "train_seed": 7,
               "train_variance": "learned_range", "train_scale": True}
    for key, value in changes.items():
        widget = at.checkbox(key=key) if key == "train_scale" else next(w for w in [*at.number_input, *at.selectbox]
                                                                         if w.key == key)
        widget.set_value(value)
    at.radio(key="train_budget").set_value("minutes")
    at.run()
    at.number_input(key="train_minutes").set_value(12).run()
    expected = _values(at)
    assert {key: expected[key] for key in changes} == changes and expected["train_minutes"] == 12
    link = _link(at)
    assert "train_dataset=checkerboard" in link and "train_T=300" in link and "train_lr=0.0005" in link
    assert "train_batch" not in link and "model" not in link  # the toy recipe's batch; the Train page needs no model
    opened = _train_link(_query(link))  # a second browser: a fresh session with only the link
    assert _values(opened) == expected and not _notices(opened)


def test_bad_link_values_warn_in_one_line_each_and_good_ones_apply():
    at = _train_link({"train_dataset": "two_moons", "train_T": "99999", "train_lr": "fast", "train_size": "huge",
                      "train_steps": "400"})
    notices = _notices(at)
    assert len(notices) == 3 and all("\n" not in n for n in notices), notices
    assert any(escape_markdown("train_T=99999 is not allowed; expected an integer in 2..4000") in n for n in notices)
    values = _values(at)
    assert values["train_T"] == 1000 and values["train_lr"] == 0.002 and values["train_size"] == "small"  # two_moons recipe
    assert values["train_steps"] == 400 and values["train_dataset"] == "two_moons"
    assert not at.exception and not at.error


@pytest.mark.parametrize("start", ["mnist", "swiss_roll"])
def test_every_preset_reproduces_through_its_link(start):
    """A preset's link leaves out what equals the recipe of the preset's own dataset (not of the page's current
    one): from MNIST, the toy preset's EMA 0.999 equals MNIST's default but not the toy recipe's 0.995."""
    from core.training.config import (
        MNIST_CPU_RECIPE,
        MNIST_LIGHT_RECIPE,
        MNIST_STANDARD_RECIPE,
        PLAYGROUND_RECIPE,
        TOY_RECIPE,
    )

    assert PLAYGROUND_RECIPE["ema_decay"] == MNIST_LIGHT_RECIPE.ema_decay != TOY_RECIPE.ema_decay
    at = _train_page()
    at.selectbox(key="train_dataset").set_value(start).run()  # presets must not depend on where you are
    presets = [b for b in at.button if b.key and b.key.startswith("train_preset_")]
    assert len(presets) == 4
    expected = [{**_recipe(MNIST_LIGHT_RECIPE), "train_dataset": "mnist"},
                {**_recipe(MNIST_STANDARD_RECIPE), "train_dataset": "mnist"},
                {**_recipe(MNIST_CPU_RECIPE), "train_dataset": "mnist"},
                {"train_dataset": "two_moons", "train_size": PLAYGROUND_RECIPE["model_size"],
                 "train_steps": PLAYGROUND_RECIPE["total_steps"], "train_ema": PLAYGROUND_RECIPE["ema_decay"],
                 "train_batch": PLAYGROUND_RECIPE["batch_size"]}]
    links = [c.value for c in at.caption if c.value.startswith("[link](")]
    assert len(links) == 4
    for index, want in enumerate(expected):
        at.button(key=f"train_preset_{index}").click().run()
        assert not at.exception and not at.error and not _notices(at)
        values = _values(at)
        assert {key: values[key] for key in want} == want, (index, values)
        opened = _train_link(_query(links[index][len("[link]("):links[index].index(")")]))
        assert {key: value for key, value in _values(opened).items() if key in RECIPE_FIELDS or key == "train_dataset"} == \
            {key: value for key, value in values.items() if key in RECIPE_FIELDS or key == "train_dataset"}, index


def test_reset_after_a_dataset_change_is_the_mnist_recipe():
    from core.training.config import MNIST_LIGHT_RECIPE

    at = _train_page()
    at.selectbox(key="train_dataset").set_value("two_moons").run()
    assert at.number_input(key="train_T").value == 1000  # the toy recipe
    at.button(key="train_reset").click().run()
    values = _values(at)
    assert values["train_dataset"] == "mnist" and {key: values[key] for key in RECIPE_FIELDS} == _recipe(MNIST_LIGHT_RECIPE)


def test_settings_survive_a_page_switch():
    at = _train_page()
    at.number_input(key="train_T").set_value(300)
    at.number_input(key="train_seed").set_value(11)
    at.run()
    at.switch_page("pages/schedules.py").run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert at.number_input(key="train_T").value == 300 and at.number_input(key="train_seed").value == 11


def test_a_new_budget_repicks_the_fast_recipe_but_keeps_customised_settings(monkeypatch):
    from core.training.config import MNIST_LIGHT_RECIPE, MNIST_STANDARD_RECIPE

    at = _train_page()  # $RDL_FAST_RECIPE=light (tests/conftest.py)
    assert {key: _values(at)[key] for key in RECIPE_FIELDS} == _recipe(MNIST_LIGHT_RECIPE)
    assert any("CPU recipe: light" in c.value for c in at.caption)
    monkeypatch.setenv("RDL_FAST_RECIPE", "standard")  # as if this machine were fast enough for the new budget
    at.number_input(key="train_minutes").set_value(20).run()
    assert {key: _values(at)[key] for key in RECIPE_FIELDS} == _recipe(MNIST_STANDARD_RECIPE)
    at.number_input(key="train_T").set_value(300).run()  # customised: a new budget leaves the settings alone
    monkeypatch.setenv("RDL_FAST_RECIPE", "light")
    at.number_input(key="train_minutes").set_value(2).run()
    values = _values(at)
    assert values["train_T"] == 300 and values["train_size"] == MNIST_STANDARD_RECIPE.model_size and not at.exception


def test_a_bad_fast_recipe_setting_is_said_in_one_line(monkeypatch):
    monkeypatch.setenv("RDL_FAST_RECIPE", "fastest")
    at = _train_page()
    assert any("Server setting: RDL_FAST_RECIPE='fastest' is not allowed" in e.value for e in at.error)
    assert not at.exception


def test_a_model_the_server_removed_is_named_to_its_owner(run_store):
    """The run store's cleanup removed this session's model (server limit reached): the page says which, when, why."""
    from core.training import run_store as runs
    from core.training.config import TrainConfig
    from ui import session

    at = _train_page()
    registry = session.get_registry()
    record = runs.JobRecord(job_id="0123456789ab", owner_key=runs.owner_key(at.session_state["session_id"]),
                            created=time.time(), config=TrainConfig(dataset="two_moons", model_size="tiny"))
    folder = registry.store.create(record)
    runs.write_json_atomically(folder / runs.PROGRESS, {"state": "stopped", "saved_step": 1200})
    registry.store.max_bytes = 1
    assert registry.store.cleanup() == ["0123456789ab"]
    at.run()
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning if "Your model" in w.value]
    assert warning.startswith("Your model two_moons · tiny (step 1,200) was removed at ")
    assert "to free space (server limit 9.537e-07 MB)" in warning and "could have been resumed" in warning
