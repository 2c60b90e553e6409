"""The sidebar every page shares: device in use, the active model, uploads, the model's settings."""

from __future__ import annotations

import streamlit as st

from ui import catalog, session, settings, training_panel
from ui.text import escape_markdown, safe_name

SHOWN_MODEL = "sidebar_shown_model"  # (key, label) of the model the picker showed on the last run
VANISHED_NOTICE = "sidebar_vanished_model"  # (what was removed and why, the key shown instead)


def render_sidebar() -> None:
    with st.sidebar:
        st.caption(f"Device: **{session.device_label()}**")
        models = catalog.available_models()
        if not models:
            st.warning("No model yet: train one on the Train page or upload a checkpoint.")
        else:
            settings.restore_model(catalog.shipped_models())  # a link's model, before any page reads it
            note_vanished_model(models)
            keys = list(models)
            current = catalog.active_model_key()
            st.session_state.active_model_key = st.selectbox(
                "Active model", keys, index=keys.index(current) if current in keys else 0,
                format_func=models.get, help="Shipped checkpoints, models trained in this session, and uploads.")
            vanished_model_notice()
            st.session_state[SHOWN_MODEL] = (st.session_state.active_model_key, models[st.session_state.active_model_key])
            settings.model_notice()
            settings.sync_model_url()
        render_upload()
        key = catalog.active_model_key()
        if key:
            try:
                loaded = catalog.load_model(key)
            except (ValueError, KeyError) as error:
                st.error(f"Could not load {escape_markdown(models.get(key, key))}: {escape_markdown(error)}")
                return
            with st.expander("Model settings", expanded=False):
                for name, value in catalog.model_summary(loaded).items():
                    st.markdown(f"**{name}**: {escape_markdown(value)}")


def note_vanished_model(models: dict) -> None:
    """Before the picker: the model this sidebar showed last (still the session's choice) is no longer available, e.g.
    the run store's cleanup removed a trained model, or a shipped file was taken off the server. Its owner is told
    what was removed and why (the run store's own words when it removed it: core.training.run_store.Eviction), and
    which model is shown instead, until they pick another; never a silent switch (issue #21, item 8)."""
    shown = st.session_state.get(SHOWN_MODEL)
    if not shown or shown[0] in models or st.session_state.get("active_model_key") != shown[0]:
        return
    key, label = shown
    source, _, job_id = key.partition(":")
    evictions = [e for e in session.get_registry().evictions_for(session.session_id()) if e.job_id == job_id] \
        if source == "trained" else []
    if evictions:
        why = evictions[-1].message()
    else:
        why = f"Your model {label} is no longer available on the server (its file was removed)."
    replacement = catalog.active_model_key()
    st.session_state[VANISHED_NOTICE] = (f"{why} Now showing {models.get(replacement, replacement)} instead.", replacement)


def vanished_model_notice() -> None:
    """The note_vanished_model message, shown while the model that replaced it stays selected."""
    notice = st.session_state.get(VANISHED_NOTICE)
    if notice and notice[1] != st.session_state.get("active_model_key"):
        st.session_state.pop(VANISHED_NOTICE)
    elif notice:
        st.warning(escape_markdown(notice[0], limit=600), icon=":material/delete_forever:")


def render_upload() -> None:
    """The checkpoint upload: checked by core.checkpoints before anything is built, kept in this session only."""
    uploaded = st.file_uploader("Upload a checkpoint (.safetensors)", type=["safetensors"], key="upload_checkpoint",
                                help="A file saved by this app or `python -m core.train`. It is validated, never unpickled.")
    if uploaded is not None and st.session_state.get("last_upload") != (uploaded.file_id, uploaded.size):
        st.session_state.last_upload = (uploaded.file_id, uploaded.size)
        try:
            st.session_state.active_model_key = catalog.add_uploaded(uploaded.name, uploaded.getvalue())
            st.session_state.upload_error = None
            st.rerun()
        except ValueError as error:  # CheckpointError included; every check of a file raises a ValueError
            st.session_state.upload_error = f"{safe_name(uploaded.name)} is not a usable checkpoint: {error}"
    if st.session_state.get("upload_error"):
        st.error(escape_markdown(st.session_state.upload_error, limit=1000))
    if st.session_state.get("uploaded_models"):
        if st.button("Remove uploaded models", key="remove_uploads", help="Frees the memory they use on the server."):
            catalog.remove_uploads()
            st.session_state.pop(SHOWN_MODEL, None)  # removed by its owner: nothing to tell
            st.session_state.upload_error = None
            st.rerun()


def render_job_status() -> None:
    """A heartbeat while the tab is open (so the reaper leaves this session's jobs alone) and a one-line
    status of the newest job, visible from every page."""

    @st.fragment(run_every=15)
    def heartbeat():
        registry = session.get_registry()
        registry.heartbeat(session.session_id())
        jobs = registry.jobs_for(session.session_id())
        if jobs:
            st.caption(f"Training job: {training_panel.status_line(jobs[-1].snapshot())}")

    with st.sidebar:
        heartbeat()
