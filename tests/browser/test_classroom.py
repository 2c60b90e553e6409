"""Classroom checks in a real browser (issue 11): the projector layout at 1280×720 and 1440×900 with
screenshots (Home and Train included), settings that survive a page switch and a reload, a shared link that
reproduces a page, and its active shipped model, in a second browser, keyboard operation of a scrubber, and a
download.

The server runs on the tiny checkpoints of conftest.browser_checkpoint_dir (T = 40).
"""

import io

import numpy as np
import pytest
from streamlit_harness import AppPage, screenshot_dir

SIZES = [(1280, 720), (1440, 900)]
CHART = '[data-testid="stPlotlyChart"]'
# page (URL path; "" is Home) -> (what must be visible without scrolling: the primary action as (ARIA role, name)
# or None, how to find the first result or None)
ABOVE_THE_FOLD = {
    "": (("link", "Schedule lab"), None),  # Home: the course guide's first link (the sidebar's copy does not count)
    "sample": (("button", "Sample"), CHART),
    "denoise": (None, CHART),
    "schedules": (None, CHART),
    "reverse_step": (None, CHART),
    "playground_2d": (None, CHART),  # the exploration's first figure; the training form comes after it
    "train": (("button", "Start training"), CHART),  # the schedule figure beside the settings
}
MIN_VISIBLE_PX = 250  # of the first figure: enough to see what it shows (the rest may continue below)


def main_area(app: AppPage):
    return app.page.locator('[data-testid="stMain"]')


def shot(app: AppPage, name: str) -> None:
    """A screenshot of exactly what the viewport shows (what the projector shows)."""
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    app.page.screenshot(path=str(folder / f"{name}.png"))


@pytest.mark.parametrize("width, height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("path", list(ABOVE_THE_FOLD), ids=[path or "home" for path in ABOVE_THE_FOLD])
def test_primary_action_and_first_result_above_the_fold(browser, streamlit_server, path, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        app = AppPage(tab, streamlit_server).open(path)
        action, figure = ABOVE_THE_FOLD[path]
        shot(app, f"fold-{path or 'home'}-{width}x{height}")
        if action:
            role, name = action
            box = main_area(app).get_by_role(role, name=name, exact=True).first.bounding_box()
            assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, (path, action, box)
            assert box["x"] + box["width"] <= width
        if figure:
            chart = main_area(app).locator(figure).first
            chart.wait_for()
            box = chart.bounding_box()
            assert box is not None and 0 <= box["y"] <= height - MIN_VISIBLE_PX, (path, box)
            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (path, box)
    finally:
        context.close()


def set_number(app: AppPage, label: str, value: int) -> None:
    box = main_area(app).get_by_label(label, exact=True)
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
    assert main_area(app).get_by_label("Steps", exact=True).input_value() == "20"
    assert "sample_steps=20" in app.page.url
    app.page.reload()
    app.wait_idle()
    assert main_area(app).get_by_label("Steps", exact=True).input_value() == "20"
    app.assert_no_errors()


def test_a_shared_link_reproduces_the_page_in_another_browser(app, share_link, open_as_student):
    app.open("schedules")
    set_number(app, "T (number of steps)", 100)
    link = share_link(app)
    assert "schedules_a_T=100" in link and "session" not in link, link
    with open_as_student(app, link, "schedules") as student:
        assert main_area(student).get_by_label("T (number of steps)", exact=True).input_value() == "100"
        assert main_area(student).get_by_text("is far from pure noise").count() >= 1
        shot(student, "shared-link-schedules")


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
            assert main_area(student).get_by_text("mnist_x0 (shipped)").count() >= 1  # the page runs that model
            assert main_area(student).get_by_label("Noise seed", exact=True).input_value() == "3"
            student.page.reload()
            student.wait_idle()
        shot(student, "shared-link-denoise-x0-model")


def test_a_bad_link_is_one_line_not_a_traceback(app):
    app.open("schedules?schedules_a_T=99999&schedules_a_kind=zigzag", check_errors=True)
    notices = main_area(app).get_by_text("Link setting ignored").count()
    assert notices == 2
    assert main_area(app).get_by_label("T (number of steps)", exact=True).input_value() == "1000"


def test_keyboard_moves_the_scrubber(app):
    app.open("denoise")
    thumb = main_area(app).locator('input[type="range"][aria-label="t (paper\'s step)"]')
    before = thumb.get_attribute("aria-valuenow") or thumb.get_attribute("aria-valuetext")
    thumb.focus()
    app.page.keyboard.press("ArrowRight")
    app.wait_idle()
    thumb = main_area(app).locator('input[type="range"][aria-label="t (paper\'s step)"]')
    after = thumb.get_attribute("aria-valuenow") or thumb.get_attribute("aria-valuetext")
    assert before != after, (before, after)
    label = main_area(app).locator('[data-testid="stPlotlyChart"]').first.locator(".slider-group > text.slider-label")
    assert label.first.text_content().strip() == "t = 2"  # the Plotly scrubber follows the keyboard slider
    app.assert_no_errors()


def test_samples_download_as_npz(app):
    app.open("sample")
    with app.page.expect_download() as download:
        main_area(app).get_by_role("button", name="Samples (.npz)").click()
    data = np.load(io.BytesIO(open(download.value.path(), "rb").read()))
    assert data["samples"].shape == (16, 1, 28, 28) and int(data["steps"]) == 40 and int(data["seed"]) == 0
    with app.page.expect_download() as download:
        main_area(app).get_by_role("button", name="PNG of the samples").click()
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
        main_area(app).get_by_text("Show the comparison of").click()
        app.wait_idle()
        charts = main_area(app).locator('[data-testid="stPlotlyChart"]')
        assert charts.count() == 3  # the scrubber, the best possible x̂₀, the comparison (the last)
        for index in (0, 2):
            charts.nth(index).scroll_into_view_if_needed()
            result = charts.nth(index).evaluate(OVERLAPS_JS)
            assert result["labels"] >= 6 and result["pictures"] >= 6, result  # the check saw what it checks
            assert result["found"] == [], f"denoise chart {index} at {width}x{height}: {result}"
        shot(app, f"labels-denoise-compare-{width}x{height}")
        app.open("reverse_step?reverse_t=900&reverse_x0_error=0.3")
        density = main_area(app).locator('[data-testid="stPlotlyChart"]').nth(1)
        density.scroll_into_view_if_needed()
        result = density.evaluate(OVERLAPS_JS)
        assert result["labels"] >= 2, result  # μ̃ and μ_θ (and the title)
        assert result["found"] == [], f"μ̃ / μ_θ labels at {width}x{height}: {result}"
        shot(app, f"labels-reverse-step-{width}x{height}")
    finally:
        context.close()


def test_cancel_stops_a_long_run(app):
    """The 2-D playground's quality table (six sampler runs of the exact oracle, up to 200 steps each) shows a
    progress box with Cancel; a click stops it between steps and says so; nothing half-done is shown."""
    app.open("playground_2d")
    main_area(app).get_by_text("Samples & quality", exact=True).click()
    app.wait_idle()
    main_area(app).get_by_role("button", name="Compute the table").click()
    cancel = main_area(app).get_by_role("button", name="Cancel")
    cancel.wait_for(timeout=60_000)
    main_area(app).get_by_text("Sampler runs: step").first.wait_for(timeout=60_000)
    cancel.click()
    app.wait_idle()
    assert main_area(app).get_by_text("Cancelled Quality table after").count() == 1
    assert main_area(app).locator('[data-testid="stDataFrame"]').count() == 0
    app.assert_no_errors()


def test_dark_theme_keeps_figures_readable(browser, streamlit_server):
    """With the system in dark mode the app and its figures turn dark; the curves keep their Okabe–Ito colours
    and the axis text is light (screenshots at both sizes)."""
    for width, height in SIZES:
        context = browser.new_context(viewport={"width": width, "height": height}, color_scheme="dark")
        try:
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            app = AppPage(tab, streamlit_server).open("schedules")
            background = tab.evaluate("getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor")
            assert _luminance(background) < 0.2, background
            chart = main_area(app).locator('[data-testid="stPlotlyChart"]').first
            chart.wait_for()
            tick = chart.locator("g.ytick text").first.evaluate("e => getComputedStyle(e).fill")
            assert _luminance(tick) > 0.5, tick  # light axis labels on the dark background
            strokes = chart.locator("g.scatterlayer path.js-line").evaluate_all("es => es.map(e => getComputedStyle(e).stroke)")
            assert "rgb(0, 114, 178)" in strokes and "rgb(213, 94, 0)" in strokes, strokes  # Okabe–Ito blue, vermillion
            shot(app, f"dark-schedules-{width}x{height}")
        finally:
            context.close()


def _luminance(css_color: str) -> float:
    """0 (black) .. 1 (white) for a CSS rgb()/rgba() colour."""
    red, green, blue = (float(v) for v in css_color[css_color.index("(") + 1:].rstrip(")").split(",")[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255
