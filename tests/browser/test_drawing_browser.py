"""Draw your own data in the 2-D playground, in a real browser: a brush adds its points, a click on the canvas adds
one point, a lasso fills a region, and the count under the brushes follows (ui/drawing_panel.py)."""

import re

from streamlit_harness import AppPage

# Pixel position of data point (x, y) on the drawing canvas: Plotly's own axis maps, in page coordinates.
_DATA_TO_PAGE_JS = """([x, y]) => {
    const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
    const canvas = plots.find(p => p.data && p.data.length === 2 && String(p.data[0].name).startsWith('canvas'));
    canvas.scrollIntoView({block: 'center'});
    const box = canvas.querySelector('.nsewdrag').getBoundingClientRect();
    const xa = canvas._fullLayout.xaxis, ya = canvas._fullLayout.yaxis;
    return [box.left + xa.d2p(x), box.top + ya.d2p(y)];
}"""


def count(app: AppPage) -> int:
    text = app.page.get_by_text(re.compile(r"of at most 2,000 points")).first.inner_text()
    return int(text.split(" of at most")[0].replace(",", ""))


def wait_for_count(app: AppPage, n: int) -> None:
    """The caption under the brushes says n points (the rerun after a click can start after wait_idle returns)."""
    app.page.get_by_text(f"{n:,} of at most 2,000 points").first.wait_for(timeout=90_000)
    app.wait_idle()


def to_page(app: AppPage, x: float, y: float) -> tuple[float, float]:
    return tuple(app.page.evaluate(_DATA_TO_PAGE_JS, [x, y]))


def test_brush_click_and_lasso_add_points(app):
    app.open("playground_2d")
    app.page.get_by_text("Draw your own data", exact=True).scroll_into_view_if_needed()
    assert count(app) == 0
    app.page.get_by_role("button", name="Add shape").click()
    wait_for_count(app, 150)  # the default brush: 150 points
    px, py = to_page(app, -1.2, 1.2)  # a canvas grid point (linspace(−1.5, 1.5, 41), spacing 0.075), far from the line
    app.page.mouse.click(px, py)
    wait_for_count(app, 151)
    # a lasso around (0.75, −0.75): a square of side 0.3 holds about 4×4 grid points (spacing 0.075)
    corners = [(0.6, -0.6), (0.9, -0.6), (0.9, -0.9), (0.6, -0.9), (0.6, -0.6)]
    app.page.locator('.js-plotly-plot [data-title="Lasso Select"]').last.click()
    start = to_page(app, *corners[0])
    app.page.mouse.move(*start)
    app.page.mouse.down()
    for corner in corners[1:]:
        app.page.mouse.move(*to_page(app, *corner), steps=8)
    app.page.mouse.up()
    app.page.wait_for_function("() => !document.body.innerText.includes('151 of at most 2,000 points')", timeout=90_000)
    app.wait_idle()
    added = count(app) - 151
    assert 9 <= added <= 25, added
    app.assert_no_errors()
    app.screenshot("playground-drawing")
