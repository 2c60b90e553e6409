"""Settings that persist and travel (ui/settings.py): the URL boundary, links, presets, reset, page switches."""

from pathlib import Path

import pytest
from helpers import APP, open_page
from streamlit.testing.v1 import AppTest

from core.rng import MAX_SEED
from ui.settings import PageSettings, Preset, Setting
from ui.text import escape_markdown

ROOT = Path(__file__).resolve().parent.parent
SCHEDULES = str(ROOT / "pages" / "schedules.py")


# ------------------------------------------------------------------------------------ the URL boundary
@pytest.mark.parametrize("setting, raw, value", [
    (Setting("n", 5, "int", 1, 64), ["64"], 64),
    (Setting("eta", 0.0, "float", 0.0, 1.0), ["0.25"], 0.25),
    (Setting("beta", 1e-4, "float", 1e-6, 0.5), ["1e-06"], 1e-6),
    (Setting("clip", True, "bool"), ["false"], False),
    (Setting("clip", False, "bool"), ["1"], True),
    (Setting("kind", "linear", "choice", choices=("linear", "cosine")), ["cosine"], "cosine"),
    (Setting("counts", [10], "ints", choices=(5, 10, 40)), ["40", "5", "40"], [5, 40]),
    (Setting("T", 100, "int", choices=(50, 100, 1000)), ["1000"], 1000),
    (Setting("runs", ["a"], "choices", choices=("a", "b", "c")), ["c", "a", "c"], ["a", "c"]),  # in the choices' order
])
def test_valid_link_values_are_parsed(setting, raw, value):
    assert setting.parse(raw) == value
    assert setting.parse(setting.encode(value)) == value  # what a link carries reads back the same


@pytest.mark.parametrize("setting, raw, words", [
    (Setting("n", 5, "int", 1, 64), ["65"], "n=65 is not allowed; expected an integer in 1..64"),
    (Setting("n", 5, "int", 1, 64), ["five"], "expected an integer"),
    (Setting("n", 5, "int", 1, 64), ["1", "2"], "given 2 times"),
    (Setting("eta", 0.0, "float", 0.0, 1.0), ["nan"], "finite number"),
    (Setting("eta", 0.0, "float", 0.0, 1.0), ["1e9"], "in [0.0, 1.0]"),
    (Setting("clip", True, "bool"), ["yes"], "expected one of"),
    (Setting("kind", "linear", "choice", choices=("linear", "cosine")), ["<script>"], "expected one of linear, cosine"),
    (Setting("counts", [10], "ints", choices=(5, 10)), ["5", "7"], "counts=7"),
    (Setting("T", 100, "int", choices=(50, 100)), ["75"], "T=75"),
    (Setting("runs", ["a"], "choices", choices=("a", "b")), ["a", "rm -rf"], "runs='rm -rf' is not allowed"),
])
def test_bad_link_values_raise_one_line(setting, raw, words):
    with pytest.raises(ValueError, match=None) as error:
        setting.parse(raw)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_changed_settings_and_link_leave_defaults_out():
    page = PageSettings("p", [Setting("a", 1, "int", 0, 9), Setting("b", "x", "choice", choices=("x", "y")),
                              Setting("c", [1], "ints", choices=(1, 2))])
    assert page.changed({"a": 1, "b": "y", "c": [2, 1]}) == {"b": ["y"], "c": ["2", "1"]}
    assert page.link({"a": 3, "b": "x", "c": [1]}) == "?a=3"


def test_defaults_that_depend_on_a_setting():
    """A page whose defaults follow one setting (the Train page's recipe follows the dataset): a link leaves out
    exactly what equals the defaults of *its* values, a preset fills in its own defaults, reset the base ones."""
    recipes = {"a": {"kind": "a", "n": 1, "m": 5}, "b": {"kind": "a", "n": 7, "m": 5}}
    page = PageSettings("p", [Setting("kind", "a", "choice", choices=("a", "b")), Setting("n", 1, "int", 0, 9),
                              Setting("m", 5, "int", 0, 9)], [Preset("b with m=6", {"kind": "b", "m": 6})],
                        defaults_for=lambda values: {**recipes[values["kind"]], "kind": "a"})
    assert page.changed({"kind": "b", "n": 7, "m": 5}) == {"kind": ["b"]}  # n = 7 is b's default
    assert page.changed({"kind": "b", "n": 1, "m": 5}) == {"kind": ["b"], "n": ["1"]}  # a's default, not b's
    assert page.changed({"kind": "a", "n": 7, "m": 5}) == {"n": ["7"]}
    assert page.preset_values(page.presets[0]) == {"kind": "b", "n": 7, "m": 6}
    assert page.defaults() == {"kind": "a", "n": 1, "m": 5}


def test_a_preset_may_only_set_known_settings():
    with pytest.raises(ValueError, match="unknown setting 'z'"):
        PageSettings("p", [Setting("a", 1, "int", 0, 9)], [Preset("bad", {"z": 1})])
    with pytest.raises(ValueError, match="may not be called 'model'"):
        PageSettings("p", [Setting("model", "x", "text", choices=("x",))])


# --------------------------------------------------------------------------------------------- pages
def schedules_with(query: dict) -> AppTest:
    at = AppTest.from_file(SCHEDULES, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_a_link_reproduces_the_page():
    at = schedules_with({"schedules_a_T": "100", "schedules_a_beta_end": "0.999", "schedules_compare": "true"})
    assert not at.exception and not at.error
    assert at.number_input(key="schedules_a_T").value == 100
    assert at.number_input(key="schedules_a_beta_end").value == pytest.approx(0.999)
    assert at.toggle(key="schedules_compare").value is True
    assert at.number_input(key="schedules_b_T").value == 1000  # left out of the link: the default
    link = at.code[0].value
    assert "schedules_a_T=100" in link and "schedules_compare=true" in link and "session" not in link


def test_a_bad_link_shows_one_line_and_falls_back_to_the_default():
    at = schedules_with({"schedules_a_T": "5000", "schedules_a_kind": "zigzag", "schedules_digit": "3"})
    assert not at.exception and not at.error
    notices = [w.value for w in at.warning if "Link setting ignored" in w.value]
    assert len(notices) == 2 and any(escape_markdown("schedules_a_T=5000") in n for n in notices)
    assert at.number_input(key="schedules_a_T").value == 1000
    assert at.selectbox(key="schedules_a_kind").value == "linear"
    assert at.number_input(key="schedules_digit").value == 3  # the good values of the link still apply


def test_reset_and_presets():
    at = schedules_with({})
    at.number_input(key="schedules_a_T").set_value(300).run()
    at.button(key="schedules_reset").click().run()
    assert at.number_input(key="schedules_a_T").value == 1000
    next(button for button in at.button if button.label.startswith("β up to 0.999")).click().run()
    assert not at.exception
    assert at.number_input(key="schedules_a_beta_end").value == pytest.approx(0.999)
    warning = " ".join(w.value for w in at.warning)
    assert "signal is gone after" in warning and "cosine" in warning  # the numbers come from core.lab.signal


def test_settings_survive_a_page_switch(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/sample.py")
    at.number_input(key="sample_steps").set_value(20).run()
    at.switch_page("pages/schedules.py").run()
    assert not at.exception
    at.switch_page("pages/sample.py").run()
    assert not at.exception and at.number_input(key="sample_steps").value == 20


@pytest.mark.parametrize("page, prefix", [("pages/sample.py", "sample"), ("pages/denoise.py", "denoise"),
                                          ("pages/schedules.py", "schedules"), ("pages/reverse_step.py", "reverse"),
                                          ("pages/playground_2d.py", "playground"), ("pages/train.py", "train")])
def test_every_preset_opens_cleanly(monkeypatch, checkpoint_dir, page, prefix):
    at = open_page(monkeypatch, checkpoint_dir, page)
    presets = [button for button in at.button if button.key and button.key.startswith(f"{prefix}_preset_")]
    assert len(presets) >= 2, [b.key for b in at.button]
    for index in range(len(presets)):
        at.button(key=f"{prefix}_preset_{index}").click().run()
        assert not at.exception, (page, index, [e.value for e in at.exception])
        assert not at.error, (page, index, [e.value for e in at.error])
        assert not [w for w in at.warning if "Link setting ignored" in w.value]
        link = next(code.value for code in at.code if code.value.startswith("?") or "://" in code.value)
        assert "session" not in link


def test_markdown_in_a_bad_link_value_is_shown_as_text():
    at = schedules_with({"schedules_a_kind": "[click here](https://evil.example)"})
    (notice,) = [w.value for w in at.warning if "Link setting ignored" in w.value]
    assert "[click here](" not in notice and r"\[click here\]" in notice  # no link, the text itself


# ------------------------------------------------------------------------- the active model travels too
def page_with(monkeypatch, checkpoint_dir, page: str, query: dict, state: dict | None = None) -> AppTest:
    """Open `page` the way a browser opens a link to it: app.py's shell (sidebar first) with the query string."""
    import ui.catalog

    monkeypatch.setattr(ui.catalog, "CHECKPOINT_DIR", Path(checkpoint_dir))
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def url_of(at: AppTest) -> dict:
    """The query string the page left in the address bar."""
    return dict(at.query_params)


def active_model(at: AppTest) -> str:
    return at.sidebar.selectbox[0].value


def the_link(at: AppTest) -> str:
    return next(code.value for code in at.code if code.value.startswith("?") or "://" in code.value)


def test_a_link_with_a_shipped_model_opens_with_that_model(monkeypatch, checkpoint_dir):
    at = page_with(monkeypatch, checkpoint_dir, "pages/denoise.py",
                   {"model": "shipped:mnist_x0", "denoise_noise_seed": "3"})
    assert active_model(at) == "shipped:mnist_x0"
    assert any("mnist_x0 (shipped)" in m.value for m in at.markdown)  # the page itself runs the x0-model
    assert at.number_input(key="denoise_noise_seed").value == 3
    assert not at.warning
    assert the_link(at) == "?model=shipped:mnist_x0&denoise_noise_seed=3"  # the link carries both
    at.run()  # a rerun keeps it, and the address bar still carries it
    assert active_model(at) == "shipped:mnist_x0" and url_of(at)["model"] == "shipped:mnist_x0"


def test_the_links_model_is_active_before_the_page_reads_its_settings(monkeypatch, checkpoint_dir):
    """The Sample page's settings depend on the model (a point model has "sample_points", an image model
    "sample_n"): a link for the 2-D model restores its settings only because the model is selected first."""
    at = page_with(monkeypatch, checkpoint_dir, "pages/sample.py", {"model": "shipped:moons_eps", "sample_points": "2000"})
    assert active_model(at) == "shipped:moons_eps"
    assert at.slider(key="sample_points").value == 2000 and not at.warning
    assert the_link(at) == "?model=shipped:moons_eps&sample_points=2000"


def test_a_reload_keeps_the_model(monkeypatch, checkpoint_dir):
    first = page_with(monkeypatch, checkpoint_dir, "pages/sample.py", {}, {"active_model_key": "shipped:mnist_v"})
    assert active_model(first) == "shipped:mnist_v"
    url = url_of(first)
    assert url.get("model") == "shipped:mnist_v", url
    reloaded = page_with(monkeypatch, checkpoint_dir, "pages/sample.py", url)  # a new session, the same URL
    assert active_model(reloaded) == "shipped:mnist_v"


def test_choosing_the_default_model_leaves_it_out_of_url_and_link(monkeypatch, checkpoint_dir):
    at = page_with(monkeypatch, checkpoint_dir, "pages/denoise.py", {"model": "shipped:mnist_x0"})
    at.session_state["active_model_key"] = "shipped:mnist_eps"  # what picking it in the sidebar stores
    at.run()
    assert active_model(at) == "shipped:mnist_eps"
    assert "model" not in url_of(at) and "model" not in the_link(at)
    at.session_state["active_model_key"] = "shipped:mnist_v"
    at.run()
    assert url_of(at)["model"] == "shipped:mnist_v" and "model=shipped:mnist_v" in the_link(at)


@pytest.mark.parametrize("raw, words", [
    ("shipped:nope", "model='shipped:nope' is not allowed; expected one of shipped:mnist_eps"),
    ("trained:0123abcd", "model='trained:0123abcd'"),  # a session-only key of another browser
    ("<b>[x](https://evil.example)</b>", "model="),
])
def test_a_bad_model_in_a_link_warns_once_and_keeps_the_current_model(monkeypatch, checkpoint_dir, raw, words):
    at = page_with(monkeypatch, checkpoint_dir, "pages/denoise.py", {"model": raw, "denoise_noise_seed": "2"})
    notices = [w.value for w in at.sidebar.warning if "Link model ignored" in w.value]
    assert len(notices) == 1 and escape_markdown(words) in notices[0] and "\n" not in notices[0], notices
    assert "](" not in notices[0]  # text, never a link
    assert active_model(at) == "shipped:mnist_eps"
    assert at.number_input(key="denoise_noise_seed").value == 2  # the page's own settings still apply
    assert "model" not in url_of(at)  # the bad value is dropped from the address bar
    at.run()
    assert not [w for w in at.sidebar.warning if "Link model ignored" in w.value]  # said once


def test_a_session_only_model_is_not_put_in_links_and_the_popover_says_so(monkeypatch, checkpoint_dir):
    from core import checkpoints

    model, diffusion, metadata = checkpoints.load(Path(checkpoint_dir) / "mnist_x0.safetensors")
    upload = {"uploaded:0123456789abcdef": {"label": "mine (uploaded)", "bytes": 1, "loaded": (model, diffusion, metadata)}}
    at = page_with(monkeypatch, checkpoint_dir, "pages/denoise.py", {"denoise_noise_seed": "4"},
                   {"uploaded_models": upload, "active_model_key": "uploaded:0123456789abcdef"})
    assert active_model(at) == "uploaded:0123456789abcdef"
    assert the_link(at) == "?denoise_noise_seed=4" and "model" not in url_of(at)
    notes = [c.value for c in at.caption if "opens with the default model" in c.value]
    assert len(notes) == 1 and "exists only there" in notes[0]
    shipped = page_with(monkeypatch, checkpoint_dir, "pages/denoise.py", {"model": "shipped:mnist_v"})
    assert not [c for c in shipped.caption if "opens with the default model" in c.value]  # only for session-only models


# --------------------------------------------------------------- one declaration: the row builds the widget
PAGES = ["sample", "denoise", "schedules", "reverse_step", "playground_2d", "train", "objective", "posterior", "score",
         "small_steps", "time_conditioning", "variances", "mistakes"]
INPUTS = ("number_input", "slider", "select_slider", "selectbox", "radio", "checkbox", "toggle", "multiselect")
NOT_SETTINGS = {"pg_model"}  # the playground's model picker: models trained in a session cannot travel in links


def shown(row: Setting, choice) -> str:
    return row.format_func(choice) if row.format_func else str(choice)


@pytest.mark.parametrize("page", PAGES)
def test_every_widget_is_built_from_its_row(monkeypatch, checkpoint_dir, page):
    """Each keyed input widget of the page is one of its declared settings, and its label, help, kind, bounds and
    choices are the row's (a bound may be narrower where it follows another widget, e.g. t ≤ the chosen T)."""
    at = open_page(monkeypatch, checkpoint_dir, f"pages/{page}.py")
    rows = at.session_state["_settings_current"].by_key
    checked = 0
    for kind in INPUTS:
        for element in getattr(at.main, kind):
            if element.key is None or element.key in NOT_SETTINGS or element.key.startswith("$$"):
                continue
            assert element.key in rows, f"{page}: widget {element.key!r} is not a declared setting"
            row = rows[element.key]
            assert kind == ("select_slider" if row.widget == "scrubber" else row.widget_kind), element.key
            assert element.label == row.label, element.key
            if row.widget != "scrubber":
                assert (element.help or None) == row.help, element.key
            if kind in ("number_input", "slider"):
                assert row.low <= element.min <= element.max <= row.high, element.key
            elif kind in ("selectbox", "radio", "multiselect"):
                assert list(element.options) == [shown(row, c) for c in row.choices], element.key
            checked += 1
    assert checked >= 1
    seeds = [row for key, row in rows.items() if "seed" in key]
    assert all(row.low == 0 and row.high == MAX_SEED == 2**53 - 1 for row in seeds)  # one seed bound everywhere
    for row in rows.values():  # a value a row allows travels in a link and reads back the same
        for value in (row.default, row.low, row.high) if row.kind in ("int", "float") and not row.choices else (row.default,):
            if value is not None:
                assert row.parse(row.encode(value)) == value, (row.key, value)


def test_pages_never_build_a_persisted_widget_by_hand():
    """Keys, labels, bounds and defaults live in the Setting rows only: no page passes persist_state or defines its
    own seed bound."""
    for path in sorted((ROOT / "pages").glob("*.py")):
        text = path.read_text()
        assert "persist_state" not in text and "SEED_MAX" not in text and "2**31" not in text, path.name


def test_links_the_trainer_and_the_cli_check_seeds_against_the_same_bound(capsys):
    """MAX_SEED = 2**53 - 1 = JavaScript's Number.MAX_SAFE_INTEGER: the largest seed a browser's number input keeps
    exactly (2**53 + 1 would read back as 2**53). A link, TrainConfig and `python -m core.sample` all refuse one more."""
    from core import sample as sample_cli
    from core.training.config import TrainConfig

    assert float(MAX_SEED) == MAX_SEED and float(MAX_SEED + 2) != MAX_SEED + 2  # exact in a double, the next odd one is not
    assert TrainConfig(seed=MAX_SEED).seed == MAX_SEED
    message = "expected an integer in 0..9007199254740991"
    with pytest.raises(ValueError, match=message):
        TrainConfig(seed=MAX_SEED + 1)
    with pytest.raises(ValueError, match=message):
        Setting("s", 0, "int", 0, MAX_SEED).parse([str(MAX_SEED + 1)])
    with pytest.raises(SystemExit):
        sample_cli.main(["--checkpoint", "missing.safetensors", "--seed", str(MAX_SEED + 1)])
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------- scrubbed timesteps travel in links
def denoise_with(monkeypatch, checkpoint_dir, query: dict) -> AppTest:
    return page_with(monkeypatch, checkpoint_dir, "pages/denoise.py", query)


def test_the_scrubbed_timestep_travels_in_the_link(monkeypatch, checkpoint_dir):
    """Scrub Denoise to a t, take the URL the page wrote, open it in a fresh session: the same t is shown."""
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py")
    steps = at.select_slider(key="denoise_t").options
    target = int(steps[len(steps) // 2])
    at.select_slider(key="denoise_t").set_value(target).run()
    assert not at.exception
    url = url_of(at)
    assert url["denoise_t"] == str(target) and f"denoise_t={target}" in the_link(at)
    fresh = denoise_with(monkeypatch, checkpoint_dir, url)
    assert fresh.select_slider(key="denoise_t").value == target
    assert not [w for w in fresh.warning if "Link setting ignored" in w.value]


def test_a_link_timestep_off_the_grid_moves_to_the_nearest_and_one_out_of_range_is_refused(monkeypatch, checkpoint_dir):
    at = denoise_with(monkeypatch, checkpoint_dir, {"denoise_n_t": "5"})
    grid = [int(step) for step in at.select_slider(key="denoise_t").options]
    between = grid[1] + 1  # not on the grid: the nearest grid step is grid[1]
    assert between not in grid and between - grid[1] < grid[2] - between
    at = denoise_with(monkeypatch, checkpoint_dir, {"denoise_n_t": "5", "denoise_t": str(between)})
    assert at.select_slider(key="denoise_t").value == grid[1]
    at = denoise_with(monkeypatch, checkpoint_dir, {"denoise_t": "100000"})
    (notice,) = [w.value for w in at.warning if "Link setting ignored" in w.value]
    assert "denoise_t=100000" in notice.replace("\\", "") and "\n" not in notice
    assert at.select_slider(key="denoise_t").value == 1  # the default: the first frame


def test_the_sample_trajectory_step_travels_in_the_link(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/sample.py")
    scrubber = at.select_slider(key="sample_trajectory_t")
    assert "sample_trajectory_t" not in url_of(at)  # the first frame is the default: left out of the URL
    target = scrubber.options[len(scrubber.options) // 2]
    scrubber.set_value(int(target)).run()
    url = url_of(at)
    assert url["sample_trajectory_t"] == str(target)
    fresh = page_with(monkeypatch, checkpoint_dir, "pages/sample.py", url)
    assert fresh.select_slider(key="sample_trajectory_t").value == int(target)


@pytest.mark.parametrize("raw, accepted", [(str(MAX_SEED), True), (str(MAX_SEED + 1), False), ("-1", False)])
def test_a_link_seed_is_checked_against_max_seed(monkeypatch, checkpoint_dir, raw, accepted):
    at = page_with(monkeypatch, checkpoint_dir, "pages/sample.py", {"sample_seed": raw})
    notices = [w.value for w in at.warning if "Link setting ignored" in w.value]
    assert at.number_input(key="sample_seed").value == (int(raw) if accepted else 0)
    assert len(notices) == (0 if accepted else 1) and all("\n" not in n for n in notices)
