"""Reverse Diffusion Lab core: plain PyTorch, no Streamlit."""
