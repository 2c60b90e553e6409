"""Figures and pictures shared by every session of the server: made once per content, then only sent per session.

A class opening the Sample page together asks for the very same figures (the default run's samples, its snapshot
strip) and pictures (the trajectory's grids): building a plotly figure (make_subplots, PNG-encoding the pictures,
typesetting, honest axes) costs the one interpreter lock of the server far more than sending it. `shared_figure(key,
build)` builds and prepares (ui.figures.prepared) a figure once for the whole server, `shared_value(key, compute)`
any other read-only value, under a key that names everything it depends on (the result cache's key of the run it
draws, ui/runs.py), in a small LRU with single flight (runs.ResultCache: sessions asking together wait for the first
instead of building it again).

A shared figure is never changed after it is built: chart() leaves a prepared figure as it is, and st.plotly_chart
copies it (Figure.to_dict) before serialising it for one browser, so sessions drawing it at once cannot disturb
each other.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import plotly.graph_objects as go
import streamlit as st

from ui import figures, runs

ENTRIES = 32  # figures and pictures kept by the whole server (a 16-digit grid is ~30 kB of PNG)


@st.cache_resource(show_spinner=False)
def shared_cache() -> runs.ResultCache:
    """The server's LRU of shared figures and pictures (one per process)."""
    return runs.ResultCache(ENTRIES)


def shared_value(key: Hashable, compute: Callable[[], object]):
    """compute(), done once per `key` for the whole server. `key` must name everything the value depends on (two
    values under one key are taken to be the same), and the value must not be changed by whoever gets it."""
    return shared_cache().get_or_compute(key, lambda progress: compute())


def shared_figure(key: Hashable, build: Callable[[], go.Figure]) -> go.Figure:
    """The prepared figure `build()` makes (ui.figures.prepared), built once per `key` for the whole server."""
    return shared_value(("figure", key), lambda: figures.prepared(build()))
