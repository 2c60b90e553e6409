"""Classroom checks in a real browser (issue 11): settings that survive a page switch and a reload, a shared link
that reproduces a page, and its active shipped model, in a second browser, keyboard operation of a scrubber, a
download, labels that never overlap at 1280×720 and 1440×900, and Cancel of a long run. The projector layout of
every page (primary action and first result above the fold at both sizes, `fold-*` screenshots) and the dark
theme's figures are checked on the walks of test_look.py, which load each page once for all their checks.

The server runs on the tiny checkpoints of conftest.browser_checkpoint_dir (T = 40).
"""

import io

import numpy as np
import pytest
from streamlit_harness import AppPage

SIZES = [(1280, 720), (1440, 900)]


def set_number(app: AppPage, label: str, value: int) -> None:
    box = app.main_area().get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    app.wait_idle()


def test_settings_survive_a_page_switch_and_a_reload(app):
    app.open("sample")
    set_number(app, "Steps", 20)
    app.page.locator('[data-testid="stSidebarNav"] a', has_text="Schedule lab").click()
    app.wait_idle()
    app.page.locator('[data-testid="stSidebarNav"] a', has_text="Sample").first.click()
    app.wait_idle()
    assert app.main_area().get_by_label("Steps", exact=True).input_value() == "20"
    assert "sample_steps=20" in app.page.url
    app.page.reload()
    app.wait_idle()
    assert app.main_area().get_by_label("Steps", exact=True).input_value() == "20"
    app.assert_no_errors()


def test_a_shared_link_reproduces_the_page_in_another_browser(app, share_link, open_as_student):
    app.open("schedules")
    set_number(app, "T (number of steps)", 100)
    link = share_link(app)
    assert "schedules_a_T=100" in link and "session" not in link, link
    with open_as_student(app, link, "schedules") as student:
        assert student.main_area().get_by_label("T (number of steps)", exact=True).input_value() == "100"
        assert student.main_area().get_by_text("is far from pure noise").count() >= 1
        student.viewport_screenshot("shared-link-schedules")


def sidebar_model(app: AppPage) -> str:
    """The label of the model chosen in the sidebar (a select box shows its option in its input's value)."""
    picker = app.page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(has_text="Active model")
    return picker.locator("input").first.input_value()


def test_a_denoise_link_opens_with_its_model_in_another_browser(app, share_link, open_as_student):
    """Issue 11: a link made with a non-default shipped model (the x₀-model) opens with that model active, and
    the page's own settings, for a student in a second browser; a reload keeps both."""
    app.open("denoise")
    app.page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(has_text="Active model").click()
    app.page.get_by_role("option", name="mnist_x0 (shipped)", exact=True).click()
    app.wait_idle()
    assert sidebar_model(app) == "mnist_x0 (shipped)"
    set_number(app, "Noise seed", 3)
    assert "model=shipped%3Amnist_x0" in app.page.url or "model=shipped:mnist_x0" in app.page.url, app.page.url
    link = share_link(app)
    assert "model=shipped:mnist_x0" in link and "denoise_noise_seed=3" in link, link
    with open_as_student(app, link, "denoise") as student:
        for _ in range(2):  # as opened, then after a reload
            assert sidebar_model(student) == "mnist_x0 (shipped)"
            assert student.main_area().get_by_text("mnist_x0 (shipped)").count() >= 1  # the page runs that model
            assert student.main_area().get_by_label("Noise seed", exact=True).input_value() == "3"
            student.page.reload()
            student.wait_idle()
        student.viewport_screenshot("shared-link-denoise-x0-model")


def test_a_bad_link_is_one_line_not_a_traceback(app):
    app.open("schedules?schedules_a_T=99999&schedules_a_kind=zigzag", check_errors=True)
    notices = app.main_area().get_by_text("Link setting ignored").count()
    assert notices == 2
    assert app.main_area().get_by_label("T (number of steps)", exact=True).input_value() == "1000"


def test_keyboard_moves_the_scrubber(app):
    app.open("denoise")
    thumb = app.main_area().locator('input[type="range"][aria-label="t (paper\'s step)"]')
    before = thumb.get_attribute("aria-valuenow") or thumb.get_attribute("aria-valuetext")
    thumb.focus()
    app.page.keyboard.press("ArrowRight")
    app.wait_idle()
    thumb = app.main_area().locator('input[type="range"][aria-label="t (paper\'s step)"]')
    after = thumb.get_attribute("aria-valuenow") or thumb.get_attribute("aria-valuetext")
    assert before != after, (before, after)
    label = app.main_area().locator('[data-testid="stPlotlyChart"]').first.locator(".slider-group > text.slider-label")
    assert label.first.text_content().strip() == "t = 2"  # the Plotly scrubber follows the keyboard slider
    app.assert_no_errors()


def test_samples_download_as_npz(app):
    app.open("sample")
    with app.page.expect_download() as download:
        app.main_area().get_by_role("button", name="Samples (.npz)").click()
    data = np.load(io.BytesIO(open(download.value.path(), "rb").read()))
    assert data["samples"].shape == (16, 1, 28, 28) and int(data["steps"]) == 40 and int(data["seed"]) == 0
    with app.page.expect_download() as download:
        app.main_area().get_by_role("button", name="PNG of the samples").click()
    assert open(download.value.path(), "rb").read()[:8] == b"\x89PNG\r\n\x1a\n"


OVERLAPS_JS = """(chart) => {
  const boxes = (selector) => Array.from(chart.querySelectorAll(selector)).map(e => e.getBoundingClientRect())
      .filter(r => r.width > 0 && r.height > 0);
  const labels = boxes('g.annotation-text-g text, g.annotation text');
  const pictures = boxes('g.imagelayer image, image');
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const found = [];
  labels.forEach((a, i) => {
    pictures.forEach(b => { if (hit(a, b)) found.push(['label over picture', a.top, b.top]); });
    labels.slice(i + 1).forEach(b => { if (hit(a, b)) found.push(['label over label', a.left, b.left]); });
  });
  return {found: found, labels: labels.length, pictures: pictures.length};
}"""


@pytest.mark.parametrize("width, height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_labels_never_overlap(browser, streamlit_server, width, height):
    """Subplot titles stay clear of the pictures (the ε / x₀ / v comparison) and the μ̃ / μ_θ labels of the
    reverse step stay apart where the two means nearly coincide (large t with an x̂₀ error)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        app = AppPage(tab, streamlit_server).open("denoise")
        app.main_area().get_by_text("Show the comparison of").click()
        app.wait_idle()
        charts = app.main_area().locator('[data-testid="stPlotlyChart"]')
        assert charts.count() == 3  # the scrubber, the best possible x̂₀, the comparison (the last)
        for index in (0, 2):
            charts.nth(index).scroll_into_view_if_needed()
            result = charts.nth(index).evaluate(OVERLAPS_JS)
            assert result["labels"] >= 6 and result["pictures"] >= 6, result  # the check saw what it checks
            assert result["found"] == [], f"denoise chart {index} at {width}x{height}: {result}"
        app.viewport_screenshot(f"labels-denoise-compare-{width}x{height}")
        app.open("reverse_step?reverse_t=900&reverse_x0_error=0.3")
        density = app.main_area().locator('[data-testid="stPlotlyChart"]').nth(1)
        density.scroll_into_view_if_needed()
        result = density.evaluate(OVERLAPS_JS)
        assert result["labels"] >= 2, result  # μ̃ and μ_θ (and the title)
        assert result["found"] == [], f"μ̃ / μ_θ labels at {width}x{height}: {result}"
        app.viewport_screenshot(f"labels-reverse-step-{width}x{height}")
    finally:
        context.close()


def test_cancel_stops_a_long_run(app):
    """The 2-D playground's quality table (six sampler runs of the exact oracle, up to 200 steps each) shows a
    progress box with Cancel; a click stops it between steps and says so; nothing half-done is shown."""
    app.open("playground_2d")
    app.main_area().get_by_text("Samples & quality", exact=True).click()
    app.wait_idle()
    app.main_area().get_by_role("button", name="Compute the table").click()
    cancel = app.main_area().get_by_role("button", name="Cancel")
    cancel.wait_for(timeout=60_000)
    app.main_area().get_by_text("Sampler runs: step").first.wait_for(timeout=60_000)
    cancel.click()
    app.wait_idle()
    assert app.main_area().get_by_text("Cancelled Quality table after").count() == 1
    assert app.main_area().locator('[data-testid="stDataFrame"]').count() == 0
    app.assert_no_errors()
