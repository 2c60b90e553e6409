"""Streamlit helpers shared by the pages (the app's only Streamlit code outside app.py and pages/)."""
