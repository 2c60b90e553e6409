""""Show the code": the source of the core functions behind a figure, in an expander beside it."""

from __future__ import annotations

import inspect

import streamlit as st


def source_of(function) -> str:
    """The source text of a function or class (what the expander shows)."""
    return inspect.getsource(function)


def show_code(*functions, label: str = "Show the code") -> None:
    """An expander with the source of each core function that computed the figure next to it."""
    with st.expander(label):
        for function in functions:
            st.caption(f"`{function.__module__}.{function.__qualname__}`")
            st.code(source_of(function), language="python")
