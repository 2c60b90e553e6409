"""Scrubbed timesteps travel in links (issue 18 item 2): scrub with the keyboard, copy the URL, open it in a new
browser context (another student, no session), and the same t is shown, by the slider and by its figure. A scrub
step reruns only the scrubber's fragment, never the whole page. The server runs on the tiny checkpoints of
conftest.browser_checkpoint_dir (T = 40)."""

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from test_pages import RerunWatch  # counts the full-script reruns a tab asks for (fragment runs excluded)

SCRUBBERS = [  # page, the scrubber's label, its setting (query parameter), the key of the figure it drives
    ("denoise", "t (paper's step)", "denoise_t", "denoise_scrubber"),
    ("denoise", "t (paper's step) for the best possible x̂₀", "denoise_bayes_t", "denoise_bayes"),
    ("sample", "Trajectory step (t)", "sample_trajectory_t", "sample_trajectory"),
    ("playground_2d", "Trajectory step (t)", "pg_trajectory_t", "pg_trajectory_chart"),
]


def scrubber_thumb(app, main_area, label: str):
    return main_area(app).locator('[data-testid="stSlider"]').filter(has_text=label).first.get_by_role("slider")


def shown_value(app, main_area, label: str) -> str:
    return scrubber_thumb(app, main_area, label).get_attribute("aria-valuetext")


def figure_frame(app, chart_key: str, expected: str, timeout_s: float = 30.0) -> str:
    """The label of the frame the figure `chart_key` shows (its own Plotly slider's active step, whose traces must be
    the ones drawn), once it is `expected` or after timeout_s (the browser draws the figure, or moves it to its frame,
    just after the run)."""
    read = """(key) => {
      const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
      const slider = plot && plot._fullLayout && (plot._fullLayout.sliders || [])[0];
      if (!slider) return null;
      // the traces drawn must be the active frame's own (not only the slider moved): the figure's data holds the
      // frame's (x and y as sent: arrays, or base64 {dtype, bdata} objects) and, for SVG points, which Plotly moves
      // in place without a redraw (figures.needs_redraw), the points on screen are that data's
      const frame = plot._transitionData._frames.find((f) => f.name === String(slider.active));
      const plain = (v) => (v && v.bdata !== undefined ? `${v.dtype}:${v.bdata}` : JSON.stringify(Array.from(v ?? [])));
      const same = (a, b) => plain(a) === plain(b);  // Plotly adds _inputArray to the {dtype, bdata} it decoded
      const onScreen = (index) => {
        const group = [...plot.querySelectorAll('.scatterlayer .trace')]
          .find((g) => g.__data__ && g.__data__[0] && g.__data__[0].trace.index === index);
        const point = group && group.querySelector('path.point');
        if (!point) return true;  // not drawn as SVG points (lines, pictures)
        const full = plot._fullData[index];
        return point.__data__.x === Number(full.x[0]) && point.__data__.y === Number(full.y[0]);
      };
      const drawn = frame.traces.every((index, i) => {
        const want = frame.data[i], have = plot.data[index];
        return want.source !== undefined ? have.source === want.source
          : same(have.x, want.x) && same(have.y, want.y) && onScreen(index);
      });
      return drawn ? String(slider.steps[slider.active].label) : "not drawn";
    }"""
    deadline = time.monotonic() + timeout_s
    while (label := app.page.evaluate(read, chart_key)) != expected and time.monotonic() < deadline:
        app.page.wait_for_timeout(100)
    return label


def url_with(app, key: str, value: str, timeout_s: float = 30.0) -> str:
    """The address bar once it carries key=value (the fragment's run writes it a moment after the slider moved)."""
    deadline = time.monotonic() + timeout_s
    while parse_qs(urlsplit(app.page.url).query).get(key) != [value]:
        assert time.monotonic() < deadline, f"the URL never carried {key}={value}: {app.page.url}"
        app.page.wait_for_timeout(200)
    return app.page.url


@pytest.mark.parametrize("path, label, key, chart_key", SCRUBBERS, ids=[s[2] for s in SCRUBBERS])
def test_a_scrubbed_timestep_travels_in_the_copied_url(app, main_area, open_as_student, path, label, key, chart_key):
    watch = RerunWatch(app.page)
    app.open(path)
    first = shown_value(app, main_area, label)
    opened_runs = watch.reruns
    scrubber_thumb(app, main_area, label).focus()
    for _ in range(3):
        app.page.keyboard.press("ArrowRight")
        app.wait_idle()
    scrubbed = shown_value(app, main_area, label)
    assert scrubbed != first, (first, scrubbed)
    assert watch.reruns == opened_runs  # a scrub step reran only the scrubber's fragment
    assert figure_frame(app, chart_key, scrubbed) == scrubbed  # the figure shows the scrubbed frame
    step = scrubbed.split(" ")[0]  # "0 (x₀)" is step 0
    url = url_with(app, key, step)
    main_area(app).get_by_role("button", name="Share · presets · reset").click()  # opening it reruns the page
    app.wait_idle()
    link = app.page.locator('[data-testid="stPopoverBody"] [data-testid="stCode"] code').first.inner_text()
    assert f"{key}={step}" in link, link  # the popover's link holds the scrubbed t too
    app.page.keyboard.press("Escape")
    with open_as_student(app, url, path) as student:
        assert shown_value(student, main_area, label) == scrubbed
        assert figure_frame(student, chart_key, scrubbed) == scrubbed
        assert not [w for w in main_area(student).get_by_text("Link setting ignored").all()]
