"""Plotly figure builders shared by the pages. Layout only: every number shown is computed in core.

Pictures are uint8 arrays [H, W] (grey) or [H, W, 3] (RGB), embedded as PNG data URIs so a figure with a
hundred frames stays small. Scrubbers are one figure with animation frames and a slider: moving the slider
swaps pictures (and the marker on the loss curves) in the browser, without a round trip to the server. A page's
keyboard scrubber (ui/settings.py Setting.scrub) drives the same figure: its spec is built once (`spec_of`), a
page run draws it at the chosen frame (`at_frame`) and a scrub step only moves it there in the browser
(`scrubbed_chart`), so a step builds, sends and redraws no figure.
"""

from __future__ import annotations

import base64
import re
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.data.images import png_bytes

IMAGE_ROW_HEIGHT = 190  # pixels per row of pictures
CURVE_ROW_HEIGHT = 280
ROW_GAP = 50  # pixels between rows (room for the subplot titles)
# Okabe & Ito's colour-blind-safe palette (blue, vermillion, bluish green, reddish purple, orange, sky blue):
# every paired colour in the app comes from it, so no pair is red/green. NEUTRAL (data in the background,
# reference lines) is a mid grey that reads on the light and the dark theme alike.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
COLORS = OKABE_ITO
NEUTRAL = "#999999"
STRONG = "#7f7f7f"  # a marker outline/reference that must stand out from NEUTRAL on both themes


class Panel(NamedTuple):
    """One picture cell: `pictures` is [K, H, W(, 3)] (one per frame) if animated, else one picture."""

    title: str
    pictures: np.ndarray
    animated: bool = True


class Layer(NamedTuple):
    """One scatter/line layer of a point panel: x, y are [K, M] (one row per frame) or [M] (static)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    mode: str = "markers"
    color: str | None = None
    size: float = 4
    opacity: float = 0.7

    @property
    def animated(self) -> bool:
        return np.ndim(self.x) == 2


class PointPanel(NamedTuple):
    title: str
    layers: list
    axis_range: tuple | None = None  # (low, high) for both axes, so frames don't rescale the view


def honest_axes(fig: go.Figure) -> go.Figure:
    """Scientific notation, never SI prefixes ("1e-4" or 10⁻⁴, not "100µ"), and a label at every decade on
    log axes (not "5, 2" with the decade left out)."""
    fig.update_xaxes(exponentformat="power", showexponent="all")
    fig.update_yaxes(exponentformat="power", showexponent="all")
    fig.for_each_xaxis(lambda axis: axis.update(dtick=1) if axis.type == "log" else None)
    fig.for_each_yaxis(lambda axis: axis.update(dtick=1) if axis.type == "log" else None)
    return fig


# Math inside a chart. Streamlit's Plotly has no MathJax, so "$x_{t-1}$" would print as its source. Plotly does
# render a small HTML subset in every text (titles, axis titles, legend names, subplot titles): `typeset` turns
# the TeX-style sub/superscripts the pages write ("x_t", "ᾱ_{t−1}", "L_simple", "σ^2") into <sub>/<sup>, so a
# chart shows real subscripts instead of underscores; the text around a chart uses Streamlit's LaTeX.
_LETTER = "A-Za-z\u0370-\u03ff\u1f00-\u1fff"  # Latin and Greek (ᾱ is in Greek Extended)
# One letter (with any combining accents: μ̃, x̂) that does not continue a word, then _ or ^, then {…} or a run of
# letters/digits: "x_t", "ε_θ", "L_simple", "ᾱ_{t−1}", "σ^2"; file names such as "mnist_eps" are left alone.
_SCRIPT = re.compile(f"(?<![{_LETTER}0-9])([{_LETTER}][\u0300-\u036f]*)([_^])(?:\\{{([^{{}}]*)\\}}|([0-9{_LETTER}]+))")
_TAGS = {"_": "sub", "^": "sup"}


def typeset(text):
    """Plotly's HTML for TeX-style scripts: "x_{t−1}" -> "x<sub>t−1</sub>", "σ^2" -> "σ<sup>2</sup>".
    Anything else (None, numbers, text without scripts, "mnist_eps") comes back unchanged."""
    if not isinstance(text, str) or ("_" not in text and "^" not in text):
        return text

    def tag(match):
        name = _TAGS[match.group(2)]
        script = match.group(3) if match.group(3) is not None else match.group(4)
        return f"{match.group(1)}<{name}>{script}</{name}>"

    return _SCRIPT.sub(tag, text)


def _typeset_title(thing) -> None:
    if thing.title is not None and thing.title.text:
        thing.title.text = typeset(thing.title.text)


def typeset_figure(fig: go.Figure) -> go.Figure:
    """`typeset` on every visible text of a figure: its title, axis and legend titles, subplot titles
    (annotations), colour-bar titles and trace names, in the animation frames too. Changes `fig` in place."""
    _typeset_title(fig.layout)
    if fig.layout.legend is not None:
        _typeset_title(fig.layout.legend)
    fig.for_each_xaxis(_typeset_title)
    fig.for_each_yaxis(_typeset_title)
    fig.for_each_annotation(lambda note: note.update(text=typeset(note.text)) if note.text else None)
    traces = list(fig.data) + [trace for frame in fig.frames for trace in frame.data]
    for trace in traces:
        if getattr(trace, "name", None):
            trace.name = typeset(trace.name)
        colorbar = getattr(trace, "colorbar", None)
        if colorbar is not None and colorbar.title is not None and colorbar.title.text:
            colorbar.title.text = typeset(colorbar.title.text)
    return fig


def prepared(fig: go.Figure) -> go.Figure:
    """`fig` typeset with honest axes once, and marked so that chart() does not do it again (a figure drawn by many
    sessions, such as the live training panel's shared view, is then never changed while another draws it)."""
    fig = honest_axes(typeset_figure(fig))
    fig._rdl_prepared = True
    return fig


class FigureSpec(go.Figure):
    """A prepared figure as its plain spec (the dict of `spec_of`), drawn by chart() as it is.

    st.plotly_chart turns whatever it is given into a spec: a plotly figure through its to_dict(), a dict by building
    (validating) a whole go.Figure from it again (plotly.tools.return_figure_from_figure_or_data). A scrubber of a
    hundred frames holds thousands of plotly objects, so either way costs more than a scrub step may
    (bench/scrub_step.py). This figure is only its spec: to_dict() returns it, nothing is validated or copied again.
    It has no plotly objects to edit (fig.layout and the like do not exist): build a go.Figure, and `spec_of` it.
    The spec may be shared by every session (st.cache_resource): read it, never change it."""

    _rdl_prepared = True  # chart() draws it as it is

    def __init__(self, spec: dict):  # go.Figure.__init__ is skipped on purpose: it would validate the spec again
        if not isinstance(spec, dict) or not isinstance(spec.get("data"), list) or not isinstance(spec.get("layout"), dict):
            raise ValueError("a FigureSpec needs a figure's spec: a dict with a 'data' list and a 'layout' dict")
        self._spec = spec

    def to_dict(self) -> dict:
        return self._spec

    def to_plotly_json(self) -> dict:
        return self._spec

    def __repr__(self) -> str:
        return f"FigureSpec({len(self._spec['data'])} traces, {len(self._spec.get('frames') or [])} frames)"


def spec_of(fig: go.Figure) -> dict:
    """The spec of `fig` prepared (typeset, honest axes; see `prepared`): what the browser gets, as plain dicts and
    lists. Build it once per figure (a scrubber's spec serves every frame through `at_frame`)."""
    return (fig if getattr(fig, "_rdl_prepared", False) else prepared(fig)).to_dict()


def _merged(base: dict, update: dict) -> dict:
    """`base` with `update` laid over it, nested dicts merged (as Plotly.animate lays a frame's traces over the
    figure's); new dicts along the changed paths only, `base` is left as it is."""
    out = dict(base)
    for name, value in update.items():
        out[name] = _merged(out[name], value) if isinstance(value, dict) and isinstance(out.get(name), dict) else value
    return out


def at_frame(spec: dict, active: int) -> FigureSpec:
    """A scrubber's spec (spec_of a figure with animation frames and a slider) showing frame `active`: the slider
    set to it and its animated traces laid over with that frame's traces, as the browser shows the figure after its
    own slider moved there. The same figure as building the scrubber with that `active` frame, at the cost of a few
    dict copies; `spec` itself is never changed (it may be shared by every session)."""
    frames = spec.get("frames") or []
    if not frames:
        raise ValueError("at_frame needs a figure with animation frames")
    if isinstance(active, bool) or not isinstance(active, (int, np.integer)) or not 0 <= active < len(frames):
        raise ValueError(f"active frame must be an integer in 0..{len(frames) - 1}, got {active!r}")
    frame = frames[int(active)]
    data = list(spec["data"])
    for index, trace in zip(frame.get("traces", range(len(frame["data"]))), frame["data"]):
        data[index] = _merged(data[index], trace)
    layout = dict(spec["layout"])
    sliders = list(layout.get("sliders") or [])
    if sliders:
        sliders[0] = {**sliders[0], "active": int(active)}
        layout["sliders"] = sliders
    return FigureSpec({**spec, "data": data, "layout": layout})


# A scrub step moves the figure in the browser. st.plotly_chart names a chart by a hash of its spec, so a figure sent
# with another frame active is a new chart: the browser throws the old one away and draws the new one from scratch,
# every frame included (0.4 to 1 s of a browser's CPU for a Denoise strip of 100 frames). A scrub step (a rerun of the
# scrubber's fragment) therefore sends the figure exactly as the fragment's first run drew it, which the browser
# keeps as it is, and this component asks the browser's Plotly to show the new frame, as the figure's own slider does
# (Plotly.animate, which moves that slider too). The figure's JavaScript name is Streamlit's element key class.
_SHOW_FRAME_JS = """
export default function ({ data }) {
  const animate = { mode: "immediate", frame: { duration: 0, redraw: data.redraw }, transition: { duration: 0 } };
  let tries = 0;
  const show = () => {
    const plot = document.querySelector(`.st-key-${data.chart} .js-plotly-plot`);
    const slider = plot && plot._fullLayout && (plot._fullLayout.sliders || [])[0];
    if (!slider || !window.Plotly) {  // the figure is not drawn yet (it arrives with the same run)
      if (tries++ < 100) setTimeout(show, 30);
      return;
    }
    if (slider.active !== data.frame) window.Plotly.animate(plot, [String(data.frame)], animate);
  };
  show();
}
"""
FRAME_KEY_PREFIX = "rdl_frame_"  # the show-frame components' keys (ui/layout.py hides their empty boxes)
_show_frame = None  # the component, registered once per process


def _frame_component():
    global _show_frame
    if _show_frame is None:
        import streamlit as st

        _show_frame = st.components.v2.component("rdl_show_frame", js=_SHOW_FRAME_JS)
    return _show_frame


def needs_redraw(frame_trace_types) -> bool:
    """Whether showing an animation frame whose traces have these types needs Plotly's full redraw of the figure.
    Plotly moves SVG scatter traces (points, lines, their colours) to a frame in place, without one, and leaves every
    other trace as it is (a WebGL layer of data points is not drawn again); pictures and the like change only by a
    redraw."""
    return not all(kind == "scatter" for kind in frame_trace_types)


def frames_need_redraw(fig: go.Figure) -> bool:
    """needs_redraw for the animation frames of a figure being built (its slider and play button ask for it)."""
    return needs_redraw(trace.type for frame in fig.frames for trace in frame.data)


def _fragment_rerun() -> bool:
    """Whether this script run is a rerun of fragments only (a scrub step), not a run of the whole page."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return bool(ctx is not None and getattr(ctx, "fragment_ids_this_run", None))


def scrubbed_chart(spec: dict, shown: int, key: str) -> None:
    """A scrubber's figure (a spec_of a figure with frames, see at_frame) showing frame `shown`; call it in the
    scrubber's st.fragment. A run of the whole page draws the figure at `shown`; a scrub step sends the figure as
    that run drew it (unchanged, so the browser keeps it) and moves it to `shown` in the browser (_SHOW_FRAME_JS)."""
    import streamlit as st

    frames = len(spec.get("frames") or [])
    drawn_key = f"_rdl_drawn_frame_{key}"  # session_state: the frame the figure was drawn with by the last page run
    drawn = st.session_state.get(drawn_key)
    if not _fragment_rerun() or not isinstance(drawn, int) or not 0 <= drawn < frames:
        drawn = int(shown)
    st.session_state[drawn_key] = drawn
    chart(at_frame(spec, drawn), key=key)
    redraw = needs_redraw(trace.get("type", "scatter") for frame in spec["frames"] for trace in frame["data"])
    _frame_component()(data={"chart": key, "frame": int(shown), "redraw": redraw}, key=f"{FRAME_KEY_PREFIX}{key}")


# The chart's own camera button ("Download plot as png", in the browser: no kaleido on the server) saves the figure at
# 3× its size on screen, so a chart ≥ 400 px wide gives a PNG ≥ 1,200 px wide for a slide (issue 18.6).
CHART_CONFIG = {"toImageButtonOptions": {"format": "png", "scale": 3}, "displaylogo": False}


def chart(fig: go.Figure, key: str, where=None, **events):
    """Show a figure the way every chart of the app is shown: scripts typeset, honest axes (a `prepared` figure or a
    FigureSpec as it is). `where` is a Streamlit container or column (default: the page); `events` are
    st.plotly_chart's selection options (on_select, selection_mode) for a figure a student draws on, whose selection
    event is returned."""
    import streamlit as st  # only here: the builders above stay usable without Streamlit

    return (where or st).plotly_chart(fig if getattr(fig, "_rdl_prepared", False) else prepared(fig), key=key,
                                      config=CHART_CONFIG, **events)


def side_by_side(pictures: list, gap: int = 4) -> np.ndarray:
    """uint8 pictures of equal height next to each other on white (one PNG of a row of runs)."""
    if not pictures:
        raise ValueError("side_by_side needs at least one picture")
    rgb = [np.repeat(p[..., None], 3, axis=2) if p.ndim == 2 else p for p in pictures]
    height = max(p.shape[0] for p in rgb)
    width = sum(p.shape[1] for p in rgb) + gap * (len(rgb) - 1)
    out = np.full((height, width, 3), 255, dtype=np.uint8)
    x = 0
    for picture in rgb:
        out[: picture.shape[0], x: x + picture.shape[1]] = picture
        x += picture.shape[1] + gap
    return out


def png_source(picture: np.ndarray) -> str:
    """A uint8 picture as a PNG data URI (the `source` of a go.Image)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(picture)).decode("ascii")


def _image_trace(picture: np.ndarray, name: str) -> go.Image:
    # zsmooth=False: the browser draws pixels as blocks, so 28x28 digits stay crisp when enlarged.
    return go.Image(source=png_source(picture), name=name, zsmooth=False, hoverinfo="skip")


def _layer_trace(layer: Layer, frame: int, show_legend: bool | None) -> go.Scatter:
    x = layer.x[frame] if layer.animated else layer.x
    y = layer.y[frame] if layer.animated else layer.y
    style = dict(marker=dict(color=layer.color, size=layer.size)) if layer.mode == "markers" else \
        dict(line=dict(color=layer.color, width=1.5))
    return go.Scatter(x=np.asarray(x), y=np.asarray(y), mode=layer.mode, name=layer.name, opacity=layer.opacity,
                      showlegend=show_legend, legendgroup=layer.name, hoverinfo="skip", **style)


def _curve_traces(curves: dict, curve_x, frame: int) -> tuple[list, list]:
    """(static line traces, the marker traces at frame `frame`) for the loss curves row."""
    lines, markers = [], []
    for i, (name, y) in enumerate(curves.items()):
        color = COLORS[i % len(COLORS)]
        lines.append(go.Scatter(x=np.asarray(curve_x), y=np.asarray(y), mode="lines", name=name, line=dict(color=color)))
        markers.append(go.Scatter(x=[curve_x[frame]], y=[y[frame]], mode="markers", showlegend=False, name=name,
                                  marker=dict(color=color, size=11, line=dict(color=STRONG, width=1))))
    return lines, markers


def animation_controls(frame_labels, active: int, prefix: str, redraw: bool = True) -> tuple[dict, dict]:
    """The slider and the play/pause buttons that step through the frames named str(i); `redraw` as needs_redraw
    says for the frames' traces."""
    animate = {"mode": "immediate", "frame": {"duration": 0, "redraw": redraw}, "transition": {"duration": 0}}
    steps = [{"label": str(label), "method": "animate", "args": [[str(i)], animate]} for i, label in enumerate(frame_labels)]
    slider = {"active": active, "steps": steps, "pad": {"t": 40}, "len": 0.9, "x": 0.1,
              "currentvalue": {"prefix": prefix, "xanchor": "right", "font": {"size": 14}}}
    play = {"mode": "immediate", "fromcurrent": True, "frame": {"duration": 120, "redraw": redraw},
            "transition": {"duration": 0}}
    buttons = {"type": "buttons", "direction": "left", "x": 0.0, "y": 0.0, "xanchor": "left", "yanchor": "top",
               "pad": {"t": 45}, "showactive": False,
               "buttons": [{"label": "▶", "method": "animate", "args": [None, play]},
                           {"label": "❚❚", "method": "animate", "args": [[None], {"mode": "immediate", "frame": {"duration": 0}}]}]}
    return slider, buttons


def _check_frames(frame_labels, curves, curve_x):
    if len(frame_labels) == 0:
        raise ValueError("frame_labels must name at least one frame")
    if curves:
        if curve_x is None or len(curve_x) != len(frame_labels):
            raise ValueError("curve_x must give one x value per frame")
        for name, y in curves.items():
            if len(y) != len(frame_labels):
                raise ValueError(f"curve {name!r} has {len(y)} values, expected one per frame ({len(frame_labels)})")


def _scrubber(cells: list, frame_labels, frame_traces, curves, curve_x, curve_title, log_y, active, prefix,
              cell_height, legend) -> go.Figure:
    """Shared skeleton: `cells` is a list of rows of (title, first-frame traces, axis setup); frame_traces(k)
    returns the animated traces of frame k in the order of `animated_indices`."""
    n_cols = max(len(row) for row in cells)
    n_rows = len(cells) + (1 if curves else 0)
    specs = [[{} if c < len(row) else None for c in range(n_cols)] for row in cells]
    titles = [cell[0] for row in cells for cell in row]
    heights = [cell_height] * len(cells)
    if curves:
        specs.append([{"colspan": n_cols}] + [None] * (n_cols - 1))
        titles.append("")  # the legend sits where a title would; curve_title goes on the y axis
        heights.append(CURVE_ROW_HEIGHT)
    gap = ROW_GAP / (sum(heights) + ROW_GAP * (n_rows - 1))  # the same gap in pixels, whatever the row count
    fig = make_subplots(rows=n_rows, cols=n_cols, specs=specs, subplot_titles=titles,
                        row_heights=heights, vertical_spacing=gap, horizontal_spacing=0.03)
    animated_indices = []
    for r, row in enumerate(cells, start=1):
        for c, (_, traces, setup) in enumerate(row, start=1):
            for trace, animated in traces:
                fig.add_trace(trace, row=r, col=c)
                if animated:
                    animated_indices.append(len(fig.data) - 1)
            setup(fig, r, c)
    if curves:
        lines, markers = _curve_traces(curves, curve_x, active)
        for trace in lines:
            fig.add_trace(trace, row=n_rows, col=1)
        for trace in markers:
            fig.add_trace(trace, row=n_rows, col=1)
            animated_indices.append(len(fig.data) - 1)
        fig.update_xaxes(title_text="t (paper's step)", row=n_rows, col=1)
        fig.update_yaxes(type="log" if log_y else "linear", title_text=curve_title, row=n_rows, col=1)
        legend_y = fig.get_subplot(n_rows, 1).yaxis.domain[1]  # legend just above the curves, right-aligned
        fig.update_layout(legend=dict(orientation="h", x=1.0, xanchor="right", y=legend_y, yanchor="bottom"))

    def all_animated(k):
        traces = frame_traces(k)
        if curves:
            traces += _curve_traces(curves, curve_x, k)[1]
        return traces

    fig.frames = [go.Frame(name=str(k), data=all_animated(k), traces=animated_indices) for k in range(len(frame_labels))]
    slider, buttons = animation_controls(frame_labels, active, prefix, frames_need_redraw(fig))
    fig.update_layout(sliders=[slider], updatemenus=[buttons], height=sum(heights) + ROW_GAP * (n_rows - 1) + 170,
                      margin=dict(l=10, r=10, t=40, b=10), showlegend=legend or bool(curves))
    return honest_axes(fig)


def _picture_axes(fig, r, c, height, width):
    # no ticks or grid, but a thin frame, so an all-white picture is still visible as a picture
    frame = dict(showticklabels=False, ticks="", showgrid=False, zeroline=False, showline=True, mirror=True,
                 linecolor=NEUTRAL, constrain="domain", row=r, col=c)
    fig.update_xaxes(range=[-0.5, width - 0.5], **frame)
    fig.update_yaxes(range=[height - 0.5, -0.5], scaleanchor=_axis_name(fig, r, c), **frame)


def _axis_name(fig, r, c) -> str:
    """The x axis id ("x", "x2", ...) of subplot (r, c), for scaleanchor."""
    return fig.get_subplot(r, c).xaxis.plotly_name.replace("axis", "")


def image_scrubber(rows: list, frame_labels, curves: dict | None = None, curve_x=None,
                   curve_title: str = "", log_y: bool = True, active: int = 0, prefix: str = "t = ") -> go.Figure:
    """A grid of pictures (rows of Panels) that change together with a slider over frames.

    frame_labels: one label per frame (shown on the slider). curves: name -> [K] values drawn under the
    pictures against curve_x [K], with a marker that follows the slider.
    """
    _check_frames(frame_labels, curves, curve_x)
    K = len(frame_labels)
    for row in rows:
        for panel in row:
            if panel.animated and len(panel.pictures) != K:
                raise ValueError(f"panel {panel.title!r} has {len(panel.pictures)} pictures, expected one per frame ({K})")

    def first(panel):
        return panel.pictures[active] if panel.animated else panel.pictures

    def axes_for(panel):
        shape = first(panel).shape[:2]
        return lambda fig, r, c: _picture_axes(fig, r, c, *shape)

    cells = [[(p.title, [(_image_trace(first(p), p.title), p.animated)], axes_for(p)) for p in row] for row in rows]

    def frame_traces(k):
        return [_image_trace(p.pictures[k], p.title) for row in rows for p in row if p.animated]

    return _scrubber(cells, frame_labels, frame_traces, curves, curve_x, curve_title, log_y, active, prefix,
                     IMAGE_ROW_HEIGHT, legend=False)


def points_scrubber(panels: list, frame_labels, curves: dict | None = None, curve_x=None,
                    curve_title: str = "", log_y: bool = True, active: int = 0, prefix: str = "t = ") -> go.Figure:
    """Side-by-side 2-D panels (PointPanels) whose animated layers change with a slider over frames."""
    _check_frames(frame_labels, curves, curve_x)
    seen = set()

    def traces_of(panel, k, only_animated):
        out = []
        for layer in panel.layers:
            if only_animated and not layer.animated:
                continue
            # a frame's trace leaves showlegend alone: laid over the figure's (Plotly.animate, at_frame) it keeps the
            # legend entry of the first frame's trace
            out.append((_layer_trace(layer, k, None if only_animated else layer.name not in seen), layer.animated))
            seen.add(layer.name)
        return out

    def setup(panel):
        def apply(fig, r, c):
            fig.update_xaxes(range=panel.axis_range, row=r, col=c)
            fig.update_yaxes(range=panel.axis_range, scaleanchor=_axis_name(fig, r, c), row=r, col=c)
        return apply

    cells = [[(p.title, traces_of(p, active, False), setup(p)) for p in panels]]

    def frame_traces(k):
        return [trace for p in panels for trace, _ in traces_of(p, k, True)]

    return _scrubber(cells, frame_labels, frame_traces, curves, curve_x, curve_title, log_y, active, prefix,
                     420, legend=True)


def point_panels(panels: list, height: int = 420) -> go.Figure:
    """Static side-by-side 2-D panels (PointPanels whose layers are all static)."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p.title for p in panels], horizontal_spacing=0.05)
    seen = set()
    for c, panel in enumerate(panels, start=1):
        for layer in panel.layers:
            fig.add_trace(_layer_trace(layer, 0, layer.name not in seen), row=1, col=c)
            seen.add(layer.name)
        fig.update_xaxes(range=panel.axis_range, row=1, col=c)
        fig.update_yaxes(range=panel.axis_range, scaleanchor=_axis_name(fig, 1, c), row=1, col=c)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return honest_axes(fig)


def picture_row(pictures: dict, height: int = 260) -> go.Figure:
    """Pictures (title -> uint8 picture) side by side, e.g. a snapshot strip or runs to compare."""
    if not pictures:
        raise ValueError("pictures must hold at least one picture")
    fig = make_subplots(rows=1, cols=len(pictures), subplot_titles=list(pictures), horizontal_spacing=0.02)
    for c, (title, picture) in enumerate(pictures.items(), start=1):
        fig.add_trace(_image_trace(picture, title), row=1, col=c)
        _picture_axes(fig, 1, c, *picture.shape[:2])
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def loss_curves(x, curves: dict, marker_x=None, log_y: bool = True, title: str = "",
                x_title: str = "t (paper's step)", y_title: str = "MSE") -> go.Figure:
    """Lines name -> y against x, optionally a vertical marker at marker_x."""
    fig = go.Figure()
    for i, (name, y) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=np.asarray(x), y=np.asarray(y), mode="lines", name=name,
                                 line=dict(color=COLORS[i % len(COLORS)])))
    if marker_x is not None:
        fig.add_vline(x=marker_x, line_dash="dot", line_color="grey")
    fig.update_layout(title=title, height=CURVE_ROW_HEIGHT + 60, margin=dict(l=10, r=10, t=50, b=10),
                      xaxis_title=x_title, yaxis_title=y_title, yaxis_type="log" if log_y else "linear",
                      legend=dict(orientation="h", y=-0.25))
    return honest_axes(fig)
