"""Reverse Diffusion Lab: `streamlit run app.py`.

The shell only builds the navigation and the shared sidebar; each page lives in pages/ and starts with
ui.navigation.require_app_shell(), so a deep link on a fresh server also runs this shell.
"""

import streamlit as st

from core.checks import NonFiniteOutputError
from core.runtime import configure_cpu_threads
from ui.layout import compact
from ui.navigation import HOME, available_pages
from ui.session import remember_browser
from ui.sidebar import render_job_status, render_sidebar
from ui.warm import start as start_warm_up

st.set_page_config(page_title="Reverse Diffusion Lab", page_icon="🌀", layout="wide")
try:
    configure_cpu_threads()  # once per process: leaves a core free for the web server (see core.runtime)
except ValueError as error:  # $RDL_TORCH_THREADS set wrongly by whoever runs the server: say so, on every page
    st.error(f"Server setting: {error}")
    st.stop()

start_warm_up()  # the first visit starts computing the heavy pages' default views, once per server (ui/warm.py)

navigation = st.navigation([
    st.Page(page.file, title=page.title, icon=page.icon, default=(page.file == HOME)) for page in available_pages()
], expanded=True)  # every page listed: collapsed, Streamlit hides those after the tenth behind "View more"
compact()  # the projector layout (ui/layout.py), on every page
remember_browser()  # who this browser is: a cookie, never the URL (ui/session.py)
render_sidebar()
render_job_status()
try:
    navigation.run()
except NonFiniteOutputError as error:  # a network that overflows at some timesteps (issue #21): one line, not a traceback
    st.error(str(error))
