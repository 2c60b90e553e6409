"""AppTest of the app shell and the Home page: navigation, the shared sidebar, the key formulas."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_home_renders_formulas_and_sidebar():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Reverse Diffusion Lab"
    formulas = " ".join(element.value for element in at.latex)
    for piece in [r"q(x_t \mid x_0)", r"\tilde\beta_t", r"\mu_\theta", r"\log\sigma_t^2"]:
        assert piece in formulas
    assert any(caption.value.startswith("Device:") for caption in at.sidebar.caption)
    assert at.sidebar.selectbox[0].label == "Active model"
    assert "mnist_eps (shipped)" in at.sidebar.selectbox[0].options  # the shipped default model
    assert at.sidebar.selectbox[0].value == "shipped:mnist_eps"


# AppTest (Streamlit 1.67) drops app.py's sidebar from every run after the first when st.navigation is used,
# so the sidebar's upload widget is driven in the browser tests (tests/browser/test_pages.py); here the
# catalogue logic behind it is checked directly.
def test_uploaded_checkpoints_are_validated_by_the_catalogue():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    from ui import catalog

    try:
        catalog.add_uploaded("evil.safetensors", b"\x80\x04 a pickle, not a safetensors file")
    except ValueError as error:
        assert "safetensors" in str(error)
    else:
        raise AssertionError("a bad upload was accepted")


def test_guide_follows_the_course_order():
    from ui.navigation import PAGES, STAGES, available_pages

    stages = [STAGES.index(page.stage) for page in PAGES]
    assert stages == sorted(stages)  # the registry itself is in course order
    order = [page.stage for page in PAGES]
    for earlier, later in (("forward process", "posterior"), ("posterior", "parameterizations"),
                           ("parameterizations", "objective and training"), ("objective and training", "sampling"),
                           ("sampling", "variance and DDIM")):
        assert max(i for i, s in enumerate(order) if s == earlier) < min(i for i, s in enumerate(order) if s == later)
    at = AppTest.from_file(str(Path(APP).parent / "pages" / "home.py"), default_timeout=60).run()
    assert not at.exception
    shown = [m.value.strip("*") for m in at.markdown if m.value.startswith("**") and m.value.endswith("**")]
    titles = [page.title for page in available_pages()[1:]]
    assert [s for s in shown if s in titles] == titles  # every page, in registry order
    assert [s[0].upper() + s[1:] for s in STAGES[1:]] == [s for s in shown if s not in titles]  # "DDIM" stays upper case


def test_the_guide_comes_before_the_formulas():
    """The projector layout: the course guide's first links are right under the introduction (the browser check
    is tests/browser/test_look.py, fold-home-1280x720), the formulas follow."""
    at = AppTest.from_file(str(Path(APP).parent / "pages" / "home.py"), default_timeout=60).run()
    assert [h.value for h in at.header] == ["The course, page by page", "The reverse process in formulas", "Where this leads"]


def test_a_bad_thread_setting_stops_the_app_with_one_line(monkeypatch):
    """$RDL_TORCH_THREADS is read when the process first configures torch: a wrong value is said on the page."""
    from core import runtime

    monkeypatch.setattr(runtime, "_threads_configured", False)  # as in a fresh server process
    monkeypatch.setenv(runtime.THREADS_ENV, "lots")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Server setting: RDL_TORCH_THREADS='lots' is not allowed; expected an integer "
                                           "in 1..1024, or unset"]
