"""Who the user is and what the server shares: the owner id, the one job registry, the device label.

Identity. A copied URL must never hand over anyone's jobs, so nothing about the user is in the address bar.
Each browser keeps a random secret in a first-party cookie (OWNER_COOKIE, written by a few lines of JavaScript
on the page because Streamlit has no API to set cookies); the server reads it back from the websocket handshake
(st.context.cookies) when a tab connects, so a reload or a reconnect after a restart finds the same jobs. The
job registry only ever sees owner ids derived from the secret (sha256), never the secret itself. Without the
cookie (first visit, cookies blocked, a third-party iframe that drops it) the tab gets a fresh identity.

Pages call these helpers and `core`; nothing here does diffusion math. The model catalogue is ui/catalog.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets

import streamlit as st
import torch

from core import runtime
from core.checks import check_number
from core.training.backends import JobBackend, backend_from_env

OWNER_COOKIE = "rdl_owner"
COOKIE_MAX_AGE_S = 30 * 24 * 3600  # a month: a course's worth of reloads
HEARTBEAT_TIMEOUT_ENV = "RDL_HEARTBEAT_TIMEOUT"  # seconds without a heartbeat before a tab's jobs are stopped
DEFAULT_HEARTBEAT_TIMEOUT_S = 180.0


def _valid_secret(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def owner_of(secret: str) -> str:
    """The owner id the job registry uses for a browser's secret (the secret itself never leaves this module)."""
    return hashlib.sha256(f"rdl-owner:{secret}".encode()).hexdigest()[:32]


def session_id() -> str:
    """This browser's owner id: from its cookie when it has one, else a new random identity (see the docstring).
    A `?session=` query parameter (older versions put the id in the URL) is ignored."""
    if "session_id" not in st.session_state:
        secret = st.context.cookies.get(OWNER_COOKIE)
        if not _valid_secret(secret):
            secret = secrets.token_hex(32)
        st.session_state.owner_secret = secret
        st.session_state.session_id = owner_of(secret)
    return st.session_state.session_id


def remember_browser() -> None:
    """Called by app.py on every run: writes this session's secret into the browser's cookie once, if the
    browser did not send it. SameSite=Lax keeps other sites from using it; inside a cross-site iframe served
    over https (a Hugging Face Space) the cookie is Partitioned and SameSite=None so browsers that block
    third-party cookies can still keep it for that embedding site only."""
    session_id()
    secret = st.session_state.owner_secret
    if st.context.cookies.get(OWNER_COOKIE) == secret or st.session_state.get("owner_cookie_written") == secret:
        return
    st.session_state.owner_cookie_written = secret
    base = f"{OWNER_COOKIE}={secret}; Path=/; Max-Age={COOKIE_MAX_AGE_S}"
    script = (f"<script>(() => {{ const base = {json.dumps(base)};"
              " const framed = window.top !== window.self && location.protocol === 'https:';"
              " document.cookie = base + (framed ? '; SameSite=None; Secure; Partitioned' : '; SameSite=Lax');"
              " })();</script>")
    with st.sidebar:
        st.html(script, unsafe_allow_javascript=True, width="content")


def heartbeat_timeout() -> float:
    """Seconds a tab may stay silent before its jobs are stopped: $RDL_HEARTBEAT_TIMEOUT, default 180."""
    raw = os.environ.get(HEARTBEAT_TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_HEARTBEAT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = raw
    return check_number(HEARTBEAT_TIMEOUT_ENV, value, 30.0, 7 * 24 * 3600.0)


@st.cache_resource
def get_registry() -> JobBackend:
    """One job backend for the whole server process (core.training.backends.backend_from_env): by default the local
    registry, which all sessions share the devices through, its limits and run store from environment variables
    (core.training.limits, core.training.run_store, RDL_HEARTBEAT_TIMEOUT), a monitor thread starting queued jobs as
    slots free up; with $RDL_RAY_ADDRESS the course's registry on a Ray cluster, shared by every replica
    (docs/cluster.md)."""
    return backend_from_env(monitor_interval=1.0, heartbeat_timeout=heartbeat_timeout())


def device_label() -> str:
    """What the sidebar names as the training hardware: the first GPU (from core.runtime.cuda_inventory, learned in
    a child process: the web server never initialises CUDA), else the CPU threads."""
    gpus = runtime.cuda_inventory()
    if gpus:
        return f"GPU: {gpus[0].name}"
    return f"CPU ({torch.get_num_threads()} threads)"


