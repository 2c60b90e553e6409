"""Page settings that persist and travel: across page switches and reloads, as links, and as named presets.

Each page declares its settings once, as a `PageSettings` of `Setting` rows (key, label, default, what is allowed,
help, which widget), and a row builds its own widget (`Setting.show`, or `Setting.scrub` for a timestep scrubber):
no page repeats a key, label, bound or default in a widget call. Every widget is keyed and created with
`persist_state="session"`, so its value survives a switch to another page and back. This module also

- writes the settings that differ from their defaults into the URL's query string at the end of every run
  (only this page's keys: a reload, or the URL handed to someone else, reproduces the page; no session id
  or anything else ever goes into a link made here),
- reads them back from the URL before the widgets are built, validated at the boundary with core.checks: a
  bad value in a link is reported on one line and replaced by its default, never a traceback,
- offers "Reset to defaults", "Link to these settings" and the page's named presets in one small popover.

The active model travels too, as the `model` query parameter: the catalogue key of a *shipped* model (the only
kind another browser can have). The sidebar calls `restore_model` before its model picker (so a link's model
is active before any page's `restore()`, whose bounds may depend on it) and `sync_model_url` after it; like
every setting, the default model is left out of URLs and links. A model trained or uploaded in this session
cannot travel: the share popover says so.

Streamlit's own `bind="query-params"` would write the URL too, but it puts selectbox *labels* (with their
Greek letters) into the URL and drops bad values silently; this keeps the URL values raw and reports errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlencode

import streamlit as st

from core.checks import check_choice, check_int, check_number
from core.rng import MAX_SEED
from ui.text import escape_markdown

PERSIST = "session"  # persist_state of every page widget
Kind = Literal["int", "float", "choice", "bool", "ints", "choices", "text"]
Widget = Literal["number_input", "slider", "select_slider", "radio", "selectbox", "checkbox", "toggle", "multiselect", "scrubber"]
# The widget a row builds when it does not name one: by its kind (an "int" with choices is a select_slider).
DEFAULT_WIDGET: dict[str, Widget] = {"int": "number_input", "float": "slider", "choice": "selectbox", "text": "selectbox",
                                     "bool": "checkbox", "ints": "multiselect", "choices": "multiselect"}
_WRITTEN = "_settings_written"  # session_state: page -> the query pairs this module last wrote for it
_NOTICES = "_settings_notices"  # session_state: page -> notices about a link's bad values, shown once
_CURRENT = "_settings_current"  # session_state: the PageSettings of the page this run draws (set by restore())
_FIRST_FRAMES = "_settings_first_frames"  # session_state: scrubber key -> the timestep of its first frame
MODEL_PARAM = "model"  # the query parameter that carries the active (shipped) model
SHIPPED_PREFIX = "shipped:"  # catalogue keys of the models in checkpoints/ (ui/catalog.py)
_MODEL_WRITTEN = "_settings_model_written"  # session_state: the `model` values last written or read
_MODEL_NOTICE = "_settings_model_notice"  # session_state: the problem with a link's model, shown once


@dataclass(frozen=True)
class Setting:
    """One URL-carried setting and the widget that shows it. `key` is the widget key and the query parameter name;
    `low`..`high` (numbers) or `choices` are both the widget's bounds and what a link may carry."""

    key: str
    default: Any
    kind: Kind
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    label: str = ""
    help: str | None = None
    widget: Widget | None = None  # None: DEFAULT_WIDGET of the kind
    step: float | None = None  # number_input / slider step
    format: str | None = None  # number_input / slider printf format
    format_func: Callable[[Any], str] | None = None  # how a choice is shown (select widgets)
    horizontal: bool = False  # radio

    @property
    def widget_kind(self) -> Widget:
        if self.widget is not None:
            return self.widget
        return "select_slider" if self.kind == "int" and self.choices else DEFAULT_WIDGET[self.kind]

    def show(self, where: Any = None, **options) -> Any:
        """Build this setting's widget in `where` (a column, a container; default the page) from the row: its label,
        bounds or choices, default, help, format. `options` are only what changes from run to run (disabled,
        on_change, label_visibility) and, for a widget whose range follows another widget of the same run, a narrower
        `low` / `high` / `choices` / `default` (what a link may carry stays the row's). Returns the widget's value."""
        row = {name: options.pop(name) for name in ("low", "high", "default", "choices") if name in options}
        if row:  # bounds that follow another widget of the same run (a t slider up to the chosen T)
            return replace(self, **row).show(where, **options)
        where = st if where is None else where
        common = {"key": self.key, "persist_state": PERSIST, "help": self.help, **options}
        if self.format_func is not None and self.widget_kind in ("select_slider", "radio", "selectbox", "multiselect"):
            common["format_func"] = self.format_func
        widget = self.widget_kind
        if widget in ("number_input", "slider"):
            numbers = {"min_value": self.low, "max_value": self.high, "value": self.default, "step": self.step}
            if self.format is not None:
                numbers["format"] = self.format
            return getattr(where, widget)(self.label, **numbers, **common)
        if widget == "select_slider":
            return where.select_slider(self.label, options=self.choices, value=self.default, **common)
        if widget == "radio":
            return where.radio(self.label, self.choices, index=self.choices.index(self.default), horizontal=self.horizontal, **common)
        if widget == "selectbox":
            return where.selectbox(self.label, self.choices, index=self.choices.index(self.default), **common)
        if widget in ("checkbox", "toggle"):
            return getattr(where, widget)(self.label, value=bool(self.default), **common)
        if widget == "multiselect":
            return where.multiselect(self.label, self.choices, default=self.default, **common)
        raise ValueError(f"{self.key}: a {widget} is built with Setting.scrub(steps), not show()")

    def scrub(self, steps: list[int], where: Any = None) -> int:
        """A timestep scrubber that travels in links (widget "scrubber", kind "int"): a keyed select-slider over
        the frames' timesteps `steps` (Tab to it, then ← → or Home/End). The setting holds the timestep itself, so a
        link opens at the same t; a value that is not one of `steps` (another grid, another number of steps) moves to
        the nearest one. A default of None means the first frame, whatever its t. Returns the index of the chosen
        frame (the figure's `active` frame)."""
        steps = [int(step) for step in steps]
        st.session_state.setdefault(_FIRST_FRAMES, {})[self.key] = steps[0]
        current = st.session_state.get(self.key, self.default)
        if current not in steps:
            target = current if isinstance(current, int) and not isinstance(current, bool) else self.default
            st.session_state[self.key] = steps[0] if target is None else min(steps, key=lambda step: (abs(step - target), step))
        if len(steps) < 2:
            return 0
        options = {"format_func": self.format_func} if self.format_func is not None else {}
        chosen = (st if where is None else where).select_slider(
            self.label, steps, key=self.key, persist_state=PERSIST,
            help=self.help or "Keyboard: focus the slider, then ← → step through t.", **options)
        return steps.index(chosen)

    def parse(self, raw: list[str]):
        """The value a link carries (query values as strings), validated; ValueError with one line if not."""
        if self.kind not in ("ints", "choices") and len(raw) != 1:
            raise ValueError(f"{self.key} is given {len(raw)} times; expected once")
        text = raw[0] if raw else ""
        if self.kind == "int":
            value = check_int(self.key, _to_int(self.key, text), self.low, self.high)
            return check_choice(self.key, value, self.choices) if self.choices else value
        if self.kind == "float":
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{self.key}={text!r} is not allowed; expected a number") from None
            number = check_number(self.key, number, self.low, self.high)
            return check_choice(self.key, number, self.choices) if self.choices else number
        if self.kind == "bool":
            return check_choice(self.key, text.lower(), ("true", "false", "1", "0")) in ("true", "1")
        if self.kind == "ints":
            values = [check_choice(self.key, _to_int(self.key, item), self.choices) for item in raw]
            return sorted(set(values))
        if self.kind == "choices":  # a multiselect of strings: kept in the order of `choices`
            chosen = {check_choice(self.key, item, self.choices) for item in raw}
            return [choice for choice in self.choices if choice in chosen]
        return check_choice(self.key, text, self.choices)  # choice / text

    def encode(self, value) -> list[str]:
        if self.kind == "bool":
            return ["true" if value else "false"]
        if self.kind == "ints":
            return [str(int(v)) for v in value]
        if self.kind == "choices":
            return [str(v) for v in value]
        if self.kind == "float":
            return [repr(float(value))]  # exact: 1e-06, 0.02
        return [str(value)]

    def same(self, a, b) -> bool:
        if self.kind in ("ints", "choices"):
            return sorted(a or []) == sorted(b or [])
        if self.kind == "float":
            return a is not None and b is not None and float(a) == float(b)
        return a == b


def _to_int(key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{key}={text!r} is not allowed; expected an integer") from None


@dataclass(frozen=True)
class Preset:
    """A named configuration a teacher can link to: `values` overrides the page defaults."""

    name: str
    values: dict
    why: str = ""


@dataclass
class PageSettings:
    """The settings of one page (in widget order), its presets, and the URL round trip."""

    page: str  # e.g. "sample": names the session-state bookkeeping, never goes into a URL
    settings: list[Setting]
    presets: list[Preset] = field(default_factory=list)
    uses_model: bool = True  # False: the page ignores the active model, so its links leave it out
    # For a page whose defaults depend on one of its settings (the Train page's recipe on the dataset):
    # values -> the defaults that apply to them. None: every Setting's own default.
    defaults_for: Callable[[dict], dict] | None = None

    def __post_init__(self):
        self.by_key = {s.key: s for s in self.settings}
        if MODEL_PARAM in self.by_key:
            raise ValueError(f"a page setting may not be called {MODEL_PARAM!r}: links use it for the active model")
        for preset in self.presets:
            for key in preset.values:
                if key not in self.by_key:
                    raise ValueError(f"preset {preset.name!r} sets unknown setting {key!r}")

    # ---- the widgets
    def show(self, key: str, where: Any = None, **options) -> Any:
        """The widget of setting `key`, built from its row (Setting.show)."""
        return self.by_key[key].show(where, **options)

    def scrub(self, key: str, steps: list[int], where: Any = None) -> int:
        """The timestep scrubber of setting `key` over the frames' timesteps (Setting.scrub): the chosen frame's index.
        Call it inside an st.fragment with the figure it drives, so a scrub step reruns only that figure; it writes
        the URL itself (the page's sync_url at the end of a full run does not run on a fragment's rerun)."""
        index = self.by_key[key].scrub(steps, where)
        self.sync_url()
        return index

    # ---- the URL boundary
    def url_pairs(self) -> dict:
        """This page's query parameters in the current URL (key -> list of strings)."""
        return {key: st.query_params.get_all(key) for key in self.by_key if key in st.query_params}

    def restore(self) -> None:
        """Before the widgets: if the URL carries settings of this page that this session did not write
        itself (a reload, a shared link, a preset link), validate them and load them into the widgets.
        Settings the link leaves out take their defaults, so the page looks the same for everyone."""
        st.session_state[_CURRENT] = self  # widget(key) finds the rows of this page
        pairs = self.url_pairs()
        written = st.session_state.setdefault(_WRITTEN, {})
        if not pairs or pairs == written.get(self.page):
            return
        values, problems = parse_pairs(self.settings, pairs)
        for key, value in {**self.defaults(values), **values}.items():
            st.session_state[key] = value
        if problems:
            st.session_state.setdefault(_NOTICES, {})[self.page] = problems
        written[self.page] = pairs

    def notices(self) -> None:
        """One line per bad value of the link this page was opened with (shown once)."""
        for problem in st.session_state.get(_NOTICES, {}).pop(self.page, []):
            st.warning(f"Link setting ignored: {escape_markdown(problem, limit=300)}; using the default.",
                       icon=":material/link_off:")

    def current(self) -> dict:
        return {s.key: st.session_state.get(s.key, s.default) for s in self.settings}

    def changed(self, values: dict | None = None) -> dict:
        """key -> encoded value for every setting that differs from its default."""
        values = self.current() if values is None else values
        defaults = self.defaults(values)
        return {s.key: s.encode(values[s.key]) for s in self.settings
                if s.key in values and values[s.key] is not None and not s.same(values[s.key], defaults[s.key])}

    def sync_url(self) -> None:
        """After the widgets: the URL carries exactly this page's changed settings (a reload restores them)."""
        pairs = self.changed()
        for key in self.by_key:
            if key in st.query_params and key not in pairs:
                del st.query_params[key]
        for key, encoded in pairs.items():
            if st.query_params.get_all(key) != encoded:
                st.query_params[key] = encoded if len(encoded) != 1 else encoded[0]
        st.session_state.setdefault(_WRITTEN, {})[self.page] = pairs

    def link(self, values: dict | None = None) -> str:
        """The page's URL with only its changed settings (relative "?..." where the server URL is unknown), and
        the active model when it is a shipped one other than the default (see shared_model)."""
        model = shared_model() if self.uses_model else None
        pairs = [(MODEL_PARAM, model)] if model else []
        query = urlencode(pairs + [(key, v) for key, encoded in self.changed(values).items() for v in encoded],
                          safe=":")  # model=shipped:mnist_x0 stays readable (":" is allowed in a query)
        base = _page_url()
        return f"{base}?{query}" if query else base or "?"

    # ---- the controls
    def reset(self) -> None:
        for key, value in self.defaults().items():
            st.session_state[key] = value

    def apply(self, preset: Preset) -> None:
        for key, value in self.preset_values(preset).items():
            st.session_state[key] = value

    def preset_values(self, preset: Preset) -> dict:
        """Every setting as the preset leaves it: its values over the defaults that apply to them."""
        return {**self.defaults(preset.values), **preset.values}

    def controls(self) -> None:
        """"Reset to defaults", the link to these settings, and the presets, in one popover."""
        # on_change="rerun": opening the popover reruns the page, so its link holds what a fragment changed since the
        # last full run (a scrubbed t; the address bar has it already)
        with st.popover("Share · presets · reset", icon=":material/share:", key=f"{self.page}_share", on_change="rerun"):
            st.button("Reset to defaults", key=f"{self.page}_reset", on_click=self.reset,
                      help="Every setting of this page back to its default.")
            carries = "this page's settings and the active model" if self.uses_model else "this page's settings"
            st.markdown(f"**Link to these settings** (copy with the icon at its right; it carries {carries} and "
                        "nothing else):")
            st.code(self.link(), language=None, wrap_lines=True)
            if self.uses_model and session_only_model():
                st.caption("This link opens with the default model: the active model was trained or uploaded in this "
                           "browser's session and exists only there.")
            if self.presets:
                st.markdown("**Presets**")
            for index, preset in enumerate(self.presets):
                st.button(preset.name, key=f"{self.page}_preset_{index}", on_click=self.apply, args=(preset,),
                          help=preset.why or None)
                st.caption(f"[link]({self.link(self.preset_values(preset))})" + (f": {preset.why}" if preset.why else ""))

    def defaults(self, values: dict | None = None) -> dict:
        """key -> default of every setting; with `values`, the defaults that apply to them (see defaults_for)."""
        first_frames = st.session_state.get(_FIRST_FRAMES, {})
        own = {s.key: first_frames.get(s.key) if s.widget == "scrubber" and s.default is None else s.default
               for s in self.settings}
        return self.defaults_for({**own, **(values or {})}) if self.defaults_for else own


def current_page() -> PageSettings:
    """The settings of the page being drawn (the last one whose restore() ran in this session)."""
    page = st.session_state.get(_CURRENT)
    if not isinstance(page, PageSettings):
        raise RuntimeError("a page must call its PageSettings.restore() before building its widgets")
    return page


def widget(key: str, where: Any = None, **options) -> Any:
    """The widget of the current page's setting `key`, built from its row (Setting.show): a page writes
    `widget("sample_seed", column)` and nothing else about the widget."""
    return current_page().show(key, where, **options)


def scrubber(key: str, steps: list[int], where: Any = None) -> int:
    """The current page's timestep scrubber `key` (PageSettings.scrub): the index of the chosen frame."""
    return current_page().scrub(key, steps, where)


def seed_setting(key: str, label: str = "Seed", help: str | None = None, **row) -> Setting:
    """A seed: an integer in 0..MAX_SEED (core/rng.py: the largest integer a browser's number input keeps exactly)."""
    return Setting(key, row.pop("default", 0), "int", 0, MAX_SEED, label=label, help=help, **row)


def parse_pairs(settings: list[Setting], pairs: dict) -> tuple[dict, list[str]]:
    """(valid values, one problem line per bad value) of query pairs key -> list of strings."""
    values, problems = {}, []
    for setting in settings:
        if setting.key in pairs:
            try:
                values[setting.key] = setting.parse(pairs[setting.key])
            except ValueError as error:
                problems.append(str(error))
    return values, problems


def _page_url() -> str:
    """The address of the page in the browser, without its query string ('' in tests without a browser)."""
    url = getattr(st.context, "url", None)
    return url.split("?", 1)[0] if url else ""


# ------------------------------------------------------------------------------------ the active model
def _active_key() -> str | None:
    return st.session_state.get("active_model_key")  # chosen in ui/sidebar.py


def shared_model() -> str | None:
    """The key a link carries for the active model: a shipped model other than the default, else None (a fresh
    session starts with the default model; a model trained or uploaded in a session cannot travel)."""
    from ui.catalog import DEFAULT_MODEL  # here: the catalogue loads torch, which the URL helpers above do not need

    key = _active_key()
    return key if isinstance(key, str) and key.startswith(SHIPPED_PREFIX) and key != DEFAULT_MODEL else None


def session_only_model() -> bool:
    """True when the active model was trained or uploaded in this session (no other browser can have it)."""
    key = _active_key()
    return isinstance(key, str) and not key.startswith(SHIPPED_PREFIX)


def restore_model(shipped) -> None:
    """Before the sidebar's model picker: a `model` in the URL that this session did not write itself selects
    that model if it is one of the `shipped` keys. Anything else (unknown, a session-only key, garbage, given
    twice) keeps the current model and is reported once by model_notice()."""
    raw = st.query_params.get_all(MODEL_PARAM)
    if not raw or raw == st.session_state.get(_MODEL_WRITTEN):
        return
    st.session_state[_MODEL_WRITTEN] = raw  # read once: a bad value warns once, not on every rerun
    try:
        st.session_state["active_model_key"] = Setting(MODEL_PARAM, None, "text", choices=tuple(shipped)).parse(raw)
    except ValueError as error:
        st.session_state[_MODEL_NOTICE] = str(error)


def model_notice() -> None:
    """One line about a link's model that could not be used (shown once, under the model picker)."""
    problem = st.session_state.pop(_MODEL_NOTICE, None)
    if problem:
        st.warning(f"Link model ignored: {escape_markdown(problem, limit=300)}; keeping the current model.",
                   icon=":material/link_off:")


def sync_model_url() -> None:
    """After the model picker: the URL carries the active model exactly when a link would (a reload keeps it)."""
    model = shared_model()
    if model is None:
        if MODEL_PARAM in st.query_params:
            del st.query_params[MODEL_PARAM]
    elif st.query_params.get_all(MODEL_PARAM) != [model]:
        st.query_params[MODEL_PARAM] = model
    st.session_state[_MODEL_WRITTEN] = [model] if model else []
