"""The seven teaching pages in a real browser (issue 11): what a projector shows at 1280×720 and 1440×900
(screenshots `fold-<page>-<size>.png`), and a setting that survives a page switch and travels as a link to a
second browser.

None of these pages has a button its first result waits for (the buttons of the objective's bits/dim, the time
conditioning experiment and the variances' quality table start later sections), so the check is the first result.
The server runs on the tiny checkpoints of conftest.browser_checkpoint_dir (T = 40).
"""

import pytest
from streamlit_harness import AppPage

SIZES = [(1280, 720), (1440, 900)]
CHART = '[data-testid="stPlotlyChart"]'
# page path -> how to find its first result
FIRST_RESULT = {
    "posterior": CHART,
    "small_steps": CHART,
    "objective": CHART,
    "time_conditioning": CHART,
    "score": CHART,
    "variances": CHART,
    "mistakes": "text=✓ Right.",  # the first claim's computed truth
}
MIN_VISIBLE_PX = 250  # of a first figure: enough to see what it shows (the rest may continue below)


@pytest.mark.parametrize("width, height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_first_result_above_the_fold(browser, streamlit_server, main_area, viewport_shot, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    misplaced = {}
    try:
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        app = AppPage(tab, streamlit_server)
        for path, selector in FIRST_RESULT.items():
            app.open(path)
            result = main_area(app).locator(selector).first
            result.wait_for()
            viewport_shot(app, f"fold-{path}-{width}x{height}")
            box = result.bounding_box()
            visible = min(MIN_VISIBLE_PX, box["height"]) if box else 0
            if box is None or not (0 <= box["y"] <= height - visible) or box["x"] + box["width"] > width + 1:
                misplaced[path] = box
    finally:
        context.close()
    assert misplaced == {}, f"first result below the fold or cut off at {width}x{height}: {misplaced}"


def seed_box(app: AppPage, main_area):
    return main_area(app).get_by_label("Seed", exact=True)


def test_a_setting_survives_a_page_switch_and_travels_as_a_link(app, main_area, viewport_shot, share_link, open_as_student):
    app.open("score")
    seed_box(app, main_area).fill("5")
    seed_box(app, main_area).press("Enter")
    app.wait_idle()
    assert "score_seed=5" in app.page.url
    app.page.locator('[data-testid="stSidebarNav"] a', has_text="Deriving the posterior").click()
    app.wait_idle()
    app.page.locator('[data-testid="stSidebarNav"] a', has_text="The score view").click()
    app.wait_idle()
    assert seed_box(app, main_area).input_value() == "5"
    link = share_link(app)
    assert "score_seed=5" in link and "session" not in link, link
    with open_as_student(app, link, "score", height=720) as student:
        assert seed_box(student, main_area).input_value() == "5"
        assert main_area(student).locator(CHART).count() >= 1
        viewport_shot(student, "shared-link-score")
