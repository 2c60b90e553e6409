"""The seven teaching pages in a real browser (issue 11): a setting that survives a page switch and travels as a
link to a second browser. What a projector shows at 1280×720 and 1440×900 (first result above the fold, screenshots
`fold-<page>-<size>.png`) is checked for every page on the walks of test_look.py.

The server runs on the tiny checkpoints of conftest.browser_checkpoint_dir (T = 40).
"""

from streamlit_harness import AppPage

CHART = '[data-testid="stPlotlyChart"]'


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
