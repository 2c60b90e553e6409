"""Fixtures for the browser tests: the real app under `streamlit run`, driven by headless Debian chromium.

A page test asks for `app` (an AppPage from streamlit_harness.py, in a fresh browser tab):

    def test_schedules_page(app):
        app.open("schedules")                   # URL path of an st.Page ("" = default page); waits for
                                                # the script run to finish, then asserts no error element
        app.page.get_by_role("button", name="Sample").click()   # app.page is the playwright Page
        app.wait_idle()                         # after every interaction, before reading the page
        app.assert_no_errors()
        app.screenshot("schedules")             # test-artifacts/screenshots/schedules.png

`streamlit_server` (session) is the app's base URL, e.g. "http://127.0.0.1:40123"; `page` is a bare tab.
The server does not use the shipped checkpoints/: RDL_CHECKPOINT_DIR points it at `browser_checkpoint_dir`,
tiny seeded models written for this session (test_page_denoise.make_checkpoints: mnist_eps, mnist_x0,
mnist_v, moons_eps, all with T = 40), so the tests are fast and do not wait for real training.
The browser is /usr/bin/chromium (Debian package "chromium"); playwright never downloads one. Without it,
or without the playwright package, these tests skip and say why; they also skip while app.py is missing.
"""

import contextlib
from pathlib import Path

import pytest
from streamlit_harness import (
    REPO_ROOT,
    AppPage,
    launched_chromium,
    screenshot_dir,
    serve_streamlit,
)

BROWSER_TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium through playwright, shared by the whole session."""
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    """A fresh browser context and tab per test (no cookies or session state carried over)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(60_000)  # a loaded 2-core machine can be very slow
    yield tab
    context.close()


@pytest.fixture(scope="session")
def browser_checkpoint_dir(tmp_path_factory) -> Path:
    """A folder of tiny, randomly initialised (seeded) checkpoints that the app offers as its shipped models."""
    from helpers import make_checkpoints  # tests/ is on sys.path (pytest's rootdir conftest)

    return make_checkpoints(tmp_path_factory.mktemp("browser_checkpoints"))


@pytest.fixture(scope="session")
def streamlit_server(browser_checkpoint_dir):
    """Base URL of `streamlit run app.py` started from the repository root for this session."""
    app_script = REPO_ROOT / "app.py"
    if not app_script.exists():
        pytest.skip(f"{app_script} does not exist yet; browser page tests need the app")
    log_path = REPO_ROOT / "test-artifacts" / "streamlit-server.log"
    env = {"RDL_CHECKPOINT_DIR": str(browser_checkpoint_dir)}
    with serve_streamlit(app_script, log_path, env=env) as base_url:
        yield base_url


@pytest.fixture
def app(page, streamlit_server) -> AppPage:
    """The app in a fresh tab; call app.open(path) first."""
    return AppPage(page, streamlit_server)


def pytest_collection_modifyitems(config, items):
    """Every test under tests/browser/ carries the `browser` marker (select with -m browser)."""
    for item in items:
        if BROWSER_TESTS_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)


def pytest_terminal_summary(terminalreporter):
    """Say where the screenshots are, so CI logs point to them."""
    folder = screenshot_dir()
    if folder.is_dir():
        count = len(list(folder.glob("*.png")))
        terminalreporter.write_line(f"browser screenshots: {folder} ({count} PNG files)")


# --------------------------------------------------------------------- what a projector shows (shared helpers)
@pytest.fixture
def main_area():
    """main_area(app): the locator of the page content (Streamlit's main area, without the sidebar)."""
    return lambda app: app.main_area()


@pytest.fixture
def viewport_shot():
    """viewport_shot(app, name): a PNG of exactly what the viewport shows (what the projector shows, unlike
    AppPage.screenshot's full page), saved as <screenshot dir>/<name>.png."""
    return lambda app, name: app.viewport_screenshot(name)


@pytest.fixture
def share_link():
    """share_link(app): opens the page's "Share · presets · reset" popover and returns the link it shows."""
    def read(app: AppPage) -> str:
        app.page.locator('[data-testid="stMain"]').get_by_role("button", name="Share · presets · reset").click()
        return app.page.locator('[data-testid="stPopoverBody"] [data-testid="stCode"] code').first.inner_text().strip()
    return read


@pytest.fixture
def open_as_student(browser):
    """with open_as_student(app, link, path) as student: the link opened in a new browser context (no cookies,
    no session: another student), waited for and checked for errors; `path` completes a relative link."""
    @contextlib.contextmanager
    def opened(app: AppPage, link: str, path: str, height: int = 900):
        context = browser.new_context(viewport={"width": 1280, "height": height})
        try:
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            student = AppPage(tab, app.base_url)
            tab.goto(link if link.startswith("http") else f"{app.base_url}/{path}{link}")
            student.wait_idle()
            student.assert_no_errors()
            yield student
        finally:
            context.close()
    return opened
