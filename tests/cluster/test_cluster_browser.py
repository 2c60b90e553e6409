"""Two app servers on two ports, both with RDL_RAY_ADDRESS set to the local cluster (tests/cluster/conftest.py),
driven by headless chromium: a job started by a browser on server A is seen and stopped by the same browser on
server B (the owner cookie is the browser's, whatever the port), and a second browser sees nothing of it.
Marked cluster and browser; skips without Ray, chromium or playwright."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

pytest.importorskip("tests.cluster.local_cluster", reason="Ray is not installed (pip install .[cluster])")
from tests.browser.streamlit_harness import CHROMIUM_PATH, REPO_ROOT, AppPage, launched_chromium, serve_streamlit, start_small_job
from tests.helpers import make_checkpoints

pytestmark = [pytest.mark.cluster, pytest.mark.browser]


@pytest.fixture(scope="module")
def two_replicas(cluster, tmp_path_factory):
    """(base URL of replica A, of replica B): `streamlit run app.py` twice, one cluster, one shared run store."""
    if not Path(CHROMIUM_PATH).exists():
        pytest.skip(f"browser tests need {CHROMIUM_PATH} (Debian package 'chromium')")
    checkpoints = make_checkpoints(tmp_path_factory.mktemp("cluster_checkpoints"))
    env = {**cluster.env, "RDL_RAY_ADDRESS": cluster.address, "RDL_CHECKPOINT_DIR": str(checkpoints)}
    logs = REPO_ROOT / "test-artifacts"
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(serve_streamlit(REPO_ROOT / "app.py", logs / f"cluster-replica-{name}.log", env=env))
                for name in ("a", "b")]
        yield tuple(urls)


@pytest.fixture(scope="module")
def chromium():
    with launched_chromium() as browser:
        yield browser


def test_a_job_started_on_replica_a_is_stopped_on_replica_b_by_the_same_browser_only(two_replicas, chromium):
    from playwright.sync_api import expect

    url_a, url_b = two_replicas
    student = chromium.new_context(viewport={"width": 1280, "height": 900})
    other = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        on_a = AppPage(student.new_page(), url_a)
        on_a.page.set_default_timeout(120_000)
        on_a.open("train")
        start_small_job(on_a, 1_000_000)
        expect(on_a.page.locator('[data-testid="stMain"]').get_by_role("button", name="Stop", exact=True)).to_be_visible(timeout=120_000)

        stranger = AppPage(other.new_page(), url_b)  # another browser on replica B: nothing of the student's
        stranger.page.set_default_timeout(120_000)
        stranger.open("train")
        stranger_main = stranger.page.locator('[data-testid="stMain"]')
        expect(stranger_main.get_by_text("No job yet")).to_be_visible(timeout=120_000)
        for button in ("Stop", "Resume", "Discard", "Save now"):
            assert stranger_main.get_by_role("button", name=button).count() == 0, button

        on_b = AppPage(student.new_page(), url_b)  # the student's browser on replica B (same cookie)
        on_b.page.set_default_timeout(120_000)
        on_b.open("train")
        main_b = on_b.page.locator('[data-testid="stMain"]')
        main_b.get_by_role("button", name="Stop", exact=True).click()
        on_b.wait_idle()
        expect(main_b.get_by_role("button", name="Discard", exact=True)).to_be_visible(timeout=120_000)
        on_b.assert_no_errors()

        on_a.page.reload()  # replica A shows it stopped too
        on_a.wait_idle()
        main_a = on_a.page.locator('[data-testid="stMain"]')
        expect(main_a.get_by_role("button", name="Discard", exact=True)).to_be_visible(timeout=120_000)
        assert main_a.get_by_role("button", name="Stop", exact=True).count() == 0
        main_a.get_by_role("button", name="Discard", exact=True).click()
        on_a.wait_idle()
        on_a.assert_no_errors()
    finally:
        student.close()
        other.close()
