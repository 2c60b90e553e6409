"""Above the fold at 1280×720 (issue 18 item 3): every page's first result, and the live panel of a training job
just started, begin within the first 720 px of a projector's screen, without scrolling.

The server runs on the tiny checkpoints of conftest.browser_checkpoint_dir (T = 40). Home has no result (it is the
table of contents) and is left out. Screenshots `above-fold-<page>.png` show what the projector shows.
"""

import time

from streamlit_harness import AppPage

WIDTH, HEIGHT = 1280, 720
CHART = '[data-testid="stPlotlyChart"]'
FIRST_RESULT = {  # page path -> how to find its first result
    "train": CHART,  # before Start: the schedule figure beside the settings
    "denoise": CHART,
    "sample": CHART,
    "schedules": CHART,
    "reverse_step": CHART,
    "playground_2d": CHART,
    "objective": CHART,
    "time_conditioning": CHART,
    "posterior": CHART,
    "small_steps": CHART,
    "score": CHART,
    "variances": CHART,
    "mistakes": "text=✓ Right.",
}
PANEL_TIMEOUT_S = 300.0  # until a job just started shows its first loss curve, on a shared 2-core machine


def top_of(app: AppPage, selector: str, main_area) -> float | None:
    result = main_area(app).locator(selector).first
    result.wait_for()
    box = result.bounding_box()
    return None if box is None else box["y"]


def test_every_pages_first_result_starts_above_the_fold(browser, streamlit_server, main_area, viewport_shot):
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    tops = {}
    try:
        tab = context.new_page()
        tab.set_default_timeout(120_000)
        app = AppPage(tab, streamlit_server)
        for path, selector in FIRST_RESULT.items():
            app.open(path)
            tops[path] = top_of(app, selector, main_area)
            viewport_shot(app, f"above-fold-{path}")
    finally:
        context.close()
    below = {path: top for path, top in tops.items() if top is None or not 0 <= top < HEIGHT}
    assert below == {}, f"first result not within the first {HEIGHT} px at {WIDTH}x{HEIGHT}: {below} (all: {tops})"


def test_the_live_panel_of_a_started_job_is_above_the_fold(browser, streamlit_server, main_area, viewport_shot):
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    try:
        tab = context.new_page()
        tab.set_default_timeout(120_000)
        app = AppPage(tab, streamlit_server).open("train")
        box = main_area(app).locator('[data-testid="stSelectbox"]').filter(has_text="Dataset")
        box.click()
        tab.get_by_role("option", name="2-D: Two moons", exact=True).click()
        app.wait_idle()
        tab.get_by_role("button", name="Start training").click()
        app.wait_idle()
        progress = main_area(app).locator('[data-testid="stProgress"]').first
        progress.wait_for()
        assert 0 <= progress.bounding_box()["y"] < HEIGHT, progress.bounding_box()
        deadline = time.monotonic() + PANEL_TIMEOUT_S
        loss = main_area(app).locator('[data-testid="stExpander"]').filter(has_text="two_moons").locator(CHART).first
        while not loss.count() and time.monotonic() < deadline:  # the panel is a fragment on a 1 s timer
            tab.wait_for_timeout(500)
        assert loss.count(), f"no loss curve within {PANEL_TIMEOUT_S:.0f} s"
        assert 0 <= loss.bounding_box()["y"] < HEIGHT, loss.bounding_box()
        viewport_shot(app, "above-fold-train-running")
        stop = main_area(app).get_by_role("button", name="Stop")
        if stop.count():  # leave the shared server idle for the other tests
            stop.first.click()
            app.wait_idle()
    finally:
        context.close()
