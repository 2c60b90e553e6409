"""The replay section (ui/replay.py) in a real browser: the step slider works from the keyboard, Play runs the
recording to its end on the fragment timer and stops by itself. A tiny history is recorded for the test."""

import re
import shutil
import textwrap

import numpy as np
import pytest
from streamlit_harness import REPO_ROOT, AppPage, serve_streamlit

from core.training.history import HistoryRecorder

STEPS = (10, 20, 30, 40)


@pytest.fixture(scope="module")
def replay_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay_app")
    recorder = HistoryRecorder(root / "history" / "tiny_run", "Tiny run", "recorded for the browser test",
                               {"T": 40}, 40, [0, 20, 40], loss_bucket=1)
    for step in range(1, STEPS[-1] + 1):
        recorder.add_loss(step, 1.0 / step)
    for i, step in enumerate(STEPS):
        recorder.add_frame(step, float(step), [1.0 / (i + 1), 0.5 / (i + 1)], np.full((30, 30), 60 * i, np.uint8),
                           fd=100.0 - i, classes=10)
    recorder.save()
    (root / "app.py").write_text(textwrap.dedent(f"""
        from ui.replay import render_replay

        render_replay({str(root / "history")!r})
        """))
    shutil.copytree(REPO_ROOT / ".streamlit", root / ".streamlit")
    with serve_streamlit(root / "app.py", root / "streamlit.log", env={"PYTHONPATH": str(REPO_ROOT)}) as base_url:
        yield base_url


STEP_SHOWN_JS = "step => document.querySelector('[data-testid=stMetricValue]').innerText.trim() === step"


def shown_step(app: AppPage) -> str:
    return app.page.get_by_test_id("stMetricValue").first.inner_text().strip()


def test_replay_slider_by_keyboard_and_play_to_the_end(page, replay_server):
    app = AppPage(page, replay_server).open()
    assert shown_step(app) == "10"
    step_slider = page.get_by_role("slider").last  # "Training step" (the first slider is the speed)
    step_slider.focus()
    page.keyboard.press("ArrowRight")
    app.wait_idle()
    page.wait_for_function(STEP_SHOWN_JS, arg="20")
    app.assert_no_errors()
    page.get_by_role("button", name=re.compile("Play")).click()
    page.wait_for_function(STEP_SHOWN_JS, arg="40", timeout=60_000)
    page.get_by_role("button", name=re.compile("Play")).wait_for(timeout=60_000)  # stopped by itself at the end
    app.wait_idle()
    page.wait_for_timeout(2000)
    app.wait_idle()
    assert shown_step(app) == "40"  # and stays there (the slider is not sent back with an older value)
    app.assert_no_errors()
    app.screenshot("replay")
