"""How every page looks in a real browser (issue 18, items 4, 5, 8 and 9), one browser and the pages in sequence:

- projector (1280×720): no widget label, metric or select value is cut ("…" or clipped);
- accessibility: axe-core (WCAG 2 A and AA rules, bundled in the axe-playwright-python package: nothing is downloaded)
  finds no violation on any page, in the light and in the dark theme;
- theme: the main menu is shown to viewers without developer items, and its Settings switch the theme;
- phones (390×844): the page title is below the fixed header, content is one column inside the screen, no two
  elements overlap, and the Denoise strip's panel titles do not run into each other.

The server runs on the tiny checkpoints of conftest.browser_checkpoint_dir (T = 40). About 5 minutes on a loaded
2-core machine (three passes over the 14 pages).
"""

import pytest
from streamlit_harness import AppPage

from ui.navigation import available_pages

PATHS = ["" if entry.file == "pages/home.py" else entry.file.removeprefix("pages/").removesuffix(".py")
         for entry in available_pages()]
PROJECTOR = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}
BACKGROUND = {"light": "rgb(255, 255, 255)", "dark": "rgb(20, 23, 31)"}  # .streamlit/config.toml [theme.*]

# Elements cut on screen: inside a label, metric or select, one whose content is wider than its box while it
# hides the overflow or ends it with an ellipsis. KaTeX's MathML copy is visually hidden on purpose (screen readers).
TRUNCATED_JS = """() => {
  const roots = document.querySelectorAll('[data-testid="stWidgetLabel"], [data-testid="stMetricLabel"], '
    + '[data-testid="stMetricValue"], [data-testid="stMetricDelta"], [data-baseweb="select"], [data-baseweb="tag"]');
  const cut = [];
  for (const root of roots) {
    for (const el of [root, ...root.querySelectorAll('*')]) {
      if (!el.getClientRects().length || el.closest('.katex-mathml') || el.clientWidth === 0) continue;
      const style = getComputedStyle(el);
      const hides = style.overflowX !== 'visible' || style.textOverflow === 'ellipsis';
      if (hides && el.scrollWidth > el.clientWidth + 1) {
        cut.push(`${(root.innerText || '').trim().slice(0, 50)} (${el.scrollWidth} px in ${el.clientWidth} px)`);
        break;
      }
    }
  }
  return cut;
}"""

# Phones: where the title and the header are, how wide the page is, and which leaf elements overlap.
PHONE_LAYOUT_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const header = document.querySelector('[data-testid="stHeader"]');
  const title = main.querySelector('h1');
  const leaves = [...main.querySelectorAll('.stElementContainer')]
    .filter(el => !el.querySelector('.stElementContainer') && el.checkVisibility() && !el.closest('details:not([open])'))
    .filter(el => el.innerText.trim() || el.querySelector('img, svg, canvas, input, button'))  // drawn, not empty
    .map(el => ({el, box: el.getBoundingClientRect()}))
    .filter(({box}) => box.width > 0 && box.height > 0);
  const overlaps = [];
  for (let i = 0; i < leaves.length; i++) {
    for (let j = i + 1; j < leaves.length; j++) {
      const a = leaves[i].box, b = leaves[j].box;
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 2 && h > 2) overlaps.push([leaves[i].el, leaves[j].el].map(e => e.innerText.trim().slice(0, 40)));
    }
  }
  const columns = [...main.querySelectorAll('[data-testid="stColumn"]')].filter(c => c.getClientRects().length);
  const block = main.querySelector('[data-testid="stMainBlockContainer"]').getBoundingClientRect();
  return {
    header_bottom: header ? header.getBoundingClientRect().bottom : 0,
    title_top: title ? title.getBoundingClientRect().top : null,
    page_width: main.scrollWidth,
    side_by_side: columns.filter(c => c.getBoundingClientRect().width < 0.8 * block.width).length,
    overlaps: overlaps.slice(0, 5),
  };
}"""

PANEL_TITLES_JS = """() => [...document.querySelector('[data-testid="stPlotlyChart"]').querySelectorAll('g.annotation')]
  .map(g => g.getBoundingClientRect()).filter(r => r.width > 0).map(r => [r.left, r.right, r.top, r.bottom])"""


SETTLED_JS = "() => !document.querySelector('[data-stale=\"true\"]')"
SETTLE_MS = 1500  # Streamlit fades elements of a rerun in progress (a fragment's timer): let that pass, then check again


def axe_violations(app: AppPage) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page as shown. A finding is checked a second time once no element
    is stale: elements faded during a (fragment's) rerun are a moment, not what a student reads."""
    from axe_playwright_python.sync_playwright import Axe

    def run() -> list[str]:
        app.page.wait_for_function(SETTLED_JS, timeout=60_000)
        results = Axe().run(app.page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa"]},
                                               "resultTypes": ["violations"]})
        return [f"{violation['id']}: {node.get('failureSummary', '')[:160]} at {node['target']} ({node['html'][:120]})"
                for violation in results.response["violations"] for node in violation["nodes"][:3]]

    found = run()
    if found:
        app.page.wait_for_timeout(SETTLE_MS)
        found = run()
    return found


@pytest.fixture
def tab(browser, streamlit_server, request):
    """A fresh context with the viewport and colour scheme the test's `look` parameter names."""
    viewport, scheme = request.param
    context = browser.new_context(viewport=viewport, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield AppPage(page, streamlit_server)
    context.close()


def background(app: AppPage) -> str:
    return app.page.evaluate("() => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor")


@pytest.mark.parametrize("tab", [(PROJECTOR, "light")], indirect=True, ids=["1280x720-light"])
def test_projector_nothing_cut_and_no_axe_violation(tab):
    cut, violations = {}, {}
    for path in PATHS:
        tab.open(path)
        assert background(tab) == BACKGROUND["light"]
        if found := tab.page.evaluate(TRUNCATED_JS):
            cut[path or "home"] = found
        if found := axe_violations(tab):
            violations[path or "home"] = found
    assert cut == {}, f"cut labels, metrics or select values at 1280x720: {cut}"
    assert violations == {}, f"axe-core (WCAG 2 AA), light theme: {violations}"


@pytest.mark.parametrize("tab", [(PROJECTOR, "dark")], indirect=True, ids=["1280x720-dark"])
def test_dark_theme_has_no_axe_violation(tab):
    violations = {}
    for path in PATHS:
        tab.open(path)
        assert background(tab) == BACKGROUND["dark"]  # the dark palette of config.toml is the one shown
        if found := axe_violations(tab):
            violations[path or "home"] = found
    assert violations == {}, f"axe-core (WCAG 2 AA), dark theme: {violations}"


@pytest.mark.parametrize("tab", [(PROJECTOR, "light")], indirect=True, ids=["1280x720-light"])
def test_main_menu_switches_the_theme_without_developer_items(tab):
    """Streamlit 1.67's main menu (toolbarMode "viewer") holds the theme switch: System, Light, Dark."""
    tab.open("")
    for scheme, other in (("Dark", "Light"), ("Light", "Dark")):
        tab.page.locator('[data-testid="stMainMenu"]').click()
        menu = tab.page.locator('[data-testid="stMainMenuPopover"]')
        menu.wait_for()
        items = menu.inner_text()
        for developer in ("Rerun", "Clear cache", "Deploy", "Settings"):
            assert developer not in items, f"developer item {developer!r} shown to viewers: {items!r}"
        menu.locator(f'[data-testid="stMainMenuItem-theme-{scheme}"]').click()
        tab.page.wait_for_function("(colour) => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]'))"
                                   ".backgroundColor === colour", arg=BACKGROUND[scheme.lower()])
        tab.page.keyboard.press("Escape")
        assert background(tab) != BACKGROUND[other.lower()]


@pytest.mark.parametrize("tab", [(PHONE, "light")], indirect=True, ids=["390x844"])
def test_phone_title_below_header_one_column_no_overlap(tab):
    problems = {}
    for path in PATHS:
        tab.open(path)
        layout = tab.page.evaluate(PHONE_LAYOUT_JS)
        name = path or "home"
        if layout["title_top"] is None or layout["title_top"] < layout["header_bottom"]:
            problems[f"{name}: title under the header"] = layout
        if layout["page_width"] > PHONE["width"] or layout["side_by_side"]:
            problems[f"{name}: wider than the screen or columns side by side"] = layout
        if layout["overlaps"]:
            problems[f"{name}: overlapping elements"] = layout["overlaps"]
        if path == "denoise":
            titles = sorted(tab.page.evaluate(PANEL_TITLES_JS))
            assert len(titles) >= 6, titles
            touching = [(a, b) for a, b in zip(titles, titles[1:]) if a[1] > b[0] and a[2] < b[3] and b[2] < a[3]]
            if touching:
                problems["denoise: panel titles overlap"] = touching
    assert problems == {}, problems
