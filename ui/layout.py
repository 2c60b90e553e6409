"""The projector layout (CSS in this one place) and the title row every page shares (a timestep scrubber is
ui/settings.py's Setting.scrub).

At 1280×720 (a common projector) Streamlit's default 300 px sidebar, 6 rem of top padding and large titles
leave about 880×620 px for content; the rules below give back ~150 px of height and ~60 px of width, so a
page's primary button and its first result fit above the fold (checked on every page by
tests/browser/test_look.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import streamlit as st

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

    from ui.settings import PageSettings

R = TypeVar("R")

CSS = """
<style>
/* less empty space above the page content: a lower header (it holds only the ⋮ menu; Streamlit's is 3.75rem) and the
   page title starting just below it, not under it (its opaque background hid the title's top at 1280×720) */
header[data-testid="stHeader"] { height: 2.4rem !important; min-height: 2.4rem !important; }
.stMainBlockContainer, .block-container { padding-top: 2.7rem !important; padding-bottom: 2rem !important; }
/* a narrower sidebar: the navigation and the model picker fit in 240 px */
section[data-testid="stSidebar"] { width: 240px !important; min-width: 240px !important; }
/* page titles and section headers one size smaller */
h1 { font-size: 1.9rem !important; padding-top: 0 !important; padding-bottom: 0.3rem !important; }
h2 { font-size: 1.45rem !important; padding-top: 0.6rem !important; }
h3 { font-size: 1.15rem !important; }
/* nothing cut with "…" on a projector (issue 18.4): widget labels, metric labels and values, the chosen value of a
   select and the tags of a multiselect wrap onto a second line instead; a long number breaks anywhere */
[data-testid="stWidgetLabel"] .stMarkdownEllipsis, [data-testid="stMetricLabel"] .stMarkdownEllipsis,
[data-testid="stMetricValue"] .stMarkdownEllipsis, [data-testid="stMetricValue"], [data-testid="stMetricDelta"] div,
div[data-baseweb="select"] div, span[data-baseweb="tag"] span {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important; overflow-wrap: anywhere;
}
div[data-baseweb="select"] > div, span[data-baseweb="tag"] { height: auto !important; max-width: none !important; }
[data-testid="stMetricValue"] { font-size: 1.8rem !important; line-height: 1.2 !important; }
/* captions (st.caption, the sidebar's "Device: …") and disabled labels at 4.5:1 or more on the page and on the
   sidebar's background, in both themes (WCAG 2 AA, issue 18.9): the text colour at 70 % opacity instead of Streamlit's
   60 % (about 6:1 on white, 5.6:1 on the light sidebar); opacity, because axe-core does not read color-mix() */
[data-testid="stCaptionContainer"], [data-testid="stWidgetLabel"][disabled] { color: inherit !important; opacity: 0.7; }
[data-testid="stWidgetLabel"][disabled] * { color: inherit !important; }
/* inline code in a caption: the caption's colour (Streamlit's green code colour at 70 % opacity is 3.8:1) */
[data-testid="stCaptionContainer"] code { color: inherit !important; }
/* a slider's value is drawn in the accent colour, which on the dark background is below 4.5:1: the text colour */
[data-testid="stSliderThumbValue"], [data-testid="stSliderThumbValue"] * { color: inherit !important; }
/* the components that move a scrubber's figure to its frame (ui/figures.py scrubbed_chart) draw nothing: no gap either */
[class*="st-key-rdl_frame_"] { display: none !important; }
/* equations and table headers may overhang their box by a pixel or two (KaTeX glyphs): not a scroll region for that */
.katex-display { overflow-y: hidden !important; padding: 0.15em 0.3em !important; }
thead [data-testid="stMarkdownContainer"] { overflow: visible !important; }
/* phones (issue 18.8): the page title starts below the fixed header; one column, side by side columns stack */
@media (max-width: 640px) {
  .stMainBlockContainer, .block-container { padding-top: 4.2rem !important; padding-left: 0.8rem !important;
                                            padding-right: 0.8rem !important; }
  /* a figure of four or more panels (the Denoise strip) keeps a readable width and scrolls sideways inside its
     own box, instead of squeezing its panel titles on top of each other */
  [data-testid="stPlotlyChart"]:has(g.subplot.x4y4) { overflow-x: auto; }
  [data-testid="stPlotlyChart"]:has(g.subplot.x4y4) > .js-plotly-plot { min-width: 820px; }
}
</style>
"""


def compact() -> None:
    """Apply the projector layout (call at the top of a page's main())."""
    st.html(CSS)


def title_row(draw_title: Callable[[], R], page: PageSettings | None = None) -> tuple[R, DeltaGenerator]:
    """A page's title row: draw_title() in a wide column, and a narrow column at its right for the page's
    "Share · presets · reset" popover. With `page` the popover is drawn there now; pages whose settings depend on
    what the title found (the active model) draw it later with `with share: page.controls()`.

    Returns (what draw_title returned, the narrow column).
    """
    title, share = st.columns([3, 1], vertical_alignment="bottom")  # the popover's label uncut at 1280×720
    with title:
        result = draw_title()
    if page is not None:
        with share:
            page.controls()
    return result, share
