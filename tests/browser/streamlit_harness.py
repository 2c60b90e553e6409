"""Streamlit-aware browser helpers for the tests in tests/browser/ (fixtures live in conftest.py).

serve_streamlit(script, log_path) runs a real server; AppPage wraps a playwright tab on it with waits
that know when a Streamlit script run has finished and checks for the error elements Streamlit draws.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# playwright is imported only inside AppPage methods: conftest.py imports this module before it
# knows whether playwright is installed (and skips the tests if not).

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI containers run as root, where chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]
SERVER_START_TIMEOUT_S = 180.0  # health endpoint; generous because CI shares 2 cores
APP_IDLE_TIMEOUT_S = 180.0  # one script run, torch import included (measured ~170 s on an overloaded 2-core box)
MAX_SCREENSHOT_HEIGHT = 8000  # pixels; longer pages are cut there
SETTLE_DELAY_MS = 250  # lets a rerun triggered by an interaction start before we wait for its end

# data-testid values of the Streamlit 1.67 frontend (static/js/index.*.js, ErrorElement.*.js).
# stException: an uncaught exception (or a deprecation warning) in the page; it contains an alert.
# stAlertContentError: the body of every error-kind alert: st.error, and the error box an element
#   shows when it cannot render (ErrorElement).
# stErrorCodeBlock: the traceback in the "Script execution error" dialog shown when app.py itself
#   does not compile (the app's data-test-script-state is then "compilationError").
_NOT_INSIDE_EXCEPTION = ':not([data-testid="stException"] *)'
ERROR_SELECTOR = ", ".join([
    '[data-testid="stException"]',
    f'[data-testid="stAlertContentError"]{_NOT_INSIDE_EXCEPTION}',
    f'[data-testid="stErrorCodeBlock"]{_NOT_INSIDE_EXCEPTION}'
    ':not([data-testid="stAlertContentError"] *)',
])

# True once the page is connected, no script run is in progress or pending, the status widget
# ("Running...", "Connecting") is gone and no lazily loaded element still shows its skeleton.
_APP_IDLE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  const state = app.getAttribute('data-test-script-state');
  if (state !== 'notRunning' && state !== 'compilationError') return false;
  const visible = (el) => el.getClientRects().length > 0;
  if ([...document.querySelectorAll('[data-testid="stStatusWidget"]')].some(visible)) return false;
  return ![...document.querySelectorAll('[data-testid="stSkeleton"], [data-testid="stAppSkeleton"]')]
    .some(visible);
}"""

_APP_STATE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const widget = document.querySelector('[data-testid="stStatusWidget"]');
  return {
    connection: app && app.getAttribute('data-test-connection-state'),
    script: app && app.getAttribute('data-test-script-state'),
    status_widget: widget && widget.innerText,
    skeletons: document.querySelectorAll('[data-testid="stSkeleton"]').length,
    app_skeletons: document.querySelectorAll('[data-testid="stAppSkeleton"]').length,
  };
}"""


_MAIN_SCROLL_HEIGHT_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  return main ? main.scrollHeight : 0;
}"""
_NEXT_PAINT_JS = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def screenshot_dir() -> Path:
    """Folder for screenshots: $RDL_SCREENSHOT_DIR, else test-artifacts/screenshots in the repo."""
    configured = os.environ.get("RDL_SCREENSHOT_DIR")
    return Path(configured).resolve() if configured else REPO_ROOT / "test-artifacts" / "screenshots"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick): the one home of this helper, used by
    serve_streamlit, tests/cluster/local_cluster.py and bench/burst.py."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log_path: Path, n_chars: int = 3000) -> str:
    return log_path.read_text(errors="replace")[-n_chars:] if log_path.exists() else "(no log)"


@contextlib.contextmanager
def serve_streamlit(script: Path, log_path: Path, timeout_s: float = SERVER_START_TIMEOUT_S,
                    env: dict | None = None):
    """Run `streamlit run script` on a free 127.0.0.1 port; yield the base URL; always stop it.

    env: extra environment variables for the server (added to this process's environment).

    Raises RuntimeError (with the end of the server log) if the health endpoint does not answer
    "ok" within timeout_s or the server exits first.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        # Output goes to a file, not a pipe, so a chatty server can never block on a full pipe.
        process = subprocess.Popen(command, cwd=script.parent, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with code {process.returncode} before becoming healthy; "
                    f"log {log_path}:\n{_log_tail(log_path)}"
                )
            try:
                with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as response:
                    if response.status == 200 and response.read().strip() == b"ok":
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"streamlit did not answer {base_url}/_stcore/health within {timeout_s:.0f} s; "
                    f"log {log_path}:\n{_log_tail(log_path)}"
                )
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def launched_chromium():
    """Headless Debian chromium through playwright (never a downloaded browser), closed afterwards; in a test, a
    skip with the reason when chromium or the playwright package is missing."""
    import pytest

    if not Path(CHROMIUM_PATH).exists():
        pytest.skip(f"browser tests need {CHROMIUM_PATH} (Debian package 'chromium'); not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.skip(f"browser tests need the 'playwright' Python package ({error})")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


class AppPage:
    """A browser tab on a running Streamlit app, with waits and checks that know Streamlit."""

    def __init__(self, page, base_url: str):
        self.page = page  # playwright.sync_api.Page, for everything the helpers don't cover
        self.base_url = base_url

    def open(self, path: str = "", *, check_errors: bool = True) -> AppPage:
        """Load the app at URL path `path` ("" = default page, "schedules" = st.Page url_path),
        wait until its script run has finished and, unless check_errors=False, assert no errors."""
        self.page.goto(f"{self.base_url}/{path.lstrip('/')}")
        self.wait_idle()
        if check_errors:
            self.assert_no_errors()
        return self

    def wait_idle(self, timeout_s: float = APP_IDLE_TIMEOUT_S) -> None:
        """Wait until the app is connected and no script run is in progress (see _APP_IDLE_JS).

        Call it after every interaction (click, fill, key press) before reading the page.
        """
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        self.page.wait_for_timeout(SETTLE_DELAY_MS)
        try:
            self.page.wait_for_function(_APP_IDLE_JS, timeout=timeout_s * 1000, polling=100)
        except PlaywrightTimeoutError as error:  # re-raised with what the app shows
            state = self.page.evaluate(_APP_STATE_JS)
            raise AssertionError(
                f"app at {self.page.url} did not become idle within {timeout_s:.0f} s: {state}"
            ) from error

    def main_area(self):
        """The locator of the page content (Streamlit's main area, without the sidebar)."""
        return self.page.locator('[data-testid="stMain"]')

    def viewport_screenshot(self, name: str) -> Path:
        """A PNG of exactly what the viewport shows (what a projector shows, unlike screenshot's whole page),
        saved as <screenshot dir>/<name>.png."""
        folder = screenshot_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def errors(self) -> list[str]:
        """Texts of the error elements on the page: exceptions, error alerts, compile errors."""
        found = [element.inner_text() for element in self.page.locator(ERROR_SELECTOR).all()]
        script_state = self.page.locator('[data-testid="stApp"]').get_attribute(
            "data-test-script-state"
        )
        if script_state == "compilationError" and not found:
            found.append("the app script did not compile (script state compilationError)")
        return found

    def assert_no_errors(self) -> None:
        found = self.errors()
        assert not found, f"{len(found)} error element(s) at {self.page.url}:\n" + "\n---\n".join(
            text[:2000] for text in found
        )

    def screenshot(self, name: str) -> Path:
        """Save a full-page PNG as <screenshot dir>/<name>.png and print where it went."""
        folder = screenshot_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        # Streamlit scrolls inside [data-testid="stMain"], not the document, so full_page alone would
        # capture one screen: make the viewport as tall as the main area's content for the shot.
        viewport = self.page.viewport_size
        content_height = self.page.evaluate(_MAIN_SCROLL_HEIGHT_JS)
        taller = viewport is not None and content_height > viewport["height"]
        if taller:
            self.page.set_viewport_size({"width": viewport["width"],
                                         "height": min(content_height, MAX_SCREENSHOT_HEIGHT)})
            self.page.evaluate(_NEXT_PAINT_JS)  # let the page lay itself out at the new size
        try:
            self.page.screenshot(path=str(path), full_page=True)
        finally:
            if taller:
                self.page.set_viewport_size(viewport)
        print(f"screenshot saved: {path} (folder: {folder})")
        return path


def start_small_job(app: AppPage, steps: int) -> None:
    """Start a two-moons job of `steps` steps on the Train page (the option found by the page's own wording)."""
    from ui.labels import DATASET_LABELS

    box = app.page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').filter(has_text="Dataset")
    box.click()
    app.page.get_by_role("option", name=DATASET_LABELS["two_moons"], exact=True).click()
    app.wait_idle()
    field = app.page.get_by_label("Training steps")
    field.fill(str(steps))
    field.press("Enter")
    app.wait_idle()
    app.page.get_by_role("button", name="Start training").click()
    app.wait_idle()
