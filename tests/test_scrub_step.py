"""A timestep scrub step picks a frame of a figure built once (issue 18.7): ui.figures.spec_of / at_frame, and the
pages' scrubbers (Denoise's three, the Sample page's trajectory, the 2-D playground's trajectory) never build a figure
on a step. The figure a step shows is checked against the builder itself asked for that frame (`active`)."""

import copy

import numpy as np
import plotly.graph_objects as go
import plotly.io
import plotly.tools
import pytest
import streamlit as st
from helpers import TEST_T, chart, open_page

from ui import figures
from ui.playground_figures import trajectory_figure

K = 5


def picture_rows():
    rng = np.random.default_rng(0)
    pictures = lambda: (rng.random((K, 6, 6)) * 255).astype(np.uint8)  # noqa: E731
    return [[figures.Panel("x_t", pictures()), figures.Panel("x_0", pictures()[0], False)],
            [figures.Panel("ε̂", pictures()), figures.Panel("x̂_0", pictures())]]


def image_figure(active: int) -> go.Figure:
    steps = list(range(1, K + 1))
    return figures.image_scrubber(picture_rows(), steps, curves={"ε-MSE": np.linspace(1, 2, K), "x_0-MSE": np.arange(1, K + 1)},
                                  curve_x=steps, curve_title="MSE", active=active)


def points_figure(active: int) -> go.Figure:
    rng = np.random.default_rng(1)
    L = figures.Layer
    moving, arrows = rng.normal(size=(K, 9, 2)), rng.normal(size=(K, 4, 2))
    data = rng.normal(size=(9, 2))
    return figures.points_scrubber([
        figures.PointPanel("x_t", [L("data", data[:, 0], data[:, 1]), L("x_t", moving[..., 0], moving[..., 1]),
                                   L("arrow", arrows[..., 0], arrows[..., 1], mode="lines")], (-3, 3)),
        figures.PointPanel("x̂_0", [L("data", data[:, 0], data[:, 1]), L("x̂_0", moving[..., 1], moving[..., 0])], (-3, 3)),
    ], [str(k) for k in range(K)], curves={"MSE": np.arange(1.0, K + 1)}, curve_x=list(range(K)), active=active)


def playground_figure(active: int) -> go.Figure:
    rng = np.random.default_rng(2)
    t = [3, 2, 1, 0, -1]
    runs = {name: {"t": t, "frames": rng.normal(size=(len(t), 7, 2))} for name in ("model", "oracle")}
    return trajectory_figure(runs, rng.normal(size=(20, 2)), 4, show_paths=True, active=active)


BUILDERS = {"image": image_figure, "points": points_figure, "playground": playground_figure}


@pytest.mark.parametrize("kind", BUILDERS)
@pytest.mark.parametrize("active", range(K))
def test_a_frame_of_the_spec_is_the_figure_built_for_that_frame(kind, active):
    spec = figures.spec_of(BUILDERS[kind](0))
    shown = figures.at_frame(spec, active).to_dict()
    assert shown == figures.spec_of(BUILDERS[kind](active))
    assert shown["layout"]["sliders"][0]["active"] == active


def test_picking_a_frame_leaves_the_shared_spec_alone():
    spec = figures.spec_of(points_figure(0))
    before = copy.deepcopy(spec)
    for active in (3, 1, 4):
        plotly.io.to_json(figures.at_frame(spec, active).to_dict(), validate=False)  # what st.plotly_chart does with it
    assert spec == before


def test_a_figure_spec_reaches_plotly_chart_without_being_rebuilt():
    spec = figures.spec_of(image_figure(0))
    shown = figures.at_frame(spec, 2)
    # st.plotly_chart's first step: a plotly figure becomes its spec through to_dict(), a dict would be validated again
    assert plotly.tools.return_figure_from_figure_or_data(shown, validate_figure=True) is shown.to_dict()
    assert getattr(shown, "_rdl_prepared", False)  # chart() does not prepare it again
    with pytest.raises(ValueError, match="a 'data' list"):
        figures.FigureSpec({"layout": {}})


@pytest.mark.parametrize("active", [-1, K, 1.5, True, "2"])
def test_a_frame_outside_the_scrubber_is_refused(active):
    with pytest.raises(ValueError, match=f"integer in 0..{K - 1}"):
        figures.at_frame(figures.spec_of(image_figure(0)), active)


def test_a_figure_without_frames_is_refused():
    with pytest.raises(ValueError, match="animation frames"):
        figures.at_frame(figures.spec_of(figures.loss_curves([1, 2], {"a": [1, 2]})), 0)


@pytest.mark.parametrize("kind, redraw", [("image", True), ("points", False), ("playground", False)])
def test_only_figures_whose_frames_move_svg_points_skip_the_redraw(kind, redraw):
    """A frame of pictures needs Plotly's full redraw; a frame of SVG scatter traces only (points, lines, the loss
    curves' markers) is moved in place. The figure's own slider and play button ask for the same as the scrub step."""
    spec = figures.spec_of(BUILDERS[kind](0))
    frame_types = [trace.get("type", "scatter") for frame in spec["frames"] for trace in frame["data"]]
    assert figures.needs_redraw(frame_types) is redraw
    slider, buttons = spec["layout"]["sliders"][0], spec["layout"]["updatemenus"][0]
    assert {step["args"][1]["frame"]["redraw"] for step in slider["steps"]} == {redraw}
    assert buttons["buttons"][0]["args"][1]["frame"]["redraw"] is redraw  # ▶
    assert figures.needs_redraw(["scatter", "scattergl"]) and not figures.needs_redraw([])


# ---------------------------------------------------------------------------------------- the pages
def counting(monkeypatch, *names) -> dict:
    """Count the calls of the ui.figures builders `names` (the pages call them as figures.<name>)."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        original = getattr(figures, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(figures, name, counted)
    return calls


def shown_frame(figure: dict) -> int:
    """The frame a figure dict shows: its slider's active frame, whose traces must be the ones drawn."""
    active = figure["layout"]["sliders"][0]["active"]
    frame = figure["frames"][active]
    for index, trace in zip(frame["traces"], frame["data"]):
        drawn = figure["data"][index]
        for field in ("source", "x", "y"):
            if field in trace:
                assert drawn[field] == trace[field], f"trace {index} does not show frame {active}"
    return active


@pytest.fixture
def fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def test_denoise_scrub_steps_build_no_figure(monkeypatch, checkpoint_dir, fresh_caches):
    calls = counting(monkeypatch, "image_scrubber", "points_scrubber")
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py")
    at.toggle(key="denoise_compare_on").set_value(True).run()
    assert not at.exception
    built = dict(calls)
    assert built["image_scrubber"] == 3  # the sweep, the Bayes-optimal x̂₀, the comparison: once each
    for index, (key, t) in enumerate([("denoise_t", 17), ("denoise_bayes_t", 23), ("denoise_compare_t", 31)]):
        at.select_slider(key=key).set_value(t).run()
        assert not at.exception
        assert shown_frame(chart(at, index)) == t - 1  # every t = 1..40 is a frame (T = 40 < 100 shown)
    at.select_slider(key="denoise_t").set_value(TEST_T).run()
    assert shown_frame(chart(at, 0)) == TEST_T - 1
    assert calls == built


def test_sample_trajectory_scrub_steps_build_no_figure(monkeypatch, checkpoint_dir, fresh_caches):
    calls = counting(monkeypatch, "image_scrubber")
    at = open_page(monkeypatch, checkpoint_dir, "pages/sample.py")
    built = dict(calls)
    assert built["image_scrubber"] == 1
    index = next(i for i in range(len(at.get("plotly_chart"))) if "sliders" in chart(at, i)["layout"])
    for t in (30, 5, 0):
        at.select_slider(key="sample_trajectory_t").set_value(t).run()
        assert not at.exception
        assert shown_frame(chart(at, index)) == TEST_T - t  # frames run t = 40, 39, ..., 1, then the final x₀
    assert calls == built


def test_playground_trajectory_scrub_steps_build_no_figure(monkeypatch, tmp_path, fresh_caches):
    built = []
    original = trajectory_figure

    def counted(*args, **kwargs):
        built.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr("ui.playground_figures.trajectory_figure", counted)  # the page imports it on every run
    at = open_page(monkeypatch, tmp_path, "pages/playground_2d.py")
    first = len(built)
    figure = next(chart(at, i) for i in range(len(at.get("plotly_chart"))) if "sliders" in chart(at, i)["layout"])
    labels = [step["label"] for step in figure["layout"]["sliders"][0]["steps"]]
    for frame in (3, len(labels) - 1):
        at.select_slider(key="pg_trajectory_t").set_value(0 if labels[frame].startswith("0") else int(labels[frame])).run()
        assert not at.exception
        shown = next(chart(at, i) for i in range(len(at.get("plotly_chart"))) if "sliders" in chart(at, i)["layout"])
        assert shown_frame(shown) == frame
    assert len(built) == first
