"""What a student sees when a hostile checkpoint is uploaded (issue #21, items 3-6): the sidebar's one-line refusal
and pages that keep working, never a traceback; no server paths on any page.

Each file is uploaded through the sidebar's real st.file_uploader (Streamlit's AppTest), then the pages that used to
fail with it are opened: before these checks, β = 1e-300 made the Sample page a traceback ("x contains NaN") for an
image model, a lone surrogate in the model-size text made every page a UnicodeEncodeError, and "mnist" on an 8x8 or
3x32x32 UNet made the Training objective and "v, variances and DDIM" pages a shape error. The files themselves, with
their memory and work bounds: tests/test_hostile_files.py.
"""

from __future__ import annotations

import re
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import test_hostile_files as hostile
import torch
from helpers import APP, TINY_UNET
from streamlit import config
from streamlit.testing.v1 import AppTest

from core import checkpoints as ck

ROOT = Path(__file__).resolve().parent.parent
UNET_28 = {**TINY_UNET, "out_channels": 1}  # the page tests' tiny MNIST-shaped UNet


def image_file(**kwargs) -> bytes:
    return hostile.good_file(UNET_28, (1, 28, 28), "mnist", **kwargs)


# name -> (file, the refusal's words, the pages that used to fail with it)
UPLOADS = {
    "β = 1e-300, image model": (lambda: hostile.with_doc(hostile.schedule_edit(beta_start=1e-300), image_file()),
                                "the schedule's β_1=1e-300 is below 1e-12", ["pages/sample.py", "pages/denoise.py"]),
    "β = 1e-300, 2-D toy": (lambda: hostile.with_doc(hostile.schedule_edit(beta_start=1e-300)),
                            "the schedule's β_1=1e-300 is below 1e-12", ["pages/sample.py"]),
    "image model infinite at 499 of 1,000 timesteps": (
        lambda: image_file(T=1000, edit_weights=hostile.infinite_when_sin_t_is_positive),
        "output on a probe batch is not finite (NaN or infinite) at", ["pages/sample.py"]),
    "lone surrogate in the model-size text": (
        lambda: hostile.with_training({"config": {"model_size": "\ud800"}}),
        "holds text that is not valid Unicode: training.config.model_size='\\ud800'", ["pages/home.py", "pages/sample.py"]),
    "'mnist' on an 8x8 UNet": (
        lambda: hostile.named_dataset("mnist", hostile.UNET, (1, 8, 8)),
        "data['dataset']='mnist' holds 1x28x28 images, but the model's input is [1, 8, 8]",
        ["pages/objective.py", "pages/variances.py"]),
    "'mnist' on a 3x32x32 UNet": (
        lambda: hostile.named_dataset("mnist", hostile.UNET_3X32, (3, 32, 32)),
        "data['dataset']='mnist' holds 1x28x28 images, but the model's input is [3, 32, 32]",
        ["pages/objective.py", "pages/variances.py"]),
}


def app_with(monkeypatch, folder: Path, session_state: dict | None = None) -> AppTest:
    """app.py run once (the sidebar is drawn) against the tiny checkpoints in `folder`."""
    import ui.catalog

    monkeypatch.setattr(ui.catalog, "CHECKPOINT_DIR", Path(folder))
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in (session_state or {}).items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("name", list(UPLOADS))
def test_a_hostile_upload_is_refused_in_one_line_and_no_page_breaks(monkeypatch, checkpoint_dir, name):
    make, words, pages = UPLOADS[name]
    at = app_with(monkeypatch, checkpoint_dir)
    at.sidebar.file_uploader[0].set_value(("hostile.safetensors", make(), "application/octet-stream"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    refusal = at.session_state["upload_error"]
    assert refusal.startswith("hostile.safetensors is not a usable checkpoint: ") and words in refusal, refusal
    assert "\n" not in refusal
    assert len(at.sidebar.error) == 1 and "is not a usable checkpoint" in at.sidebar.error[0].value
    assert "uploaded_models" not in at.session_state or not at.session_state["uploaded_models"]
    for page in pages:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.session_state["active_model_key"].startswith("shipped:")  # the pages use a model that loaded


def test_text_that_slipped_past_the_checks_is_still_shown_not_a_traceback(monkeypatch, checkpoint_dir):
    """The display side of item 4: a model already in the session whose metadata holds a lone surrogate (as an older
    app version accepted) draws the sidebar, with the surrogate written as its escape."""
    model, diffusion, metadata = ck.load(Path(checkpoint_dir) / "moons_eps.safetensors")
    metadata = {**metadata, "training": {"config": {"model_size": "tiny\ud800"}}}
    upload = {"uploaded:0123456789abcdef": {"label": "old (uploaded)", "bytes": 1, "loaded": (model, diffusion, metadata)}}
    at = app_with(monkeypatch, checkpoint_dir, {"uploaded_models": upload, "active_model_key": "uploaded:0123456789abcdef"})
    sizes = [m.value for m in at.sidebar.markdown if m.value.startswith("**model size**")]
    assert sizes == ["**model size**: tiny\\\\ud800"], sizes
    at.switch_page("pages/sample.py").run()
    assert not at.exception, [e.value for e in at.exception]


# ------------------------------------------------------------------------------------------------ item 6
def test_uncaught_errors_show_no_paths():
    """.streamlit/config.toml's showErrorDetails, checked with Streamlit itself: an error whose message and traceback
    hold server paths shows neither (only its type and Streamlit's generic words); "full" would have shown both."""
    setting = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["client"]["showErrorDetails"]
    assert setting == "type"
    script = 'raise FileNotFoundError("no checkpoint file at /srv/rdl/.venv/lib/python3.11/site-packages/x.safetensors")'
    before = config.get_option("client.showErrorDetails")
    shown = {}
    try:
        for value in (setting, "full"):
            config.set_option("client.showErrorDetails", value)
            at = AppTest.from_string(script).run()
            error = at.exception[0]
            shown[value] = " ".join([error.message, *error.stack_trace])
            assert error.proto.type == "FileNotFoundError"  # the type is still there to report
    finally:
        config.set_option("client.showErrorDetails", before)
    assert "/srv/rdl" not in shown[setting] and ".venv" not in shown[setting] and "line 1" not in shown[setting]
    assert "redacted" in shown[setting]
    assert "/srv/rdl/.venv" in shown["full"] and "line 1" in shown["full"]  # what students used to see


def test_where_saved_says_when_and_until_when_but_not_where_on_the_server(tmp_path):
    from ui.training_panel import where_saved

    path = tmp_path / "runs" / "jobs" / "5f3c9a" / "job-42" / "checkpoint.safetensors"
    kept_until = time.mktime((2031, 5, 17, 14, 30, 0, 0, 0, -1))
    text = where_saved(SimpleNamespace(checkpoint=str(path), saved_step=1234, kept_until=kept_until))
    assert text == ("Saved on the server at step 1,234, kept until 2031-05-17 14:30 (or earlier if the server runs out "
                    "of room for runs); download it to keep it longer.")
    for part in (str(tmp_path), "5f3c9a", "job-42", "checkpoint.safetensors", "/", "`"):
        assert part not in text
    assert where_saved(SimpleNamespace(checkpoint=None, saved_step=None, kept_until=None)) is None


def test_the_hostile_upload_files_are_otherwise_valid():
    """Each upload above is a valid file with one thing changed: the unchanged files load (so each case tests its
    own change), on the same 28 x 28 UNet and 2-D MLP."""
    for data in (image_file(), hostile.good_file(), image_file(T=1000)):
        model, diffusion, metadata = ck.load_bytes(data)
        assert not model.training and torch.isfinite(model(torch.zeros(2, *ck.CheckpointInfo.from_document(
            metadata).data_shape), torch.tensor([0, diffusion.T - 1]))).all()


# ------------------------------------------------------------------------------------------------ item 3, the guard
PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))


def overflowing(data: bytes):
    """(model, diffusion, metadata) of a valid file whose network is then made infinite wherever sin(t) > 0, as a model
    that passed an older probe (or a probe that visits only some timesteps of a costly UNet) reaches the pages."""
    model, diffusion, metadata = ck.load_bytes(data)
    with torch.no_grad():
        hostile.infinite_when_sin_t_is_positive(model)
    return model, diffusion, metadata


@pytest.mark.parametrize("kind", ["image", "points"])
def test_every_page_given_a_network_infinite_at_some_timesteps_shows_a_message_not_a_traceback(monkeypatch, checkpoint_dir,
                                                                                            kind):
    data = image_file(T=1000) if kind == "image" else hostile.good_file(T=1000)
    upload = {"uploaded:00000000000000ff": {"label": "overflowing (uploaded)", "bytes": 1, "loaded": overflowing(data)}}
    at = app_with(monkeypatch, checkpoint_dir, {"uploaded_models": upload, "active_model_key": "uploaded:00000000000000ff"})
    messages = []
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        messages += [(page, e.value) for e in at.error if "is not finite (NaN or infinite)" in e.value]
    assert any(page == "pages/sample.py" for page, _ in messages), messages  # the first sampling step already overflows
    for _, message in messages:
        assert "\n" not in message and "weights overflow there" in message


# ------------------------------------------------------------------------------------------------ item 8, the sidebar
@pytest.fixture
def fresh_registry(tmp_path, monkeypatch):
    """A registry on a run store in tmp_path (the registry is process-wide: st.cache_resource)."""
    from ui import session

    monkeypatch.setenv("RDL_RUNS_DIR", str(tmp_path / "runs"))
    session.get_registry.clear()
    yield session.get_registry
    session.get_registry().close(stop_jobs_within=60)
    session.get_registry.clear()


def _vanished_warnings(at) -> list:
    """The sidebar's notices of a vanished model, as the student reads them (the Markdown escapes dropped)."""
    return [w.value.replace("\\", "") for w in at.sidebar.warning if "Now showing" in w.value]


def test_a_trained_model_the_server_removed_is_named_in_the_sidebar_until_another_is_picked(monkeypatch, checkpoint_dir,
                                                                                              fresh_registry):
    """The sidebar showed this session's trained model; the run store's cleanup removed it (server limit). The next run
    tells its owner what was removed, when and why, and what is shown instead, on every page, until they pick a model."""
    from core.training import run_store as runs
    from core.training.config import TrainConfig

    at = app_with(monkeypatch, checkpoint_dir)
    registry = fresh_registry()
    record = runs.JobRecord(job_id="0123456789ab", owner_key=runs.owner_key(at.session_state["session_id"]),
                            created=time.time(), config=TrainConfig(dataset="two_moons", model_size="tiny"))
    runs.write_json_atomically(registry.store.create(record) / runs.PROGRESS, {"state": "stopped", "saved_step": 1200})
    registry.store.max_bytes = 1
    assert registry.store.cleanup() == ["0123456789ab"]
    shown = ("trained:0123456789ab", "two_moons · step 1200 · eps/fixed_large (trained here)")
    at.session_state["active_model_key"], at.session_state["sidebar_shown_model"] = shown[0], shown
    at.run()
    assert not at.exception, at.exception
    (warning,) = _vanished_warnings(at)
    assert re.fullmatch(r"Your model two_moons · tiny \(step 1,200\) was removed at \d\d:\d\d to free space \(server limit "
                        r"9\.537e-07 MB\)\. It had not reached its last step; it could have been resumed\. Now showing "
                        r"mnist_eps \(shipped\) instead\.", warning), warning
    assert at.session_state["active_model_key"] == "shipped:mnist_eps"
    at.switch_page("pages/sample.py").run()
    assert not at.exception and len(_vanished_warnings(at)) == 1  # still said on the next page
    at.sidebar.selectbox[0].set_value("shipped:moons_eps").run()
    assert not at.exception and not _vanished_warnings(at)  # the owner picked another model: said enough


def test_a_model_whose_file_was_removed_is_named_not_silently_replaced(monkeypatch, tmp_path, checkpoint_dir, fresh_registry):
    import shutil

    folder = tmp_path / "shipped"
    shutil.copytree(checkpoint_dir, folder)
    at = app_with(monkeypatch, folder, {"active_model_key": "shipped:moons_eps"})
    assert at.session_state["sidebar_shown_model"] == ("shipped:moons_eps", "moons_eps (shipped)")
    assert not _vanished_warnings(at)
    (folder / "moons_eps.safetensors").unlink()
    at.run()
    assert not at.exception, at.exception
    assert _vanished_warnings(at) == ["Your model moons_eps (shipped) is no longer available on the server (its file was "
                                      "removed). Now showing mnist_eps (shipped) instead."]


# ------------------------------------------------------------------------------------------------ item 5, no dataset
@pytest.mark.parametrize("config, shape", [(hostile.UNET, (1, 8, 8)), (hostile.UNET_3X32, (3, 32, 32))], ids=["1x8x8", "3x32x32"])
def test_pages_that_run_on_digits_say_so_for_an_image_model_of_another_shape(monkeypatch, checkpoint_dir, config, shape):
    """A valid upload that names no dataset, on images that are not 28 x 28 digits: the Training objective and "v,
    variances and DDIM" pages (which run the model on held-out MNIST digits) say why in one line, no shape error; the
    other pages work with it."""
    at = app_with(monkeypatch, checkpoint_dir)
    at.sidebar.file_uploader[0].set_value(("other.safetensors", hostile.good_file(config, shape, None), "application/octet-stream"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["active_model_key"].startswith("uploaded:")
    side = "x".join(map(str, shape))
    for page in PAGES:  # every page, not only the two that used to fail
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        if page in ("pages/objective.py", "pages/variances.py"):
            (notice,) = [i.value for i in at.info if "MNIST digits" in i.value]
            assert f"takes {side} images" in notice and "choose an MNIST model in the sidebar" in notice, notice
