"""The harness itself, on a throwaway st.navigation app: it must wait for slow script runs and
catch exceptions and error boxes, while warnings and info boxes pass."""

import shutil
import textwrap

import pytest
from streamlit_harness import REPO_ROOT, AppPage, serve_streamlit

THROWAWAY_APP = textwrap.dedent(
    """
    import time

    import streamlit as st


    def calm():
        st.title("Calm page")
        st.warning("a warning is not an error")
        st.info("neither is an info box")


    def slow():
        time.sleep(1.0)
        st.write("slow page finished")
        if st.button("Run again slowly"):
            time.sleep(1.0)
            st.write("button run finished")


    def raises():
        st.write("about to fail")
        raise ZeroDivisionError("harness self-test exception")


    def error_box():
        st.error("harness self-test error box")


    st.navigation([
        st.Page(calm, title="Calm", url_path="calm", default=True),
        st.Page(slow, title="Slow", url_path="slow"),
        st.Page(raises, title="Raises", url_path="raises"),
        st.Page(error_box, title="Error box", url_path="error_box"),
    ]).run()
    """
)


@pytest.fixture(scope="module")
def throwaway_server(tmp_path_factory):
    """The throwaway app, served with the repository's .streamlit/config.toml."""
    app_dir = tmp_path_factory.mktemp("throwaway_app")
    (app_dir / "app.py").write_text(THROWAWAY_APP)
    shutil.copytree(REPO_ROOT / ".streamlit", app_dir / ".streamlit")
    with serve_streamlit(app_dir / "app.py", app_dir / "streamlit.log") as base_url:
        yield base_url


@pytest.fixture
def throwaway(page, throwaway_server):
    return AppPage(page, throwaway_server)


def test_calm_page_passes_with_warning_and_info(throwaway):
    throwaway.open("")
    assert throwaway.page.get_by_text("Calm page").is_visible()
    assert throwaway.errors() == []


def test_waits_for_slow_run_and_for_rerun_after_click(throwaway):
    throwaway.open("slow")
    # Visible right after open(): open() returned only once the 1 s run had finished.
    assert throwaway.page.get_by_text("slow page finished").is_visible()
    throwaway.page.get_by_role("button", name="Run again slowly").click()
    throwaway.wait_idle()
    assert throwaway.page.get_by_text("button run finished").is_visible()


def test_detects_uncaught_exception(throwaway):
    throwaway.open("raises", check_errors=False)
    found = throwaway.errors()
    assert len(found) == 1
    # showErrorDetails = "type" (.streamlit/config.toml): the type is shown, the message (and any server path) is not
    assert "ZeroDivisionError" in found[0] and "harness self-test exception" not in found[0]
    assert "redacted" in found[0]
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        throwaway.assert_no_errors()
    with pytest.raises(AssertionError, match="1 error element"):
        throwaway.open("raises")


def test_detects_error_box(throwaway):
    throwaway.open("error_box", check_errors=False)
    assert throwaway.errors() == ["harness self-test error box"]


def test_detects_app_script_that_does_not_compile(page, tmp_path):
    (tmp_path / "app.py").write_text('import streamlit as st\nst.title("unclosed"\n')
    with serve_streamlit(tmp_path / "app.py", tmp_path / "streamlit.log") as base_url:
        broken = AppPage(page, base_url).open("", check_errors=False)
        found = broken.errors()
    assert len(found) == 1
    assert "SyntaxError" in found[0]


def test_screenshot_goes_to_configured_folder(throwaway, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RDL_SCREENSHOT_DIR", str(tmp_path / "shots"))
    throwaway.open("")
    path = throwaway.screenshot("calm")
    assert path == tmp_path / "shots" / "calm.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(tmp_path / "shots") in capsys.readouterr().out
