"""Reverse Diffusion Lab: `streamlit run app.py`.

The shell only builds the navigation and the shared sidebar; each page lives in pages/.
"""

from pathlib import Path

import streamlit as st

from core.training import configure_cpu_threads
from ui.sidebar import render_job_status, render_sidebar
from ui.state import session_id

st.set_page_config(page_title="Reverse Diffusion Lab", page_icon="🌀", layout="wide")
configure_cpu_threads()  # once per process: leaves a core free for the web server (see core.training)

PAGES = [  # (file, title, icon); pages whose file is missing are left out of the navigation
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/train.py", "Train", ":material/model_training:"),
    ("pages/denoise.py", "Denoise explorer", ":material/blur_on:"),
    ("pages/sample.py", "Sample", ":material/auto_awesome:"),
    ("pages/schedules.py", "Schedule lab", ":material/show_chart:"),
    ("pages/reverse_step.py", "One reverse step", ":material/undo:"),
    ("pages/playground_2d.py", "2-D playground", ":material/scatter_plot:"),
]
root = Path(__file__).parent
navigation = st.navigation([
    st.Page(file, title=title, icon=icon, default=(file == "pages/home.py"))
    for file, title, icon in PAGES if (root / file).exists()
])
session_id()
render_sidebar()
render_job_status()
navigation.run()
