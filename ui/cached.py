"""Figures shared by every session of the server: built and prepared once per content, then only sent per session.

A class opening the Sample page together asks for the very same figures (the default run's samples, its snapshot
strip): building a plotly figure (make_subplots, PNG-encoding the pictures, typesetting, honest axes) costs the one
interpreter lock of the server far more than sending it. `shared_figure(key, build)` builds and prepares
(ui.figures.prepared) a figure once for the whole server, under a key that names everything it shows (the result
cache's key of the run it draws, ui/runs.py), in a small LRU with single flight (runs.ResultCache: sessions asking
together wait for the first instead of building it again).

A shared figure is never changed after it is built: chart() leaves a prepared figure as it is, and st.plotly_chart
copies it (Figure.to_dict) before serialising it for one browser, so sessions drawing it at once cannot disturb
each other.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import plotly.graph_objects as go
import streamlit as st

from ui import figures, runs

FIGURE_ENTRIES = 32  # figures kept by the whole server (a 16-digit grid is ~30 kB of PNG)


@st.cache_resource(show_spinner=False)
def figure_cache() -> runs.ResultCache:
    """The server's LRU of prepared figures (one per process)."""
    return runs.ResultCache(FIGURE_ENTRIES)


def shared_figure(key: Hashable, build: Callable[[], go.Figure]) -> go.Figure:
    """The prepared figure `build()` makes, built once per `key` for the whole server. `key` must name everything the
    figure shows: two figures under one key are taken to be the same figure."""
    return figure_cache().get_or_compute(key, lambda progress: figures.prepared(build()))
