"""Who the user is and what the server shares: the session id, the one job registry, the device label.

Pages call these helpers and `core`; nothing here does diffusion math. The model catalogue is ui/catalog.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import streamlit as st
import torch

from core.training.jobs import JobRegistry

ROOT = Path(__file__).resolve().parent.parent
SESSION_PARAM = "session"  # query parameter that lets a reloaded tab find its jobs again


def session_id() -> str:
    """A stable id for this browser session, kept in the URL so a reloaded tab keeps its jobs."""
    if "session_id" not in st.session_state:
        from_url = st.query_params.get(SESSION_PARAM)
        valid = isinstance(from_url, str) and len(from_url) == 32 and all(c in "0123456789abcdef" for c in from_url)
        st.session_state.session_id = from_url if valid else uuid.uuid4().hex
    if st.query_params.get(SESSION_PARAM) != st.session_state.session_id:
        st.query_params[SESSION_PARAM] = st.session_state.session_id
    return st.session_state.session_id


@st.cache_resource
def get_registry() -> JobRegistry:
    """One registry for the whole server process: all sessions share the devices through it. Its limits and run
    store come from environment variables (core.training.limits, core.training.store); a monitor thread starts
    queued jobs as slots free up."""
    return JobRegistry(monitor_interval=1.0)


def device_label() -> str:
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU ({torch.get_num_threads()} threads)"


