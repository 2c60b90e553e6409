"""Smoke test: the app's default page loads in a real browser without any error element."""


def test_root_page_loads_without_errors(app):
    app.open("")  # waits for the script run to finish and asserts no exception or error box
    assert app.page.locator('[data-testid="stMain"]').is_visible()
    app.screenshot("smoke-root")
