"""Math inside charts (issue 11): Streamlit's Plotly has no MathJax, so TeX-style scripts in chart texts are
typeset as Plotly's <sub>/<sup>; every chart of the app goes through ui.figures.chart, which does that."""

import re
from pathlib import Path

import plotly.graph_objects as go
import pytest
from helpers import chart, open_page, plain_scripts
from plotly.subplots import make_subplots

from ui.figures import typeset, typeset_figure

ROOT = Path(__file__).resolve().parent.parent
# What typeset must have replaced: a lone letter (with accents), then _ or ^, then a script.
LETTER = "A-Za-z\u0370-\u03ff\u1f00-\u1fff"
LEFT_OVER = re.compile(f"(?<![{LETTER}0-9])[{LETTER}][\u0300-\u036f]*[_^][{{0-9{LETTER}]")


@pytest.mark.parametrize("text, expected", [
    ("x_t", "x<sub>t</sub>"),
    ("x_{t−1}", "x<sub>t−1</sub>"),
    ("q(x_t|x_{t−1})", "q(x<sub>t</sub>|x<sub>t−1</sub>)"),
    ("‖ε − ε_θ‖² per dimension", "‖ε − ε<sub>θ</sub>‖² per dimension"),
    ("L_simple: 1 for every t", "L<sub>simple</sub>: 1 for every t"),
    ("μ̃_t vs μ_θ", "μ̃<sub>t</sub> vs μ<sub>θ</sub>"),
    ("ᾱ_{t−1}", "ᾱ<sub>t−1</sub>"),
    ("σ^2 = β_t", "σ<sup>2</sup> = β<sub>t</sub>"),
    ("e^{−t/2}", "e<sup>−t/2</sup>"),
])
def test_scripts_become_sub_and_sup(text, expected):
    assert typeset(text) == expected
    assert not LEFT_OVER.search(typeset(text))


@pytest.mark.parametrize("text", ["mnist_eps.safetensors", "run_2", "t (paper's step)", "KL [nats]", "", None, 3.5])
def test_words_with_underscores_and_plain_text_are_left_alone(text):
    assert typeset(text) == text


def test_every_text_of_a_figure_is_typeset_frames_included():
    fig = make_subplots(rows=1, cols=2, subplot_titles=("x_t", "x̂_0 at t"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="μ_θ"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=[[0, 1]], colorbar=dict(title=dict(text="ε_θ"))), row=1, col=2)
    fig.frames = [go.Frame(data=[go.Scatter(x=[0], y=[0], name="x_{t−1}")])]
    fig.update_layout(title="p_θ(x_{t−1}|x_t)", xaxis_title="x_t", yaxis2_title="σ^2", legend_title_text="β_t")
    typeset_figure(fig)
    texts = [fig.layout.title.text, fig.layout.xaxis.title.text, fig.layout.yaxis2.title.text, fig.layout.legend.title.text,
             *(note.text for note in fig.layout.annotations), fig.data[0].name, fig.data[1].colorbar.title.text,
             fig.frames[0].data[0].name]
    assert texts == ["p<sub>θ</sub>(x<sub>t−1</sub>|x<sub>t</sub>)", "x<sub>t</sub>", "σ<sup>2</sup>", "β<sub>t</sub>",
                     "x<sub>t</sub>", "x̂<sub>0</sub> at t", "μ<sub>θ</sub>", "ε<sub>θ</sub>", "x<sub>t−1</sub>"]


def test_no_page_draws_a_chart_around_ui_figures_chart():
    offenders = [str(path.relative_to(ROOT)) for folder in ("pages", "ui") for path in sorted((ROOT / folder).glob("*.py"))
                 if path.name != "figures.py" and ".plotly_chart(" in path.read_text()]
    assert offenders == []


def _visible_texts(spec: dict) -> list[str]:
    layout, texts = spec.get("layout", {}), []
    for value in layout.values():
        if isinstance(value, dict) and isinstance(value.get("title"), dict):
            texts.append(value["title"].get("text"))
    texts += [note.get("text") for note in layout.get("annotations", [])]
    texts += [trace.get("name") for trace in spec.get("data", [])]
    texts += [trace.get("name") for frame in spec.get("frames", []) for trace in frame.get("data", [])]
    return [text for text in texts if isinstance(text, str)]


@pytest.mark.parametrize("page", ["pages/reverse_step.py", "pages/posterior.py", "pages/objective.py", "pages/variances.py"])
def test_charts_on_the_pages_show_no_raw_scripts(monkeypatch, checkpoint_dir, page):
    at = open_page(monkeypatch, checkpoint_dir, page)
    specs = [chart(at, i) for i in range(len(at.get("plotly_chart")))]
    assert specs, f"{page} drew no chart"
    raw = [text for spec in specs for text in _visible_texts(spec) if LEFT_OVER.search(text)]
    assert raw == []
    assert any("<sub>" in text for spec in specs for text in _visible_texts(spec))  # the pages do write scripts


@pytest.mark.parametrize("page", ["pages/home.py", "pages/schedules.py", "pages/reverse_step.py", "pages/denoise.py",
                                  "pages/sample.py", "pages/train.py"])
def test_page_texts_write_math_in_latex(monkeypatch, checkpoint_dir, page):
    """Titles, Markdown, captions, widget labels and help, metric labels and table headers: no plain-text x_t (the
    teaching pages' own tests run the same scan)."""
    at = open_page(monkeypatch, checkpoint_dir, page)
    assert plain_scripts(at) == []
