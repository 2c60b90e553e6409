"""Every page in a real browser, walked once per look: each page load runs every check that look needs (issue 18,
items 3, 4, 5, 8 and 9; issue 11's projector sizes), so no check loads the pages again.

- projector, light theme (1280×720): the page itself ran (its title, the app shell's sidebar); its primary action
  and first result start above the fold; no widget label, metric, select value or button is cut ("…" or clipped); axe-core
  (WCAG 2 A and AA rules, bundled in the axe-playwright-python package: nothing is downloaded) finds no violation.
  Screenshots: `fold-<page>-1280x720.png` (the viewport, what the projector shows) and `page-<page>.png` (the page);
- projector, dark theme (1440×900): the dark palette is the one shown; primary action and first result above the
  fold at the larger projector size; nothing cut; no axe-core violation; on the Schedule lab the figures turn dark
  with light axis text and keep their Okabe–Ito colours. Screenshots `fold-<page>-1440x900.png` (dark);
- phones (390×844): the page title is below the fixed header, content is one column inside the screen, no two
  elements overlap, and the Denoise strip's panel titles do not run into each other;
- theme: the main menu is shown to viewers without developer items, and its Settings switch the theme.

The axe-core and fold checks do not depend on each other's viewport: axe's WCAG 2 AA rules read colours, names and
structure, so the dark theme is checked at 1440×900, where the fold is checked too. The server runs on the tiny
checkpoints of conftest.browser_checkpoint_dir (T = 40). Three walks over the 14 pages, one test each, so pytest-xdist
spreads them over its workers.
"""

import pytest
from streamlit_harness import AppPage

from ui.navigation import available_pages

# (URL path of the st.Page, the page's title); url paths are the page files' stems. The title proves that the page
# itself ran: Streamlit answers an unknown path with the default page.
PAGES = [
    ("", "Reverse Diffusion Lab"),  # Home, the default page
    ("train", "Train a model"),
    ("denoise", "Denoise explorer"),
    ("sample", "Sample"),
    ("schedules", "Schedule lab"),
    ("reverse_step", "Anatomy of one reverse step"),
    ("playground_2d", "2-D playground"),
    ("objective", "Training objective"),
    ("time_conditioning", "Time conditioning"),
    ("posterior", "Deriving the posterior"),
    ("small_steps", "Why many small steps"),
    ("score", "The score view"),
    ("variances", "v, variances and DDIM, precisely"),
    ("mistakes", "Common mistakes"),
]
PROJECTOR = {"width": 1280, "height": 720}
LARGE_PROJECTOR = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
BACKGROUND = {"light": "rgb(255, 255, 255)", "dark": "rgb(20, 23, 31)"}  # .streamlit/config.toml [theme.*]

CHART = '[data-testid="stPlotlyChart"]'
# page (URL path; "" is Home) -> (what must be visible without scrolling: the primary action as (ARIA role, name)
# or None, how to find the first result or None). Home has no result: it is the table of contents.
ABOVE_THE_FOLD = {
    "": (("link", "Schedule lab"), None),  # Home: the course guide's first link (the sidebar's copy does not count)
    "train": (("button", "Start training"), CHART),  # before Start: the schedule figure beside the settings
    "denoise": (None, CHART),
    "sample": (("button", "Sample"), CHART),
    "schedules": (None, CHART),
    "reverse_step": (None, CHART),
    "playground_2d": (None, CHART),  # the exploration's first figure; the training form comes after it
    "objective": (None, CHART),
    "time_conditioning": (None, CHART),
    "posterior": (None, CHART),
    "small_steps": (None, CHART),
    "score": (None, CHART),
    "variances": (None, CHART),
    "mistakes": (None, "text=✓ Right."),  # the first claim's computed truth
}
MIN_VISIBLE_PX = 250  # of a first figure: enough to see what it shows (the rest may continue below)


def test_the_walks_cover_every_page():
    assert [path for path, _ in PAGES] == list(ABOVE_THE_FOLD)
    registered = {"" if entry.file == "pages/home.py" else entry.file.removeprefix("pages/").removesuffix(".py")
                  for entry in available_pages()}
    assert {path for path, _ in PAGES} == registered


# Elements cut on screen: inside a label, metric, select or button (a popover's "Share · …"), one whose content is
# wider than its box while it hides the overflow or ends it with an ellipsis. KaTeX's MathML copy is visually hidden on
# purpose (screen readers).
TRUNCATED_JS = """() => {
  const roots = document.querySelectorAll('[data-testid="stWidgetLabel"], [data-testid="stMetricLabel"], '
    + '[data-testid="stMetricValue"], [data-testid="stMetricDelta"], [data-baseweb="select"], [data-baseweb="tag"], '
    + 'button[data-testid^="stBaseButton"], button[data-testid="stPopoverButton"]');
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

# Phones: how wide the page is, and which leaf elements overlap.
PHONE_LAYOUT_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
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


def background(app: AppPage) -> str:
    return app.page.evaluate("() => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor")


def page_ran(app: AppPage, heading: str, sidebar: bool = True) -> list[str]:
    """Problems if the page shown is not the one asked for inside the app shell (title, sidebar's model picker;
    sidebar=False: the title only, for phones, where the sidebar starts collapsed)."""
    problems = []
    if sidebar and app.page.locator('[data-testid="stSidebar"]').get_by_text("Active model").count() != 1:
        problems.append("no 'Active model' in the sidebar (the page ran without the app shell)")
    titles = app.main_area().locator("h1").all_inner_texts()
    if not any(heading in title for title in titles):
        problems.append(f"title {heading!r} not shown; h1s: {titles}")
    return problems


def fold_problems(app: AppPage, path: str, viewport: dict) -> list[str]:
    """The page's primary action wholly on screen, and its first result starting on screen with at least
    MIN_VISIBLE_PX of it (or all of a shorter one) visible and not cut off at the right, without scrolling."""
    width, height = viewport["width"], viewport["height"]
    action, result = ABOVE_THE_FOLD[path]
    problems = []
    if action:
        role, name = action
        box = app.main_area().get_by_role(role, name=name, exact=True).first.bounding_box()
        if box is None or box["y"] < 0 or box["y"] + box["height"] > height or box["x"] + box["width"] > width:
            problems.append(f"primary action {action} not on screen: {box}")
    if result:
        first = app.main_area().locator(result).first
        first.wait_for()  # Plotly draws its figure after the script run has finished
        box = first.bounding_box()
        visible = min(MIN_VISIBLE_PX, box["height"]) if box else 0
        if box is None or not 0 <= box["y"] <= height - visible or box["x"] < 0 or box["x"] + box["width"] > width + 1:
            problems.append(f"first result {result} below the fold or cut off: {box}")
    return problems


def dark_figure_problems(app: AppPage) -> list[str]:
    """The Schedule lab's first figure in the dark theme: light axis text, curves in their Okabe–Ito colours."""
    chart = app.main_area().locator(CHART).first
    chart.wait_for()
    problems = []
    tick = chart.locator("g.ytick text").first.evaluate("e => getComputedStyle(e).fill")
    if _luminance(tick) <= 0.5:
        problems.append(f"dark axis text on the dark background: {tick}")
    strokes = chart.locator("g.scatterlayer path.js-line").evaluate_all("es => es.map(e => getComputedStyle(e).stroke)")
    if not ("rgb(0, 114, 178)" in strokes and "rgb(213, 94, 0)" in strokes):  # Okabe–Ito blue, vermillion
        problems.append(f"curves lost their Okabe–Ito colours: {strokes}")
    return problems


TITLE_JS = """() => {
  const header = document.querySelector('[data-testid="stHeader"]');
  const title = document.querySelector('[data-testid="stMain"] h1');
  return {header_bottom: header ? header.getBoundingClientRect().bottom : 0,
          title_top: title ? title.getBoundingClientRect().top : null};
}"""


def title_problems(app: AppPage) -> list[str]:
    """The page title starts below Streamlit's header (whose opaque background would hide its top), at any size."""
    where = app.page.evaluate(TITLE_JS)
    if where["title_top"] is None or where["title_top"] < where["header_bottom"]:
        return [f"title under the header: {where}"]
    return []


def phone_problems(app: AppPage, path: str) -> list[str]:
    layout = app.page.evaluate(PHONE_LAYOUT_JS)
    problems = title_problems(app)
    if layout["page_width"] > PHONE["width"] or layout["side_by_side"]:
        problems.append(f"wider than the screen or columns side by side: {layout}")
    if layout["overlaps"]:
        problems.append(f"overlapping elements: {layout['overlaps']}")
    if path == "denoise":
        titles = sorted(app.page.evaluate(PANEL_TITLES_JS))
        if len(titles) < 6:
            problems.append(f"the Denoise strip shows {len(titles)} panel titles, expected 6 or more: {titles}")
        touching = [(a, b) for a, b in zip(titles, titles[1:]) if a[1] > b[0] and a[2] < b[3] and b[2] < a[3]]
        if touching:
            problems.append(f"Denoise panel titles overlap: {touching}")
    return problems


def _luminance(css_color: str) -> float:
    """0 (black) .. 1 (white) for a CSS rgb()/rgba() colour."""
    red, green, blue = (float(v) for v in css_color[css_color.index("(") + 1:].rstrip(")").split(",")[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


@pytest.fixture
def tab(browser, streamlit_server, request):
    """A fresh context with the viewport and colour scheme the test's `look` parameter names."""
    viewport, scheme = request.param
    context = browser.new_context(viewport=viewport, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield AppPage(page, streamlit_server)
    context.close()


def walk(app: AppPage, check) -> dict:
    """Open every page once and run check(path, heading) -> [problem, ...] on it; {page: problems} where any."""
    problems = {}
    for path, heading in PAGES:
        app.open(path)  # waits for the script run and asserts no exception or error box
        if found := check(path, heading):
            problems[path or "home"] = found
    return problems


@pytest.mark.parametrize("tab", [(PROJECTOR, "light")], indirect=True, ids=["1280x720-light"])
def test_projector_walk_light(tab):
    def check(path: str, heading: str) -> list[str]:
        name = path or "home"
        found = page_ran(tab, heading) + title_problems(tab) + fold_problems(tab, path, PROJECTOR)
        tab.viewport_screenshot(f"fold-{name}-1280x720")
        if background(tab) != BACKGROUND["light"]:
            found.append(f"background {background(tab)}, not the light theme's")
        found += [f"cut: {cut}" for cut in tab.page.evaluate(TRUNCATED_JS)]
        found += [f"axe (light): {violation}" for violation in axe_violations(tab)]
        tab.screenshot(f"page-{name}")  # the whole page, last: it makes the viewport as tall as the page for a moment
        return found

    assert walk(tab, check) == {}


@pytest.mark.parametrize("tab", [(LARGE_PROJECTOR, "dark")], indirect=True, ids=["1440x900-dark"])
def test_projector_walk_dark(tab):
    def check(path: str, heading: str) -> list[str]:
        found = page_ran(tab, heading) + title_problems(tab) + fold_problems(tab, path, LARGE_PROJECTOR)
        tab.viewport_screenshot(f"fold-{path or 'home'}-1440x900")
        if background(tab) != BACKGROUND["dark"]:  # the dark palette of config.toml is the one shown
            found.append(f"background {background(tab)}, not the dark theme's")
        if path == "schedules":
            found += dark_figure_problems(tab)
        found += [f"cut: {cut}" for cut in tab.page.evaluate(TRUNCATED_JS)]
        found += [f"axe (dark): {violation}" for violation in axe_violations(tab)]
        return found

    assert walk(tab, check) == {}


@pytest.mark.parametrize("tab", [(PHONE, "light")], indirect=True, ids=["390x844"])
def test_phone_walk(tab):
    assert walk(tab, lambda path, heading: page_ran(tab, heading, sidebar=False) + phone_problems(tab, path)) == {}


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
