"""The server a class shares: a deep link on a fresh server gets the app shell, and a copied URL grants no control.

Each test here starts its own `streamlit run app.py` (loopback only), because what they check depends on what
the server has seen before: the first page a fresh server answers, and which browser started a job.
"""

import pytest
from streamlit_harness import REPO_ROOT, AppPage, serve_streamlit, start_small_job

SIDEBAR = '[data-testid="stSidebar"]'


@pytest.fixture
def fresh_server(browser_checkpoint_dir, tmp_path):
    """A server no browser has talked to yet (tiny checkpoints, T = 40)."""
    env = {"RDL_CHECKPOINT_DIR": str(browser_checkpoint_dir)}
    with serve_streamlit(REPO_ROOT / "app.py", tmp_path / "streamlit.log", env=env) as base_url:
        yield base_url


@pytest.mark.parametrize("path, heading", [("train", "Train a model"), ("sample", "Sample")])
def test_deep_link_on_a_fresh_server_runs_the_app_shell(browser, fresh_server, path, heading):
    """Issue 13: the first request after a start used to run pages/<page>.py alone (Streamlit's old automatic
    multipage mode for a pages/ folder): no model selector, no upload, no heartbeat."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        app = AppPage(context.new_page(), fresh_server)
        app.page.set_default_timeout(60_000)
        app.open(path)
        sidebar = app.page.locator(SIDEBAR)
        # the page's first run switches Streamlit's old mode off and reruns: wait for that rerun's shell
        expect(sidebar.get_by_text("Active model")).to_be_visible(timeout=60_000)
        app.wait_idle()
        app.assert_no_errors()
        assert sidebar.locator('input[type="file"]').count() == 1, "no checkpoint upload in the sidebar"
        titles = app.page.locator('[data-testid="stMain"] h1').all_inner_texts()
        assert any(heading in title for title in titles), titles
        assert app.page.url.rstrip("/").endswith(f"/{path}")
        app.screenshot(f"fresh-server-first-page-{path}")
    finally:
        context.close()


def test_a_copied_url_grants_no_control_but_a_reload_keeps_the_jobs(browser, streamlit_server):
    """Issue 13: the session id used to live in the URL (?session=...), so a pasted address bar handed over
    the jobs. Now a cookie identifies the browser: the same browser reloading finds its job, a second browser
    opening the first one's exact URL sees and controls nothing."""
    from playwright.sync_api import expect

    first_context = browser.new_context(viewport={"width": 1280, "height": 900})
    second_context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        first = AppPage(first_context.new_page(), streamlit_server)
        first.page.set_default_timeout(60_000)
        first.open("train")
        start_small_job(first, 100_000)  # long enough to still be running when the second browser looks
        main = first.page.locator('[data-testid="stMain"]')
        expect(main.get_by_role("button", name="Stop", exact=True)).to_be_visible(timeout=60_000)
        url = first.page.url
        assert "session" not in url, url  # nothing about the user in the address bar
        cookies = {c["name"]: c for c in first_context.cookies()}
        assert "rdl_owner" in cookies and cookies["rdl_owner"]["sameSite"] == "Lax"
        assert cookies["rdl_owner"]["value"] not in url

        # the same browser reloads (a new Streamlit session): its job is still there, with its buttons
        first.page.reload()
        first.wait_idle()
        expect(main.get_by_role("button", name="Stop", exact=True)).to_be_visible(timeout=60_000)
        first.screenshot("identity-first-browser-after-reload")

        # a second browser given the first one's full URL (with an old-style ?session= too) sees no job
        second = AppPage(second_context.new_page(), streamlit_server)
        second.page.set_default_timeout(60_000)
        for address in (url, f"{url}?session={'0' * 32}"):
            second.page.goto(address)
            second.wait_idle()
            second.assert_no_errors()
            second_main = second.page.locator('[data-testid="stMain"]')
            expect(second_main.get_by_text("No job yet")).to_be_visible()
            for button in ("Stop", "Resume", "Discard", "Save now", "Download checkpoint"):
                assert second_main.get_by_role("button", name=button).count() == 0, button
        second_cookies = {c["name"]: c["value"] for c in second_context.cookies()}
        assert second_cookies["rdl_owner"] != cookies["rdl_owner"]["value"]  # its own, new identity
        second.screenshot("identity-second-browser-with-copied-url")

        # and the job is untouched: the first browser stops it itself
        first.page.locator('[data-testid="stMain"]').get_by_role("button", name="Stop", exact=True).click()
        first.wait_idle()
        expect(main.get_by_role("button", name="Discard", exact=True)).to_be_visible(timeout=120_000)
        main.get_by_role("button", name="Discard", exact=True).click()
        first.wait_idle()
    finally:
        first_context.close()
        second_context.close()


def _with_dataset_name(checkpoint, name: str) -> bytes:
    """A copy of `checkpoint` whose metadata names the dataset `name` (edited as JSON, outside core.checkpoints)."""
    import json
    import struct

    from safetensors.torch import load, save

    data = checkpoint.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    metadata = json.loads(data[8:8 + length])["__metadata__"]
    document = json.loads(metadata["rdl"])
    document["data"]["dataset"] = name
    return save(load(data), metadata={**metadata, "rdl": json.dumps(document)})


def test_a_hostile_upload_is_refused_and_its_text_never_renders(app, tmp_path, browser_checkpoint_dir):
    """Markdown and HTML from an uploaded file (its name, its dataset) are shown as text in the error."""
    from playwright.sync_api import expect

    app.open("")
    hostile = tmp_path / "[click](javascript:alert(1)) **bold** $x$.safetensors"
    hostile.write_bytes(_with_dataset_name(browser_checkpoint_dir / "moons_eps.safetensors",
                                           "<img src=x onerror=alert(1)>**big** [link](http://example.invalid)"))
    app.page.locator(f'{SIDEBAR} input[type="file"]').set_input_files(str(hostile))
    app.wait_idle()
    error = app.page.locator(f'{SIDEBAR} [data-testid="stAlertContentError"]')
    expect(error).to_contain_text("is not a usable checkpoint", timeout=60_000)
    text = error.inner_text().replace("\u200b", "")  # zero-width spaces keep URLs from being autolinked
    assert "<img src=x onerror=alert(1)>**big** [link](http://example.invalid)" in text  # shown literally
    assert "click--javascript-alert-1-- --bold-- -x-.safetensors" in text  # the file name, reduced
    for tag in ("a", "img", "strong", "em", ".katex"):
        assert error.locator(tag).count() == 0, f"{tag} rendered from file text: {error.inner_html()}"
    assert app.page.locator('[data-testid="stException"]').count() == 0  # a message, never a traceback
    app.screenshot("hostile-upload-refused")


def test_an_upload_whose_network_is_infinite_at_half_its_timesteps_shows_a_message(app, tmp_path):
    """Issue 21, item 3: a 2-D model whose output overflows wherever sin(t) > 0 (499 of its 1,000 timesteps, none of the
    4 an older probe tried) is refused in the sidebar with one line naming how many timesteps failed; Sample then works
    with the shipped model, with no traceback anywhere."""
    from playwright.sync_api import expect
    from test_hostile_files import timestep_bomb

    app.open("sample")
    bomb = tmp_path / "overflowing.safetensors"
    bomb.write_bytes(timestep_bomb())
    app.page.locator(f'{SIDEBAR} input[type="file"]').set_input_files(str(bomb))
    app.wait_idle()
    error = app.page.locator(f'{SIDEBAR} [data-testid="stAlertContentError"]')
    expect(error).to_contain_text("is not a usable checkpoint", timeout=60_000)
    text = error.inner_text().replace("\\", "")
    assert "output on a probe batch is not finite (NaN or infinite) at 499 of the 1000 timesteps probed" in text, text
    assert "\n" not in text.strip()
    assert app.page.locator('[data-testid="stException"]').count() == 0  # a message, never a traceback
    app.screenshot("hostile-upload-infinite-network")
    app.open("sample")  # the page itself, with the model the sidebar kept
    app.wait_idle()
    app.assert_no_errors()
